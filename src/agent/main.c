/* main.c — cdnrefresh-agent: one per edge node; links to the engine and drives the local cache. */
#include "agent/agent_config.h"
#include "agent/agent_link.h"
#include "agent/agent_metrics.h"
#include "common/log.h"
#include "common/sd_notify.h"
#include "proto/link_tls.h"
#include "version.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { AGENT_DRAIN_MS = 10000 }; /* longest wait for cache requests at SIGTERM */

struct agent_signals {
  uv_signal_t term, interrupt;
  struct agent_link *link;
  struct agent_metrics *metrics; /* NULL without --metrics-listen */
};

/* The link has stopped: closes what else keeps the loop running. */
static void agent_signals_close(void *context) {
  struct agent_signals *signals = context;
  if (signals->metrics)
    agent_metrics_stop(signals->metrics);
  if (!uv_is_closing((uv_handle_t *)&signals->term))
    uv_close((uv_handle_t *)&signals->term, NULL);
  if (!uv_is_closing((uv_handle_t *)&signals->interrupt))
    uv_close((uv_handle_t *)&signals->interrupt, NULL);
}

static void agent_on_signal(uv_signal_t *signal, int signum) {
  struct agent_signals *signals = signal->data;
  log_info("agent.stopping", "received %s, stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
  sd_notify_send("STOPPING=1");
  /* Stops after the requests in progress finished (a second signal: at once), closing the
   * signal handles through agent_signals_close. */
  agent_link_drain(signals->link, AGENT_DRAIN_MS);
}

/* The driver for the configured cache kind (settings allow only the kinds below). */
static struct driver *agent_driver_create(const struct agent_config *config) {
  if (strcmp(config->cache, "varnish") == 0)
    return driver_varnish_create(config->cache_url);
  if (strcmp(config->cache, "squid") == 0)
    return driver_squid_create(config->cache_url);
  if (strcmp(config->cache, "ats") == 0) {
    struct ats_options options = {config->ats_rules_file, config->ats_state_file,
                                  config->ats_reload_command, (long)config->ats_rule_ttl_s,
                                  (long)config->ats_reload_timeout_ms};
    return driver_ats_create(config->cache_url, &options);
  }
  return driver_nginx_create(config->cache_url, config->nginx_cache_dir, config->nginx_purge_url,
                             config->tag_header);
}

/* Gives libuv's thread pool a thread for every item the executor may have offloaded at once
 * (nginx purges, ATS rules) and two for the rest (name lookups): a slow prefix or regex scan
 * then never keeps another purge from starting. An operator's UV_THREADPOOL_SIZE stands. Before
 * anything uses the pool, which reads it once. */
static void agent_size_thread_pool(long concurrency) {
  if (getenv("UV_THREADPOOL_SIZE"))
    return;
  char size[24];
  snprintf(size, sizeof(size), "%ld", concurrency + 2 < 1024 ? concurrency + 2 : 1024);
  setenv("UV_THREADPOOL_SIZE", size, 1);
}

/* The configured driver with the edge's HTTPS entry point; NULL when out of memory. */
static struct driver *agent_driver_setup(const struct agent_config *config) {
  struct driver *driver = agent_driver_create(config);
  if (driver)
    driver_set_https_url(driver, config->https_url);
  return driver;
}

static void agent_close_handle(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

int main(int argc, char **argv) {
  struct agent_config config;
  struct settings_cli cli;
  char err[512];
  if (agent_config_load(&config, argc, argv, &cli, err, sizeof(err))) {
    fprintf(stderr, "cdnrefresh-agent: %s\n", err);
    return 2;
  }
  if (cli.help) {
    agent_config_print_help(stdout);
    return 0;
  }
  if (cli.version) {
    printf("cdnrefresh-agent %s (commit %s, built %s)\n", CDR_VERSION, CDR_COMMIT, CDR_BUILD_DATE);
    return 0;
  }
  signal(SIGPIPE, SIG_IGN);
  agent_size_thread_pool((long)config.concurrency);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  struct driver *driver = agent_driver_setup(&config);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct agent_signals signals = {0};
  struct agent_link *link;
  SSL_CTX *tls = NULL;
  if (config.tls_ca[0]) {
    if (!(tls = link_tls_client_context(config.tls_ca, config.tls_cert, config.tls_key, err,
                                        sizeof(err)))) {
      fprintf(stderr, "cdnrefresh-agent: %s\n", err);
      return 2;
    }
  }
  if (!driver ||
      agent_link_start(&loop, &config, driver, tls, agent_signals_close, &signals, &link)) {
    fprintf(stderr, "cdnrefresh-agent: cannot start (out of memory or no engine address)\n");
    return 1;
  }
  signals.link = link;
  if (config.metrics_listen[0]) {
    int rc = agent_metrics_start(&loop, &config.metrics_address, config.cache, &signals.metrics);
    if (rc) {
      fprintf(stderr, "cdnrefresh-agent: cannot serve /metrics on %s: %s\n", config.metrics_listen,
              uv_strerror(rc));
      return 1;
    }
    log_info("agent.metrics", "serving GET /metrics on %s", config.metrics_listen);
  }
  uv_signal_init(&loop, &signals.term);
  uv_signal_init(&loop, &signals.interrupt);
  signals.term.data = signals.interrupt.data = &signals;
  uv_signal_start(&signals.term, agent_on_signal, SIGTERM);
  uv_signal_start(&signals.interrupt, agent_on_signal, SIGINT);
  log_info("agent.ready", "node %s driving %s at %s, engines %s", config.node_id, config.cache,
           config.cache_url, config.engines);
  sd_notify_send("READY=1");
  uv_run(&loop, UV_RUN_DEFAULT);
  int code = agent_link_exit_code(link);
  agent_metrics_free(signals.metrics);
  uv_walk(&loop, agent_close_handle, NULL); /* what libh2o leaves open after its dispose */
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  agent_link_destroy(link);
  driver->destroy(driver);
  SSL_CTX_free(tls);
  curl_global_cleanup();
  return code;
}
