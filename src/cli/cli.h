/* cli/ — the cdnrefresh command-line client: commands and output (main.c, cli_print.c), HTTP to
 * the engine (cli_http.c), credentials and signing (cli_credentials.c), replaying an access log
 * (cli_replay.c). May include cli/ and common/ (scripts/check-layers).
 *
 * cli.h — pieces of the cdnrefresh command-line client shared between its files. */
#ifndef CDR_CLI_H
#define CDR_CLI_H

#include <jansson.h>
#include <stdbool.h>

/* Exit codes scripts can rely on (docs/CLI.md). */
enum cli_exit {
  CLI_EXIT_OK = 0,          /* done; with --wait the task finished done */
  CLI_EXIT_TASK_FAILED = 1, /* --wait: the task finished partial, failed or canceled */
  CLI_EXIT_USAGE = 2,       /* the command line is wrong */
  CLI_EXIT_REJECTED = 3,    /* the engine refused the request (4xx) */
  CLI_EXIT_ENGINE = 4,      /* the engine could not be reached or failed (5xx) */
  CLI_EXIT_TIMEOUT = 5,     /* --wait: --timeout passed before the task finished */
};

struct cli_response {
  long status;  /* HTTP status */
  json_t *body; /* parsed JSON body, or NULL when it was not JSON; caller decrefs */
};

/* A tenant's access key and secret; both NULL for unsigned requests (an engine in --dev mode). */
struct cli_credentials {
  const char *key, *secret; /* what is used: point to argv, the environment or the file_ fields */
  char *file_key, *file_secret; /* read from the credentials file, owned */
};

/* Finds the credentials: flags (NULL when not given), then $CDNREFRESH_KEY and
 * $CDNREFRESH_SECRET, then the credentials file (flag_file, $CDNREFRESH_CREDENTIALS or
 * ~/.config/cdnrefresh/credentials), warning when the file is readable by others. Returns
 * CLI_EXIT_OK, or CLI_EXIT_USAGE after printing why. Free with cli_credentials_free. */
int cli_credentials_load(const char *flag_key, const char *flag_secret, const char *flag_file,
                         struct cli_credentials *out);

void cli_credentials_free(struct cli_credentials *credentials);

/* Signs every later request with credentials (which must outlive them); NULL key: unsigned. */
void cli_http_sign_with(const struct cli_credentials *credentials);

/* Sends method path (with optional JSON body) to the engine at base URL and parses the answer.
 * Returns CLI_EXIT_OK with *out filled, or CLI_EXIT_ENGINE after printing why to stderr. */
int cli_http_request(const char *engine, const char *method, const char *path, const char *body,
                     struct cli_response *out);

/* Releases the connection cli_http_request kept open. */
void cli_http_cleanup(void);

/* cdnrefresh replay FILE: submits again the accepted POST /v1/purge and /v1/preload requests of an
 * engine access log (--access-log), at most rate per second (0: as fast as the engine answers),
 * every POST with all. Prints a summary (JSON with json). Returns an exit code. */
int cli_replay(const char *engine, const char *file, double rate, bool all, bool json);

/* Prints a task as "key: value" lines. */
void cli_print_task(const json_t *task);

/* Prints a table of tasks, one a line. */
void cli_print_task_table(const json_t *tasks);

/* Prints a table of a task's items. */
void cli_print_item_table(const json_t *items);

/* Prints a table of nodes, or a line saying there are none. */
void cli_print_node_table(const json_t *nodes);

/* Prints GET /v1/quota's answer: each quota's use and limit, and the rate limits. */
void cli_print_quota(const json_t *quota);

/* Prints the error object of an API error response to stderr. */
void cli_print_error(long status, const json_t *body);

/* Shows a task's progress: a redrawn bar on a terminal, else one line when it changed. */
void cli_print_progress(const json_t *task, bool terminal, bool final);

#endif
