/* api.c — routes API requests, checks paths and query parameters, and answers from the store.
 *
 * Handlers never touch the disk: each builds a store_job, submits it to a store worker and answers
 * when the job comes back on this loop. A client that disconnects meanwhile is noticed through the
 * request pool's dispose hook, and the job's answer is then dropped. */
#include "engine/api/api.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/list.h"
#include "common/log.h"
#include "engine/api/api_auth.h"
#include "engine/api/api_env.h"
#include "engine/api/api_reply.h"
#include "engine/api/http1_framing.h"
#include "engine/api/task_request.h"
#include "engine/fabric/fabric.h"
#include "engine/stats.h"
#include "engine/store_worker.h"
#include "engine/task_json.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
  API_PAGE_DEFAULT = 100,
  API_NODES_PAGE_DEFAULT = 500, /* a page of nodes builds in ~4 ms on the fabric's thread */
  API_PAGE_MAX = 1000,
  API_READ_ARENA_MAX = 16 * 1024 * 1024, /* bytes a read job may build: a page of rows */
};

/* The status page (src/engine/status_page.html), embedded at build time. */
extern const char status_page_html[];

/* Links an in-progress request and the message working for it (a store job or a question to the
 * fabric); lives in the request's pool. */
struct api_pending {
  h2o_req_t *req;
  void **owner; /* the message's owner field, pointing back here; NULL once it has come back */
};

static void api_pending_dispose(void *p) {
  struct api_pending *pending = p;
  if (pending->owner)
    *pending->owner = NULL; /* the client left: the answer has nowhere to go */
}

/* Links req and the message whose owner field is *owner. */
static void api_pending_link(h2o_req_t *req, void **owner) {
  struct api_pending *pending =
      h2o_mem_alloc_shared(&req->pool, sizeof(*pending), api_pending_dispose);
  pending->req = req;
  pending->owner = owner;
  *owner = pending;
}

/* Unlinks a message from its request; returns the request, or NULL when the client has gone. */
static h2o_req_t *api_pending_unlink(void **owner) {
  struct api_pending *pending = *owner;
  if (!pending)
    return NULL;
  pending->owner = NULL;
  *owner = NULL;
  return pending->req;
}

static struct api_loop *api_loop_of(h2o_context_t *ctx) {
  return CONTAINER_OF(ctx, struct api_loop, h2o);
}

/* The loop whose mailbox is inbox: a store job or a fabric query coming back knows only that. */
static struct api_loop *api_loop_of_inbox(struct mailbox *inbox) {
  return CONTAINER_OF(inbox, struct api_loop, inbox);
}

/* Allocates a job for req whose answer goes to done on this loop. NULL when out of memory. */
static struct store_job *api_job_new(h2o_req_t *req, enum store_job_kind kind,
                                     store_job_done_cb done, size_t arena_max) {
  struct api_loop *loop = api_loop_of(req->conn->ctx);
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job)
    return NULL;
  arena_init(&job->arena, arena_max);
  job->kind = kind;
  job->done = done;
  job->reply_to = &loop->inbox;
  api_pending_link(req, &job->owner);
  return job;
}

static void api_job_free(struct store_job *job) {
  if (job->read_slot)
    atomic_fetch_sub(&job->read_slot->reads, 1);
  arena_release(&job->arena);
  free(job);
}

/* Unlinks job from its request; returns the request, or NULL when the client has gone. */
static h2o_req_t *api_job_detach(struct store_job *job) { return api_pending_unlink(&job->owner); }

/* Detaches a job that has come back from the store. */
static h2o_req_t *api_job_finish(struct store_job *job) {
  api_loop_of_inbox(job->reply_to)->jobs_in_flight--;
  return api_job_detach(job);
}

/* Frees a job that was never submitted. */
static void api_job_discard(struct store_job *job) {
  api_job_detach(job);
  api_job_free(job);
}

/* api_job_new for a job of tenant: its name is copied, since the loop's tenant table may be
 * replaced while the job is out. */
static struct store_job *api_tenant_job_new(h2o_req_t *req, const struct tenant *tenant,
                                            enum store_job_kind kind, store_job_done_cb done,
                                            size_t arena_max) {
  struct store_job *job = api_job_new(req, kind, done, arena_max);
  if (job && !(job->tenant = arena_strdup(&job->arena, tenant->name))) {
    api_job_discard(job);
    return NULL;
  }
  return job;
}

/* api_tenant_job_new for an expensive read — an item page or a task list — that counts among
 * limits.tenant_reads_max of tenant's at once, across every API loop, until the job is freed
 * (after its answer is rendered): one tenant looping large pages from many connections cannot
 * keep the reader and the loops from other tenants' requests. Past the bound answers 429 with
 * Retry-After and returns NULL. --dev requests (no limits) and operators are not counted. */
static struct store_job *api_read_job_new(h2o_req_t *req, const struct tenant *tenant,
                                          enum store_job_kind kind, store_job_done_cb done) {
  struct store_job *job = api_tenant_job_new(req, tenant, kind, done, API_READ_ARENA_MAX);
  if (!job) {
    api_reply_error(req, CDR_ENOMEM, NULL, NULL);
    return NULL;
  }
  if (!tenant->limits)
    return job;
  int64_t max = api_loop_of(req->conn->ctx)->env->config->tenant_reads_max;
  if (atomic_fetch_add(&tenant->limits->reads, 1) < max) {
    job->read_slot = tenant->limits;
    return job;
  }
  atomic_fetch_sub(&tenant->limits->reads, 1);
  api_job_discard(job);
  char message[160];
  snprintf(message, sizeof(message),
           "tenant '%.64s' already has %lld item pages or task lists running "
           "(limits.tenant_reads_max)",
           tenant->name, (long long)max);
  api_reply_error_retry(req, CDR_ERATE_LIMITED, NULL, message, 1);
  return NULL;
}

static void api_job_submit(struct store_job *job, bool write) {
  struct api_loop *loop = api_loop_of_inbox(job->reply_to);
  loop->jobs_in_flight++;
  store_worker_submit(write ? loop->env->writer : loop->env->reader, job);
}

/* Answers a store failure, or a not-found / already-final outcome, for a job that came back. */
static void api_reply_store_error(h2o_req_t *req, int err) {
  if (err == CDR_ESTORE_UNAVAILABLE)
    api_reply_error(req, err, NULL,
                    "the task store could not be written or read; nothing was "
                    "changed, retry later");
  else
    api_reply_error(req, err, NULL, NULL);
}

/* Answers with the task's summary, written directly (no jansson tree on the hot path). */
static void api_reply_task(h2o_req_t *req, int status, const struct task *task) {
  struct json_text text;
  json_text_init(&text);
  task_json_summary_text(task, &text);
  api_reply_json_text(req, status, text.failed ? NULL : text.data, text.len);
  json_text_free(&text);
}

/* A read job that came back: the request to answer, or NULL when its client is gone or its store
 * error has been sent. */
static h2o_req_t *api_job_answerable(struct store_job *job) {
  h2o_req_t *req = api_job_finish(job);
  if (req && job->result) {
    api_reply_store_error(req, job->result);
    return NULL;
  }
  return req;
}

/* Answers a read job that came back: the store error, or status with the JSON render builds. */
static void api_job_answer(struct store_job *job, int status,
                           json_t *(*render)(const struct store_job *job)) {
  h2o_req_t *req = api_job_answerable(job);
  if (req)
    api_reply_json(req, status, render(job));
  api_job_free(job);
}

/* api_job_answer for a job answered with its task's summary, written straight into text. */
static void api_job_answer_task(struct store_job *job) {
  h2o_req_t *req = api_job_answerable(job);
  if (req)
    api_reply_task(req, 200, job->task);
  api_job_free(job);
}

static json_t *api_render_tasks(const struct store_job *job) {
  json_t *tasks = json_array();
  for (size_t i = 0; i < job->tasks.count; i++)
    json_array_append_new(tasks, task_json_summary(job->tasks.tasks[i]));
  const char *next = job->tasks.more ? job->tasks.tasks[job->tasks.count - 1]->id : NULL;
  return json_pack("{s:o,s:o}", "tasks", tasks, "next_cursor",
                   next ? json_string(next) : json_null());
}

/* Seconds until the quota day (UTC) after day begins. */
static int64_t api_quota_reset_in_s(int64_t day) {
  int64_t left = ((day + 1) * 86400000 - clock_now_ms() + 999) / 1000;
  return left > 0 ? left : 1;
}

/* 429 for a task its tenant's daily quota has no room for, naming the quota. */
static void api_reply_quota_exceeded(h2o_req_t *req, const struct store_job *job) {
  int64_t amount[QUOTA_COUNT];
  tenant_quota_amount(job->task, amount);
  enum tenant_quota quota = QUOTA_PURGE_URLS;
  for (int i = QUOTA_COUNT - 1; i >= 0; i--) {
    if (job->quota_limit[i] > 0 && job->quota_used[i] + amount[i] > job->quota_limit[i])
      quota = (enum tenant_quota)i;
  }
  int64_t reset_in = api_quota_reset_in_s(job->quota_day);
  char message[320];
  snprintf(message, sizeof(message),
           "tenant '%s' has used %lld of its daily %s quota of %lld and this request needs %lld "
           "more; it resets at 00:00 UTC, in %lld s",
           job->task->tenant, (long long)job->quota_used[quota], tenant_quota_name(quota),
           (long long)job->quota_limit[quota], (long long)amount[quota], (long long)reset_in);
  api_reply_error_retry(req, CDR_EQUOTA_EXCEEDED, tenant_quota_name(quota), message, reset_in);
}

static void api_on_task_stored(struct store_job *job) {
  h2o_req_t *req = api_job_finish(job);
  if (job->result) {
    fabric_backlog_refund(api_loop_of_inbox(job->reply_to)->env->fabric, job->backlog_tenant,
                          job->backlog_charge);
    if (req && job->result == CDR_EQUOTA_EXCEEDED)
      api_reply_quota_exceeded(req, job);
    else if (req)
      api_reply_store_error(req, job->result);
    api_job_free(job);
    return;
  }
  log_debug("task.accepted", "task %s accepted with %zu targets", job->task->id,
            job->task->target_count);
  rate_add(&engine_stats.tasks_accepted, clock_now_ms() / 1000, 1);
  if (req)
    api_reply_task(req, 202, job->task);
  /* The task is on disk: the fabric takes the job and plans the task onto its nodes. */
  fabric_accept(api_loop_of_inbox(job->reply_to)->env->fabric, job);
}

static void api_on_task_canceled(struct store_job *job) {
  if (!job->result) /* drop the task's queued work; the store already says canceled */
    fabric_cancel(api_loop_of_inbox(job->reply_to)->env->fabric, job->task);
  api_job_answer_task(job);
}

/* Allocates a question to the fabric for req, answered on this loop. NULL when out of memory. */
static struct fabric_query *api_query_new(h2o_req_t *req, enum fabric_question question,
                                          fabric_answered_cb answered) {
  struct fabric_query *query = calloc(1, sizeof(*query));
  if (!query)
    return NULL;
  query->question = question;
  query->reply_to = &api_loop_of(req->conn->ctx)->inbox;
  query->answered = answered;
  api_pending_link(req, &query->owner);
  return query;
}

static void api_query_ask(struct fabric_query *query) {
  struct api_loop *loop = api_loop_of_inbox(query->reply_to);
  loop->jobs_in_flight++;
  fabric_ask(loop->env->fabric, query);
}

/* Detaches a query that has come back; returns its request, or NULL when the client has gone
 * or the fabric could not answer (that answered with the error). */
static h2o_req_t *api_query_finish(struct fabric_query *query) {
  api_loop_of_inbox(query->reply_to)->jobs_in_flight--;
  h2o_req_t *req = api_pending_unlink(&query->owner);
  if (req && query->result) {
    api_reply_error(req, query->result, NULL, NULL);
    return NULL;
  }
  return req;
}

static void api_on_nodes(struct fabric_query *query) {
  h2o_req_t *req = api_query_finish(query);
  if (req)
    api_reply_json(req, 200, json_incref(query->answer));
  json_decref(query->answer);
  free(query);
}

static void api_on_node_removed(struct fabric_query *query) {
  h2o_req_t *req = api_query_finish(query);
  if (req)
    api_reply_json(req, 200, json_pack("{s:s,s:b}", "node_id", query->node_id, "removed", 1));
  free(query);
}

/* DELETE /v1/nodes/{id}: the node's pending items fail with node_removed. */
static int api_remove_node(h2o_req_t *req, const char *id, size_t len) {
  if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"))) {
    api_reply_method_not_allowed(req, "DELETE");
    return 0;
  }
  if (!fabric_name_valid(id, len, FABRIC_NODE_ID_MAX)) {
    api_reply_error(req, CDR_ENODE_NOT_FOUND, NULL, NULL);
    return 0;
  }
  struct fabric_query *query = api_query_new(req, FABRIC_NODE_REMOVE, api_on_node_removed);
  if (!query) {
    api_reply_error(req, CDR_ENOMEM, NULL, NULL);
    return 0;
  }
  memcpy(query->node_id, id, len);
  api_query_ask(query);
  return 0;
}

/* What a stats job renders. */
enum api_stats_format {
  API_STATS_JSON,       /* GET /v1/stats */
  API_STATS_PROMETHEUS, /* GET /metrics */
  API_STATS_DEBUG,      /* GET /debug/vars */
};

/* GET /debug/vars: the fabric's gauges and internals, each API loop's open connections and store
 * jobs, the store workers' queues. */
static json_t *api_debug_vars(const struct api_env *env, json_t *fabric, const int64_t counts[6]) {
  json_t *loops = json_array();
  for (size_t i = 0; i < env->loop_count; i++)
    json_array_append_new(
        loops, json_pack("{s:I,s:I}", "connections", (json_int_t)env->loops[i]->connections,
                         "store_jobs_in_flight", (json_int_t)env->loops[i]->jobs_in_flight));
  return json_pack("{s:o,s:o,s:{s:I,s:I}}", "stats", stats_json(fabric, counts), "api_loops", loops,
                   "store_queues", "writer", (json_int_t)store_worker_queued(env->writer), "reader",
                   (json_int_t)store_worker_queued(env->reader));
}

/* A stats request on its way: how it is rendered and, once the fabric has answered, its gauges,
 * carried by the counts job to the store and back (job->context). */
struct api_stats_request {
  enum api_stats_format format;
  json_t *fabric;
};

/* GET /v1/stats, /metrics and /debug/vars: the fabric's gauges, then the store's task counts, then
 * the counters, rendered as the request's format says. */
static void api_on_counts(struct store_job *job) {
  h2o_req_t *req = api_job_finish(job);
  struct api_stats_request *stats = job->context;
  json_t *fabric = stats->fabric;
  if (req && job->result) {
    api_reply_store_error(req, job->result);
    json_decref(fabric);
  } else if (req && stats->format == API_STATS_JSON) {
    api_reply_json(req, 200, stats_json(fabric, job->task_counts));
  } else if (req && stats->format == API_STATS_DEBUG) {
    api_reply_json(req, 200,
                   api_debug_vars(api_loop_of(req->conn->ctx)->env, fabric, job->task_counts));
  } else if (req) {
    char *text = stats_prometheus(fabric, job->task_counts);
    json_decref(fabric);
    if (text)
      api_reply_text(req, 200, "text/plain; version=0.0.4", text);
    else
      api_reply_error(req, CDR_ENOMEM, NULL, NULL);
    free(text);
  } else {
    json_decref(fabric);
  }
  api_job_free(job);
}

/* The fabric's gauges are in: the store's counts come next, in a job carrying them. */
static void api_on_fabric_stats(struct fabric_query *query) {
  h2o_req_t *req = api_query_finish(query);
  struct store_job *job = req ? api_job_new(req, STORE_JOB_COUNTS, api_on_counts, 4096) : NULL;
  struct api_stats_request *stats = job ? arena_alloc(&job->arena, sizeof(*stats)) : NULL;
  if (!stats) {
    if (job)
      api_job_discard(job);
    if (req)
      api_reply_error(req, CDR_ENOMEM, NULL, NULL);
    json_decref(query->answer);
    free(query);
    return;
  }
  *stats = (struct api_stats_request){.format = *(const enum api_stats_format *)query->context,
                                      .fabric = query->answer};
  job->context = stats;
  free(query);
  api_job_submit(job, false);
}

static int api_stats(h2o_req_t *req, enum api_stats_format format) {
  struct fabric_query *query = api_query_new(req, FABRIC_STATS, api_on_fabric_stats);
  if (!query) {
    api_reply_error(req, CDR_ENOMEM, NULL, NULL);
    return 0;
  }
  static const enum api_stats_format formats[] = {API_STATS_JSON, API_STATS_PROMETHEUS,
                                                  API_STATS_DEBUG};
  query->context = &formats[format];
  api_query_ask(query);
  return 0;
}

/* The shared limits of tenant, its part of the backlog among them: a --dev request's tenant has
 * none of its own. NULL when out of memory. */
static struct tenant_limits *api_tenant_limits(const struct tenant *tenant) {
  return tenant->limits ? tenant->limits : tenant_limits_for(tenant->name);
}

/* The share of a bound of limit that a tenant holding mine of it may hold: the bound divided
 * among the sharing tenants that hold parts of it, the tenant itself counted when it holds none
 * yet, and never less than one. A tenant under its share is taken even past the bound, so that
 * one tenant's tasks cannot keep out every other; the engine then holds at most about twice the
 * bound. */
static int64_t api_bound_share(int64_t limit, int64_t sharing, int64_t mine) {
  if (mine == 0)
    sharing++; /* not among them yet */
  int64_t share = limit / (sharing > 1 ? sharing : 1);
  return share > 0 ? share : 1;
}

/* Answers 503 backlog_full when the unfinished results of the fabric's tasks in memory are past
 * limits.max_unfinished_results (a 202 would promise work that takes ever longer) and tenant
 * holds its share of them (api_bound_share). Retry-After is how long the tenant's own results,
 * at the rate they came in over the last 10 s, take to bring it to half its share (1..60 s; 60
 * when none came in). True when it answered. */
static bool api_backlog_full(h2o_req_t *req, const struct api_env *env,
                             const struct tenant *tenant) {
  int64_t limit = env->config->max_unfinished_results, backlog = fabric_backlog(env->fabric);
  if (limit <= 0 || backlog < limit)
    return false;
  struct tenant_limits *limits = api_tenant_limits(tenant);
  int64_t mine = limits ? fabric_tenant_backlog(limits) : backlog;
  int64_t sharing = fabric_tenants_waiting(env->fabric);
  int64_t share = api_bound_share(
      limit, sharing, limits ? atomic_load_explicit(&limits->backlog, memory_order_relaxed) : 1);
  if (mine < share)
    return false;
  int64_t drained = limits ? atomic_load_explicit(&limits->drained, memory_order_relaxed) : 0;
  int64_t wait_s = drained ? (mine - share / 2) * 10 / drained + 1 : 60;
  char rate[128];
  if (drained)
    snprintf(rate, sizeof(rate), "its results came in at %lld per second over the last 10 s",
             (long long)(drained + 9) / 10);
  else
    snprintf(rate, sizeof(rate), "none of its results came in over the last 10 s");
  char message[384];
  snprintf(message, sizeof(message),
           "tenant '%s' has %lld (URL, node) results unfinished in memory, its share (%lld) of "
           "limits.max_unfinished_results (%lld) among the %lld tenants with work waiting; %s; "
           "retry later",
           tenant->name, (long long)mine, (long long)share, (long long)limit,
           (long long)(sharing > 1 ? sharing : 1), rate);
  api_reply_error_retry(req, CDR_EBACKLOG_FULL, NULL, message, wait_s < 60 ? wait_s : 60);
  return true;
}

enum { API_PARKED_RETRY_MAX_S = 300 }; /* a node back sooner frees the parked tasks sooner */

/* Answers 503 offline_backlog_full when the targets of the tasks parked in the store for offline
 * nodes are past limits.max_parked_targets and tenant holds its share of them
 * (api_bound_share). They leave only when their nodes come back, which nobody can tell, or at
 * their deadlines: Retry-After is the time to the earliest deadline among the tenant's parked
 * tasks, at most API_PARKED_RETRY_MAX_S. True when it answered. */
static bool api_parked_full(h2o_req_t *req, const struct api_env *env,
                            const struct tenant *tenant) {
  int64_t limit = env->config->max_parked_targets, parked = fabric_parked(env->fabric);
  if (limit <= 0 || parked < limit)
    return false;
  struct tenant_limits *limits = api_tenant_limits(tenant);
  int64_t mine = limits ? atomic_load_explicit(&limits->parked, memory_order_relaxed) : parked;
  int64_t sharing = fabric_tenants_parking(env->fabric);
  int64_t share = api_bound_share(limit, sharing, mine);
  if (mine < share)
    return false;
  int64_t next_ms =
      limits ? atomic_load_explicit(&limits->parked_next_ms, memory_order_relaxed) : INT64_MAX;
  int64_t now_ms = clock_now_ms();
  char next[96] = "";
  int64_t wait_s = API_PARKED_RETRY_MAX_S;
  if (next_ms != INT64_MAX) { /* else not found yet by the sweep */
    int64_t to_deadline_s = next_ms > now_ms ? (next_ms - now_ms + 999) / 1000 : 1;
    snprintf(next, sizeof(next), ", the first of them in %llds", (long long)to_deadline_s);
    if (to_deadline_s < wait_s)
      wait_s = to_deadline_s;
  }
  char message[448];
  snprintf(message, sizeof(message),
           "tenant '%s' has %lld targets of tasks waiting in the store for offline nodes, its "
           "share (%lld) of limits.max_parked_targets (%lld) among the %lld tenants with tasks "
           "waiting there; they leave when their nodes come back or at their deadlines%s; retry "
           "later",
           tenant->name, (long long)mine, (long long)share, (long long)limit,
           (long long)(sharing > 1 ? sharing : 1), next);
  api_reply_error_retry(req, CDR_EOFFLINE_BACKLOG_FULL, NULL, message, wait_s);
  return true;
}

static int api_post_task(h2o_req_t *req, const struct tenant *tenant, enum task_type type) {
  struct api_loop *loop = api_loop_of(req->conn->ctx);
  const struct engine_config *config = loop->env->config;
  if (atomic_load(loop->env->shutting_down)) {
    api_reply_error(req, CDR_ESHUTTING_DOWN, NULL, "the engine is shutting down; retry on another");
    return 0;
  }
  if (req->entity.len > (size_t)config->max_body_bytes) {
    char message[160];
    snprintf(message, sizeof(message), "the body is %zu bytes, over limits.max_body_bytes (%lld)",
             req->entity.len, (long long)config->max_body_bytes);
    api_reply_error(req, CDR_EBODY_TOO_LARGE, NULL, message);
    return 0;
  }
  /* Parsed targets take at most a few times the body's size. */
  struct store_job *job = api_tenant_job_new(req, tenant, STORE_JOB_INSERT, api_on_task_stored,
                                             8 * (size_t)config->max_body_bytes + 65536);
  if (!job) {
    api_reply_error(req, CDR_ENOMEM, NULL, NULL);
    return 0;
  }
  const struct request_limits limits = {
      .max_items = (size_t)config->max_items,
      .max_url_length = (size_t)config->max_url_length,
      .default_deadline_s = config->default_deadline_s,
      .max_deadline_s = config->max_deadline_s,
      .callback_allow = config->callback_allow,
  };
  struct request_error error;
  const char *body = req->entity.base ? req->entity.base : "";
  int rc = task_request_parse(type, body, req->entity.len, &limits, tenant, &job->arena, &job->task,
                              &error);
  if (rc) {
    api_reply_error(req, rc, error.field, error.message);
    api_job_discard(job);
    return 0;
  }
  if (api_backlog_full(req, loop->env, tenant) || api_parked_full(req, loop->env, tenant)) {
    api_job_discard(job);
    return 0;
  }
  int64_t wait_s = api_auth_rate(tenant, API_RATE_URLS, (int64_t)job->task->target_count);
  if (wait_s) {
    char message[160];
    snprintf(message, sizeof(message), "tenant '%s' may submit %lld URLs per second", tenant->name,
             (long long)tenant->rate_urls);
    api_reply_error_retry(req, CDR_ERATE_LIMITED, "urls", message, wait_s);
    api_job_discard(job);
    return 0;
  }
  memcpy(job->quota_limit, tenant->quota, sizeof(job->quota_limit));
  job->backlog_tenant = api_tenant_limits(tenant);
  job->backlog_charge =
      fabric_backlog_charge(loop->env->fabric, job->backlog_tenant, job->task->target_count);
  api_job_submit(job, true);
  return 0;
}

/* A quota's limit as JSON: null when there is none. */
static json_t *api_limit_json(int64_t limit) {
  return limit > 0 ? json_integer((json_int_t)limit) : json_null();
}

static json_t *api_quota_json(const int64_t limit[QUOTA_COUNT], const int64_t used[QUOTA_COUNT]) {
  json_t *quotas = json_object();
  for (int i = 0; i < QUOTA_COUNT; i++) {
    json_t *remaining =
        limit[i] > 0 ? json_integer(limit[i] > used[i] ? limit[i] - used[i] : 0) : json_null();
    json_object_set_new(quotas, tenant_quota_name((enum tenant_quota)i),
                        json_pack("{s:o,s:I,s:o}", "limit", api_limit_json(limit[i]), "used",
                                  (json_int_t)used[i], "remaining", remaining));
  }
  return quotas;
}

static json_t *api_render_quota(const struct store_job *job) {
  char resets_at[CLOCK_ISO8601_SIZE];
  clock_format_iso8601((job->quota_day + 1) * 86400000, resets_at);
  return json_pack("{s:s,s:s,s:o,s:{s:o,s:o}}", "tenant", job->tenant, "resets_at", resets_at,
                   "quotas", api_quota_json(job->quota_limit, job->quota_used), "rate_limits",
                   "requests_per_s", api_limit_json(job->rate_limit[0]), "urls_per_s",
                   api_limit_json(job->rate_limit[1]));
}

static void api_on_quota(struct store_job *job) { api_job_answer(job, 200, api_render_quota); }

/* GET /v1/quota: the tenant's use of its daily quotas and its rate limits. */
static int api_quota(h2o_req_t *req, const struct tenant *tenant) {
  struct store_job *job = api_tenant_job_new(req, tenant, STORE_JOB_QUOTA, api_on_quota, 4096);
  if (!job) {
    api_reply_error(req, CDR_ENOMEM, NULL, NULL);
    return 0;
  }
  job->quota_day = clock_now_ms() / 86400000;
  memcpy(job->quota_limit, tenant->quota, sizeof(job->quota_limit));
  job->rate_limit[0] = tenant->rate_requests;
  job->rate_limit[1] = tenant->rate_urls;
  api_job_submit(job, false);
  return 0;
}

/* The comma-separated host list as a JSON array. */
static json_t *api_hosts_json(const char *hosts) {
  json_t *list = json_array();
  for (const char *entry = hosts; entry && *entry;) {
    const char *comma = strchr(entry, ',');
    size_t len = comma ? (size_t)(comma - entry) : strlen(entry);
    json_array_append_new(list, json_stringn(entry, len));
    entry = comma ? comma + 1 : NULL;
  }
  return list;
}

static json_t *api_render_tenants(const struct store_job *job) {
  json_t *tenants = json_array();
  for (size_t i = 0; i < job->tenant_list.count; i++) {
    const struct tenant *t = &job->tenant_list.tenants[i];
    char created[CLOCK_ISO8601_SIZE];
    clock_format_iso8601(t->created_ms, created);
    json_array_append_new(
        tenants, json_pack("{s:s,s:s,s:o,s:o,s:o,s:{s:o,s:o},s:s}", "name", t->name, "access_key",
                           t->access_key, "hosts", api_hosts_json(t->hosts), "tag_prefix",
                           t->tag_prefix ? json_string(t->tag_prefix) : json_null(), "quotas",
                           api_quota_json(t->quota, job->tenant_list.used[i]), "rate_limits",
                           "requests_per_s", api_limit_json(t->rate_requests), "urls_per_s",
                           api_limit_json(t->rate_urls), "created_at", created));
  }
  return json_pack("{s:o}", "tenants", tenants);
}

static void api_on_tenants(struct store_job *job) { api_job_answer(job, 200, api_render_tenants); }

/* GET /v1/tenants (operators): every tenant without its secret, with its quota use today. */
static int api_list_tenants(h2o_req_t *req) {
  struct store_job *job =
      api_job_new(req, STORE_JOB_TENANT_LIST, api_on_tenants, API_READ_ARENA_MAX);
  if (!job) {
    api_reply_error(req, CDR_ENOMEM, NULL, NULL);
    return 0;
  }
  api_job_submit(job, false);
  return 0;
}

static void api_on_task_waiting(struct fabric_query *query) {
  struct store_job *job = query->task_waiting.job;
  h2o_req_t *req = api_query_finish(query);
  if (req) {
    if (query->task_waiting.found)
      job->task->waiting = &query->task_waiting.answer;
    api_reply_task(req, 200, job->task);
  }
  api_job_free(job);
  free(query);
}

/* A task read for GET: an unfinished one planned onto its nodes also says what it waits for,
 * which only the fabric knows (who owes it a result, who is offline). */
static void api_on_task_read(struct store_job *job) {
  h2o_req_t *req = api_job_answerable(job);
  const struct task *task = req ? job->task : NULL;
  struct fabric_query *query =
      task && task->planned && task->plan_nodes && !task_state_final(task->state)
          ? api_query_new(req, FABRIC_TASK_WAITING, api_on_task_waiting)
          : NULL;
  if (!query) {
    if (req)
      api_reply_task(req, 200, job->task);
    api_job_free(job);
    return;
  }
  query->task_waiting.job = job;
  api_query_ask(query);
}

static void api_on_tasks_listed(struct store_job *job) {
  api_job_answer(job, 200, api_render_tasks);
}

/* Answers an items page, written straight into text (task_json_item_text). */
static void api_on_targets_listed(struct store_job *job) {
  h2o_req_t *req = api_job_answerable(job);
  if (req) {
    struct json_text text;
    json_text_init(&text);
    JSON_TEXT_LITERAL(&text, "{\"task_id\":");
    json_text_string(&text, job->task_id);
    JSON_TEXT_LITERAL(&text, ",\"items\":[");
    for (size_t i = 0; i < job->items.count; i++) {
      if (i > 0)
        JSON_TEXT_LITERAL(&text, ",");
      task_json_item_text(&job->items.rows[i], &text);
    }
    JSON_TEXT_LITERAL(&text, "],\"next_cursor\":");
    if (job->items.next_cursor >= 0) { /* a string, like task cursors */
      JSON_TEXT_LITERAL(&text, "\"");
      json_text_int(&text, job->items.next_cursor);
      JSON_TEXT_LITERAL(&text, "\"}");
    } else {
      JSON_TEXT_LITERAL(&text, "null}");
    }
    api_reply_json_text(req, 200, text.failed ? NULL : text.data, text.len);
    json_text_free(&text);
  }
  api_job_free(job);
}

struct api_query {
  const char *name;
  const char *value; /* points into the request path; NULL when absent */
  size_t len;
};

/* Splits the query string over params (by name). Unknown or repeated names are refused with an
 * error reply (return -1). Values are taken as they are: every value the API takes is a plain
 * token, id or number, so percent-encoding never needs decoding and fails validation instead. */
static int api_query_parse(h2o_req_t *req, struct api_query *params, size_t count) {
  if (req->query_at == SIZE_MAX)
    return 0;
  const char *p = req->path.base + req->query_at + 1;
  const char *end = req->path.base + req->path.len;
  while (p < end) {
    const char *amp = memchr(p, '&', (size_t)(end - p));
    const char *stop = amp ? amp : end;
    const char *eq = memchr(p, '=', (size_t)(stop - p));
    size_t name_len = (size_t)((eq ? eq : stop) - p);
    struct api_query *param = NULL;
    for (size_t i = 0; i < count && !param; i++) {
      if (strlen(params[i].name) == name_len && memcmp(params[i].name, p, name_len) == 0)
        param = &params[i];
    }
    if (name_len > 0 && (!param || param->value)) {
      char field[64];
      snprintf(field, sizeof(field), "%.*s", (int)(name_len < 60 ? name_len : 60), p);
      api_reply_error(req, CDR_EINVALID_QUERY, field,
                      param ? "query parameter given twice" : "unknown query parameter");
      return -1;
    }
    if (param) {
      param->value = eq ? eq + 1 : stop;
      param->len = (size_t)(stop - param->value);
    }
    p = stop + 1;
  }
  return 0;
}

/* Reads ?limit= into *limit (default API_PAGE_DEFAULT); replies and returns -1 when invalid. */
/* Reads a given parameter as a decimal of 1..digits digits into *out; false when it is none. */
static bool api_query_decimal(const struct api_query *param, size_t digits, uint64_t *out) {
  bool ok = param->len > 0 && param->len <= digits;
  uint64_t value = 0;
  for (size_t i = 0; ok && i < param->len; i++) {
    ok = param->value[i] >= '0' && param->value[i] <= '9';
    value = value * 10 + (uint64_t)(param->value[i] - '0');
  }
  *out = value;
  return ok;
}

static int api_query_limit(h2o_req_t *req, const struct api_query *param, size_t *limit) {
  *limit = API_PAGE_DEFAULT;
  if (!param->value)
    return 0;
  uint64_t value;
  if (!api_query_decimal(param, 4, &value) || value < 1 || value > API_PAGE_MAX) {
    api_reply_error(req, CDR_EINVALID_QUERY, "limit", "limit must be an integer 1..1000");
    return -1;
  }
  *limit = (size_t)value;
  return 0;
}

/* GET /v1/nodes[?state=online|offline][&q=TEXT][&cursor=N][&limit=N]: a page of the nodes
 * (API_NODES_PAGE_DEFAULT unless limit says), and a summary of them all. */
static int api_list_nodes(h2o_req_t *req) {
  struct api_query params[] = {
      {"state", NULL, 0}, {"q", NULL, 0}, {"cursor", NULL, 0}, {"limit", NULL, 0}};
  if (api_query_parse(req, params, 4))
    return 0;
  struct fabric_nodes_page page = {.limit = API_NODES_PAGE_DEFAULT};
  if (params[0].value) {
    page.state = h2o_memis(params[0].value, params[0].len, H2O_STRLIT("online"))    ? 1
                 : h2o_memis(params[0].value, params[0].len, H2O_STRLIT("offline")) ? 2
                                                                                    : -1;
    if (page.state < 0) {
      api_reply_error(req, CDR_EINVALID_QUERY, "state", "state must be online or offline");
      return 0;
    }
  }
  if (params[1].value && !fabric_name_valid(params[1].value, params[1].len, FABRIC_NODE_ID_MAX)) {
    api_reply_error(req, CDR_EINVALID_QUERY, "q",
                    "q must be 1..64 of A-Z a-z 0-9 . _ - (part of a node id or group)");
    return 0;
  }
  if (params[1].value)
    memcpy(page.search, params[1].value, params[1].len);
  uint64_t cursor = 0;
  if (params[2].value && !api_query_decimal(&params[2], 9, &cursor)) {
    api_reply_error(req, CDR_EINVALID_QUERY, "cursor", "cursor must be a next_cursor value");
    return 0;
  }
  page.cursor = (size_t)cursor;
  if (params[3].value && api_query_limit(req, &params[3], &page.limit))
    return 0;
  struct fabric_query *query = api_query_new(req, FABRIC_NODES, api_on_nodes);
  if (!query) {
    api_reply_error(req, CDR_ENOMEM, NULL, NULL);
    return 0;
  }
  query->nodes_page = page;
  api_query_ask(query);
  return 0;
}

/* GET /v1/tasks: tenant's tasks, or every tenant's for an operator (tenant NULL). */
static int api_list_tasks(h2o_req_t *req, const struct tenant *tenant) {
  struct api_query params[] = {{"state", NULL, 0}, {"cursor", NULL, 0}, {"limit", NULL, 0}};
  if (api_query_parse(req, params, 3))
    return 0;
  enum task_state state = TASK_QUEUED;
  if (params[0].value && task_state_parse(params[0].value, params[0].len, &state)) {
    api_reply_error(req, CDR_EINVALID_QUERY, "state",
                    "state must be queued, running, done, partial, failed or canceled");
    return 0;
  }
  if (params[1].value && !task_id_valid(params[1].value, params[1].len)) {
    api_reply_error(req, CDR_EINVALID_QUERY, "cursor", "cursor must be a next_cursor value");
    return 0;
  }
  size_t limit;
  if (api_query_limit(req, &params[2], &limit))
    return 0;
  struct store_job *job;
  if (!tenant) {
    if (!(job = api_job_new(req, STORE_JOB_LIST, api_on_tasks_listed, API_READ_ARENA_MAX)))
      api_reply_error(req, CDR_ENOMEM, NULL, NULL);
  } else {
    job = api_read_job_new(req, tenant, STORE_JOB_LIST, api_on_tasks_listed);
  }
  if (!job)
    return 0;
  job->filter_task_state = params[0].value != NULL;
  job->task_state = state;
  if (params[1].value)
    memcpy(job->cursor, params[1].value, TASK_ID_LENGTH);
  job->limit = limit;
  api_job_submit(job, false);
  return 0;
}

static int api_list_targets(h2o_req_t *req, struct store_job *job) {
  struct api_query params[] = {{"state", NULL, 0}, {"cursor", NULL, 0}, {"limit", NULL, 0}};
  size_t limit = 0;
  int64_t after = -1;
  bool ok = api_query_parse(req, params, 3) == 0;
  if (ok && params[0].value && item_state_parse(params[0].value, params[0].len, &job->item_state)) {
    api_reply_error(req, CDR_EINVALID_QUERY, "state",
                    "state must be pending, succeeded, failed, unsupported or canceled");
    ok = false;
  }
  if (ok && params[1].value) {
    uint64_t index;
    ok = api_query_decimal(&params[1], 12, &index);
    after = (int64_t)index;
    if (!ok)
      api_reply_error(req, CDR_EINVALID_QUERY, "cursor", "cursor must be a next_cursor value");
  }
  if (ok && api_query_limit(req, &params[2], &limit))
    ok = false;
  if (!ok) {
    api_job_discard(job);
    return 0;
  }
  job->filter_item_state = params[0].value != NULL;
  job->after_index = after;
  job->limit = limit;
  api_job_submit(job, false);
  return 0;
}

/* Handles /v1/tasks/{id} and /v1/tasks/{id}/items; rest is the path after "/v1/tasks/". */
static int api_task_route(h2o_req_t *req, const struct tenant *tenant, const char *rest,
                          size_t len) {
  const char *slash = memchr(rest, '/', len);
  size_t id_len = slash ? (size_t)(slash - rest) : len;
  bool items = slash && (size_t)(rest + len - slash) == 6 && memcmp(slash, "/items", 6) == 0;
  if (slash && !items) {
    api_reply_error(req, CDR_ENOT_FOUND, NULL, NULL);
    return 0;
  }
  bool get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
  bool del = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
  if (!get && !(del && !items)) {
    api_reply_method_not_allowed(req, items ? "GET" : "GET, DELETE");
    return 0;
  }
  if (!task_id_valid(rest, id_len)) {
    api_reply_error(req, CDR_ETASK_NOT_FOUND, NULL, "no task with this id");
    return 0;
  }
  enum store_job_kind kind = items ? STORE_JOB_TARGETS : get ? STORE_JOB_GET : STORE_JOB_CANCEL;
  store_job_done_cb done = items                      ? api_on_targets_listed
                           : kind == STORE_JOB_CANCEL ? api_on_task_canceled
                                                      : api_on_task_read;
  struct store_job *job = items ? api_read_job_new(req, tenant, kind, done)
                                : api_tenant_job_new(req, tenant, kind, done, API_READ_ARENA_MAX);
  if (!job) {
    if (!items)
      api_reply_error(req, CDR_ENOMEM, NULL, NULL);
    return 0;
  }
  memcpy(job->task_id, rest, TASK_ID_LENGTH);
  if (items)
    return api_list_targets(req, job);
  api_job_submit(job, kind == STORE_JOB_CANCEL);
  return 0;
}

static void api_reply_status(h2o_req_t *req, int status, const char *state) {
  api_reply_json(req, status, json_pack("{s:s}", "status", state));
}

/* True when req's headers together exceed limits.max_header_bytes (counted as sent: name, ": ",
 * value, CRLF). libh2o takes somewhat more before refusing on its own. */
static bool api_headers_too_large(const h2o_req_t *req, int64_t max) {
  size_t total = 0;
  for (size_t i = 0; i < req->headers.size; i++)
    total += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
  return total > (size_t)max;
}

/* The API's handler on one listener: the tenants' API, or the operators' admin listener. */
struct api_handler {
  h2o_handler_t super;
  bool admin;
};

/* Where a node's own path starts: DELETE /v1/nodes/{id}. */
static const char api_nodes_prefix[] = "/v1/nodes/";

static bool api_path_has_prefix(const char *path, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len > n && memcmp(path, prefix, n) == 0;
}

/* True when path is one of paths (NULL-terminated) or starts with prefix (and goes on). */
static bool api_path_in(const char *path, size_t len, const char *const *paths,
                        const char *prefix) {
  for (const char *const *p = paths; *p; p++) {
    if (h2o_memis(path, len, *p, strlen(*p)))
      return true;
  }
  return api_path_has_prefix(path, len, prefix);
}

/* Endpoints for operators (nodes, stats, metrics, status page, internals, tenants): on the admin
 * listener, and on the API listener only in --dev mode. */
static bool api_path_for_operators(const char *path, size_t len) {
  static const char *const paths[] = {"/v1/nodes",   "/v1/stats",   "/metrics", "/",
                                      "/debug/vars", "/v1/tenants", NULL};
  return api_path_in(path, len, paths, api_nodes_prefix);
}

/* Serves the operators' endpoints (no tenant). */
static int api_operator_route(h2o_req_t *req, const char *path, size_t len, bool get) {
  if (api_path_has_prefix(path, len, api_nodes_prefix))
    return api_remove_node(req, path + sizeof(api_nodes_prefix) - 1,
                           len - (sizeof(api_nodes_prefix) - 1));
  if (!get) {
    api_reply_method_not_allowed(req, "GET");
    return 0;
  }
  if (h2o_memis(path, len, H2O_STRLIT("/v1/nodes")))
    return api_list_nodes(req);
  if (h2o_memis(path, len, H2O_STRLIT("/v1/stats")))
    return api_stats(req, API_STATS_JSON);
  if (h2o_memis(path, len, H2O_STRLIT("/metrics")))
    return api_stats(req, API_STATS_PROMETHEUS);
  if (h2o_memis(path, len, H2O_STRLIT("/debug/vars")))
    return api_stats(req, API_STATS_DEBUG);
  if (h2o_memis(path, len, H2O_STRLIT("/v1/tenants")))
    return api_list_tenants(req);
  if (h2o_memis(path, len, H2O_STRLIT("/v1/tasks")))
    return api_list_tasks(req, NULL);
  api_reply_text(req, 200, "text/html; charset=utf-8", status_page_html);
  return 0;
}

/* Serves the tenants' endpoints for tenant, who has been authenticated. */
static int api_tenant_route(h2o_req_t *req, const struct tenant *tenant, const char *path,
                            size_t len, bool get, bool post) {
  static const char tasks_prefix[] = "/v1/tasks/";
  if (api_path_has_prefix(path, len, tasks_prefix))
    return api_task_route(req, tenant, path + sizeof(tasks_prefix) - 1,
                          len - (sizeof(tasks_prefix) - 1));
  bool purge = h2o_memis(path, len, H2O_STRLIT("/v1/purge"));
  bool preload = h2o_memis(path, len, H2O_STRLIT("/v1/preload"));
  if ((purge || preload) ? !post : !get) {
    api_reply_method_not_allowed(req, purge || preload ? "POST" : "GET");
    return 0;
  }
  if (purge || preload)
    return api_post_task(req, tenant, purge ? TASK_PURGE : TASK_PRELOAD);
  if (h2o_memis(path, len, H2O_STRLIT("/v1/tasks")))
    return api_list_tasks(req, tenant);
  return api_quota(req, tenant);
}

/* Endpoints for tenants, signed (or the dev tenant's in --dev mode). */
static bool api_path_for_tenants(const char *path, size_t len) {
  static const char *const paths[] = {"/v1/purge", "/v1/preload", "/v1/tasks", "/v1/quota", NULL};
  return api_path_in(path, len, paths, "/v1/tasks/");
}

/* Authenticates a tenant's request and draws it from the tenant's request bucket; replies and
 * returns NULL when it may not go on. */
static const struct tenant *api_authenticate(h2o_req_t *req, struct api_loop *loop) {
  const struct engine_config *config = loop->env->config;
  const struct tenant *tenant = NULL;
  char message[256];
  int rc = api_auth_tenant(req, loop->tenants, config->dev, config->replay_window_s, &tenant,
                           message, sizeof(message));
  if (rc) {
    api_reply_error(req, rc, NULL, rc == CDR_ENOMEM ? NULL : message);
    return NULL;
  }
  int64_t wait_s = api_auth_rate(tenant, API_RATE_REQUESTS, 1);
  if (wait_s) {
    snprintf(message, sizeof(message), "tenant '%s' may send %lld requests per second",
             tenant->name, (long long)tenant->rate_requests);
    api_reply_error_retry(req, CDR_ERATE_LIMITED, NULL, message, wait_s);
    return NULL;
  }
  return tenant;
}

/* The path a request is routed by: the normalised one, except a node's path, taken as sent —
 * node ids may be "." or "..", which normalising would fold away (and they hold nothing that
 * needs decoding). */
static const char *api_route_path(const h2o_req_t *req, size_t *len) {
  size_t raw_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
  if (api_path_has_prefix(req->path.base, raw_len, api_nodes_prefix)) {
    *len = raw_len;
    return req->path.base;
  }
  *len = req->path_normalized.len;
  return req->path_normalized.base;
}

static int api_on_request(h2o_handler_t *self, h2o_req_t *req) {
  const struct api_handler *handler = (const struct api_handler *)self;
  size_t len;
  const char *path = api_route_path(req, &len);
  bool get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
  bool post = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"));
  struct api_loop *loop = api_loop_of(req->conn->ctx);
  const struct api_env *env = loop->env;
  const char *framing = http1_framing_problem(req);
  if (framing) {
    req->http1_is_persistent = 0; /* what follows on this connection cannot be trusted */
    api_reply_error(req, CDR_EAMBIGUOUS_FRAMING, NULL, framing);
    return 0;
  }
  if (api_headers_too_large(req, env->config->max_header_bytes)) {
    api_reply_error(req, CDR_EHEADERS_TOO_LARGE, NULL, NULL);
    return 0;
  }

  bool healthz = h2o_memis(path, len, H2O_STRLIT("/healthz"));
  if (healthz || h2o_memis(path, len, H2O_STRLIT("/readyz"))) {
    if (!get)
      api_reply_method_not_allowed(req, "GET");
    else if (healthz)
      api_reply_status(req, 200, "ok");
    else if (atomic_load(env->shutting_down))
      api_reply_status(req, 503, "shutting_down");
    else
      api_reply_status(req, 200, "ready");
    return 0;
  }
  /* The admin listener lists every tenant's tasks (for the status page). */
  bool admin_tasks = handler->admin && h2o_memis(path, len, H2O_STRLIT("/v1/tasks"));
  if (api_path_for_operators(path, len) || admin_tasks) {
    if (handler->admin || env->config->dev)
      return api_operator_route(req, path, len, get);
    api_reply_error(req, CDR_ENOT_FOUND, NULL,
                    "operators' endpoints are served on engine.admin_listen");
    return 0;
  }
  if (api_path_for_tenants(path, len) && !handler->admin) {
    const struct tenant *tenant = api_authenticate(req, loop);
    return tenant ? api_tenant_route(req, tenant, path, len, get, post) : 0;
  }
  api_reply_error(req, CDR_ENOT_FOUND, NULL,
                  handler->admin ? "no such endpoint on the admin listener (tenants' endpoints "
                                   "are served on engine.api_listen)"
                                 : NULL);
  return 0;
}

void api_register(h2o_hostconf_t *hostconf, bool admin) {
  h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
  struct api_handler *handler =
      (struct api_handler *)h2o_create_handler(pathconf, sizeof(*handler));
  handler->super.on_req = api_on_request;
  handler->admin = admin;
}
