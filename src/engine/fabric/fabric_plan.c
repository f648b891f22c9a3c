/* fabric_plan.c — the fabric's tasks in memory: a committed task planned onto the nodes it
 * selects (its plan saved, its place in its lane's log taken, its work sent at once), tasks
 * resumed after a restart, cancels, and freeing a task once nothing refers to it. */
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/notify/alerts.h"
#include "engine/tenant_table.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

enum { FABRIC_PLAN_RETRY_MS = 1000 };

/* ---- tasks in memory ---- */

static void fabric_task_link(struct fabric *fabric, struct fabric_task *task) {
  list_push_front(&fabric->tasks, &task->link);
}

/* Takes task's items out of the lane counts of the nodes it is planned onto: the rest of those
 * sending it, and all of those that have not reached it. */
static void fabric_task_unplan(struct fabric *fabric, struct fabric_task *task) {
  enum fabric_lane lane = fabric_task_lane(task->task);
  size_t targets = task->task->target_count;
  for (struct list_node *at = task->records.first; at; at = at->next) {
    struct fabric_task_node *record = LIST_ENTRY(at, struct fabric_task_node, link);
    struct fabric_node *node = record->node;
    if (node->cursor[lane].current == record) {
      node->lane_items[lane] -= targets - record->next;
      node->cursor[lane] = (struct fabric_cursor){.pos = task->log_pos + 1};
    }
    size_t kept = 0; /* a node holds one record of a task: this filters its list once */
    for (size_t r = 0; r < node->redeliver_count; r++) {
      if (node->redeliver[r].task_node->task != task)
        node->redeliver[kept++] = node->redeliver[r];
    }
    node->redeliver_count = kept;
  }
  const struct task *t = task->task;
  for (size_t i = 0; i < fabric->node_count && task->unreached > 0; i++) {
    struct fabric_node *node = fabric->nodes[i];
    if (plan_nodes_has(t->plan_nodes, t->plan_nodes_len, node->number) &&
        fabric_cursor_before(node, task)) {
      node->lane_items[lane] -= targets;
      task->unreached--;
    }
  }
}

void fabric_task_free(struct fabric *fabric, struct fabric_task *task) {
  fabric_backlog_uncount(fabric, task);
  timer_wheel_stop(&fabric->wheel, &task->plan_retry);
  timer_wheel_stop(&fabric->wheel, &task->deadline);
  fabric_retries_drop(fabric, task);
  if (task->logged)
    fabric_task_unplan(fabric, task);
  fabric_log_erase(fabric, task);
  while (task->records.first)
    fabric_record_free(LIST_ENTRY(task->records.first, struct fabric_task_node, link));
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

/* Plans a new task onto the nodes its groups select: their bits in the plan's bitmap, its
 * targets in their lane counts, and the online ones sent their share at the end of this loop
 * iteration. The task has its place in the log already. */
static int fabric_task_plan_nodes(struct fabric *fabric, struct fabric_task *task) {
  struct task *t = task->task;
  t->plan_nodes_len = (size_t)(fabric->node_numbers + 7) / 8;
  t->plan_nodes = arena_alloc(&task->arena, t->plan_nodes_len + 1);
  if (!t->plan_nodes)
    return CDR_ENOMEM;
  memset(t->plan_nodes, 0, t->plan_nodes_len + 1);
  json_t *groups = t->node_groups_json ? json_loads(t->node_groups_json, 0, NULL) : NULL;
  enum fabric_lane lane = fabric_task_lane(t);
  for (size_t i = 0; i < fabric->node_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    if (node->removed || !fabric_node_matches(node, groups))
      continue;
    plan_nodes_set(t->plan_nodes, node->number);
    task->node_count++;
    task->unreached++;
    node->lane_items[lane] += t->target_count;
    if (node->link)
      fabric_node_dispatch(fabric, node);
  }
  json_decref(groups);
  return 0;
}

/* What a resumed task's record on node starts from when the store kept no row for it: every
 * result succeeded (verified when the task asked) when the node's watermark passed the task,
 * else every one pending. */
static void fabric_record_derive(struct fabric_task_node *record, bool passed) {
  const struct task *t = record->task->task;
  if (!passed)
    return;
  for (size_t i = 0; i < t->target_count; i++)
    item_states_set(record->states, i, ITEM_SUCCEEDED);
  record->succeeded = (int64_t)t->target_count;
  if (t->verify) {
    memset(record->verified, 0xff, item_verified_bytes(t->target_count));
    record->verified_count = record->succeeded;
  }
}

/* Applies one failure detail to a derived record (a kept row holds it already). */
static void fabric_record_apply_failure(struct fabric_task_node *record,
                                        const struct store_failure *failure) {
  const struct task *t = record->task->task;
  size_t i = (size_t)failure->index;
  enum item_state was = item_states_get(record->states, i);
  if (was == ITEM_SUCCEEDED) {
    record->succeeded--;
    if (t->verify && item_verified_get(record->verified, i)) {
      item_verified_clear(record->verified, i);
      record->verified_count--;
    }
  }
  if (was == ITEM_PENDING || was == ITEM_SUCCEEDED) {
    item_states_set(record->states, i, failure->state);
    if (failure->state == ITEM_FAILED)
      record->failed++;
    else
      record->unsupported++;
  }
}

static bool fabric_task_planned_on(const struct fabric_task *task, const struct fabric_node *node) {
  return plan_nodes_has(task->task->plan_nodes, task->task->plan_nodes_len, node->number);
}

/* Records for what the store tells of a resumed task's nodes beyond plan and watermarks: a
 * record per kept row, and a derived one per node with a failure detail. Each is its node's
 * scratch until fabric_task_resume_counts. */
static int fabric_task_resume_records(struct fabric *fabric, struct fabric_task *task,
                                      const struct store_task_node *saved, size_t saved_count,
                                      const struct store_failure *failures, size_t failure_count) {
  const struct task *t = task->task;
  size_t bytes = item_states_bytes(t->target_count);
  size_t verified_bytes = item_verified_bytes(t->target_count);
  for (size_t s = 0; s < saved_count; s++) {
    struct fabric_node *node = fabric_node_find(fabric, saved[s].node_id);
    if (!node || !fabric_task_planned_on(task, node) || node->scratch)
      continue;
    struct fabric_task_node *record = fabric_record_new(task, node);
    if (!record)
      return CDR_ENOMEM;
    const struct store_task_node *row = &saved[s];
    memcpy(record->states, row->states, row->states_len < bytes ? row->states_len : bytes);
    if (row->verified)
      memcpy(record->verified, row->verified,
             row->verified_len < verified_bytes ? row->verified_len : verified_bytes);
    record->succeeded = row->succeeded;
    record->failed = row->failed;
    record->unsupported = row->unsupported;
    record->verified_count = row->verified_count;
    record->kept = true;
    node->scratch = record;
  }
  enum fabric_lane lane = fabric_task_lane(t);
  for (size_t f = 0; f < failure_count; f++) {
    const struct store_failure *failure = &failures[f];
    if (failure->index < 0 || (size_t)failure->index >= t->target_count)
      continue;
    struct fabric_node *node = fabric_node_find(fabric, failure->node_id);
    if (!node || !fabric_task_planned_on(task, node))
      continue;
    struct fabric_task_node *record = node->scratch;
    if (!record) {
      if (!(record = fabric_record_new(task, node)))
        return CDR_ENOMEM;
      fabric_record_derive(record, t->plan_seq < node->saved_below[lane]);
      node->scratch = record;
    }
    if (!record->kept)
      fabric_record_apply_failure(record, failure);
  }
  return 0;
}

/* Sets a resumed task's counters over its planned nodes: a record's where it has one, else
 * derived from the node's watermark. Nodes not past it are ahead of their cursors (their records
 * held for them, preset); a passed node's record that still has pending items (rows of older
 * engines) sends them as taken back. Clears the nodes' scratch. */
static void fabric_task_resume_counts(struct fabric *fabric, struct fabric_task *task) {
  struct task *t = task->task;
  struct task_counters *c = &t->counters;
  enum fabric_lane lane = fabric_task_lane(t);
  size_t targets = t->target_count;
  c->succeeded = c->failed = c->unsupported = c->verified = 0;
  for (size_t i = 0; i < fabric->node_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    if (!fabric_task_planned_on(task, node))
      continue;
    task->node_count++;
    bool passed = t->plan_seq < node->saved_below[lane];
    struct fabric_task_node *record = node->scratch;
    node->scratch = NULL;
    if (record) {
      c->succeeded += record->succeeded;
      c->failed += record->failed;
      c->unsupported += record->unsupported;
      c->verified += record->verified_count;
    } else if (passed) {
      c->succeeded += (int64_t)targets;
      c->verified += t->verify ? (int64_t)targets : 0;
    }
    if (!passed) {
      task->unreached++;
      node->lane_items[lane] += targets;
      if (record) {
        record->preset = true;
        task->preset_count++;
      }
    } else if (record) {
      for (size_t index = 0; index < targets; index++) {
        if (item_states_get(record->states, index) == ITEM_PENDING)
          fabric_redeliver_push(node, record, index);
      }
    }
  }
  c->total = (int64_t)(targets * task->node_count);
  c->pending = c->total - c->succeeded - c->failed - c->unsupported;
  for (struct list_node *at = task->records.first, *next; at; at = next) {
    next = at->next;
    fabric_record_settle(LIST_ENTRY(at, struct fabric_task_node, link));
  }
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
  /* The task's copy, and its plan: a bit per node number ever given, which outgrows any fixed
   * size on a fleet that replaces its nodes over the years (numbers are never reused). */
  arena_init(&job->arena, 4096 + arena_size_of(task->task->plan_nodes_len + 1));
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
  log_error("task.plan", "out of memory saving the plan of task %s; trying again", task->task->id);
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
  task->task->planned = false; /* until this plan is saved (an older engine's may say planned) */
  fabric_task_headers(task);
  fabric_dedup_prepare(task);
  task->task->plan_seq = ++fabric->plan_seq;
  if (!fabric_log_append(fabric, task) || fabric_task_plan_nodes(fabric, task)) {
    log_error("task.plan", "out of memory planning task %s; it resumes after a restart",
              task->task->id);
    fabric_task_free(fabric, task);
    return;
  }
  struct task *t = task->task;
  t->counters.total = t->counters.pending = (int64_t)(t->target_count * task->node_count);
  fabric_backlog_count(fabric, task);
  if (task->node_count == 0) {
    t->state = TASK_FAILED;
    t->finished_ms = clock_now_ms();
    task->finished = true;
    log_info("task.finished", "task %s failed: no registered edge node matches its selection",
             t->id);
  }
  fabric_task_plan(fabric, task);
  if (!task->finished)
    fabric_deadline_arm(fabric, task);
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

/* What a copy of task by fabric_task_copy takes of an arena, with what the fabric adds to it: a
 * plan's bitmap of plan_bytes, the dedup hashes and the parsed preload headers. One allocation of
 * this size holds a task while it waits for its nodes; an allocation that does not fit (a node
 * registered before the plan) takes a chunk of its own of 4 KiB or more. */
static size_t fabric_task_copy_size(const struct task *task, size_t plan_bytes) {
  size_t targets = task->target_count ? task->target_count : 1;
  size_t size = arena_size_of(sizeof(*task)) + arena_size_of(targets * sizeof(*task->targets));
  const char *const strings[] = {task->tenant, task->node_groups_json, task->headers_json,
                                 task->callback};
  for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
    size += strings[i] ? arena_size_of(strlen(strings[i]) + 1) : 0;
  for (size_t i = 0; i < task->target_count; i++)
    size += arena_size_of(strlen(task->targets[i].value) + 1);
  size += arena_size_of(plan_bytes);
  if (task->type == TASK_PURGE)
    size += arena_size_of(task->target_count * sizeof(uint32_t));
  json_t *headers = task->headers_json ? json_loads(task->headers_json, 0, NULL) : NULL;
  const char *name;
  json_t *value;
  size += headers ? arena_size_of(json_object_size(headers) * sizeof(Cdr__Header *)) : 0;
  json_object_foreach(headers, name, value) { /* as fabric_task_headers allocates them */
    const char *text = json_string_value(value);
    size += arena_size_of(sizeof(Cdr__Header)) + arena_size_of(strlen(name) + 1) +
            arena_size_of(strlen(text ? text : "") + 1);
  }
  json_decref(headers);
  return size;
}

/* A task in an arena of its own that holds just it and a plan's bitmap over plan_nodes nodes
 * (fabric_task_copy_size), or NULL when out of memory. An accepted task arrives in its request's
 * arena, a chunk of at least 4 KiB with the parser's scratch in it; a task may wait for an
 * offline node until its deadline, and that chunk would wait with it. */
static struct task *fabric_task_compact(const struct task *from, int64_t plan_nodes,
                                        struct arena *arena) {
  arena_init(arena, (size_t)1 << 32);
  if (arena_reserve(arena, fabric_task_copy_size(from, (size_t)(plan_nodes + 7) / 8 + 1)) != 0)
    return NULL;
  return fabric_task_copy(from, arena);
}

void fabric_task_adopt(struct fabric *fabric, struct store_job *job) {
  /* Counted as it is from its planning on: the estimate goes after it, so that the API never
   * sees the task in neither. */
  struct tenant_limits *charged = job->backlog_tenant;
  int64_t charge = job->backlog_charge;
  struct fabric_task *task = fabric_task_new(fabric);
  if (task) {
    task->tenant = job->backlog_tenant;
    task->task = fabric_task_compact(job->task, fabric->node_numbers, &task->arena);
  }
  if (!task || !task->task) {
    log_error("task.plan", "out of memory adopting task %s; it resumes after a restart",
              job->task->id);
    if (task)
      fabric_task_free(fabric, task);
    arena_release(&job->arena);
    free(job);
    fabric_backlog_refund(fabric, charged, charge);
    return;
  }
  arena_release(&job->arena);
  free(job);
  fabric_task_begin(fabric, task);
  fabric_backlog_refund(fabric, charged, charge);
}

void fabric_task_recover(struct fabric *fabric, struct task *loaded, struct store_task_node *saved,
                         size_t saved_count, const struct store_failure *failures,
                         size_t failure_count) {
  struct fabric_task *task = fabric_task_new(fabric);
  if (!task)
    return;
  task->tenant = tenant_limits_for(loaded->tenant); /* NULL (no memory): counted in all only */
  int64_t plan_nodes = (int64_t)loaded->plan_nodes_len * 8;
  task->task = fabric_task_compact(
      loaded, plan_nodes > fabric->node_numbers ? plan_nodes : fabric->node_numbers, &task->arena);
  if (!task->task) {
    log_error("task.recover", "out of memory resuming task %s", loaded->id);
    fabric_task_free(fabric, task);
    return;
  }
  if (!task_resumable(loaded)) {
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
  if (!fabric_log_append(fabric, task) ||
      fabric_task_resume_records(fabric, task, saved, saved_count, failures, failure_count)) {
    for (struct list_node *at = task->records.first; at; at = at->next)
      LIST_ENTRY(at, struct fabric_task_node, link)->node->scratch = NULL;
    log_error("task.recover", "out of memory resuming task %s", loaded->id);
    fabric_task_free(fabric, task);
    return;
  }
  fabric_task_resume_counts(fabric, task);
  /* Its counters are what its rows and the watermarks tell now, which may be behind what the
   * store's counters say (a save of results without the watermarks that passed them): save them,
   * so the store agrees with memory before the task can be parked and read back from it. */
  fabric_task_dirty(fabric, task);
  fabric_backlog_count(fabric, task);
  if (task->task->counters.pending <= 0) {
    fabric_task_finish(fabric, task); /* every result was saved, the final state was not */
    return;
  }
  fabric_deadline_arm(fabric, task);
}

/* ---- read back after parking ---- */

bool fabric_task_unpark(struct fabric *fabric, struct fabric_parked *parked, uint64_t pos,
                        const struct task *loaded) {
  struct fabric_task *task = fabric_task_new(fabric);
  if (!task)
    return false;
  int64_t plan_nodes = (int64_t)loaded->plan_nodes_len * 8;
  task->task = fabric_task_compact(
      loaded, plan_nodes > fabric->node_numbers ? plan_nodes : fabric->node_numbers, &task->arena);
  if (task->task)
    task->task->plan_nodes = arena_alloc(&task->arena, loaded->plan_nodes_len + 1);
  if (!task->task || !task->task->plan_nodes || !loaded->plan_nodes) {
    fabric_task_free(fabric, task);
    return false;
  }
  memcpy(task->task->plan_nodes, loaded->plan_nodes, loaded->plan_nodes_len);
  fabric_task_headers(task);
  fabric_dedup_prepare(task);
  /* Back in its place, as it was parked: its nodes that are not among the parked one's have
   * finished it (their results are in its counters and failure details), and those still have
   * its items in their lane counts. */
  struct fabric_log *log = &fabric->log[parked->lane];
  log->entries[pos & log->mask] = task;
  task->log_pos = pos;
  task->logged = true;
  for (size_t i = 0; i < fabric->node_count; i++)
    task->node_count += fabric_task_planned_on(task, fabric->nodes[i]);
  task->unreached = parked->unreached;
  struct task_counters *c = &task->task->counters;
  c->pending = c->total - c->succeeded - c->failed - c->unsupported;
  int64_t owed = (int64_t)parked->target_count * parked->unreached;
  if (c->pending != owed) /* the store's counters were not the ones it was parked with */
    log_error("task.unpark", "task %s read back with %lld results pending, %lld owed", loaded->id,
              (long long)c->pending, (long long)owed);
  /* Back in the backlog in memory, out of the one in the store. */
  task->tenant = parked->tenant;
  fabric_backlog_unpark(fabric, parked);
  fabric_backlog_count(fabric, task);
  fabric_deadline_arm(fabric, task); /* at once if it passed while parked */
  /* Canceled while parked: by the mail that asked for this read, or in the store before the
   * read and its mail still on its way. Either way before any node is sent it. */
  if (parked->cancel_due || loaded->state == TASK_CANCELED)
    fabric_task_cancel_one(fabric, task);
  return true;
}

/* ---- cancel ---- */

void fabric_task_cancel_one(struct fabric *fabric, struct fabric_task *task) {
  if (task->finished && task->task->state == TASK_CANCELED)
    return; /* canceled already (read back canceled, its cancel's mail came after) */
  /* Queued items are dropped (cursors skip a canceled task); items in flight still report and
   * are recorded. The store already holds the canceled state. */
  task->task->state = TASK_CANCELED;
  task->task->finished_ms = clock_now_ms();
  task->finished = task->state_dirty = true;
  /* Watermarks pass a canceled task: its unfinished nodes, those not reached yet too, keep
   * records of their own, and so do the nodes that finished it, whose saved watermark may not
   * say so yet. */
  fabric_records_for_unreached(fabric, task, NULL);
  if (task->saves_in_flight == 0)
    fabric_records_for_finished(fabric, task);
  else
    task->finished_records_due = true;
  for (struct list_node *r = task->records.first; r; r = r->next) {
    struct fabric_task_node *record = LIST_ENTRY(r, struct fabric_task_node, link);
    if (fabric_record_pending(record) > 0)
      fabric_record_dirty(record);
  }
  fabric_task_dirty(fabric, task);
  fabric_callback_deliver(fabric, task->task);
  timer_wheel_stop(&fabric->wheel, &task->deadline);
  fabric_retries_drop(fabric, task);
  fabric_task_maybe_free(fabric, task);
}

void fabric_task_cancel(struct fabric *fabric, const struct task *canceled) {
  if (canceled->planned) { /* found by its place in its lane's log, parked or not */
    enum fabric_lane lane = fabric_task_lane(canceled);
    uint64_t pos = fabric_log_find(fabric, lane, canceled->plan_seq);
    struct fabric_log *log = &fabric->log[lane];
    struct fabric_parked *parked = pos != UINT64_MAX ? fabric_log_parked(log, pos) : NULL;
    struct fabric_task *task = pos != UINT64_MAX ? fabric_log_at(log, pos) : NULL;
    if (parked && strcmp(parked->id, canceled->id) == 0) {
      parked->cancel_due = true;
      fabric_unpark(fabric, lane, pos);
      return;
    }
    if (task && strcmp(task->task->id, canceled->id) == 0) {
      fabric_task_cancel_one(fabric, task);
      return;
    }
  }
  for (struct list_node *at = fabric->tasks.first; at; at = at->next) {
    struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    if (strcmp(task->task->id, canceled->id) == 0) {
      fabric_task_cancel_one(fabric, task);
      return;
    }
  }
}
