/* engine_config.c — the engine's settings table and the checks across settings. */
#include "engine/engine_config.h"

#include "common/address.h"
#include "common/error.h"
#include "common/log.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define ENGINE_FIELD(name) offsetof(struct engine_config, name)

/* The callback secret before an operator sets one: public, so good for --dev only. */
#define ENGINE_DEFAULT_CALLBACK_SECRET "cdnrefresh-dev-secret"

/* The shortest agents.token a signed engine takes on a non-loopback agent address: 32 characters
 * (openssl rand -hex 16: 128 random bits). */
enum { ENGINE_AGENT_TOKEN_MIN = 32 };

static const struct setting engine_settings[] = {
    {"engine", "api_listen", "api-listen", SETTING_STRING, ENGINE_FIELD(api_listen),
     "127.0.0.1:8470", 0, 0, NULL, "HOST:PORT the HTTP API listens on"},
    {"engine", "agent_listen", "agent-listen", SETTING_STRING, ENGINE_FIELD(agent_listen),
     "127.0.0.1:8471", 0, 0, NULL, "HOST:PORT edge agents connect to"},
    {"engine", "admin_listen", "admin-listen", SETTING_STRING, ENGINE_FIELD(admin_listen), "", 0, 0,
     NULL,
     "HOST:PORT of the operators' listener (nodes, stats, metrics, status page, tenants), "
     "unsigned: keep it on loopback or a management network; empty: off (in --dev they are on "
     "the API port)"},
    {"engine", "data_dir", "data-dir", SETTING_STRING, ENGINE_FIELD(data_dir),
     "/var/lib/cdnrefresh", 0, 0, NULL, "directory of the task store (created if missing)"},
    {"engine", "dev", "dev", SETTING_BOOL, ENGINE_FIELD(dev), "false", 0, 0, NULL,
     "development mode: unsigned requests are the dev tenant's (every host, no limits) and "
     "operators' endpoints are on the API port; the API must listen on loopback"},
    {"engine", "allow_insecure", "allow-insecure", SETTING_BOOL, ENGINE_FIELD(allow_insecure),
     "false", 0, 0, NULL,
     "without --dev, start even with agents.token empty on a non-loopback agent address (anyone "
     "reaching it registers nodes) or callbacks.secret left at its public default (a warning "
     "is logged)"},
    {"auth", "replay_window_s", "replay-window", SETTING_INT, ENGINE_FIELD(replay_window_s), "300",
     1, 86400, NULL,
     "a signed request's timestamp may differ from the engine's clock by at most this many "
     "seconds"},
    {"engine", "threads", "threads", SETTING_INT, ENGINE_FIELD(threads), "0", 0, 256, NULL,
     "event loops serving the API; 0 means one per core"},
    {"engine", "log_level", "log-level", SETTING_CHOICE, ENGINE_FIELD(log_level), "info", 0, 0,
     "debug|info|warn|error", "lowest level of log lines written to stderr"},
    {"engine", "access_log", "access-log", SETTING_STRING, ENGINE_FIELD(access_log), "", 0, 0, NULL,
     "append one JSON line per API request (with POST bodies) to this file, for "
     "`cdnrefresh replay`; empty: off"},
    {"limits", "max_body_bytes", "max-body-bytes", SETTING_INT, ENGINE_FIELD(max_body_bytes),
     "1048576", 1024, 64 * 1024 * 1024, NULL, "largest request body accepted, in bytes"},
    {"limits", "max_unfinished_results", "max-unfinished-results", SETTING_INT,
     ENGINE_FIELD(max_unfinished_results), "4000000", 0, 1000000000000, NULL,
     "unfinished (URL, node) results of the tasks in memory past which a tenant holding its "
     "share of them (the bound divided among the tenants with work waiting) gets 503 "
     "backlog_full with Retry-After instead of a 202 (0: no bound)"},
    {"limits", "max_parked_targets", "max-parked-targets", SETTING_INT,
     ENGINE_FIELD(max_parked_targets), "4000000", 0, 1000000000000, NULL,
     "targets of the tasks waiting in the store for offline nodes only past which a tenant "
     "holding its share of them gets 503 offline_backlog_full with Retry-After instead of a 202 "
     "(0: no bound)"},
    {"limits", "max_header_bytes", "max-header-bytes", SETTING_INT, ENGINE_FIELD(max_header_bytes),
     "16384", 1024, 1048576, NULL,
     "largest total of request header names and values, in bytes (431 beyond)"},
    {"limits", "request_timeout_ms", "request-timeout-ms", SETTING_INT,
     ENGINE_FIELD(request_timeout_ms), "10000", 100, 600000, NULL,
     "a client that has not sent a whole request (headers and body) within this is disconnected"},
    {"limits", "max_items_per_request", "max-items", SETTING_INT, ENGINE_FIELD(max_items), "1000",
     1, 100000, NULL, "most targets (URLs, prefixes, regexes, tags together) in one request"},
    {"limits", "tenant_reads_max", "tenant-reads-max", SETTING_INT, ENGINE_FIELD(tenant_reads_max),
     "2", 1, 10000, NULL,
     "item pages and task lists one tenant may have running at once (across every API loop); "
     "more get 429 rate_limited with Retry-After"},
    {"limits", "max_url_length", "max-url-length", SETTING_INT, ENGINE_FIELD(max_url_length),
     "2048", 64, 65536, NULL, "longest URL, prefix or regex accepted, in bytes"},
    {"tasks", "default_deadline_s", "default-deadline", SETTING_INT,
     ENGINE_FIELD(default_deadline_s), "3600", 1, 7 * 86400, NULL,
     "seconds a task may take when its request names no deadline_s"},
    {"tasks", "retention_days", "retention-days", SETTING_INT, ENGINE_FIELD(retention_days), "30",
     0, 36500, NULL,
     "days after its creation a finished task (with its results) is deleted, in small batches; "
     "0 keeps every task"},
    {"tasks", "max_deadline_s", "max-deadline", SETTING_INT, ENGINE_FIELD(max_deadline_s), "86400",
     1, 30 * 86400, NULL, "largest deadline_s a request may ask for"},
    {"agents", "token", "agent-token", SETTING_STRING, ENGINE_FIELD(agent_token), "", 0, 0, NULL,
     "shared secret every agent must present (empty: agents present an empty token)"},
    {"agents", "node_tokens_file", "agent-tokens-file", SETTING_STRING,
     ENGINE_FIELD(node_tokens_file), "", 0, 0, NULL,
     "file of NODE_ID TOKEN lines: a node listed there must present its own token instead of "
     "agents.token (keep it mode 0600)"},
    {"agents", "tls_cert", "agent-tls-cert", SETTING_STRING, ENGINE_FIELD(tls_cert), "", 0, 0, NULL,
     "PEM certificate chain for TLS on the agent port (with agents.tls_key); empty: plain TCP"},
    {"agents", "tls_key", "agent-tls-key", SETTING_STRING, ENGINE_FIELD(tls_key), "", 0, 0, NULL,
     "PEM private key of agents.tls_cert"},
    {"agents", "tls_client_ca", "agent-tls-client-ca", SETTING_STRING, ENGINE_FIELD(tls_client_ca),
     "", 0, 0, NULL,
     "PEM CA certificates: agents must present a client certificate signed by one (TLS only)"},
    {"agents", "auth_failures_max", "auth-failures-max", SETTING_INT,
     ENGINE_FIELD(auth_failures_max), "10", 1, 100000, NULL,
     "wrong tokens from one address, and for one node id, within auth_window_s that are refused "
     "at once; later ones are refused after a 1 s pause until the window ends (a right token is "
     "always welcomed at once)"},
    {"agents", "auth_guesses_max", "auth-guesses-max", SETTING_INT, ENGINE_FIELD(auth_guesses_max),
     "100", 1, 10000000, NULL,
     "wrong tokens from all peers within auth_window_s that are refused at once; later ones are "
     "refused after a 1 s pause and agent.guessing is logged, until the window ends"},
    {"agents", "auth_window_s", "auth-window", SETTING_INT, ENGINE_FIELD(auth_window_s), "60", 1,
     86400, NULL, "the window, in seconds, over which wrong tokens are counted"},
    {"agents", "heartbeat_ms", "heartbeat-ms", SETTING_INT, ENGINE_FIELD(heartbeat_ms), "1000", 50,
     60000, NULL, "heartbeat interval on agent links, both ways"},
    {"agents", "heartbeat_misses", "heartbeat-misses", SETTING_INT, ENGINE_FIELD(heartbeat_misses),
     "3", 2, 100, NULL, "heartbeat intervals of silence after which a node is offline"},
    {"agents", "pending_max", "agent-pending-max", SETTING_INT, ENGINE_FIELD(pending_max), "1024",
     1, 100000, NULL,
     "agent connections that may wait for their Welcome at once (each holds at most a Hello's "
     "16 KiB); one more closes the oldest of them"},
    {"agents", "pending_per_address_max", "agent-pending-per-address", SETTING_INT,
     ENGINE_FIELD(pending_per_address_max), "256", 1, 100000, NULL,
     "agent connections from one address that may wait for their Welcome at once; one more "
     "closes the oldest of them from that address"},
    {"agents", "hello_timeout_ms", "agent-hello-timeout-ms", SETTING_INT,
     ENGINE_FIELD(hello_timeout_ms), "2000", 100, 60000, NULL,
     "how long a new agent connection may take to complete its Hello (a TLS handshake included) "
     "before it is closed"},
    {"agents", "max_window", "max-window", SETTING_INT, ENGINE_FIELD(max_window), "1024", 1, 65536,
     NULL, "most work items in flight per node, whatever window its agent asks for"},
    {"agents", "max_frame_bytes", "max-frame-bytes", SETTING_INT, ENGINE_FIELD(max_frame_bytes),
     "16777216", 65536, 268435456, NULL, "largest link frame payload accepted, in bytes"},
    {"tasks", "max_attempts", "max-attempts", SETTING_INT, ENGINE_FIELD(max_attempts), "5", 1, 100,
     NULL,
     "tries per (item, node) when the cache fails in a way worth retrying (5xx, timeout, "
     "refused connection)"},
    {"tasks", "retry_base_ms", "retry-base-ms", SETTING_INT, ENGINE_FIELD(retry_base_ms), "500", 1,
     600000, NULL, "delay before the first retry; it doubles with each attempt, with jitter"},
    {"tasks", "retry_max_ms", "retry-max-ms", SETTING_INT, ENGINE_FIELD(retry_max_ms), "30000", 1,
     3600000, NULL, "longest delay between two attempts"},
    {"callbacks", "secret", "callback-secret", SETTING_STRING, ENGINE_FIELD(callback_secret),
     ENGINE_DEFAULT_CALLBACK_SECRET, 0, 0, NULL,
     "HMAC-SHA256 key of the X-Cdnrefresh-Signature header on callbacks (set your own)"},
    {"callbacks", "allow_internal", "callback-allow", SETTING_STRING, ENGINE_FIELD(callback_allow),
     "", 0, 0, NULL,
     "comma-separated loopback/private addresses callbacks may still go to, e.g. 127.0.0.1"},
    {"callbacks", "retry_window_s", "callback-window", SETTING_INT, ENGINE_FIELD(callback_window_s),
     "3600", 1, 7 * 86400, NULL, "how long a failing callback is retried before it is given up"},
    {"callbacks", "retry_base_ms", "callback-retry-base-ms", SETTING_INT,
     ENGINE_FIELD(callback_retry_base_ms), "1000", 1, 600000, NULL,
     "delay before the second callback attempt; doubles up to one minute"},
    {"callbacks", "timeout_ms", "callback-timeout-ms", SETTING_INT,
     ENGINE_FIELD(callback_timeout_ms), "10000", 100, 600000, NULL,
     "a callback request taking longer counts as failed"},
    {"alerts", "url", "alert-url", SETTING_STRING, ENGINE_FIELD(alert_url), "", 0, 0, NULL,
     "webhook that receives alerts (node offline/back, backlog, callback failed, store error); "
     "empty: alerts are only logged"},
    {"alerts", "window_s", "alert-window", SETTING_INT, ENGINE_FIELD(alert_window_s), "300", 1,
     86400, NULL, "repeats of an alert within this window are counted, not sent"},
    {"alerts", "backlog_items", "alert-backlog-items", SETTING_INT, ENGINE_FIELD(backlog_items),
     "10000", 1, 1000000000, NULL, "a node queue deeper than this for alerts.backlog_s alerts"},
    {"alerts", "backlog_s", "alert-backlog-s", SETTING_INT, ENGINE_FIELD(backlog_s), "60", 1, 86400,
     NULL, "how long a node queue may stay over alerts.backlog_items"},
    {"store", "url", "store", SETTING_STRING, ENGINE_FIELD(store_url), "", 0, 0, NULL,
     "where tasks are kept: " STORE_ADDRESSES " (the SQLite database in DIR, or a PostgreSQL "
     "database; a password is better in PGPASSWORD or ~/.pgpass); empty: SQLite in "
     "engine.data_dir"},
    {"store", "read_budget_ms", "read-budget-ms", SETTING_INT, ENGINE_FIELD(read_budget_ms), "2000",
     0, 600000, NULL,
     "longest one request's store reads may take before they stop with 503 read_too_long (they "
     "share one reader thread); 0: no limit"},
    {"store", "commit_batch", "commit-batch", SETTING_INT, ENGINE_FIELD(commit_batch), "512", 1,
     65536, NULL, "most tasks written in one store transaction (group commit)"},
    {"store", "synchronous", "synchronous", SETTING_CHOICE, ENGINE_FIELD(synchronous), "full", 0, 0,
     "full|normal",
     "full: fsync every commit (survives power loss); normal: survives crashes only"},
};

enum { ENGINE_SETTINGS_COUNT = sizeof(engine_settings) / sizeof(engine_settings[0]) };

/* What makes a signed (not --dev) engine open to anyone, or NULL: an empty agent token where
 * agents come from beyond this host (anyone reaching the port registers nodes, and every task
 * then waits for them), or callbacks signed with the secret everyone can read here. */
static const char *engine_config_insecurity(const struct engine_config *config,
                                            const struct sockaddr_storage *agent_address) {
  if (config->dev)
    return NULL;
  if (!config->agent_token[0] && !config->node_tokens_file[0] &&
      !address_is_loopback(agent_address))
    return "agents.token is empty while engine.agent_listen is not a loopback address";
  /* Every Hello's token is checked, so a guesser is held back only by what it must guess. */
  if (config->agent_token[0] && strlen(config->agent_token) < ENGINE_AGENT_TOKEN_MIN &&
      !address_is_loopback(agent_address))
    return "agents.token is shorter than 32 characters while engine.agent_listen is not a "
           "loopback address: a guesser may try tokens as fast as the engine takes connections "
           "(make one with: openssl rand -hex 16)";
  /* The default, and the placeholder of the shipped deploy/config/engine.ini. */
  static const char *const public_secrets[] = {ENGINE_DEFAULT_CALLBACK_SECRET, "change-me", ""};
  for (size_t i = 0; i < sizeof(public_secrets) / sizeof(public_secrets[0]); i++) {
    if (strcmp(config->callback_secret, public_secrets[i]) == 0)
      return "callbacks.secret is empty, the default or the shipped placeholder: anyone can forge "
             "callbacks signed with it";
  }
  return NULL;
}

int engine_config_store_address(const char *url, const char *data_dir, char *out, size_t out_size,
                                char *err, size_t err_size) {
  if (url[0])
    snprintf(out, out_size, "%s", url);
  else
    snprintf(out, out_size, "sqlite:%s", data_dir);
  char why[128];
  if (store_address_check(out, why, sizeof(why)) == 0)
    return 0;
  /* The value is shown only up to its scheme: an address may carry a password. */
  const char *scheme_end = strstr(url, "://");
  snprintf(err, err_size, "config: store.url (--store): %s, got '%.*s%s'", why,
           scheme_end ? (int)(scheme_end - url) + 3 : (int)strlen(url), url, scheme_end ? "…" : "");
  return CDR_ECONFIG;
}

int engine_config_load(struct engine_config *config, int argc, char **argv,
                       struct settings_cli *cli, char *err, size_t err_size) {
  memset(config, 0, sizeof(*config));
  int rc =
      settings_load(engine_settings, ENGINE_SETTINGS_COUNT, config, argc, argv, cli, err, err_size);
  if (rc || cli->help || cli->version)
    return rc;
  if (!config->tls_cert[0] != !config->tls_key[0] ||
      (config->tls_client_ca[0] && !config->tls_cert[0])) {
    snprintf(err, err_size,
             "config: agents.tls_cert and agents.tls_key go together, and agents.tls_client_ca "
             "needs them");
    return CDR_ECONFIG;
  }
  if (engine_config_store_address(config->store_url, config->data_dir, config->store_address,
                                  sizeof(config->store_address), err, err_size))
    return CDR_ECONFIG;
  if (address_parse(config->api_listen, &config->api_address)) {
    snprintf(err, err_size, "config: engine.api_listen must be IPv4:PORT or [IPv6]:PORT, got '%s'",
             config->api_listen);
    return CDR_ECONFIG;
  }
  struct sockaddr_storage agent_address;
  if (address_parse(config->agent_listen, &agent_address)) {
    snprintf(err, err_size,
             "config: engine.agent_listen must be IPv4:PORT or [IPv6]:PORT, got '%s'",
             config->agent_listen);
    return CDR_ECONFIG;
  }
  if (config->default_deadline_s > config->max_deadline_s) {
    snprintf(err, err_size,
             "config: tasks.default_deadline_s (%lld) must not exceed tasks.max_deadline_s (%lld)",
             (long long)config->default_deadline_s, (long long)config->max_deadline_s);
    return CDR_ECONFIG;
  }
  if (config->admin_listen[0] && address_parse(config->admin_listen, &config->admin_address)) {
    snprintf(err, err_size,
             "config: engine.admin_listen must be IPv4:PORT or [IPv6]:PORT, got '%s'",
             config->admin_listen);
    return CDR_ECONFIG;
  }
  if (config->dev && !address_is_loopback(&config->api_address)) {
    snprintf(err, err_size,
             "config: --dev serves unsigned requests, so engine.api_listen must be "
             "a loopback address, got '%s'",
             config->api_listen);
    return CDR_ECONFIG;
  }
  const char *insecure = engine_config_insecurity(config, &agent_address);
  if (insecure && !config->allow_insecure) {
    snprintf(err, err_size, "config: %s; set it, or start with --allow-insecure", insecure);
    return CDR_ECONFIG;
  }
  enum log_level level;
  log_level_parse(config->log_level, &level);
  log_level_set(level);
  if (insecure)
    log_warn("config.insecure", "%s (allowed by --allow-insecure)", insecure);
  return 0;
}

void engine_config_print_help(FILE *out) {
  fprintf(
      out,
      "usage: cdnrefresh-engine [--dev] [--data-dir DIR] [--api-listen HOST:PORT] [options]\n"
      "       cdnrefresh-engine tenant add|list|show|set|remove ... (see tenant --help)\n"
      "\n"
      "The cdnrefresh engine: accepts purge and preload tasks over an HTTP JSON API, stores\n"
      "them durably and tracks every (URL, node) result. A task answered 202 is on disk.\n"
      "\n"
      "Without --dev every request must be signed by a tenant (docs/API.md, Signing):\n"
      "  cdnrefresh-engine tenant add acme --hosts 'example.com,*.example.com' --data-dir D\n"
      "  cdnrefresh-engine --data-dir D --api-listen 0.0.0.0:8470 --admin-listen 127.0.0.1:8472\n"
      "\n"
      "Development (unsigned requests, loopback only):\n"
      "  cdnrefresh-engine --dev --data-dir /tmp/cdr --api-listen 127.0.0.1:8470\n"
      "  curl -d '{\"urls\":[\"https://example.com/a.png\"]}' http://127.0.0.1:8470/v1/purge\n"
      "\n"
      "Options (each also settable in the --config INI file as [section] key):\n");
  settings_print_help(out, engine_settings, ENGINE_SETTINGS_COUNT);
  fprintf(out,
          "\nSignals: SIGTERM or SIGINT stops intake, finishes writes in progress and exits 0.\n"
          "Docs: docs/API.md (endpoints), docs/CONFIG.md (settings).\n");
}
