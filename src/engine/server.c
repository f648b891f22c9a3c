/* server.c — event loop threads, API listeners, signals and the ordered shutdown. */
#include "engine/server.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/list.h"
#include "common/log.h"
#include "common/sd_notify.h"
#include "engine/api/access_log.h"
#include "engine/api/api.h"
#include "engine/stats.h"

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
  SERVER_DRAIN_MS = 5000,     /* longest wait for store jobs at shutdown */
  SERVER_DRAIN_CHECK_MS = 10, /* how often the wait looks */
  SERVER_BACKLOG = 1024,
  SERVER_BODY_SLACK = 4,         /* h2o reads bodies up to this many times the limit, see below */
  SERVER_TENANTS_POLL_MS = 1000, /* how soon a tenant change reaches the API loops */
};

/* The loop whose API mailbox is inbox (for store jobs coming back, which only know it). */
static struct server_loop *server_loop_of_inbox(struct mailbox *inbox) {
  return CONTAINER_OF(inbox, struct server_loop, api.inbox);
}

/* A client connection's handle, with the loop that counts it (libh2o owns handle->data). */
struct server_conn {
  uv_tcp_t tcp;
  struct server_loop *loop;
};

/* libh2o closed a client connection (it calls this with the handle it was given). */
static void server_on_conn_closed(uv_handle_t *handle) {
  struct server_conn *conn = (struct server_conn *)(void *)handle;
  conn->loop->api.connections--;
  free(conn);
}

static void server_on_accept(uv_stream_t *listener, int status) {
  struct server_loop *loop = listener->data;
  if (status != 0)
    return;
  struct server_conn *conn = malloc(sizeof(*conn)); /* freed through server_on_conn_closed */
  if (!conn)
    return;
  uv_tcp_init(listener->loop, &conn->tcp);
  if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
    uv_close((uv_handle_t *)&conn->tcp, (uv_close_cb)free);
    return;
  }
  uv_tcp_nodelay(&conn->tcp, 1);
  conn->loop = loop;
  loop->api.connections++;
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp, server_on_conn_closed);
  bool admin = listener == (uv_stream_t *)&loop->admin_listener;
  h2o_accept(admin ? &loop->admin_accept : &loop->accept, sock);
}

/* Opens a listening socket on address with SO_REUSEPORT, so each loop can have its own. */
static int server_listen_socket(const struct sockaddr_storage *address, int *out) {
  int fd = socket(address->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int on = 1;
  socklen_t len =
      address->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
      bind(fd, (const struct sockaddr *)address, len) != 0 || listen(fd, SERVER_BACKLOG) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  *out = fd;
  return 0;
}

/* True while h2o still has client connections on this loop. h2o 2.2 keeps them in per-protocol
 * lists and offers no count, so their emptiness is read directly. */
static bool server_loop_has_connections(struct server_loop *loop) {
  return !h2o_linklist_is_empty(&loop->api.h2o.http1._conns) ||
         !h2o_linklist_is_empty(&loop->api.h2o.http2._conns);
}

static void server_on_drain_check(uv_timer_t *timer) {
  struct server_loop *loop = timer->data;
  bool busy = loop->api.jobs_in_flight > 0 || server_loop_has_connections(loop);
  if (busy && (int64_t)uv_now(&loop->loop) < loop->drain_until)
    return;
  if (busy)
    log_warn("engine.drain",
             "after %d ms: %zu store jobs still running (they finish in the "
             "store), client connections still open are cut",
             SERVER_DRAIN_MS, (size_t)loop->api.jobs_in_flight);
  uv_timer_stop(timer);
  uv_stop(&loop->loop);
}

/* Begins this loop's shutdown: no new connections, h2o closes the open ones, store jobs drain. */
static void server_on_stop(uv_async_t *async) {
  struct server_loop *loop = async->data;
  uv_close((uv_handle_t *)&loop->listener, NULL);
  if (loop->server->config->admin_listen[0])
    uv_close((uv_handle_t *)&loop->admin_listener, NULL);
  uv_timer_stop(&loop->tenants_poll);
  if (loop == &loop->server->loops[0])
    retention_stop(&loop->retention);
  h2o_context_request_shutdown(&loop->api.h2o);
  loop->drain_until = (int64_t)uv_now(&loop->loop) + SERVER_DRAIN_MS;
  uv_timer_start(&loop->drain, server_on_drain_check, 0, SERVER_DRAIN_CHECK_MS);
}

static void server_on_signal(uv_signal_t *signal, int signum) {
  struct server *server = signal->data;
  if (atomic_exchange(&server->shutting_down, true))
    return;
  log_info("engine.stopping", "received %s: stopping intake, finishing store writes",
           signum == SIGTERM ? "SIGTERM" : "SIGINT");
  sd_notify_send("STOPPING=1");
  for (size_t i = 0; i < server->loop_count; i++)
    uv_async_send(&server->loops[i].stop);
}

static void server_on_tenants(struct store_job *job) {
  struct server_loop *loop = server_loop_of_inbox(job->reply_to);
  loop->api.jobs_in_flight--;
  loop->tenants_loading = false;
  if (job->tenant_table) {
    tenant_table_release(loop->api.tenants);
    loop->api.tenants = job->tenant_table;
    log_debug("tenants.loaded", "%zu tenants at generation %lld", loop->api.tenants->count,
              (long long)loop->api.tenants->generation);
  }
  arena_release(&job->arena);
  free(job);
}

/* Asks the store for the tenants when their generation has moved on from this loop's table. */
static void server_on_tenants_poll(uv_timer_t *timer) {
  struct server_loop *loop = timer->data;
  struct store_job *job = loop->tenants_loading ? NULL : calloc(1, sizeof(*job));
  if (!job)
    return;
  arena_init(&job->arena, 4096);
  job->kind = STORE_JOB_TENANTS;
  job->done = server_on_tenants;
  job->reply_to = &loop->api.inbox;
  job->tenants_generation = loop->api.tenants ? loop->api.tenants->generation : -1;
  loop->tenants_loading = true;
  loop->api.jobs_in_flight++;
  store_worker_submit(loop->server->reader, job);
}

/* Opens the listening socket of address and has listener accept on it (into this loop). */
static int server_loop_listen(struct server_loop *loop, uv_tcp_t *listener,
                              const struct sockaddr_storage *address) {
  int fd = -1;
  int rc = server_listen_socket(address, &fd);
  if (rc)
    return rc;
  uv_tcp_init(&loop->loop, listener);
  listener->data = loop;
  if ((rc = uv_tcp_open(listener, fd)) ||
      (rc = uv_listen((uv_stream_t *)listener, SERVER_BACKLOG, server_on_accept)))
    return rc;
  return 0;
}

static int server_loop_init(struct server *server, struct server_loop *loop) {
  loop->server = server;
  loop->api.env = &server->api;
  server->api.loops[loop - server->loops] = &loop->api;
  int rc = uv_loop_init(&loop->loop);
  if (rc)
    return rc;
  h2o_context_init(&loop->api.h2o, &loop->loop, &server->h2o);
  loop->accept.ctx = &loop->api.h2o;
  loop->accept.hosts = server->api_hosts;
  loop->admin_accept.ctx = &loop->api.h2o;
  loop->admin_accept.hosts = server->admin_hosts;
  loop->stop.data = loop;
  loop->drain.data = loop;
  loop->tenants_poll.data = loop;
  uv_timer_init(&loop->loop, &loop->drain);
  uv_timer_init(&loop->loop, &loop->tenants_poll);
  const struct engine_config *config = server->config;
  if ((rc = uv_async_init(&loop->loop, &loop->stop, server_on_stop)) ||
      (rc = mailbox_init(&loop->api.inbox, &loop->loop)))
    return rc;
  if ((rc = server_loop_listen(loop, &loop->listener, &config->api_address))) {
    log_error("api.listen", "cannot listen on %s: %s", config->api_listen, strerror(-rc));
    return rc;
  }
  if (config->admin_listen[0] &&
      (rc = server_loop_listen(loop, &loop->admin_listener, &config->admin_address))) {
    log_error("api.listen", "cannot listen on %s (engine.admin_listen): %s", config->admin_listen,
              strerror(-rc));
    return rc;
  }
  uv_timer_start(&loop->tenants_poll, server_on_tenants_poll, SERVER_TENANTS_POLL_MS,
                 SERVER_TENANTS_POLL_MS);
  if (loop == &server->loops[0])
    retention_start(&loop->retention, &loop->loop, &loop->api.inbox, server->writer,
                    &loop->api.jobs_in_flight, config->retention_days);
  return 0;
}

static void server_close_handle(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

/* Runs a loop until its shutdown stops it, then releases everything the loop holds. */
static void *server_loop_thread(void *arg) {
  struct server_loop *loop = arg;
  uv_run(&loop->loop, UV_RUN_DEFAULT);
  /* request_shutdown armed HTTP/2's graceful-shutdown timer; dispose insists on idle timers. */
  if (h2o_timeout_is_linked(&loop->api.h2o.http2._graceful_shutdown_timeout))
    h2o_timeout_unlink(&loop->api.h2o.http2._graceful_shutdown_timeout);
  h2o_context_dispose(&loop->api.h2o);
  uv_walk(&loop->loop, server_close_handle, NULL);
  uv_run(&loop->loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop->loop);
  tenant_table_release(loop->api.tenants);
  return NULL;
}

/* Opens the store twice: the writer connection (creating the schema) and the reader connection. */
static int server_store_start(struct server *server) {
  const struct engine_config *config = server->config;
  char err[512];
  struct store_options options = {.synchronous_full = strcmp(config->synchronous, "full") == 0,
                                  .engine = true};
  struct store *writer = NULL, *reader = NULL;
  if (store_open(config->store_address, &options, &writer, err, sizeof(err))) {
    log_error("store.open", "%s", err);
    return CDR_ESTORE_UNAVAILABLE;
  }
  /* The loops start with the tenants as they are, so no signed request is refused while a first
   * poll is on its way. */
  if (tenant_table_load(writer, -1, &server->initial_tenants)) {
    log_error("store.open", "cannot read the tenants");
    store_close(writer);
    return CDR_ESTORE_UNAVAILABLE;
  }
  options.read_only = true;
  options.engine = false;
  options.read_budget_ms = config->read_budget_ms;
  if (store_open(config->store_address, &options, &reader, err, sizeof(err))) {
    log_error("store.open", "%s", err);
    store_close(writer);
    return CDR_ESTORE_UNAVAILABLE;
  }
  if (store_worker_start(writer, true, (size_t)config->commit_batch, &server->writer) ||
      store_worker_start(reader, false, 0, &server->reader)) {
    log_error("store.start", "cannot start store threads");
    return CDR_EINTERNAL;
  }
  return 0;
}

static void server_h2o_init(struct server *server) {
  h2o_config_init(&server->h2o);
  /* h2o answers bodies over its own limit with a plain-text 413 before the API sees them. Giving
   * it headroom over limits.max_body_bytes lets the API answer most oversized bodies with the
   * JSON error that names the limit, while memory per request stays bounded. */
  server->h2o.max_request_entity_size = (size_t)server->config->max_body_bytes * SERVER_BODY_SLACK;
  /* A client slow to send its headers or body (slowloris), or idle between requests, is cut
   * after this, so it cannot hold a connection and its buffers for long. */
  server->h2o.http1.req_timeout = (uint64_t)server->config->request_timeout_ms;
  server->h2o.http2.idle_timeout = (uint64_t)server->config->request_timeout_ms;
  /* Each listener's accept context sees only its own host, so no Host header can reach the
   * operators' endpoints through the tenants' port. */
  server->api_hosts[0] =
      h2o_config_register_host(&server->h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  api_register(server->api_hosts[0], false);
  server->admin_hosts[0] =
      h2o_config_register_host(&server->h2o, h2o_iovec_init(H2O_STRLIT("admin")), 65535);
  api_register(server->admin_hosts[0], true);
}

int server_run(const struct engine_config *config) {
  struct server server = {.config = config};
  engine_stats.started_ms = clock_now_ms();
  atomic_init(&server.shutting_down, false);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  server.loop_count =
      config->threads > 0 ? (size_t)config->threads : (size_t)(cores > 0 ? cores : 1);
  server.loops = calloc(server.loop_count, sizeof(*server.loops));
  if (!server.loops || server_store_start(&server) ||
      fabric_start(config, server.writer, &server.fabric))
    return 1;
  if (config->access_log[0]) {
    int rc = access_log_open(config->access_log);
    if (rc) {
      log_error("access_log.open", "cannot open the access log %s: %s", config->access_log,
                strerror(-rc));
      return 1;
    }
  }
  server_h2o_init(&server);
  server.api = (struct api_env){.config = config,
                                .writer = server.writer,
                                .reader = server.reader,
                                .fabric = server.fabric,
                                .shutting_down = &server.shutting_down,
                                .loops = calloc(server.loop_count, sizeof(*server.api.loops)),
                                .loop_count = server.loop_count};
  if (!server.api.loops)
    return 1;

  atomic_store(&server.initial_tenants->refs, server.loop_count);
  for (size_t i = 0; i < server.loop_count; i++) {
    server.loops[i].api.tenants = server.initial_tenants;
    if (server_loop_init(&server, &server.loops[i]))
      return 1;
  }
  uv_loop_t *main_loop = &server.loops[0].loop;
  uv_signal_init(main_loop, &server.sigterm);
  uv_signal_init(main_loop, &server.sigint);
  server.sigterm.data = server.sigint.data = &server;
  uv_signal_start(&server.sigterm, server_on_signal, SIGTERM);
  uv_signal_start(&server.sigint, server_on_signal, SIGINT);
  signal(SIGPIPE, SIG_IGN);

  for (size_t i = 1; i < server.loop_count; i++)
    pthread_create(&server.loops[i].thread, NULL, server_loop_thread, &server.loops[i]);
  char store[sizeof(config->store_address)];
  store_address_describe(config->store_address, store, sizeof(store));
  log_info("engine.ready", "API on http://%s with %zu event loops, store %s, %zu tenants%s%s%s",
           config->api_listen, server.loop_count, store, server.initial_tenants->count,
           config->admin_listen[0] ? ", admin on http://" : "", config->admin_listen,
           config->dev ? ", dev mode (unsigned requests)" : "");
  if (!config->dev && !config->admin_listen[0])
    log_warn("engine.no_admin", "engine.admin_listen is not set: nodes, stats, metrics and the "
                                "status page are not served");
  char status[2 * SETTING_STRING_MAX + 64];
  snprintf(status, sizeof(status), "READY=1\nSTATUS=API on %s, agents on %s", config->api_listen,
           config->agent_listen);
  sd_notify_send(status);
  server_loop_thread(&server.loops[0]);
  for (size_t i = 1; i < server.loop_count; i++)
    pthread_join(server.loops[i].thread, NULL);

  /* Every API loop has stopped; the fabric saves its results, then the writer commits whatever is
   * still queued before it exits. */
  fabric_stop(server.fabric);
  store_worker_stop(server.writer);
  store_worker_stop(server.reader);
  access_log_close();
  free(server.loops);
  free(server.api.loops);
  h2o_config_dispose(&server.h2o);
  log_info("engine.stopped", "all writes finished, exiting");
  return 0;
}
