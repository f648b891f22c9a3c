/* agent_metrics.c — GET /metrics on the agent's loop, served by libh2o (agent_metrics.h). */
#include "agent/agent_metrics.h"

#include "agent/agent_stats.h"

#include <h2o.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
  METRICS_BACKLOG = 64,
  METRICS_TIMEOUT_MS = 2000, /* an idle scrape connection is closed after this */
  METRICS_DRAIN_CHECK_MS = 10,
};

struct agent_metrics {
  h2o_globalconf_t config;
  h2o_context_t context;
  h2o_accept_ctx_t accept;
  uv_tcp_t listener;
  uv_timer_t drain; /* at stop: waits for open scrapes, then stops the loop */
  uint64_t drain_until;
  char cache[32];
};

struct metrics_handler {
  h2o_handler_t super;
  struct agent_metrics *metrics;
};

static void metrics_reply(h2o_req_t *req, int status, const char *reason, const char *type,
                          const char *text, size_t len) {
  req->res.status = status;
  req->res.reason = reason;
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
  h2o_send_inline(req, text, len);
}

static int metrics_on_request(h2o_handler_t *self, h2o_req_t *req) {
  struct agent_metrics *metrics = ((struct metrics_handler *)self)->metrics;
  static const char plain[] = "text/plain; charset=utf-8";
  if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/metrics"))) {
    metrics_reply(req, 404, "Not Found", plain, H2O_STRLIT("only /metrics is served here\n"));
    return 0;
  }
  if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
    metrics_reply(req, 405, "Method Not Allowed", plain, H2O_STRLIT("use GET\n"));
    return 0;
  }
  char *text = agent_stats_prometheus(metrics->cache);
  if (!text) {
    metrics_reply(req, 503, "Service Unavailable", plain, H2O_STRLIT("out of memory\n"));
    return 0;
  }
  metrics_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
  free(text); /* h2o_send_inline copied it */
  return 0;
}

static void metrics_on_accept(uv_stream_t *listener, int status) {
  struct agent_metrics *metrics = listener->data;
  if (status != 0)
    return;
  uv_tcp_t *conn = malloc(sizeof(*conn)); /* freed by h2o through the close callback */
  if (!conn)
    return;
  uv_tcp_init(listener->loop, conn);
  if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
    uv_close((uv_handle_t *)conn, (uv_close_cb)free);
    return;
  }
  h2o_accept(&metrics->accept, h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free));
}

int agent_metrics_start(uv_loop_t *loop, const struct sockaddr_storage *address, const char *cache,
                        struct agent_metrics **out) {
  struct agent_metrics *metrics = calloc(1, sizeof(*metrics));
  if (!metrics)
    return UV_ENOMEM;
  snprintf(metrics->cache, sizeof(metrics->cache), "%s", cache);
  h2o_config_init(&metrics->config);
  metrics->config.http1.req_timeout = METRICS_TIMEOUT_MS;
  metrics->config.http2.idle_timeout = METRICS_TIMEOUT_MS;
  h2o_hostconf_t *hostconf =
      h2o_config_register_host(&metrics->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
  struct metrics_handler *handler =
      (struct metrics_handler *)h2o_create_handler(pathconf, sizeof(*handler));
  handler->super.on_req = metrics_on_request;
  handler->metrics = metrics;
  h2o_context_init(&metrics->context, loop, &metrics->config);
  metrics->accept.ctx = &metrics->context;
  metrics->accept.hosts = metrics->config.hosts;
  uv_tcp_init(loop, &metrics->listener);
  metrics->listener.data = metrics;
  uv_timer_init(loop, &metrics->drain);
  metrics->drain.data = metrics;
  int rc = uv_tcp_bind(&metrics->listener, (const struct sockaddr *)address, 0);
  if (!rc)
    rc = uv_listen((uv_stream_t *)&metrics->listener, METRICS_BACKLOG, metrics_on_accept);
  *out = metrics;
  return rc;
}

/* libh2o's context keeps an async handle active for good, so the loop would never run out of
 * work: once no scrape is open (or after METRICS_TIMEOUT_MS), the loop is stopped instead. h2o
 * 2.2 keeps connections in per-protocol lists and offers no count, so those are read. */
static void metrics_on_drain_check(uv_timer_t *timer) {
  struct agent_metrics *metrics = timer->data;
  bool open = !h2o_linklist_is_empty(&metrics->context.http1._conns) ||
              !h2o_linklist_is_empty(&metrics->context.http2._conns);
  if (open && uv_now(timer->loop) < metrics->drain_until)
    return;
  uv_close((uv_handle_t *)timer, NULL);
  uv_stop(timer->loop);
}

void agent_metrics_stop(struct agent_metrics *metrics) {
  if (uv_is_closing((uv_handle_t *)&metrics->listener))
    return;
  uv_close((uv_handle_t *)&metrics->listener, NULL);
  h2o_context_request_shutdown(&metrics->context);
  metrics->drain_until = uv_now(metrics->listener.loop) + METRICS_TIMEOUT_MS;
  uv_timer_start(&metrics->drain, metrics_on_drain_check, 0, METRICS_DRAIN_CHECK_MS);
}

void agent_metrics_free(struct agent_metrics *metrics) {
  if (!metrics)
    return;
  /* request_shutdown armed HTTP/2's graceful-shutdown timer; dispose insists on idle timers. */
  if (h2o_timeout_is_linked(&metrics->context.http2._graceful_shutdown_timeout))
    h2o_timeout_unlink(&metrics->context.http2._graceful_shutdown_timeout);
  h2o_context_dispose(&metrics->context);
  h2o_config_dispose(&metrics->config);
  free(metrics);
}
