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

/* Adds task's pending results to the fabric's backlog (fabric_backlog). */
static void fabric_task_count(struct fabric *fabric, struct fabric_task *task) {
  task->counted = true;
  fabric->pending_items += task->task->counters.pending;
  /* At once, not only at the next tick: a burst of adoptions is what the API must see. */
  atomic_store_explicit(&fabric->published_backlog, fabric->pending_items, memory_order_relaxed);
}

void fabric_task_free(struct fabric *fabric, struct fabric_task *task) {
  if (task->counted)
    fabric->pending_items -= task->task->counters.pending; /* a canceled task's dropped items */
  timer_wheel_stop(&fabric->wheel, &task->plan_retry);
  timer_wheel_stop(&fabric->wheel, &task->deadline);
  fabric_retries_drop(fabric, task);
  for (size_t i = 0; i < task->node_count; i++)
    free(task->nodes[i].attempts);
  for (size_t i = 0; i < task->node_count; i++) {
    if (task->nodes[i].queued)
      fabric_queue_remove(&task->nodes[i]);
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

/* What a resumed task's record on a node starts from: the row kept for it, or else — derived —
 * every result succeeded (verified when the task asked) when the node's watermark passed the
 * task, else every one pending; failure details are applied afterwards (fabric_task_failures). */
static void fabric_task_node_resume(struct fabric_task_node *task_node,
                                    const struct store_task_node *record, size_t bytes,
                                    size_t verified_bytes) {
  const struct task *t = task_node->task->task;
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
    task_node->kept = true;
    return;
  }
  struct fabric_node *node = task_node->node;
  if (t->plan_seq >= node->saved_below[fabric_task_lane(t)])
    return; /* all pending: sent again */
  for (size_t i = 0; i < t->target_count; i++)
    item_states_set(task_node->states, i, ITEM_SUCCEEDED);
  task_node->succeeded = (int64_t)t->target_count;
  if (t->verify) {
    memset(task_node->verified, 0xff, verified_bytes);
    task_node->verified_count = task_node->succeeded;
  }
}

/* Applies a resumed task's failure details to the derived records (kept rows hold them already),
 * then sets the task's counters from its records. */
static void fabric_task_failures(struct fabric_task *task, const struct store_failure *failures,
                                 size_t failure_count) {
  struct task *t = task->task;
  for (size_t f = 0; f < failure_count; f++) {
    const struct store_failure *failure = &failures[f];
    if (failure->index < 0 || (size_t)failure->index >= t->target_count)
      continue;
    for (size_t n = 0; n < task->node_count; n++) {
      struct fabric_task_node *task_node = &task->nodes[n];
      if (task_node->kept || strcmp(task_node->node->id, failure->node_id) != 0)
        continue;
      size_t i = (size_t)failure->index;
      enum item_state was = item_states_get(task_node->states, i);
      if (was == ITEM_SUCCEEDED) {
        task_node->succeeded--;
        if (t->verify && item_verified_get(task_node->verified, i)) {
          item_verified_clear(task_node->verified, i);
          task_node->verified_count--;
        }
      }
      if (was == ITEM_PENDING || was == ITEM_SUCCEEDED) {
        item_states_set(task_node->states, i, failure->state);
        if (failure->state == ITEM_FAILED)
          task_node->failed++;
        else
          task_node->unsupported++;
      }
      break;
    }
  }
  struct task_counters *c = &t->counters;
  c->succeeded = c->failed = c->unsupported = c->verified = 0;
  for (size_t n = 0; n < task->node_count; n++) {
    c->succeeded += task->nodes[n].succeeded;
    c->failed += task->nodes[n].failed;
    c->unsupported += task->nodes[n].unsupported;
    c->verified += task->nodes[n].verified_count;
  }
  c->total = (int64_t)(t->target_count * task->node_count);
  c->pending = c->total - c->succeeded - c->failed - c->unsupported;
}

/* Gives task one record per node it goes to: for a new plan the nodes its groups select (the
 * plan's bitmap is built here), for a resumed one those of its saved plan, starting from what
 * the store tells of them. */
static int fabric_task_nodes(struct fabric *fabric, struct fabric_task *task,
                             const struct store_task_node *saved, size_t saved_count,
                             bool recovering) {
  json_t *groups =
      task->task->node_groups_json ? json_loads(task->task->node_groups_json, 0, NULL) : NULL;
  struct task *t = task->task;
  size_t bytes = item_states_bytes(t->target_count);
  size_t verified_bytes = item_verified_bytes(t->target_count);
  task->nodes = arena_alloc(&task->arena, (fabric->node_count + 1) * sizeof(*task->nodes));
  if (!recovering) {
    t->plan_nodes_len = (size_t)(fabric->node_numbers + 7) / 8;
    t->plan_nodes = arena_alloc(&task->arena, t->plan_nodes_len + 1);
    if (t->plan_nodes)
      memset(t->plan_nodes, 0, t->plan_nodes_len + 1);
  }
  if (!task->nodes || !t->plan_nodes) {
    json_decref(groups);
    return CDR_ENOMEM;
  }
  for (size_t i = 0; i < fabric->node_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    if (recovering ? !plan_nodes_has(t->plan_nodes, t->plan_nodes_len, node->number)
                   : node->removed || !fabric_node_matches(node, groups))
      continue;
    const struct store_task_node *record = NULL;
    for (size_t s = 0; recovering && s < saved_count && !record; s++) {
      if (strcmp(saved[s].node_id, node->id) == 0)
        record = &saved[s];
    }
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
    enum fabric_lane lane = fabric_task_lane(t);
    if (t->plan_seq > node->planned_seq[lane])
      node->planned_seq[lane] = t->plan_seq;
    if (recovering)
      fabric_task_node_resume(task_node, record, bytes, verified_bytes);
    else
      plan_nodes_set(t->plan_nodes, node->number);
  }
  json_decref(groups);
  return 0;
}

/* Puts every node's share of task in that node's queue and sends what the windows allow. */
static void fabric_task_start(struct fabric *fabric, struct fabric_task *task) {
  fabric_deadline_arm(fabric, task);
  for (size_t i = 0; i < task->node_count; i++)
    fabric_queue_push(&task->nodes[i]);
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

/* Writes the task's plan: one row, its plan_seq and the bitmap of its nodes. Its work goes out
 * meanwhile, without waiting for the commit: a crash before it only means the task is planned
 * again at the next start, and purges and preloads are idempotent. Progress saves and watermarks
 * come after it (one writer, in order). */
static void fabric_task_plan(struct fabric *fabric, struct fabric_task *task) {
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job)
    goto later;
  arena_init(&job->arena, 4096);
  job->kind = STORE_JOB_PLAN;
  job->owner = task;
  job->context = fabric;
  job->done = fabric_on_planned;
  job->task = arena_alloc(&job->arena, sizeof(*job->task));
  uint8_t *plan_nodes = arena_alloc(&job->arena, task->task->plan_nodes_len + 1);
  if (!job->task || !plan_nodes)
    goto later;
  /* A copy of the task as it is now, with its own copy of the plan (a stop may free the task
   * while the writer still holds the job). */
  *job->task = *task->task;
  memcpy(plan_nodes, task->task->plan_nodes, task->task->plan_nodes_len);
  job->task->plan_nodes = plan_nodes;
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
  task->task->plan_seq = ++fabric->plan_seq;
  if (fabric_task_nodes(fabric, task, NULL, 0, false)) {
    log_error("task.plan", "out of memory planning task %s; it resumes after a restart",
              task->task->id);
    fabric_task_free(fabric, task);
    return;
  }
  struct task *t = task->task;
  t->counters.total = t->counters.pending = (int64_t)(t->target_count * task->node_count);
  fabric_task_count(fabric, task);
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
  fabric_backlog_refund(fabric, job->backlog_charge); /* counted as it is from now on */
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
                         size_t saved_count, const struct store_failure *failures,
                         size_t failure_count) {
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
  if (!loaded->planned || !loaded->plan_nodes) {
    fabric_task_begin(fabric, task);
    return;
  }
  task->task->plan_nodes = arena_alloc(&task->arena, loaded->plan_nodes_len + 1);
  if (!task->task->plan_nodes) {
    fabric_task_free(fabric, task);
    return;
  }
  memcpy(task->task->plan_nodes, loaded->plan_nodes, loaded->plan_nodes_len);
  fabric_task_headers(task);
  fabric_dedup_prepare(task);
  if (fabric_task_nodes(fabric, task, saved, saved_count, true)) {
    fabric_task_free(fabric, task);
    return;
  }
  fabric_task_failures(task, failures, failure_count);
  fabric_task_count(fabric, task);
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
    /* Watermarks pass a canceled task: its unfinished nodes keep records of their own. */
    size_t targets = task->task->target_count;
    for (size_t n = 0; n < task->node_count; n++) {
      struct fabric_task_node *task_node = &task->nodes[n];
      if (task_node->succeeded + task_node->failed + task_node->unsupported < (int64_t)targets)
        fabric_record_dirty(task_node);
    }
    fabric_task_dirty(fabric, task);
    fabric_callback_deliver(fabric, task->task);
    timer_wheel_stop(&fabric->wheel, &task->deadline);
    fabric_retries_drop(fabric, task);
    fabric_task_maybe_free(fabric, task);
    return;
  }
}
