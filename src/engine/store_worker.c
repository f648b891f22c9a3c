/* store_worker.c — store threads with group commit and hand-back to event loops. */
#include "engine/store_worker.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "common/task_id.h"
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
  struct store_job_queue queued; /* guarded by lock */
  _Atomic size_t queued_count;   /* jobs in queued, for GET /debug/vars */
  bool stopping;
  struct task_id_generator ids; /* writer only */
};

static void store_job_queue_push(struct store_job_queue *queue, struct store_job *job) {
  job->next = NULL;
  if (queue->tail)
    queue->tail->next = job;
  else
    queue->head = job;
  queue->tail = job;
}

static void store_inbox_on_wake(uv_async_t *async) {
  struct store_inbox *inbox = async->data;
  pthread_mutex_lock(&inbox->lock);
  struct store_job *job = inbox->done.head;
  inbox->done.head = inbox->done.tail = NULL;
  pthread_mutex_unlock(&inbox->lock);
  while (job) {
    struct store_job *next = job->next;
    job->next = NULL;
    job->done(job);
    job = next;
  }
}

int store_inbox_init(struct store_inbox *inbox, uv_loop_t *loop) {
  inbox->done.head = inbox->done.tail = NULL;
  pthread_mutex_init(&inbox->lock, NULL);
  inbox->async.data = inbox;
  return uv_async_init(loop, &inbox->async, store_inbox_on_wake);
}

void store_inbox_close(struct store_inbox *inbox) {
  assert(inbox->done.head == NULL);
  uv_close((uv_handle_t *)&inbox->async, NULL);
}

void store_inbox_post(struct store_inbox *inbox, struct store_job *job) {
  pthread_mutex_lock(&inbox->lock);
  store_job_queue_push(&inbox->done, job);
  pthread_mutex_unlock(&inbox->lock);
  uv_async_send(&inbox->async);
}

/* One tenant's quota use on one day within a writer transaction: read once, charged in memory
 * task by task, written once before the commit, so a batch costs one upsert per tenant rather
 * than one per task. Exact, since the writer is the only one charging. */
struct quota_ledger_entry {
  const char *tenant; /* in the first job's arena, which outlives the transaction */
  int64_t day;
  int64_t used[QUOTA_COUNT];  /* saved before this transaction */
  int64_t added[QUOTA_COUNT]; /* by this transaction's tasks */
};

enum { QUOTA_LEDGER_MAX = 32 }; /* tenants per transaction; more are charged one by one */

struct quota_ledger {
  struct quota_ledger_entry entries[QUOTA_LEDGER_MAX];
  size_t count;
};

static struct quota_ledger_entry *quota_ledger_entry(struct store *store,
                                                     struct quota_ledger *ledger,
                                                     const char *tenant, int64_t day, int *rc) {
  for (size_t i = 0; i < ledger->count; i++) {
    if (ledger->entries[i].day == day && strcmp(ledger->entries[i].tenant, tenant) == 0)
      return &ledger->entries[i];
  }
  if (ledger->count == QUOTA_LEDGER_MAX)
    return NULL;
  struct quota_ledger_entry *entry = &ledger->entries[ledger->count];
  *rc = store_quota_usage(store, tenant, day, entry->used);
  if (*rc)
    return NULL;
  entry->tenant = tenant;
  entry->day = day;
  memset(entry->added, 0, sizeof(entry->added));
  ledger->count++;
  return entry;
}

/* Counts a task against its tenant's quotas of the day. */
static int store_worker_charge_quota(struct store *store, struct quota_ledger *ledger,
                                     struct store_job *job) {
  int64_t amount[QUOTA_COUNT];
  tenant_quota_amount(job->task, amount);
  int rc = 0;
  struct quota_ledger_entry *entry =
      quota_ledger_entry(store, ledger, job->task->tenant, job->quota_day, &rc);
  if (rc)
    return rc;
  if (!entry)
    return store_quota_charge(store, job->task->tenant, job->quota_day, amount, job->quota_limit,
                              job->quota_used);
  bool over = false;
  for (int i = 0; i < QUOTA_COUNT; i++) {
    job->quota_used[i] = entry->used[i] + entry->added[i];
    over |= job->quota_limit[i] > 0 && job->quota_used[i] + amount[i] > job->quota_limit[i];
  }
  if (over)
    return CDR_EQUOTA_EXCEEDED;
  for (int i = 0; i < QUOTA_COUNT; i++)
    entry->added[i] += amount[i];
  return 0;
}

/* Writes what the transaction's tasks added to each tenant's use. */
static int quota_ledger_save(struct store *store, const struct quota_ledger *ledger) {
  static const int64_t no_limit[QUOTA_COUNT];
  int64_t unused[QUOTA_COUNT];
  for (size_t i = 0; i < ledger->count; i++) {
    const struct quota_ledger_entry *entry = &ledger->entries[i];
    if (memcmp(entry->added, no_limit, sizeof(no_limit)) == 0)
      continue; /* every task of the tenant was over its quota */
    int rc = store_quota_charge(store, entry->tenant, entry->day, entry->added, no_limit, unused);
    if (rc)
      return rc;
  }
  return 0;
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

/* Runs one job's store calls (inside the writer's transaction for writer jobs, whose quota charges
 * go to ledger). */
static int store_job_run(struct store_worker *worker, struct quota_ledger *ledger,
                         struct store_job *job) {
  struct store *store = worker->store;
  switch (job->kind) {
  case STORE_JOB_INSERT: {
    int64_t now = clock_now_ms();
    int rc = task_id_next(&worker->ids, now, job->task->id);
    if (rc)
      return rc;
    job->task->created_ms = task_id_time_ms(job->task->id);
    job->quota_day = job->task->created_ms / 86400000;
    rc = store_worker_charge_quota(store, ledger, job);
    return rc ? rc : store_task_insert(store, job->task);
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
  case STORE_JOB_PLAN:
    return store_task_plan(store, job->task, job->task_nodes, job->task_node_count);
  case STORE_JOB_PROGRESS:
    for (size_t i = 0; i < job->progress_count; i++) {
      struct store_progress *p = &job->progress[i];
      int rc = store_task_progress(store, &p->task, p->nodes, p->node_count, p->failures,
                                   p->failure_count);
      if (rc)
        return rc;
    }
    return 0;
  case STORE_JOB_PRUNE:
    return store_tasks_prune(store, job->prune_before_ms, job->limit, &job->pruned,
                             &job->prune_more);
  case STORE_JOB_FABRIC: break;
  }
  return CDR_EINTERNAL;
}

/* True for outcomes that are answers (not found, already final) rather than storage failures. */
static bool store_job_result_is_answer(int rc) {
  return rc == 0 || rc == CDR_ETASK_NOT_FOUND || rc == CDR_ETASK_FINAL || rc == CDR_EQUOTA_EXCEEDED;
}

/* Runs a batch of writer jobs in one transaction; on any storage failure all of them fail. */
static void store_worker_run_transaction(struct store_worker *worker, struct store_job *batch) {
  struct quota_ledger ledger = {.count = 0};
  int rc = store_begin(worker->store);
  for (struct store_job *job = batch; !rc && job; job = job->next) {
    job->result = store_job_run(worker, &ledger, job);
    if (!store_job_result_is_answer(job->result))
      rc = job->result;
  }
  if (!rc)
    rc = quota_ledger_save(worker->store, &ledger);
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
    for (struct store_job *job = batch; job; job = job->next)
      job->result = rc == CDR_ENOMEM ? rc : CDR_ESTORE_UNAVAILABLE;
  }
}

static void *store_worker_main(void *arg) {
  struct store_worker *worker = arg;
  for (;;) {
    pthread_mutex_lock(&worker->lock);
    while (!worker->queued.head && !worker->stopping)
      pthread_cond_wait(&worker->wake, &worker->lock);
    if (!worker->queued.head) {
      pthread_mutex_unlock(&worker->lock);
      return NULL;
    }
    /* Take up to max_batch jobs off the queue as one batch. */
    struct store_job *batch = worker->queued.head, *last = batch;
    size_t taken = 1;
    while (last->next && taken < worker->max_batch) {
      last = last->next;
      taken++;
    }
    worker->queued.head = last->next;
    if (!worker->queued.head)
      worker->queued.tail = NULL;
    last->next = NULL;
    worker->queued_count -= taken;
    pthread_mutex_unlock(&worker->lock);

    if (worker->writer) {
      store_worker_run_transaction(worker, batch);
    } else {
      for (struct store_job *job = batch; job; job = job->next) {
        store_read_budget_start(worker->store);
        job->result = store_job_run(worker, NULL, job);
      }
    }
    while (batch) {
      struct store_job *next = batch->next;
      store_inbox_post(batch->reply_to, batch);
      batch = next;
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
  task_id_generator_init(&worker->ids);
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
  store_job_queue_push(&worker->queued, job);
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
