/* engine_config.h — every setting of cdnrefresh-engine, with its flag, INI name and default.
 *
 * docs/CONFIG.md documents the same table; `cdnrefresh-engine --help` prints it. */
#ifndef CDR_ENGINE_CONFIG_H
#define CDR_ENGINE_CONFIG_H

#include "common/settings.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct engine_config {
  char api_listen[SETTING_STRING_MAX];        /* HOST:PORT of the HTTP API */
  char agent_listen[SETTING_STRING_MAX];      /* HOST:PORT agents dial */
  char admin_listen[SETTING_STRING_MAX];      /* HOST:PORT of the operators' endpoints; "": off */
  int64_t replay_window_s;                    /* signed timestamps this close to now pass */
  char data_dir[SETTING_STRING_MAX];          /* where the task store lives, without store_url */
  char store_url[SETTING_STRING_MAX];         /* the store's address (store.h); empty: data_dir's */
  char store_address[SETTING_STRING_MAX + 8]; /* what the engine opens: store_url, or
                                                 "sqlite:" data_dir */
  bool dev;                                   /* unsigned requests, loopback only */
  bool allow_insecure;      /* signed mode may run with an open agent port or the public secret */
  int64_t threads;          /* event loops; 0 = one per core */
  int64_t max_body_bytes;   /* request body limit */
  int64_t max_header_bytes; /* request headers limit (431 beyond) */
  int64_t max_unfinished_results;       /* results in memory past which tasks get 503; 0: none */
  int64_t max_parked_targets;           /* targets parked for offline nodes, the same; 0: none */
  int64_t request_timeout_ms;           /* whole request, or an idle keep-alive, at most */
  int64_t max_items;                    /* targets per request */
  int64_t max_url_length;               /* bytes per URL, prefix or regex */
  int64_t tenant_reads_max;             /* a tenant's item pages and task lists at once */
  int64_t default_deadline_s;           /* deadline of a task that names none */
  int64_t max_deadline_s;               /* largest deadline a task may ask for */
  int64_t commit_batch;                 /* most tasks per store transaction */
  char synchronous[SETTING_STRING_MAX]; /* "full" or "normal" */
  char log_level[SETTING_STRING_MAX];   /* debug, info, warn, error */
  char access_log[SETTING_STRING_MAX];  /* API request log file; empty: off */
  char agent_token[SETTING_STRING_MAX]; /* shared secret agents present in their Hello */
  char node_tokens_file[SETTING_STRING_MAX]; /* per-node tokens; empty: the shared one only */
  char tls_cert[SETTING_STRING_MAX];         /* agent link TLS: PEM chain; empty: plain TCP */
  char tls_key[SETTING_STRING_MAX];
  char tls_client_ca[SETTING_STRING_MAX]; /* agents must present a certificate from this CA */
  int64_t auth_failures_max; /* wrong tokens per address, and per node id, refused at once */
  int64_t auth_guesses_max;  /* wrong tokens of all peers refused at once (agent_auth.h) */
  int64_t auth_window_s;
  int64_t heartbeat_ms;            /* heartbeat interval on agent links */
  int64_t heartbeat_misses;        /* silent intervals before a node is offline */
  int64_t pending_max;             /* connections waiting for their Welcome, in all */
  int64_t pending_per_address_max; /* ... and from one address */
  int64_t hello_timeout_ms;        /* a connection's time to complete its Hello */
  int64_t read_budget_ms;          /* longest a request's store reads may take */
  int64_t retention_days;  /* finished tasks are deleted this long after creation; 0 never */
  int64_t max_window;      /* most items in flight per node, whatever it asks */
  int64_t max_frame_bytes; /* largest link frame payload accepted */
  int64_t max_attempts;    /* tries per (item, node) on retryable failures */
  int64_t retry_base_ms;   /* first retry delay; doubles per attempt */
  int64_t retry_max_ms;    /* longest retry delay */
  char callback_secret[SETTING_STRING_MAX]; /* HMAC key of callback signatures */
  char callback_allow[SETTING_STRING_MAX];  /* internal addresses callbacks may use */
  int64_t callback_window_s;                /* how long a callback is retried */
  int64_t callback_retry_base_ms;           /* first callback retry delay; doubles */
  int64_t callback_timeout_ms;              /* one callback request */
  char alert_url[SETTING_STRING_MAX];       /* alert webhook; empty: alerts are only logged */
  int64_t alert_window_s;                   /* one alert per (kind, subject) in this window */
  int64_t backlog_items;                    /* a node queue deeper than this ... */
  int64_t backlog_s;                        /* ... for this long raises a backlog alert */
  struct sockaddr_storage api_address;      /* api_listen, resolved by engine_config_load */
  struct sockaddr_storage admin_address;    /* admin_listen, when set */
};

/* Loads defaults, the --config file and flags into config and checks how settings fit together.
 * Returns 0, or CDR_ECONFIG with a message naming the setting in err. */
/* The store address an engine with these settings opens into out: url, else SQLite in data_dir.
 * CDR_ECONFIG with err naming the setting and what it accepts when it is none. */
int engine_config_store_address(const char *url, const char *data_dir, char *out, size_t out_size,
                                char *err, size_t err_size);

int engine_config_load(struct engine_config *config, int argc, char **argv,
                       struct settings_cli *cli, char *err, size_t err_size);

/* Prints the usage text with every setting. */
void engine_config_print_help(FILE *out);

#endif
