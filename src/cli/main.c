/* main.c — cdnrefresh, the command-line client: submit purges and preloads, wait on them, list
 * tasks and nodes, replay an access log. Every command talks to the engine's HTTP API
 * (docs/API.md). */
#include "cli/cli.h"
#include "version.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct cli_options {
  const char *engine;
  bool json;
  bool wait;
  long timeout_s; /* --wait gives up after this; 0 waits forever */
  const char *mode, *state, *callback;
  long deadline_s, limit;
  double rate; /* replay: requests per second, 0 for as fast as possible */
  const char *key, *secret, *credentials; /* --key, --secret, --credentials */
  bool all;                               /* replay: every POST, not only the accepted ones */
  bool no_verify;                         /* "verify": false */
  json_t *prefixes, *regexes, *tags, *groups, *headers;
};

static void cli_usage(FILE *out) {
  fprintf(
      out,
      "usage: cdnrefresh [--engine URL] [--json] COMMAND [ARGS]\n"
      "\n"
      "Commands:\n"
      "  purge URL... [--prefix P]... [--regex R]... [--tag T]... [--mode delete|invalidate]\n"
      "               [--group G]... [--callback URL] [--deadline S] [--no-verify]\n"
      "               [--wait [--timeout S]]\n"
      "      remove URLs (and everything under a prefix, matching a regex or tagged) from\n"
      "      every edge cache, or from the nodes in the named groups; each agent then checks\n"
      "      the cache no longer holds a URL it purged (--no-verify: skip that check)\n"
      "  preload URL... [--header 'Name: value']... [--group G]... [--no-verify]\n"
      "               [--wait [--timeout S]]\n"
      "      fetch URLs through every edge cache so they are cached before traffic arrives;\n"
      "      each agent then checks its cache holds the copy (--no-verify: skip that check)\n"
      "  task ID                 show one task with its counters\n"
      "  items ID [--state S]    show a task's targets (S: pending, succeeded, failed, ...)\n"
      "  tasks [--state S] [--limit N]   list tasks, newest first\n"
      "  cancel ID               stop a task's pending work\n"
      "  quota                   show the tenant's daily quotas and rate limits\n"
      "  nodes                   list edge nodes\n"
      "  nodes remove ID         forget a node\n"
      "  replay FILE [--rate N] [--all]\n"
      "      submit again the accepted purge and preload requests of an engine access log\n"
      "      (cdnrefresh-engine --access-log FILE), N per second (default 100; 0: as fast as\n"
      "      the engine answers); --all also resends requests the engine had refused\n"
      "\n"
      "Options:\n"
      "  --engine URL   engine API (default $CDNREFRESH_ENGINE or http://127.0.0.1:8470)\n"
      "  --json         print the engine's JSON instead of tables\n"
      "  --key K, --secret S   sign requests as a tenant (default $CDNREFRESH_KEY and\n"
      "                 $CDNREFRESH_SECRET, else the credentials file); without them requests\n"
      "                 go unsigned, which only an engine in --dev mode takes\n"
      "  --credentials FILE    'key = ...' and 'secret = ...' lines, mode 600 (default\n"
      "                 $CDNREFRESH_CREDENTIALS or ~/.config/cdnrefresh/credentials)\n"
      "  --wait         after submitting, follow the task until it finishes: a progress bar\n"
      "                 on a terminal, a line per change otherwise\n"
      "  --timeout S    give up waiting after S seconds (exit 5)\n"
      "  --version, --help\n"
      "\n"
      "Exit codes: 0 ok (with --wait: task done), 1 task ended partial/failed/canceled,\n"
      "2 usage error, 3 request refused by the engine (4xx), 4 engine unreachable or 5xx,\n"
      "5 --wait timed out.\n"
      "\n"
      "Example:\n"
      "  cdnrefresh purge https://example.com/a.css --prefix https://example.com/img/ --wait\n");
}

/* Prints an answer: raw JSON with --json, else via print (for 2xx) or the error (for 4xx/5xx).
 * Returns the exit code for the answer's status. */
static int cli_answer(const struct cli_options *options, const struct cli_response *response,
                      void (*print)(const json_t *)) {
  if (response->status >= 400) {
    if (options->json && response->body)
      json_dumpf(response->body, stdout, JSON_INDENT(2)), putchar('\n');
    cli_print_error(response->status, response->body);
    return response->status >= 500 ? CLI_EXIT_ENGINE : CLI_EXIT_REJECTED;
  }
  if (options->json) {
    json_dumpf(response->body, stdout, JSON_INDENT(2));
    putchar('\n');
  } else if (print) {
    print(response->body);
  }
  return CLI_EXIT_OK;
}

static int cli_call(const struct cli_options *options, const char *method, const char *path,
                    const char *body, void (*print)(const json_t *), json_t **keep) {
  struct cli_response response = {0};
  int rc = cli_http_request(options->engine, method, path, body, &response);
  if (rc)
    return rc;
  rc = cli_answer(options, &response, print);
  if (keep && rc == CLI_EXIT_OK)
    *keep = response.body;
  else
    json_decref(response.body);
  return rc;
}

static void cli_print_tasks_page(const json_t *body) {
  cli_print_task_table(json_object_get(body, "tasks"));
  const char *next = json_string_value(json_object_get(body, "next_cursor"));
  if (next)
    printf("(more: tasks --cursor %s)\n", next);
}

static void cli_print_items_page(const json_t *body) {
  cli_print_item_table(json_object_get(body, "items"));
}

static void cli_print_nodes(const json_t *body) {
  cli_print_node_table(json_object_get(body, "nodes"));
  const char *next = json_string_value(json_object_get(body, "next_cursor"));
  if (next)
    printf("(%lld nodes in all; the next page: GET /v1/nodes?cursor=%s)\n",
           (long long)json_integer_value(json_object_get(body, "matching")), next);
}

static void cli_print_removed(const json_t *body) {
  printf("node %s removed; its pending items failed with node_removed\n",
         json_string_value(json_object_get(body, "node_id")));
}

static bool cli_state_final(const char *status) {
  static const char *const finals[] = {"done", "partial", "failed", "canceled", NULL};
  for (const char *const *f = finals; *f; f++) {
    if (status && strcmp(status, *f) == 0)
      return true;
  }
  return false;
}

/* Polls the task until it finishes or the timeout passes, showing progress. */
static int cli_wait(const struct cli_options *options, const char *task_id) {
  char path[128];
  snprintf(path, sizeof(path), "/v1/tasks/%s", task_id);
  bool terminal = isatty(STDERR_FILENO);
  time_t start = time(NULL);
  for (;;) {
    struct cli_response response = {0};
    int rc = cli_http_request(options->engine, "GET", path, NULL, &response);
    if (rc)
      return rc;
    if (response.status != 200) {
      rc = cli_answer(options, &response, NULL);
      json_decref(response.body);
      return rc;
    }
    const char *status = json_string_value(json_object_get(response.body, "status"));
    bool final = cli_state_final(status);
    cli_print_progress(response.body, terminal, final);
    if (final) {
      rc = strcmp(status, "done") == 0 ? CLI_EXIT_OK : CLI_EXIT_TASK_FAILED;
      if (options->json) {
        json_dumpf(response.body, stdout, JSON_INDENT(2));
        putchar('\n');
      }
      json_decref(response.body);
      return rc;
    }
    json_decref(response.body);
    if (options->timeout_s > 0 && time(NULL) - start >= options->timeout_s) {
      if (terminal)
        fputc('\n', stderr);
      fprintf(stderr, "cdnrefresh: task %s has not finished after %lds\n", task_id,
              options->timeout_s);
      return CLI_EXIT_TIMEOUT;
    }
    usleep(250 * 1000);
  }
}

static void cli_print_submitted(const json_t *task) {
  printf("%s\n", json_string_value(json_object_get(task, "task_id")));
}

/* Builds the body of a purge or preload from the command line and submits it. */
static int cli_submit(const struct cli_options *options, bool purge, int argc, char **argv) {
  json_t *body = json_object();
  json_t *urls = json_array();
  for (int i = 0; i < argc; i++)
    json_array_append_new(urls, json_string(argv[i]));
  json_object_set_new(body, "urls", urls);
  if (purge) {
    json_object_set(body, "prefixes", options->prefixes);
    json_object_set(body, "regexes", options->regexes);
    json_object_set(body, "tags", options->tags);
    if (options->mode)
      json_object_set_new(body, "mode", json_string(options->mode));
  } else if (json_object_size(options->headers) > 0) {
    json_object_set(body, "headers", options->headers);
  }
  if (options->no_verify)
    json_object_set_new(body, "verify", json_false());
  if (json_array_size(options->groups) > 0)
    json_object_set_new(body, "nodes", json_pack("{s:O}", "groups", options->groups));
  if (options->callback)
    json_object_set_new(body, "callback", json_string(options->callback));
  if (options->deadline_s > 0)
    json_object_set_new(body, "deadline_s", json_integer(options->deadline_s));
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);

  json_t *task = NULL;
  int rc = cli_call(options, "POST", purge ? "/v1/purge" : "/v1/preload", text,
                    options->wait ? NULL : cli_print_submitted, &task);
  free(text);
  if (rc == CLI_EXIT_OK && options->wait) {
    const char *id = json_string_value(json_object_get(task, "task_id"));
    if (!options->json)
      printf("%s\n", id);
    fflush(stdout);
    rc = cli_wait(options, id);
  }
  json_decref(task);
  return rc;
}

/* Adds "Name: value" to the headers object; false when it has no colon. */
static bool cli_header_add(json_t *headers, const char *text) {
  const char *colon = strchr(text, ':');
  if (!colon || colon == text)
    return false;
  const char *value = colon + 1;
  while (*value == ' ')
    value++;
  char name[256];
  snprintf(name, sizeof(name), "%.*s", (int)(colon - text), text);
  json_object_set_new(headers, name, json_string(value));
  return true;
}

/* Runs the command in argv[0] with its arguments. */
static int cli_run(struct cli_options *options, int argc, char **argv) {
  const char *command = argv[0];
  char path[256];
  if (strcmp(command, "purge") == 0 || strcmp(command, "preload") == 0)
    return cli_submit(options, command[1] == 'u', argc - 1, argv + 1);
  if ((strcmp(command, "task") == 0 || strcmp(command, "cancel") == 0 ||
       strcmp(command, "items") == 0) &&
      argc == 2) {
    if (strcmp(command, "items") == 0) {
      snprintf(path, sizeof(path), "/v1/tasks/%.40s/items%s%.20s", argv[1],
               options->state ? "?state=" : "", options->state ? options->state : "");
      return cli_call(options, "GET", path, NULL, cli_print_items_page, NULL);
    }
    snprintf(path, sizeof(path), "/v1/tasks/%.40s", argv[1]);
    return cli_call(options, command[0] == 't' ? "GET" : "DELETE", path, NULL, cli_print_task,
                    NULL);
  }
  if (strcmp(command, "tasks") == 0 && argc == 1) {
    snprintf(path, sizeof(path), "/v1/tasks?limit=%ld%s%.20s", options->limit,
             options->state ? "&state=" : "", options->state ? options->state : "");
    return cli_call(options, "GET", path, NULL, cli_print_tasks_page, NULL);
  }
  if (strcmp(command, "replay") == 0 && argc == 2)
    return cli_replay(options->engine, argv[1], options->rate, options->all, options->json);
  if (strcmp(command, "quota") == 0 && argc == 1)
    return cli_call(options, "GET", "/v1/quota", NULL, cli_print_quota, NULL);
  if (strcmp(command, "nodes") == 0 && argc == 1)
    return cli_call(options, "GET", "/v1/nodes?limit=1000", NULL, cli_print_nodes, NULL);
  if (strcmp(command, "nodes") == 0 && argc == 3 && strcmp(argv[1], "remove") == 0) {
    snprintf(path, sizeof(path), "/v1/nodes/%.64s", argv[2]);
    return cli_call(options, "DELETE", path, NULL, cli_print_removed, NULL);
  }
  fprintf(stderr, "cdnrefresh: unknown command or wrong arguments: %s (see --help)\n", command);
  return CLI_EXIT_USAGE;
}

static long cli_positive(const char *text, const char *flag, bool *ok) {
  char *end;
  long value = strtol(text, &end, 10);
  if (*end || end == text || value < 1) {
    fprintf(stderr, "cdnrefresh: %s needs a positive whole number, got '%s'\n", flag, text);
    *ok = false;
  }
  return value;
}

/* --rate: requests per second, 0 or more. */
static double cli_rate(const char *text, bool *ok) {
  char *end;
  double value = strtod(text, &end);
  if (*end || end == text || !(value >= 0)) {
    fprintf(stderr, "cdnrefresh: --rate needs a number of requests per second >= 0, got '%s'\n",
            text);
    *ok = false;
  }
  return value;
}

int main(int argc, char **argv) {
  const char *env_engine = getenv("CDNREFRESH_ENGINE");
  struct cli_options options = {.engine = env_engine && env_engine[0] ? env_engine
                                                                      : "http://127.0.0.1:8470",
                                .limit = 50,
                                .rate = 100,
                                .prefixes = json_array(),
                                .regexes = json_array(),
                                .tags = json_array(),
                                .groups = json_array(),
                                .headers = json_object()};
  enum {
    OPT_ENGINE = 256,
    OPT_JSON,
    OPT_WAIT,
    OPT_TIMEOUT,
    OPT_PREFIX,
    OPT_REGEX,
    OPT_TAG,
    OPT_MODE,
    OPT_GROUP,
    OPT_CALLBACK,
    OPT_DEADLINE,
    OPT_HEADER,
    OPT_STATE,
    OPT_LIMIT,
    OPT_RATE,
    OPT_ALL,
    OPT_KEY,
    OPT_SECRET,
    OPT_CREDENTIALS,
    OPT_NO_VERIFY,
    OPT_VERSION,
    OPT_HELP
  };
  static const struct option longopts[] = {
      {"engine", required_argument, NULL, OPT_ENGINE},
      {"json", no_argument, NULL, OPT_JSON},
      {"wait", no_argument, NULL, OPT_WAIT},
      {"timeout", required_argument, NULL, OPT_TIMEOUT},
      {"prefix", required_argument, NULL, OPT_PREFIX},
      {"regex", required_argument, NULL, OPT_REGEX},
      {"tag", required_argument, NULL, OPT_TAG},
      {"mode", required_argument, NULL, OPT_MODE},
      {"group", required_argument, NULL, OPT_GROUP},
      {"callback", required_argument, NULL, OPT_CALLBACK},
      {"deadline", required_argument, NULL, OPT_DEADLINE},
      {"header", required_argument, NULL, OPT_HEADER},
      {"state", required_argument, NULL, OPT_STATE},
      {"limit", required_argument, NULL, OPT_LIMIT},
      {"rate", required_argument, NULL, OPT_RATE},
      {"all", no_argument, NULL, OPT_ALL},
      {"key", required_argument, NULL, OPT_KEY},
      {"secret", required_argument, NULL, OPT_SECRET},
      {"credentials", required_argument, NULL, OPT_CREDENTIALS},
      {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
      {"version", no_argument, NULL, OPT_VERSION},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0}};
  bool ok = true, help = false, version = false;
  int opt;
  while (ok && (opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (opt) {
    case OPT_ENGINE: options.engine = optarg; break;
    case OPT_JSON: options.json = true; break;
    case OPT_WAIT: options.wait = true; break;
    case OPT_TIMEOUT: options.timeout_s = cli_positive(optarg, "--timeout", &ok); break;
    case OPT_PREFIX: json_array_append_new(options.prefixes, json_string(optarg)); break;
    case OPT_REGEX: json_array_append_new(options.regexes, json_string(optarg)); break;
    case OPT_TAG: json_array_append_new(options.tags, json_string(optarg)); break;
    case OPT_MODE: options.mode = optarg; break;
    case OPT_NO_VERIFY: options.no_verify = true; break;
    case OPT_GROUP: json_array_append_new(options.groups, json_string(optarg)); break;
    case OPT_CALLBACK: options.callback = optarg; break;
    case OPT_DEADLINE: options.deadline_s = cli_positive(optarg, "--deadline", &ok); break;
    case OPT_HEADER:
      if (!cli_header_add(options.headers, optarg)) {
        fprintf(stderr, "cdnrefresh: --header needs 'Name: value', got '%s'\n", optarg);
        ok = false;
      }
      break;
    case OPT_STATE: options.state = optarg; break;
    case OPT_LIMIT: options.limit = cli_positive(optarg, "--limit", &ok); break;
    case OPT_RATE: options.rate = cli_rate(optarg, &ok); break;
    case OPT_ALL: options.all = true; break;
    case OPT_KEY: options.key = optarg; break;
    case OPT_SECRET: options.secret = optarg; break;
    case OPT_CREDENTIALS: options.credentials = optarg; break;
    case OPT_VERSION: version = true; break;
    case OPT_HELP:
    case 'h': help = true; break;
    default: ok = false; break;
    }
  }
  int rc = CLI_EXIT_OK;
  if (ok && help) {
    cli_usage(stdout);
  } else if (ok && version) {
    printf("cdnrefresh %s (commit %s, built %s)\n", CDR_VERSION, CDR_COMMIT, CDR_BUILD_DATE);
  } else if (!ok || optind >= argc) {
    if (ok)
      cli_usage(stderr);
    rc = CLI_EXIT_USAGE;
  } else {
    struct cli_credentials credentials = {0};
    rc = cli_credentials_load(options.key, options.secret, options.credentials, &credentials);
    if (rc == CLI_EXIT_OK) {
      cli_http_sign_with(&credentials);
      curl_global_init(CURL_GLOBAL_DEFAULT);
      rc = cli_run(&options, argc - optind, argv + optind);
      cli_http_cleanup();
      curl_global_cleanup();
    }
    cli_credentials_free(&credentials);
  }
  json_decref(options.prefixes);
  json_decref(options.regexes);
  json_decref(options.tags);
  json_decref(options.groups);
  json_decref(options.headers);
  return rc;
}
