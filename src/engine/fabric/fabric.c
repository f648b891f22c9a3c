/* fabric.c — the agent fabric's thread and libuv loop: opening it (undone when a step fails), its
 * tick (timer wheel, published rates), the agents' listener and the ordered stop. The registry,
 * reports, inbox and recovery have files of their own. */
#include "common/address.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/stats.h"
#include "proto/link_tls.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
  FABRIC_TICK_MS = 10,
  FABRIC_STOP_WAIT_MS = 5000,
};

/* Sends job to the store writer; it comes back to the fabric's inbox. */
void fabric_submit(struct fabric *fabric, struct store_job *job) {
  job->reply_to = &fabric->inbox;
  fabric->jobs_in_flight++;
  store_worker_submit(fabric->writer, job);
}

/* Adds the results recorded since the last tick to the engine's rates: two atomic additions per
 * tick instead of per result. */
static void fabric_results_publish(struct fabric *fabric) {
  int64_t now_s = (int64_t)time(NULL);
  for (int succeeded = 0; succeeded < 2; succeeded++) {
    if (fabric->results_unpublished[succeeded])
      rate_add(succeeded ? &engine_stats.items_succeeded : &engine_stats.items_failed, now_s,
               fabric->results_unpublished[succeeded]);
    fabric->results_unpublished[succeeded] = 0;
  }
}

static void fabric_on_tick(uv_timer_t *timer) {
  struct fabric *fabric = timer->data;
  timer_wheel_advance(&fabric->wheel, uv_now(&fabric->loop));
  fabric_backlog_publish(fabric, uv_now(&fabric->loop));
  fabric_results_publish(fabric);
}

static void fabric_on_accept(uv_stream_t *listener, int status) {
  struct fabric *fabric = listener->data;
  if (status == 0 && !fabric->stopping)
    fabric_link_accept(fabric);
}

static void fabric_on_stop_check(uv_timer_t *timer) {
  struct fabric *fabric = timer->data;
  uint64_t now = uv_now(&fabric->loop);
  if (!fabric->links_closing) {
    /* First the agents finish what they hold: no new work is sent while stopping. */
    size_t in_flight = 0;
    for (size_t i = 0; i < fabric->node_count; i++)
      in_flight += fabric->nodes[i]->in_flight;
    if (in_flight > 0 && now < fabric->stop_until - FABRIC_STOP_WAIT_MS / 2)
      return;
    fabric->links_closing = true;
    fabric_link_close_all(fabric);
    fabric_progress_flush(fabric, true);
    return;
  }
  bool waiting = fabric->jobs_in_flight > 0 || fabric->links.first != NULL;
  if (!waiting && timer_wheel_armed(&fabric->flush)) {
    timer_wheel_stop(&fabric->wheel, &fabric->flush);
    fabric_progress_flush(fabric, true); /* results that came in while links closed */
    return;
  }
  if (waiting && now < fabric->stop_until)
    return;
  if (waiting)
    log_warn("fabric.stop", "stopping with %zu store writes unanswered", fabric->jobs_in_flight);
  uv_timer_stop(timer);
  uv_stop(&fabric->loop);
}

/* Stop: no new agents and no new work; the agents' results for work they hold are awaited (half
 * of FABRIC_STOP_WAIT_MS at most), then the links close (what is still out goes back to the
 * queues), every result is saved, and the loop ends once the store has answered every job or
 * FABRIC_STOP_WAIT_MS has passed. */
static void fabric_on_stop(uv_async_t *async) {
  struct fabric *fabric = async->data;
  fabric->stopping = true;
  uv_close((uv_handle_t *)&fabric->listener, NULL);
  /* Deliveries in progress stay pending in the store and resume after a restart. */
  fabric_notify_destroy(fabric);
  timer_wheel_stop(&fabric->wheel, &fabric->backlog);
  fabric->stop_until = uv_now(&fabric->loop) + FABRIC_STOP_WAIT_MS;
  uv_timer_start(&fabric->stop_check, fabric_on_stop_check, FABRIC_TICK_MS, FABRIC_TICK_MS);
}

static void fabric_close_handle(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

void fabric_run(struct fabric *fabric) {
  uv_run(&fabric->loop, UV_RUN_DEFAULT);
  uv_walk(&fabric->loop, fabric_close_handle, NULL);
  uv_run(&fabric->loop, UV_RUN_DEFAULT);
  uv_loop_close(&fabric->loop);
}

static void *fabric_main(void *arg) {
  fabric_run(arg);
  return NULL;
}

static int fabric_listen(struct fabric *fabric) {
  struct sockaddr_storage address;
  address_parse(fabric->config->agent_listen, &address);
  uv_tcp_init(&fabric->loop, &fabric->listener);
  fabric->listener.data = fabric;
  int rc = uv_tcp_bind(&fabric->listener, (const struct sockaddr *)&address, 0);
  if (!rc)
    rc = uv_listen((uv_stream_t *)&fabric->listener, 1024, fabric_on_accept);
  if (rc)
    log_error("agent.listen", "cannot listen for agents on %s: %s", fabric->config->agent_listen,
              uv_strerror(rc));
  return rc;
}

/* Undoes a fabric_open that failed after its loop was made: the store's answers to what recovery
 * asked are awaited (they come back to this fabric), every handle is closed, and all the fabric
 * holds is freed. The unit tests open fabrics that fail, and an engine may outlive one. */
static void fabric_open_unwind(struct fabric *fabric) {
  fabric->stopping = true;
  fabric_notify_destroy(fabric); /* no callback or alert goes out from a fabric that never ran */
  /* No time limit: the writer answers every job (a stopping one too), and a job answered to a
   * freed fabric would be worse than a wait on a stuck store. */
  while (fabric->jobs_in_flight > 0)
    uv_run(&fabric->loop, UV_RUN_ONCE);
  uv_walk(&fabric->loop, fabric_close_handle, NULL);
  uv_run(&fabric->loop, UV_RUN_DEFAULT);
  uv_loop_close(&fabric->loop);
  fabric_free(fabric);
}

int fabric_open(const struct engine_config *config, struct store_worker *writer,
                struct fabric **out) {
  struct fabric *fabric = calloc(1, sizeof(*fabric));
  if (!fabric)
    return CDR_ENOMEM;
  fabric->config = config;
  fabric->writer = writer;
  fabric->send_work = fabric_link_send_work;
  uint64_t seed = 0; /* a failure leaves 0: the counts still hold, only less evenly spread */
  RAND_bytes((unsigned char *)&seed, sizeof(seed));
  agent_auth_init(&fabric->auth, config->auth_failures_max, config->auth_guesses_max,
                  config->auth_window_s, seed);
  if (link_shared_init(&fabric->link_buffers, (size_t)config->max_frame_bytes) ||
      uv_loop_init(&fabric->loop) != 0) {
    link_shared_free(&fabric->link_buffers);
    free(fabric);
    return CDR_ENOMEM;
  }
  timer_wheel_init(&fabric->wheel, FABRIC_TICK_MS, uv_now(&fabric->loop));
  int rc = mailbox_init(&fabric->inbox, &fabric->loop) != 0 ||
                   uv_async_init(&fabric->loop, &fabric->stop, fabric_on_stop) != 0
               ? CDR_ENOMEM
               : 0;
  fabric->stop.data = fabric;
  uv_timer_init(&fabric->loop, &fabric->tick);
  uv_timer_init(&fabric->loop, &fabric->stop_check);
  fabric->tick.data = fabric->stop_check.data = fabric;
  if (!rc && config->node_tokens_file[0]) {
    char err[512];
    rc = node_tokens_load(config->node_tokens_file, &fabric->node_tokens, err, sizeof(err));
    if (rc)
      log_error("node_tokens.load", "%s", err);
    else
      log_info("node_tokens.load", "%zu nodes have their own token (%s)",
               node_tokens_count(fabric->node_tokens), config->node_tokens_file);
  }
  if (!rc && config->tls_cert[0]) {
    char err[512];
    fabric->tls = link_tls_server_context(config->tls_cert, config->tls_key, config->tls_client_ca,
                                          err, sizeof(err));
    if (!fabric->tls) {
      log_error("agent.tls", "%s", err);
      rc = CDR_ECONFIG;
    }
  }
  if (!rc)
    rc = fabric_notify_create(fabric);
  if (!rc) {
    uv_timer_start(&fabric->tick, fabric_on_tick, FABRIC_TICK_MS, FABRIC_TICK_MS);
    fabric_dispatch_start(fabric);
    fabric_queue_alerts_start(fabric);
    fabric_marks_start(fabric);
    rc = fabric_recover(fabric);
  }
  if (!rc)
    rc = fabric_listen(fabric);
  if (rc) {
    fabric_open_unwind(fabric);
    return rc;
  }
  log_info("agent.listen", "agents connect to %s%s%s", config->agent_listen,
           fabric->tls ? " over TLS" : "",
           config->tls_client_ca[0] ? " with client certificates" : "");
  *out = fabric;
  return 0;
}

int fabric_start(const struct engine_config *config, struct store_worker *writer,
                 struct fabric **out) {
  int rc = fabric_open(config, writer, out);
  if (!rc && pthread_create(&(*out)->thread, NULL, fabric_main, *out) != 0)
    rc = CDR_EINTERNAL;
  return rc;
}

void fabric_stop(struct fabric *fabric) {
  uv_async_send(&fabric->stop);
  pthread_join(fabric->thread, NULL);
  fabric_free(fabric);
}

void fabric_free(struct fabric *fabric) {
  while (fabric->tasks.first)
    fabric_task_free(fabric, LIST_ENTRY(fabric->tasks.first, struct fabric_task, link));
  fabric_parked_free_all(fabric);
  fabric_backlog_close(fabric);
  for (size_t i = 0; i < fabric->node_count; i++)
    fabric_node_free(fabric->nodes[i]);
  free(fabric->nodes);
  for (int lane = 0; lane < FABRIC_LANES; lane++)
    free(fabric->log[lane].entries);
  fabric_records_spare_free(fabric);
  free(fabric->work_items);
  free(fabric->work_pointers);
  free(fabric->work_url_ids);
  free(fabric->work_url_targets);
  free(fabric->dispatch_due);
  free(fabric->results);
  node_tokens_free(fabric->node_tokens);
  SSL_CTX_free(fabric->tls);
  link_shared_free(&fabric->link_buffers);
  free(fabric);
}
