/* agent_config.c — the agent's settings table and the checks across settings. */
#include "agent/agent_config.h"

#include "common/address.h"
#include "common/error.h"
#include "common/log.h"

#include <stddef.h>
#include <string.h>

#define AGENT_FIELD(name) offsetof(struct agent_config, name)

static const struct setting agent_settings[] = {
    {"agent", "engine", "engine", SETTING_STRING, AGENT_FIELD(engines), "127.0.0.1:8471", 0, 0,
     NULL, "engine agent addresses HOST:PORT[,HOST:PORT...], tried in turn"},
    {"agent", "node_id", "node-id", SETTING_STRING, AGENT_FIELD(node_id), "", 0, 0, NULL,
     "this edge node's unique id (required): 1..64 of A-Z a-z 0-9 . _ -"},
    {"agent", "groups", "groups", SETTING_STRING, AGENT_FIELD(groups), "", 0, 0, NULL,
     "comma-separated node groups tasks can select, e.g. eu,edge"},
    {"agent", "token", "token", SETTING_STRING, AGENT_FIELD(token), "", 0, 0, NULL,
     "shared secret matching the engine's agents.token"},
    {"agent", "window", "window", SETTING_INT, AGENT_FIELD(window), "256", 1, 65536, NULL,
     "most work items in flight from the engine"},
    {"agent", "log_level", "log-level", SETTING_CHOICE, AGENT_FIELD(log_level), "info", 0, 0,
     "debug|info|warn|error", "lowest level of log lines written to stderr"},
    {"agent", "metrics_listen", "metrics-listen", SETTING_STRING, AGENT_FIELD(metrics_listen), "",
     0, 0, NULL, "serve GET /metrics (Prometheus) on this IPv4:PORT or [IPv6]:PORT; empty: off"},
    {"agent", "tls_ca", "tls-ca", SETTING_STRING, AGENT_FIELD(tls_ca), "", 0, 0, NULL,
     "PEM CA certificates: link to the engine over TLS and verify its certificate with them; "
     "empty: plain TCP"},
    {"agent", "tls_cert", "tls-cert", SETTING_STRING, AGENT_FIELD(tls_cert), "", 0, 0, NULL,
     "PEM client certificate chain, for engines that require one (with agent.tls_key)"},
    {"agent", "tls_key", "tls-key", SETTING_STRING, AGENT_FIELD(tls_key), "", 0, 0, NULL,
     "PEM private key of agent.tls_cert"},
    {"agent", "tls_server_name", "tls-server-name", SETTING_STRING, AGENT_FIELD(tls_server_name),
     "", 0, 0, NULL,
     "the name (or IP) the engine's certificate must carry; empty: the host of each engine "
     "address"},
    {"cache", "kind", "cache", SETTING_CHOICE, AGENT_FIELD(cache), "nginx", 0, 0,
     "nginx|varnish|ats|squid", "the local cache this agent drives"},
    {"cache", "url", "cache-url", SETTING_STRING, AGENT_FIELD(cache_url), "http://127.0.0.1:80", 0,
     0, NULL, "where the local cache listens"},
    {"cache", "https_url", "cache-https-url", SETTING_STRING, AGENT_FIELD(https_url), "", 0, 0,
     NULL,
     "the edge's HTTPS entry point (https://127.0.0.1:443), where preloads of https:// URLs go; "
     "empty: they go to cache.url with X-Forwarded-Proto: https (nginx: unsupported)"},
    {"cache", "nginx_cache_dir", "nginx-cache-dir", SETTING_STRING, AGENT_FIELD(nginx_cache_dir),
     "", 0, 0, NULL,
     "nginx proxy_cache_path directory: every purge deletes each file whose key is a target "
     "(every Vary variant, both schemes) and is verified (recommended)"},
    {"cache", "nginx_purge_url", "nginx-purge-url", SETTING_STRING, AGENT_FIELD(nginx_purge_url),
     "", 0, 0, NULL,
     "without nginx_cache_dir: the edge's loopback purge server for exact purges (cache-purge "
     "module; removes no Vary variant, not verified); empty: exact purges need nginx_cache_dir"},
    {"cache", "tag_header", "tag-header", SETTING_STRING, AGENT_FIELD(tag_header), "Surrogate-Key",
     0, 0, NULL, "origin response header listing an object's tags, space-separated (nginx)"},
    {"cache", "ats_rules_file", "ats-rules-file", SETTING_STRING, AGENT_FIELD(ats_rules_file), "",
     0, 0, NULL,
     "regex_revalidate rules file (its -c), kept by the agent, for ATS prefix, regex and "
     "invalidate purges"},
    {"cache", "ats_state_file", "ats-state-file", SETTING_STRING, AGENT_FIELD(ats_state_file), "",
     0, 0, NULL, "regex_revalidate state file (its -f), read to confirm ATS loaded a rule"},
    {"cache", "ats_reload_command", "ats-reload-command", SETTING_STRING,
     AGENT_FIELD(ats_reload_command), "traffic_ctl config reload", 0, 0, NULL,
     "shell command making ATS reread the rules file"},
    {"cache", "ats_rule_ttl_s", "ats-rule-ttl-s", SETTING_INT, AGENT_FIELD(ats_rule_ttl_s),
     "604800", 60, 31536000, NULL,
     "how long an ATS rule stays; must exceed the longest time ATS keeps an object"},
    {"cache", "ats_reload_timeout_ms", "ats-reload-timeout-ms", SETTING_INT,
     AGENT_FIELD(ats_reload_timeout_ms), "5000", 100, 600000, NULL,
     "longest wait for ATS to show a new rule in its state file"},
    {"cache", "concurrency", "concurrency", SETTING_INT, AGENT_FIELD(concurrency), "16", 1, 4096,
     NULL, "cache requests running at once"},
    {"cache", "request_timeout_ms", "request-timeout-ms", SETTING_INT,
     AGENT_FIELD(request_timeout_ms), "10000", 100, 600000, NULL,
     "a cache request taking longer fails with reason timeout"},
};

enum { AGENT_SETTINGS_COUNT = sizeof(agent_settings) / sizeof(agent_settings[0]) };

int agent_config_load(struct agent_config *config, int argc, char **argv, struct settings_cli *cli,
                      char *err, size_t err_size) {
  memset(config, 0, sizeof(*config));
  int rc =
      settings_load(agent_settings, AGENT_SETTINGS_COUNT, config, argc, argv, cli, err, err_size);
  if (rc || cli->help || cli->version)
    return rc;
  if (!config->node_id[0]) {
    snprintf(err, err_size, "config: agent.node_id is required (--node-id)");
    return CDR_ECONFIG;
  }
  if (config->metrics_listen[0] &&
      address_parse(config->metrics_listen, &config->metrics_address)) {
    snprintf(err, err_size,
             "config: agent.metrics_listen must be IPv4:PORT or [IPv6]:PORT, got '%s'",
             config->metrics_listen);
    return CDR_ECONFIG;
  }
  if (!config->tls_cert[0] != !config->tls_key[0] || (config->tls_cert[0] && !config->tls_ca[0])) {
    snprintf(err, err_size,
             "config: agent.tls_cert and agent.tls_key go together, and need agent.tls_ca");
    return CDR_ECONFIG;
  }
  if (config->https_url[0] && strncmp(config->https_url, "https://", 8) != 0) {
    snprintf(err, err_size, "config: cache.https_url must start with https://, got '%s'",
             config->https_url);
    return CDR_ECONFIG;
  }
  if (config->nginx_purge_url[0] && strncmp(config->nginx_purge_url, "http://", 7) != 0) {
    snprintf(err, err_size, "config: cache.nginx_purge_url must start with http://, got '%s'",
             config->nginx_purge_url);
    return CDR_ECONFIG;
  }
  if (strncmp(config->cache_url, "http://", 7) != 0) {
    snprintf(err, err_size, "config: cache.url must start with http://, got '%s'",
             config->cache_url);
    return CDR_ECONFIG;
  }
  enum log_level level;
  log_level_parse(config->log_level, &level);
  log_level_set(level);
  return 0;
}

void agent_config_print_help(FILE *out) {
  fprintf(
      out,
      "usage: cdnrefresh-agent --node-id ID --engine HOST:PORT --cache-url URL [options]\n"
      "\n"
      "The cdnrefresh agent runs on each edge node: it keeps a link to the engine, receives\n"
      "batches of purge and preload work and carries them out on the local cache.\n"
      "\n"
      "Example:\n"
      "  cdnrefresh-agent --node-id edge-1 --groups eu --engine 127.0.0.1:8471 \\\n"
      "      --cache nginx --cache-url http://127.0.0.1:8080 --nginx-cache-dir /var/cache/nginx\n"
      "\n"
      "Options (each also settable in the --config INI file as [section] key):\n");
  settings_print_help(out, agent_settings, AGENT_SETTINGS_COUNT);
  fprintf(out,
          "\nExit codes: 0 after SIGTERM/SIGINT, 1 when the engine refuses this agent, 2 for a\n"
          "bad command line or configuration.\n");
}
