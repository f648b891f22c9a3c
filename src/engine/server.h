/* engine/ — the engine: the server that wires the parts (this file), settings, store workers,
 * tenant tables, stats, task JSON, retention and tenant administration; and its folders api/,
 * fabric/ and notify/, each with its own header naming what it may include. engine/ may include
 * store/, model/, proto/ and common/ (scripts/check-layers); linked as cdr_engine.
 *
 * server.h — the engine's event loops: one thread and one libuv loop per core, each with its own
 * h2o context and its own SO_REUSEPORT listener on the API address, so the kernel spreads
 * connections over the loops and no request ever crosses threads. Store work goes to the store
 * workers (store_worker.h) and comes back to the loop that asked.
 *
 * Shutdown (SIGTERM/SIGINT): every loop stops accepting, asks h2o to close connections after their
 * current request, waits (bounded) for its store jobs to come back so every acknowledged write is
 * answered, then stops; the store workers finish what is queued and close the database. */
#ifndef CDR_SERVER_H
#define CDR_SERVER_H

#include "engine/api/api_env.h"
#include "engine/engine_config.h"
#include "engine/fabric/fabric.h"
#include "engine/retention.h"
#include "engine/store_worker.h"
#include "engine/tenant_table.h"

#include <h2o.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

struct server;

struct server_loop {
  struct server *server;
  uv_loop_t loop;
  struct api_loop api; /* the API's share: h2o context, mailbox, tenants, counters */
  h2o_accept_ctx_t accept;
  uv_tcp_t listener;
  h2o_accept_ctx_t admin_accept; /* the operators' listener, when engine.admin_listen is set */
  uv_tcp_t admin_listener;
  uv_timer_t tenants_poll;    /* asks the store whether api.tenants changed */
  bool tenants_loading;       /* a tenants job is out */
  uv_async_t stop;            /* wakes this loop to begin its shutdown */
  uv_timer_t drain;           /* during shutdown: checks whether store jobs are all back */
  int64_t drain_until;        /* ms (loop clock); stop waiting for store jobs after this */
  struct retention retention; /* loop 0 only: deletes old finished tasks */
  pthread_t thread;           /* not used for loop 0, which runs on the main thread */
};

struct server {
  const struct engine_config *config;
  h2o_globalconf_t h2o;
  h2o_hostconf_t *api_hosts[2];   /* NULL-terminated: the tenants' API only */
  h2o_hostconf_t *admin_hosts[2]; /* NULL-terminated: the operators' endpoints only */
  struct store_worker *writer;
  struct store_worker *reader;
  struct fabric *fabric;
  struct server_loop *loops;
  size_t loop_count;
  struct api_env api; /* what the API is given; api.loops points at each loop's api */
  atomic_bool shutting_down;
  uv_signal_t sigterm, sigint;          /* on loop 0 */
  struct tenant_table *initial_tenants; /* read at start; one reference per loop */
};

/* Runs the engine until SIGTERM or SIGINT. Returns the process exit code (0 after a clean
 * shutdown, 1 when it could not start; the reason is logged). Main thread only. */
int server_run(const struct engine_config *config);

#endif
