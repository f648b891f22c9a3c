/* store_worker.c — store threads with group commit and hand-back to event loops. */
#include "engine/store_worker.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/stats.h"
#include "engine/tenant_table.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct store_worker {
  struct store *store;
  bool writer;
  size_t max_batch;
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  struct fifo queued;          /* of store_job.mail.link, guarded by lock */
  _Atomic size_t queued_count; /* jobs in queued, for GET /debug/vars */
  bool stopping;
};

static void store_job_arrived(struct mail *mail) {
  struct store_job *job = CONTAINER_OF(mail, struct store_job, mail);
  job->done(job);
}

void store_job_reply(struct store_job *job) {
  job->mail.arrived = store_job_arrived;
  mailbox_post(job->reply_to, &job->mail);
}

/* Loads every tenant and its use of each quota today, for GET /v1/tenants. */
static int store_worker_list_tenants(struct store *store, struct store_job *job) {
  struct store_tenant_usage *list = &job->tenant_list;
  job->quota_day = clock_now_ms() / 86400000;
  int rc = store_tenants_load(store, &job->arena, &list->tenants, &list->count);
  if (rc)
    return rc;
  list->used = arena_alloc(&job->arena, (list->count + 1) * sizeof(*list->used));
  if (!list->used)
    return CDR_ENOMEM;
  for (size_t i = 0; !rc && i < list->count; i++)
    rc = store_quota_usage(store, list->tenants[i].name, job->quota_day, list->used[i]);
  return rc;
}

/* Runs one job's store calls (inside the writer's transaction for writer jobs). */
static int store_job_run(struct store_worker *worker, struct store_job *job) {
  struct store *store = worker->store;
  switch (job->kind) {
  case STORE_JOB_INSERT: {
    int rc = store_task_admit(store, job->task, clock_now_ms(), job->quota_limit, job->quota_used);
    job->quota_day = job->task->created_ms / 86400000; /* the day it was charged on */
    return rc;
  }
  case STORE_JOB_CANCEL: {
    int rc = store_task_cancel(store, job->tenant, job->task_id, clock_now_ms());
    return rc ? rc : store_task_get(store, job->tenant, job->task_id, &job->arena, &job->task);
  }
  case STORE_JOB_GET: {
    int rc = store_task_get(store, job->tenant, job->task_id, &job->arena, &job->task);
    return rc || !job->task->callback ? rc
                                      : store_callback_attempts_load(store, job->task, &job->arena);
  }
  case STORE_JOB_CALLBACK:
    return store_callback_attempt(store, job->task_id, &job->callback_attempt, job->callback_state);
  case STORE_JOB_COUNTS: return store_task_counts(store, job->task_counts);
  case STORE_JOB_TENANTS:
    return tenant_table_load(store, job->tenants_generation, &job->tenant_table);
  case STORE_JOB_QUOTA:
    return store_quota_usage(store, job->tenant, job->quota_day, job->quota_used);
  case STORE_JOB_TENANT_LIST: return store_worker_list_tenants(store, job);
  case STORE_JOB_NODE_DELETE: return store_node_delete(store, job->node.id);
  case STORE_JOB_LIST:
    return store_tasks_list(store, job->tenant, job->filter_task_state ? &job->task_state : NULL,
                            job->cursor[0] ? job->cursor : NULL, job->limit, &job->arena,
                            &job->tasks);
  case STORE_JOB_TARGETS: {
    int rc = store_task_get(store, job->tenant, job->task_id, &job->arena, &job->task);
    return rc ? rc
              : task_items_page(store, job->task, job->filter_item_state ? &job->item_state : NULL,
                                job->after_index, job->limit, &job->arena, &job->items);
  }
  case STORE_JOB_NODE_UPSERT: return store_node_upsert(store, &job->node);
  case STORE_JOB_PLAN: return store_task_plan(store, job->task);
  case STORE_JOB_TASKS_LOAD:
    return store_tasks_load(store, job->load_ids, job->load_count, &job->arena, job->load_tasks);
  case STORE_JOB_PROGRESS:
    for (size_t i = 0; i < job->progress_count; i++) {
      struct store_progress *p = &job->progress[i];
      int rc = p->task.planned ? 0 : store_task_plan(store, &p->task);
      if (!rc)
        rc = store_task_progress(store, &p->task, p->nodes, p->node_count, p->failures,
                                 p->failure_count);
      if (rc)
        return rc;
    }
    return store_node_marks_save(store, job->marks, job->mark_count);
  case STORE_JOB_PRUNE:
    return store_tasks_prune(store, job->prune_before_ms, job->limit, &job->pruned,
                             &job->prune_more);
  }
  return CDR_EINTERNAL;
}

/* True for outcomes that are answers (not found, already final) rather than storage failures. */
static bool store_job_result_is_answer(int rc) {
  return rc == 0 || rc == CDR_ETASK_NOT_FOUND || rc == CDR_ETASK_FINAL || rc == CDR_EQUOTA_EXCEEDED;
}

/* Runs a batch of writer jobs in one transaction; on any storage failure all of them fail. */
static void store_worker_run_transaction(struct store_worker *worker, const struct fifo *batch) {
  int rc = store_begin(worker->store);
  for (struct fifo_node *at = batch->head; !rc && at; at = at->next) {
    struct store_job *job = FIFO_ENTRY(at, struct store_job, mail.link);
    job->result = store_job_run(worker, job);
    if (!store_job_result_is_answer(job->result))
      rc = job->result;
  }
  if (!rc) {
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    rc = store_commit(worker->store);
    clock_gettime(CLOCK_MONOTONIC, &end);
    histogram_observe(
        &engine_stats.commit_latency,
        (uint64_t)((end.tv_sec - start.tv_sec) * 1000000 + (end.tv_nsec - start.tv_nsec) / 1000));
  }
  if (rc) {
    store_rollback(worker->store);
    for (struct fifo_node *at = batch->head; at; at = at->next)
      FIFO_ENTRY(at, struct store_job, mail.link)->result =
          rc == CDR_ENOMEM ? rc : CDR_ESTORE_UNAVAILABLE;
  }
}

static void *store_worker_main(void *arg) {
  struct store_worker *worker = arg;
  for (;;) {
    pthread_mutex_lock(&worker->lock);
    while (fifo_empty(&worker->queued) && !worker->stopping)
      pthread_cond_wait(&worker->wake, &worker->lock);
    if (fifo_empty(&worker->queued)) {
      pthread_mutex_unlock(&worker->lock);
      return NULL;
    }
    /* Take up to max_batch jobs off the queue as one batch. */
    struct fifo batch = {0};
    size_t taken = 0;
    while (taken < worker->max_batch && !fifo_empty(&worker->queued)) {
      fifo_push(&batch, fifo_pop(&worker->queued));
      taken++;
    }
    worker->queued_count -= taken;
    pthread_mutex_unlock(&worker->lock);

    if (worker->writer)
      store_worker_run_transaction(worker, &batch);
    /* Reads are answered one by one as they finish: a cheap one taken in a batch with
     * expensive ones does not wait for them. Writes only once their transaction commits. */
    for (struct fifo_node *at; (at = fifo_pop(&batch));) {
      struct store_job *job = FIFO_ENTRY(at, struct store_job, mail.link);
      if (!worker->writer) {
        store_read_budget_start(worker->store);
        job->result = store_job_run(worker, job);
      }
      store_job_reply(job);
    }
  }
}

int store_worker_start(struct store *store, bool writer, size_t max_batch,
                       struct store_worker **out) {
  struct store_worker *worker = calloc(1, sizeof(*worker));
  if (!worker)
    return CDR_ENOMEM;
  worker->store = store;
  worker->writer = writer;
  worker->max_batch = writer ? max_batch : 64;
  pthread_mutex_init(&worker->lock, NULL);
  pthread_cond_init(&worker->wake, NULL);
  if (pthread_create(&worker->thread, NULL, store_worker_main, worker) != 0) {
    free(worker);
    return CDR_EINTERNAL;
  }
  *out = worker;
  return 0;
}

void store_worker_submit(struct store_worker *worker, struct store_job *job) {
  assert(job->reply_to && job->done);
  pthread_mutex_lock(&worker->lock);
  fifo_push(&worker->queued, &job->mail.link);
  worker->queued_count++;
  pthread_cond_signal(&worker->wake);
  pthread_mutex_unlock(&worker->lock);
}

size_t store_worker_queued(struct store_worker *worker) { return worker->queued_count; }

void store_worker_stop(struct store_worker *worker) {
  pthread_mutex_lock(&worker->lock);
  worker->stopping = true;
  pthread_cond_signal(&worker->wake);
  pthread_mutex_unlock(&worker->lock);
  pthread_join(worker->thread, NULL);
  store_close(worker->store);
  pthread_mutex_destroy(&worker->lock);
  pthread_cond_destroy(&worker->wake);
  free(worker);
}
