/* fabric_plan.c — the fabric's tasks in memory: a committed task planned onto the nodes it
 * selects (its plan saved, its work queued at once), tasks resumed after a restart, cancels, and
 * freeing a task once nothing refers to it. */
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/notify/alerts.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum { FABRIC_PLAN_RETRY_MS = 1000 };

/* ---- tasks in memory ---- */

static void fabric_task_link(struct fabric *fabric, struct fabric_task *task) {
  list_push_front(&fabric->tasks, &task->link);
}

void fabric_task_free(struct fabric *fabric, struct fabric_task *task) {
  timer_wheel_stop(&fabric->wheel, &task->plan_retry);
  timer_wheel_stop(&fabric->wheel, &task->deadline);
  fabric_retries_drop(fabric, task);
  for (size_t i = 0; i < task->node_count; i++)
    free(task->nodes[i].attempts);
  for (size_t i = 0; i < task->node_count; i++) {
    struct fabric_task_node *task_node = &task->nodes[i];
    struct fifo *queue =
        task->task->type == TASK_PURGE ? &task_node->node->fast : &task_node->node->slow;
    if (task_node->queued)
      fifo_remove(queue, &task_node->queue_link);
  }
  for (size_t i = 0; i < task->node_count; i++) {
    struct fabric_node *node = task->nodes[i].node;
    size_t kept = 0;
    for (size_t r = 0; r < node->redeliver_count; r++) {
      if (node->redeliver[r].task_node->task != task)
        node->redeliver[kept++] = node->redeliver[r];
    }
    node->redeliver_count = kept;
  }
  list_remove(&fabric->tasks, &task->link);
  free(task->failures);
  arena_release(&task->arena);
  free(task);
}

/* Frees a task that has ended, once nothing refers to it any more. */
void fabric_task_maybe_free(struct fabric *fabric, struct fabric_task *task) {
  if (task->finished && !task->dirty && task->saves_in_flight == 0 && task->in_flight == 0 &&
      task->task->planned)
    fabric_task_free(fabric, task);
}

/* Parses the preload headers once, for every work item of the task. */
static void fabric_task_headers(struct fabric_task *task) {
  json_t *headers = task->task->headers_json ? json_loads(task->task->headers_json, 0, NULL) : NULL;
  size_t count = json_object_size(headers);
  task->headers = count ? arena_alloc(&task->arena, count * sizeof(*task->headers)) : NULL;
  const char *name;
  json_t *value;
  json_object_foreach(headers, name, value) {
    Cdr__Header *header = arena_alloc(&task->arena, sizeof(*header));
    if (!task->headers || !header)
      break;
    cdr__header__init(header);
    header->name = arena_strdup(&task->arena, name);
    header->value = arena_strdup(&task->arena, json_string_value(value));
    task->headers[task->header_count++] = header;
  }
  json_decref(headers);
}

static bool fabric_node_matches(const struct fabric_node *node, const json_t *groups) {
  if (!groups)
    return true;
  size_t index;
  json_t *group;
  json_array_foreach(groups, index, group) {
    for (size_t i = 0; i < node->group_count; i++) {
      if (strcmp(node->groups[i], json_string_value(group)) == 0)
        return true;
    }
  }
  return false;
}

/* Gives task one record per node; with saved records (recovery) their states and counts. */
static int fabric_task_nodes(struct fabric *fabric, struct fabric_task *task,
                             const struct store_task_node *saved, size_t saved_count,
                             bool recovering) {
  json_t *groups =
      task->task->node_groups_json ? json_loads(task->task->node_groups_json, 0, NULL) : NULL;
  size_t bytes = item_states_bytes(task->task->target_count);
  size_t verified_bytes = item_verified_bytes(task->task->target_count);
  task->nodes = arena_alloc(&task->arena, (fabric->node_count + 1) * sizeof(*task->nodes));
  if (!task->nodes) {
    json_decref(groups);
    return CDR_ENOMEM;
  }
  for (size_t i = 0; i < fabric->node_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    const struct store_task_node *record = NULL;
    for (size_t s = 0; s < saved_count && !record; s++) {
      if (strcmp(saved[s].node_id, node->id) == 0)
        record = &saved[s];
    }
    if (recovering ? !record : node->removed || !fabric_node_matches(node, groups))
      continue;
    struct fabric_task_node *task_node = &task->nodes[task->node_count++];
    memset(task_node, 0, sizeof(*task_node));
    task_node->task = task;
    task_node->node = node;
    task_node->states = arena_alloc(&task->arena, bytes ? bytes : 1);
    task_node->verified = arena_alloc(&task->arena, verified_bytes ? verified_bytes : 1);
    if (!task_node->states || !task_node->verified) {
      json_decref(groups);
      return CDR_ENOMEM;
    }
    memset(task_node->states, 0, bytes ? bytes : 1);
    memset(task_node->verified, 0, verified_bytes ? verified_bytes : 1);
    if (record) {
      memcpy(task_node->states, record->states,
             record->states_len < bytes ? record->states_len : bytes);
      if (record->verified)
        memcpy(task_node->verified, record->verified,
               record->verified_len < verified_bytes ? record->verified_len : verified_bytes);
      task_node->succeeded = record->succeeded;
      task_node->failed = record->failed;
      task_node->unsupported = record->unsupported;
      task_node->verified_count = record->verified_count;
    }
  }
  json_decref(groups);
  return 0;
}

/* Puts every node's share of task in that node's queue and sends what the windows allow. */
static void fabric_task_start(struct fabric *fabric, struct fabric_task *task) {
  fabric_deadline_arm(fabric, task);
  for (size_t i = 0; i < task->node_count; i++) {
    struct fabric_task_node *task_node = &task->nodes[i];
    struct fabric_node *node = task_node->node;
    fabric_queue_push(task->task->type == TASK_PURGE ? &node->fast : &node->slow, task_node);
  }
  for (size_t i = 0; i < task->node_count; i++)
    fabric_node_dispatch(fabric, task->nodes[i].node);
}

static void fabric_task_plan(struct fabric *fabric, struct fabric_task *task);

static void fabric_on_plan_retry(struct wheel_timer *timer) {
  struct fabric_task *task = CONTAINER_OF(timer, struct fabric_task, plan_retry);
  fabric_task_plan(task->fabric, task);
}

static void fabric_on_planned(struct store_job *job) {
  struct fabric *fabric = job->context;
  struct fabric_task *task = job->owner;
  fabric->jobs_in_flight--;
  int rc = job->result;
  arena_release(&job->arena);
  free(job);
  if (rc) {
    log_error("task.plan", "task %s could not be planned (%s); retrying", task->task->id,
              cdr_error_message(rc));
    alerts_raise(fabric->alerts, "store_error", "store", "a task plan could not be saved");
    timer_wheel_start(&fabric->wheel, &task->plan_retry, FABRIC_PLAN_RETRY_MS,
                      fabric_on_plan_retry);
    return;
  }
  task->task->planned = true;
  if (task->node_count == 0) {
    /* No node: it failed at once, and that is saved. */
    fabric_callback_deliver(fabric, task->task);
    fabric_task_free(fabric, task);
    return;
  }
  fabric_task_maybe_free(fabric, task);
}

/* Writes the task's plan: its nodes and their records. Its work goes out meanwhile, without waiting
 * for the commit: a crash before it only means the task is planned again at the next start, and
 * purges and preloads are idempotent. Progress saves come after it (one writer, in order). */
/* Fills record with a copy of task_node's results, allocated in arena; false when out of memory. */
bool fabric_node_record(const struct fabric_task_node *task_node, struct arena *arena,
                        struct store_task_node *record) {
  size_t targets = task_node->task->task->target_count;
  size_t bytes = item_states_bytes(targets), verified_bytes = item_verified_bytes(targets);
  *record =
      (struct store_task_node){.node_id = task_node->node->id,
                               .states = arena_alloc(arena, bytes ? bytes : 1),
                               .states_len = bytes,
                               .verified = arena_alloc(arena, verified_bytes ? verified_bytes : 1),
                               .verified_len = verified_bytes,
                               .succeeded = task_node->succeeded,
                               .failed = task_node->failed,
                               .unsupported = task_node->unsupported,
                               .verified_count = task_node->verified_count};
  if (!record->states || !record->verified)
    return false;
  memcpy(record->states, task_node->states, bytes);
  memcpy(record->verified, task_node->verified, verified_bytes);
  return true;
}

static void fabric_task_plan(struct fabric *fabric, struct fabric_task *task) {
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job)
    goto later;
  arena_init(&job->arena,
             4 * item_states_bytes(task->task->target_count) * (task->node_count + 1) + (1 << 20));
  job->kind = STORE_JOB_PLAN;
  job->owner = task;
  job->context = fabric;
  job->done = fabric_on_planned;
  job->task = arena_alloc(&job->arena, sizeof(*job->task));
  job->task_nodes = arena_alloc(&job->arena, (task->node_count + 1) * sizeof(*job->task_nodes));
  if (!job->task || !job->task_nodes)
    goto later;
  /* A copy of the task as it is now (all pending the first time; a retry after a store error
   * writes what has happened since, so it never takes saved progress back). */
  *job->task = *task->task;
  for (size_t i = 0; i < task->node_count; i++) {
    if (!fabric_node_record(&task->nodes[i], &job->arena, &job->task_nodes[i]))
      goto later;
  }
  job->task_node_count = task->node_count;
  fabric_submit(fabric, job);
  return;
later:
  if (job)
    arena_release(&job->arena);
  free(job);
  timer_wheel_start(&fabric->wheel, &task->plan_retry, FABRIC_PLAN_RETRY_MS, fabric_on_plan_retry);
}

static struct fabric_task *fabric_task_new(struct fabric *fabric) {
  struct fabric_task *task = calloc(1, sizeof(*task));
  if (!task)
    return NULL;
  task->fabric = fabric;
  fabric_task_link(fabric, task);
  return task;
}

/* Splits a freshly accepted task over the nodes it selects, saves that plan and sends its work. */
static void fabric_task_begin(struct fabric *fabric, struct fabric_task *task) {
  fabric_task_headers(task);
  fabric_dedup_prepare(task);
  if (fabric_task_nodes(fabric, task, NULL, 0, false)) {
    log_error("task.plan", "out of memory planning task %s; it resumes after a restart",
              task->task->id);
    fabric_task_free(fabric, task);
    return;
  }
  struct task *t = task->task;
  t->counters.total = t->counters.pending = (int64_t)(t->target_count * task->node_count);
  if (task->node_count == 0) {
    t->state = TASK_FAILED;
    t->finished_ms = clock_now_ms();
    task->finished = true;
    log_info("task.finished", "task %s failed: no registered edge node matches its selection",
             t->id);
  }
  fabric_task_plan(fabric, task);
  if (!task->finished)
    fabric_task_start(fabric, task);
}

void fabric_task_adopt(struct fabric *fabric, struct store_job *job) {
  struct fabric_task *task = fabric_task_new(fabric);
  if (!task) {
    log_error("task.plan", "out of memory adopting task %s; it resumes after a restart",
              job->task->id);
    arena_release(&job->arena);
    free(job);
    return;
  }
  task->arena = job->arena; /* the task and its targets move with their arena */
  task->task = job->task;
  free(job);
  fabric_task_begin(fabric, task);
}

/* Deep-copies task (with targets) into arena. */
static struct task *fabric_task_copy(const struct task *from, struct arena *arena) {
  struct task *to = arena_alloc(arena, sizeof(*to));
  struct task_target *targets =
      arena_alloc(arena, (from->target_count ? from->target_count : 1) * sizeof(*targets));
  if (!to || !targets)
    return NULL;
  *to = *from;
  to->targets = targets;
  to->tenant = from->tenant ? arena_strdup(arena, from->tenant) : NULL;
  to->node_groups_json =
      from->node_groups_json ? arena_strdup(arena, from->node_groups_json) : NULL;
  to->headers_json = from->headers_json ? arena_strdup(arena, from->headers_json) : NULL;
  to->callback = from->callback ? arena_strdup(arena, from->callback) : NULL;
  for (size_t i = 0; i < from->target_count; i++) {
    targets[i] = from->targets[i];
    targets[i].value = arena_strdup(arena, from->targets[i].value);
    if (!targets[i].value)
      return NULL;
  }
  return to;
}

void fabric_task_recover(struct fabric *fabric, struct task *loaded, struct store_task_node *saved,
                         size_t saved_count) {
  struct fabric_task *task = fabric_task_new(fabric);
  if (!task)
    return;
  arena_init(&task->arena, (size_t)1 << 32);
  task->task = fabric_task_copy(loaded, &task->arena);
  if (!task->task) {
    log_error("task.recover", "out of memory resuming task %s", loaded->id);
    fabric_task_free(fabric, task);
    return;
  }
  if (!loaded->planned) {
    fabric_task_begin(fabric, task);
    return;
  }
  fabric_task_headers(task);
  fabric_dedup_prepare(task);
  if (fabric_task_nodes(fabric, task, saved, saved_count, true)) {
    fabric_task_free(fabric, task);
    return;
  }
  if (task->task->counters.pending <= 0) {
    fabric_task_finish(fabric, task); /* every result was saved, the final state was not */
    return;
  }
  fabric_task_start(fabric, task);
}

/* ---- cancel ---- */

void fabric_task_cancel(struct fabric *fabric, const char *task_id) {
  for (struct list_node *at = fabric->tasks.first; at; at = at->next) {
    struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    if (strcmp(task->task->id, task_id) != 0)
      continue;
    /* Queued items are dropped (cursors skip a canceled task); items in flight still report and
     * are recorded. The store already holds the canceled state. */
    task->task->state = TASK_CANCELED;
    task->task->finished_ms = clock_now_ms();
    task->finished = true;
    fabric_callback_deliver(fabric, task->task);
    timer_wheel_stop(&fabric->wheel, &task->deadline);
    fabric_retries_drop(fabric, task);
    fabric_task_maybe_free(fabric, task);
    return;
  }
}
