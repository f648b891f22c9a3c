/* api_env.h — what the HTTP API is given by the server that runs it, so the API never reaches
 * into the server: the shared parts (settings, store workers, the fabric, the shutdown flag) in
 * one api_env, and each event loop's own share in an api_loop (its h2o context, the mailbox its
 * store jobs come back to, its view of the tenants, its counters). The server fills both; the API
 * finds its loop from a request's h2o context or a job's mailbox. */
#ifndef CDR_API_ENV_H
#define CDR_API_ENV_H

#include "common/mailbox.h"
#include "engine/engine_config.h"
#include "engine/tenant_table.h"

#include <h2o.h>
#include <stdatomic.h>
#include <stddef.h>

struct fabric;
struct store_worker;
struct api_loop;

struct api_env {
  const struct engine_config *config;
  struct store_worker *writer; /* inserts and cancels */
  struct store_worker *reader; /* everything that only reads */
  struct fabric *fabric;       /* nodes, and the stats only the fabric knows */
  const atomic_bool *shutting_down;
  struct api_loop **loops; /* every API loop, for GET /debug/vars */
  size_t loop_count;
};

/* One event loop's share of the API. Touched on its loop only, but for the counters, which
 * GET /debug/vars reads from any loop. */
struct api_loop {
  const struct api_env *env;
  h2o_context_t h2o;
  struct mailbox inbox;          /* store jobs of this loop come back here */
  struct tenant_table *tenants;  /* this loop's view of the tenants (holds one reference) */
  _Atomic size_t jobs_in_flight; /* store jobs submitted and not yet back */
  _Atomic size_t connections;    /* open client connections */
};

#endif
