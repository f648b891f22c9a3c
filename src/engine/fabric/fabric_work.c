/* fabric_work.c — what the fabric does with tasks: plans them onto nodes, queues their items per
 * node (purges in a fast lane ahead of preloads), sends work within each node's window, records
 * each result once in a 2-bit-per-item record, and saves progress to the store in batches. */
#include "common/array.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/notify/alerts.h"
#include "engine/stats.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
  FABRIC_FLUSH_MS = 50, /* results are saved this long after they arrive, in one batch */
  FABRIC_PLAN_RETRY_MS = 1000,
  FABRIC_WORK_BATCH = 1024, /* most items in one Work frame */
};

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

static void fabric_queue_push(struct fifo *queue, struct fabric_task_node *task_node) {
  fifo_push(queue, &task_node->queue_link);
  task_node->queued = true;
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
static void fabric_task_finish(struct fabric *fabric, struct fabric_task *task);
static void fabric_task_maybe_free(struct fabric *fabric, struct fabric_task *task);

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
static bool fabric_node_record(const struct fabric_task_node *task_node, struct arena *arena,
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

/* ---- nodes: window, queues, dispatch ---- */

void fabric_node_online(struct fabric *fabric, struct fabric_node *node, uint32_t window) {
  node->window = window;
  node->in_flight = 0;
  node->last_heartbeat_ms = clock_now_ms();
  log_info("node.online", "node %s online with a window of %u items, %zu queued", node->id, window,
           fabric_node_queue_depth(node));
  fabric_node_dispatch(fabric, node);
}

/* Frees node's slots (none may be in flight: their followers go too) and its dedup table. */
static void fabric_node_slots_free(struct fabric_node *node) {
  for (uint32_t i = 0; i < node->slot_count; i++)
    free(node->slots[i].followers);
  fabric_dedup_close(node);
  free(node->slots);
  node->slots = NULL;
  node->slot_count = node->free_slot = 0;
}

void fabric_node_trim(struct fabric_node *node) {
  if (node->in_flight == 0)
    fabric_node_slots_free(node);
}

/* Grows node's slots (doubling, at most to its window) so that wanted items can be in flight.
 * The new ones chain up after the free list's end, which holds the old count as its "none": the
 * first new slot. False when memory ran out: what is there keeps working. */
static bool fabric_node_slots_reserve(struct fabric_node *node, uint32_t wanted) {
  if (wanted <= node->slot_count)
    return true;
  uint32_t count = node->slot_count ? node->slot_count : 16;
  while (count < wanted)
    count *= 2;
  if (count > node->window)
    count = node->window;
  struct fabric_slot *slots = realloc(node->slots, count * sizeof(*slots));
  if (!slots)
    return false;
  memset(slots + node->slot_count, 0, (count - node->slot_count) * sizeof(*slots));
  for (uint32_t i = node->slot_count; i < count; i++)
    slots[i].next_free = i + 1;
  node->slots = slots;
  node->slot_count = count;
  fabric_dedup_open(node); /* without it (no memory) identical purges are simply all sent */
  return true;
}

void fabric_redeliver_push(struct fabric_node *node, struct fabric_task_node *task_node,
                           size_t index) {
  if (!array_reserve((void **)&node->redeliver, &node->redeliver_cap, node->redeliver_count,
                     sizeof(*node->redeliver), 64))
    return; /* the item stays pending in its record and is sent again after a restart */
  node->redeliver[node->redeliver_count++] = (struct fabric_item_ref){task_node, index};
}

void fabric_node_offline(struct fabric *fabric, struct fabric_node *node) {
  /* Work that was in flight is sent again when the node returns: purges are idempotent and a
   * result is recorded only while its item is still pending. */
  for (uint32_t i = 0; i < node->slot_count; i++) {
    struct fabric_slot *slot = &node->slots[i];
    if (!slot->used)
      continue;
    slot->task_node->task->in_flight--;
    fabric_redeliver_push(node, slot->task_node, slot->index);
    for (uint32_t f = 0; f < slot->follower_count; f++) {
      slot->followers[f].task_node->task->in_flight--;
      fabric_redeliver_push(node, slot->followers[f].task_node, slot->followers[f].index);
    }
  }
  fabric_node_slots_free(node);
  node->in_flight = 0;
  log_info("node.offline", "node %s offline, %zu items wait for it", node->id,
           fabric_node_queue_depth(node));
  if (!fabric->stopping && !node->removed) {
    char message[160];
    snprintf(message, sizeof(message), "node %s lost its agent link; %zu items wait for it",
             node->id, fabric_node_queue_depth(node));
    alerts_raise(fabric->alerts, "node_offline", node->id, message);
  }
}

size_t fabric_queue_items(const struct fifo *queue) {
  size_t items = 0;
  for (struct fifo_node *at = queue->head; at; at = at->next) {
    const struct fabric_task_node *tn = FIFO_ENTRY(at, struct fabric_task_node, queue_link);
    items += tn->task->task->target_count - tn->next;
  }
  return items;
}

size_t fabric_node_queue_depth(const struct fabric_node *node) {
  return node->redeliver_count + fabric_queue_items(&node->fast) + fabric_queue_items(&node->slow);
}

static bool fabric_task_active(const struct fabric_task *task) {
  return !task->finished && task->task->state != TASK_CANCELED;
}

static Cdr__Operation fabric_operation(const struct task *task, enum target_kind kind) {
  if (task->type == TASK_PRELOAD)
    return CDR__OPERATION__PRELOAD;
  static const Cdr__Operation purges[] = {CDR__OPERATION__PURGE_URL, CDR__OPERATION__PURGE_PREFIX,
                                          CDR__OPERATION__PURGE_REGEX, CDR__OPERATION__PURGE_TAG};
  return purges[kind];
}

/* Takes a free slot for (task_node, index) and describes it as work item n of the batch. */
static void fabric_work_add(struct fabric *fabric, struct fabric_node *node, size_t n,
                            struct fabric_task_node *task_node, size_t index, int64_t now_ms) {
  uint32_t slot_index = node->free_slot;
  struct fabric_slot *slot = &node->slots[slot_index];
  node->free_slot = slot->next_free;
  slot->task_node = task_node;
  slot->index = index;
  slot->generation++;
  slot->used = true;
  slot->sent_ms = now_ms;
  slot->follower_count = 0;
  node->in_flight++;
  task_node->task->in_flight++;
  fabric_dedup_lead(node, slot_index);

  const struct task *task = task_node->task->task;
  Cdr__WorkItem *item = &fabric->work_items[n];
  cdr__work_item__init(item);
  item->item_id = (uint64_t)slot->generation << 32 | slot_index;
  item->operation = fabric_operation(task, task->targets[index].kind);
  item->invalidate = task->mode == TASK_MODE_INVALIDATE;
  item->skip_verify = !task->verify;
  item->target = (char *)(uintptr_t)task->targets[index].value;
  item->n_headers = task_node->task->header_count;
  item->headers = task_node->task->headers;
  fabric->work_pointers[n] = item;
}

/* Fills up to room items from a queue; pops cursors that are exhausted or whose task ended. */
static size_t fabric_queue_take(struct fabric *fabric, struct fabric_node *node, struct fifo *queue,
                                size_t n, size_t room, int64_t now_ms) {
  while (n < room && !fifo_empty(queue)) {
    struct fabric_task_node *task_node =
        FIFO_ENTRY(queue->head, struct fabric_task_node, queue_link);
    size_t count = task_node->task->task->target_count;
    if (fabric_task_active(task_node->task)) {
      while (n < room && task_node->next < count) {
        size_t index = task_node->next++;
        if (item_states_get(task_node->states, index) == ITEM_PENDING &&
            !fabric_dedup_join(node, task_node, index))
          fabric_work_add(fabric, node, n++, task_node, index, now_ms);
      }
    }
    if (task_node->next < count && fabric_task_active(task_node->task))
      break;
    fifo_pop(queue);
    task_node->queued = false;
  }
  return n;
}

void fabric_node_dispatch(struct fabric *fabric, struct fabric_node *node) {
  if (!node->link || node->link->conn.closing || fabric->stopping)
    return;
  if (!fabric->work_items) {
    fabric->work_items = calloc(FABRIC_WORK_BATCH, sizeof(*fabric->work_items));
    fabric->work_pointers = calloc(FABRIC_WORK_BATCH, sizeof(*fabric->work_pointers));
    if (!fabric->work_items || !fabric->work_pointers)
      return;
  }
  int64_t now_ms = clock_now_ms(); /* one reading for the whole dispatch */
  while (node->in_flight < node->window &&
         (node->redeliver_count || !fifo_empty(&node->fast) || !fifo_empty(&node->slow))) {
    size_t room = node->window - node->in_flight;
    if (room > FABRIC_WORK_BATCH)
      room = FABRIC_WORK_BATCH;
    if (!fabric_node_slots_reserve(node, node->in_flight + (uint32_t)room))
      room = node->slot_count - node->in_flight;
    if (room == 0)
      return;
    size_t n = 0;
    while (n < room && node->redeliver_count > 0) {
      struct fabric_item_ref ref = node->redeliver[--node->redeliver_count];
      if (fabric_task_active(ref.task_node->task) &&
          item_states_get(ref.task_node->states, ref.index) == ITEM_PENDING &&
          !fabric_dedup_join(node, ref.task_node, ref.index))
        fabric_work_add(fabric, node, n++, ref.task_node, ref.index, now_ms);
    }
    n = fabric_queue_take(fabric, node, &node->fast, n, room, now_ms);
    n = fabric_queue_take(fabric, node, &node->slow, n, room, now_ms);
    if (n == 0)
      return;
    Cdr__Work work;
    cdr__work__init(&work);
    work.n_items = n;
    work.items = fabric->work_pointers;
    if (fabric->send_work(node, &work))
      return;
  }
}

/* ---- results ---- */

static void fabric_on_flush(struct wheel_timer *timer) {
  struct fabric *fabric = CONTAINER_OF(timer, struct fabric, flush);
  fabric_progress_flush(fabric);
}

static void fabric_mark_dirty(struct fabric *fabric, struct fabric_task *task) {
  task->dirty = true;
  if (!timer_wheel_armed(&fabric->flush))
    timer_wheel_start(&fabric->wheel, &fabric->flush, FABRIC_FLUSH_MS, fabric_on_flush);
}

/* Frees a task that has ended, once nothing refers to it any more. */
static void fabric_task_maybe_free(struct fabric *fabric, struct fabric_task *task) {
  if (task->finished && !task->dirty && task->saves_in_flight == 0 && task->in_flight == 0 &&
      task->task->planned)
    fabric_task_free(fabric, task);
}

static void fabric_task_finish(struct fabric *fabric, struct fabric_task *task) {
  struct task *t = task->task;
  task->finished = true;
  timer_wheel_stop(&fabric->wheel, &task->deadline);
  fabric_retries_drop(fabric, task);
  if (t->state != TASK_CANCELED) {
    bool clean = t->counters.failed == 0 && t->counters.unsupported == 0;
    t->state = clean ? TASK_DONE : t->counters.succeeded == 0 ? TASK_FAILED : TASK_PARTIAL;
    t->finished_ms = clock_now_ms();
    if (t->finished_ms >= t->created_ms) /* a task can finish within its first millisecond */
      histogram_observe(&engine_stats.task_latency,
                        (uint64_t)(t->finished_ms - t->created_ms) * 1000);
  }
  task->callback_due = t->callback != NULL;
  log_info("task.finished", "task %s %s: %lld succeeded, %lld failed, %lld unsupported", t->id,
           task_state_name(t->state), (long long)t->counters.succeeded,
           (long long)t->counters.failed, (long long)t->counters.unsupported);
  fabric_mark_dirty(fabric, task);
}

static void fabric_failure_add(struct fabric_task *task, const struct fabric_task_node *task_node,
                               size_t index, enum item_state state,
                               const struct item_result *result) {
  if (!array_reserve((void **)&task->failures, &task->failure_cap, task->failure_count,
                     sizeof(*task->failures), 16))
    return; /* the state is still recorded; only the detail is lost */
  struct fabric_failure *failure = &task->failures[task->failure_count++];
  failure->index = (int64_t)index;
  failure->node_id = task_node->node->id;
  failure->state = state;
  failure->http_status = result->http_status;
  snprintf(failure->reason, sizeof(failure->reason), "%s",
           result->reason[0] ? result->reason : "failed");
}

/* Records one result, unless the item already has one. */
void fabric_item_record(struct fabric *fabric, struct fabric_task_node *task_node, size_t index,
                        const struct item_result *result) {
  struct fabric_task *task = task_node->task;
  struct task *t = task->task;
  if (item_states_get(task_node->states, index) != ITEM_PENDING)
    return;
  enum item_state state = result->state;
  item_states_set(task_node->states, index, state);
  task_node->dirty = true;
  rate_add(state == ITEM_SUCCEEDED ? &engine_stats.items_succeeded : &engine_stats.items_failed,
           (int64_t)time(NULL), 1); /* the coarse clock: this runs for every result */
  t->counters.pending--;
  if (state == ITEM_SUCCEEDED) {
    task_node->succeeded++;
    t->counters.succeeded++;
    task_node->node->done++;
    if (result->verified) {
      item_verified_set(task_node->verified, index);
      task_node->verified_count++;
      t->counters.verified++;
    }
  } else {
    if (state == ITEM_FAILED) {
      task_node->failed++;
      t->counters.failed++;
      task_node->node->failed++;
    } else {
      task_node->unsupported++;
      t->counters.unsupported++;
      task_node->node->unsupported++;
    }
    fabric_failure_add(task, task_node, index, state, result);
  }
  if (t->state == TASK_QUEUED) {
    t->state = TASK_RUNNING;
    t->started_ms = clock_now_ms();
  }
  fabric_mark_dirty(fabric, task);
  if (t->counters.pending == 0 && !task->finished)
    fabric_task_finish(fabric, task);
}

void fabric_results_apply(struct fabric *fabric, struct fabric_node *node,
                          const struct item_result *results, size_t count) {
  if (count > 0 && !node->first_result_ms) {
    node->first_result_ms = clock_now_ms(); /* it is a working edge, not only a Hello */
    fabric_node_save(fabric, node);
  }
  for (size_t i = 0; i < count; i++) {
    const struct item_result *result = &results[i];
    uint32_t slot_index = (uint32_t)result->item_id;
    uint32_t generation = (uint32_t)(result->item_id >> 32);
    if (slot_index >= node->slot_count || !node->slots[slot_index].used ||
        node->slots[slot_index].generation != generation) {
      log_debug("result.stale", "node %s sent a result for unknown item %llu", node->id,
                (unsigned long long)result->item_id);
      continue;
    }
    struct fabric_slot *slot = &node->slots[slot_index];
    fabric_dedup_forget(node, slot_index);
    slot->used = false;
    slot->next_free = node->free_slot;
    node->free_slot = slot_index;
    node->in_flight--;
    /* The item, then every identical purge that waited for it, gets this result. */
    for (uint32_t f = 0; f <= slot->follower_count; f++) {
      struct fabric_item_ref item =
          f == 0 ? (struct fabric_item_ref){slot->task_node, slot->index} : slot->followers[f - 1];
      item.task_node->task->in_flight--;
      if (!fabric_retry_failure(fabric, item.task_node, item.index, result))
        fabric_item_record(fabric, item.task_node, item.index, result);
      fabric_task_maybe_free(fabric, item.task_node->task);
    }
    slot->follower_count = 0;
  }
  fabric_node_dispatch(fabric, node);
}

/* ---- saving progress ---- */

static void fabric_on_progress_saved(struct store_job *job) {
  struct fabric *fabric = job->context;
  struct fabric_task **tasks = job->answer;
  fabric->jobs_in_flight--;
  for (size_t i = 0; i < job->progress_count; i++) {
    struct fabric_task *task = tasks[i];
    task->saves_in_flight--;
    if (job->result) {
      /* Put the failure details back and save again shortly; the bitmaps are current anyway. */
      const struct store_progress *p = &job->progress[i];
      for (size_t n = 0; n < task->node_count; n++)
        task->nodes[n].dirty = true;
      for (size_t f = 0; f < p->failure_count; f++) {
        struct item_result result = {.state = p->failures[f].state,
                                     .http_status = p->failures[f].http_status,
                                     .reason = p->failures[f].reason};
        for (size_t n = 0; n < task->node_count; n++) {
          if (strcmp(task->nodes[n].node->id, p->failures[f].node_id) == 0)
            fabric_failure_add(task, &task->nodes[n], (size_t)p->failures[f].index,
                               p->failures[f].state, &result);
        }
      }
      fabric_mark_dirty(fabric, task);
    }
  }
  if (job->result) {
    log_error("task.save", "saving results failed (%s); retrying", cdr_error_message(job->result));
    alerts_raise(fabric->alerts, "store_error", "store", "results could not be saved");
  }
  for (size_t i = 0; i < job->progress_count; i++) {
    struct fabric_task *task = tasks[i];
    /* The receiver may read the task back at once: call only when its final state is saved. */
    if (!job->result && task->callback_due && task->finished && !task->dirty && fabric->callbacks) {
      task->callback_due = false;
      fabric_callback_deliver(fabric, task->task);
    }
    fabric_task_maybe_free(fabric, task);
  }
  arena_release(&job->arena);
  free(job);
}

/* Copies one dirty task's unsaved state into p, in the job's arena. */
static int fabric_progress_copy(struct fabric_task *task, struct store_progress *p,
                                struct arena *arena) {
  p->task = *task->task;
  p->task.targets = NULL;
  p->nodes = arena_alloc(arena, (task->node_count + 1) * sizeof(*p->nodes));
  p->failures = arena_alloc(arena, (task->failure_count + 1) * sizeof(*p->failures));
  if (!p->nodes || !p->failures)
    return CDR_ENOMEM;
  p->node_count = 0;
  for (size_t n = 0; n < task->node_count; n++) {
    struct fabric_task_node *task_node = &task->nodes[n];
    if (!task_node->dirty)
      continue;
    if (!fabric_node_record(task_node, arena, &p->nodes[p->node_count++]))
      return CDR_ENOMEM;
  }
  for (size_t f = 0; f < task->failure_count; f++) {
    const struct fabric_failure *failure = &task->failures[f];
    p->failures[f] =
        (struct store_failure){failure->index, failure->node_id, failure->state,
                               failure->http_status, arena_strdup(arena, failure->reason)};
  }
  p->failure_count = task->failure_count;
  return 0;
}

void fabric_progress_flush(struct fabric *fabric) {
  size_t count = 0, bytes = 0;
  for (struct list_node *at = fabric->tasks.first; at; at = at->next) {
    struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    if (task->dirty) {
      count++;
      size_t targets = task->task->target_count;
      bytes += task->node_count * (item_states_bytes(targets) + item_verified_bytes(targets) + 64) +
               task->failure_count * 128 + 1024;
    }
  }
  if (count == 0)
    return;
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job)
    return;
  arena_init(&job->arena, 2 * bytes + (1 << 20));
  job->kind = STORE_JOB_PROGRESS;
  job->context = fabric;
  job->done = fabric_on_progress_saved;
  job->progress = arena_alloc(&job->arena, count * sizeof(*job->progress));
  struct fabric_task **tasks = arena_alloc(&job->arena, count * sizeof(*tasks));
  if (!job->progress || !tasks) {
    arena_release(&job->arena);
    free(job);
    return;
  }
  for (struct list_node *at = fabric->tasks.first; at; at = at->next) {
    struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    if (!task->dirty ||
        fabric_progress_copy(task, &job->progress[job->progress_count], &job->arena))
      continue;
    tasks[job->progress_count++] = task;
    task->dirty = false;
    task->failure_count = 0;
    task->saves_in_flight++;
    for (size_t n = 0; n < task->node_count; n++)
      task->nodes[n].dirty = false;
  }
  job->answer = tasks;
  fabric_submit(fabric, job);
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
