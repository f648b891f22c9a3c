/* fabric_park.c — tasks owed only by offline nodes leave memory: once every node a task went to
 * has finished it but offline ones whose cursors have not reached it, and its progress is saved,
 * the task gives way to a struct fabric_parked in its place in its lane's log (its id, plan_seq,
 * deadline and the numbers of the nodes it waits for). When one of those nodes' cursor reaches
 * it, its deadline passes, it is canceled or one of those nodes is removed, it is read back from
 * the store into that place, with the parked ones after it in the lane, in one read. An edge
 * that is down for an hour costs the engine a hundred-odd bytes per task it misses, not the
 * tasks. */
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"

#include <stdlib.h>
#include <string.h>

enum {
  FABRIC_UNPARK_BATCH = 256,         /* parked tasks read back in one store read at most */
  FABRIC_UNPARK_BATCH_TARGETS = 4096 /* ... and their targets, past the first task */
};

/* One read of parked tasks back: where they are (job->load_ids[i] is at positions[i]). */
struct fabric_unpark_batch {
  enum fabric_lane lane;
  uint64_t positions[FABRIC_UNPARK_BATCH];
};

bool fabric_parked_waits_for(const struct fabric_parked *parked, int64_t number) {
  for (uint32_t i = 0; i < parked->unreached; i++) {
    if (parked->numbers[i] == (uint32_t)number)
      return true;
  }
  return false;
}

struct fabric_node *fabric_node_numbered(const struct fabric *fabric, int64_t number) {
  /* Numbers are given in registration order: most nodes sit at their own. */
  if (number >= 0 && (size_t)number < fabric->node_count && fabric->nodes[number]->number == number)
    return fabric->nodes[number];
  for (size_t i = 0; i < fabric->node_count; i++) {
    if (fabric->nodes[i]->number == number)
      return fabric->nodes[i];
  }
  return NULL;
}

/* Whether node owes task a result it has not been sent: planned onto it, cursor not there yet. */
static bool fabric_node_owes(const struct fabric_node *node, const struct fabric_task *task) {
  return plan_nodes_has(task->task->plan_nodes, task->task->plan_nodes_len, node->number) &&
         fabric_cursor_before(node, task);
}

/* Whether task can leave memory, but for its nodes: nothing of it is held, in flight, waiting or
 * unsaved, so the store has all of it, and its deadline (whose timer fails it next) is still
 * ahead: a task read back for its deadline is never parked again before it fails. */
static bool fabric_task_quiet(const struct fabric_task *task, int64_t now_ms) {
  return !task->finished && task->logged && task->counted && task->task->planned &&
         task->task->created_ms + task->task->deadline_s * 1000 > now_ms &&
         task->task->state != TASK_CANCELED && !task->records.first && task->preset_count == 0 &&
         task->in_flight == 0 && !task->retries.first && !task->dirty && !task->state_dirty &&
         !task->records_dirty && task->saves_in_flight == 0 && task->failure_count == 0 &&
         !task->finished_records_due && !timer_wheel_armed(&task->plan_retry) &&
         task->unreached > 0 && task->task->target_count <= UINT32_MAX;
}

/* Parks task, which waits only for the offline nodes among offline[0..count) whose cursor has
 * not reached it; false when it waits for another (or memory ran out). */
static bool fabric_task_park(struct fabric *fabric, struct fabric_task *task,
                             struct fabric_node *const *offline, size_t count) {
  const struct task *t = task->task;
  size_t owing = 0; /* every one owing it is unreached: past that many, no more can be */
  for (size_t i = 0; i < count && owing < task->unreached; i++)
    owing += fabric_node_owes(offline[i], task);
  if (owing != task->unreached ||
      t->counters.pending != (int64_t)(t->target_count * task->unreached))
    return false; /* an online node has still to reach it */
  struct fabric_parked *parked = malloc(sizeof(*parked) + owing * sizeof(parked->numbers[0]));
  if (!parked)
    return false;
  *parked = (struct fabric_parked){.tenant = task->tenant,
                                   .plan_seq = t->plan_seq,
                                   .deadline_ms = t->created_ms + t->deadline_s * 1000,
                                   .lane = (uint8_t)fabric_task_lane(t),
                                   .target_count = (uint32_t)t->target_count,
                                   .unreached = (uint32_t)owing};
  memcpy(parked->id, t->id, sizeof(parked->id));
  size_t n = 0;
  for (size_t i = 0; i < count && n < owing; i++) {
    if (fabric_node_owes(offline[i], task))
      parked->numbers[n++] = (uint32_t)offline[i]->number;
  }
  /* Its place and its nodes' lane counts stay as they are: the parked one holds them now. What
   * it owes moves from the backlog in memory to the one in the store. */
  fabric_log_set_parked(&fabric->log[parked->lane], task->log_pos, parked);
  task->logged = false;
  task->counted = false;
  task->unreached = 0;
  fabric_task_free(fabric, task);
  fabric_backlog_park(fabric, parked);
  return true;
}

/* Reads back every parked task due and not being read: past its deadline (its own deadline then
 * fails what is still owed, node_offline), canceled, reached by a node back online, or waited
 * for by a node being removed — those whose read failed too, now that a second has passed. */
static void fabric_parked_due(struct fabric *fabric) {
  int64_t now_ms = clock_now_ms();
  for (int lane = 0; lane < FABRIC_LANES; lane++) {
    struct fabric_log *log = &fabric->log[lane];
    for (uint64_t pos = log->base; pos < log->end && fabric->parked_count > 0; pos++) {
      struct fabric_parked *parked = fabric_log_parked(log, pos);
      if (!parked)
        continue;
      fabric_backlog_parked_deadline(parked);
      if (parked->loading)
        continue;
      parked->stalled = false;
      bool due = parked->cancel_due || parked->deadline_ms <= now_ms;
      for (uint32_t n = 0; !due && n < parked->unreached; n++) {
        const struct fabric_node *node = fabric_node_numbered(fabric, parked->numbers[n]);
        due = node && (node->link || node->forget_waits > 0);
      }
      if (due)
        fabric_unpark(fabric, (enum fabric_lane)lane, pos);
    }
  }
}

void fabric_park_sweep(struct fabric *fabric) {
  fabric_backlog_deadlines_begin(fabric); /* shown every task parked, then those parked now */
  fabric_parked_due(fabric);
  struct fabric_node **offline = NULL;
  size_t count = 0;
  for (size_t i = 0; i < fabric->node_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    if (node->link || node->removed)
      continue;
    if (!offline && !(offline = malloc(fabric->node_count * sizeof(*offline)))) {
      count = 0;
      break;
    }
    offline[count++] = node;
  }
  int64_t now_ms = clock_now_ms();
  for (struct list_node *at = fabric->tasks.first, *next; count > 0 && at; at = next) {
    next = at->next; /* the task may be parked, and freed */
    struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    if (fabric_task_quiet(task, now_ms))
      fabric_task_park(fabric, task, offline, count);
  }
  free(offline);
  fabric_backlog_deadlines_end(fabric);
}

static void fabric_on_unparked(struct store_job *job) {
  struct fabric *fabric = job->context;
  const struct fabric_unpark_batch *batch = job->owner;
  const uint64_t *positions = batch->positions;
  struct fabric_log *log = &fabric->log[batch->lane];
  fabric->jobs_in_flight--;
  if (job->result)
    log_error("task.unpark", "reading parked tasks back failed (%s); trying again",
              cdr_error_message(job->result));
  for (size_t i = 0; i < job->load_count; i++) {
    struct fabric_parked *parked = fabric_log_parked(log, positions[i]);
    if (!parked)
      continue; /* a guard: only a read back takes a parked task's place */
    parked->loading = false;
    if (fabric->stopping)
      continue; /* the store has it: read back at the next start */
    if (job->result || !job->load_tasks[i] ||
        !fabric_task_unpark(fabric, parked, positions[i], job->load_tasks[i])) {
      if (!job->result)
        log_error("task.unpark", "task %s could not be read back; trying again", parked->id);
      parked->stalled = true; /* tried again by the next sweep, not by every dispatch */
      continue;
    }
    /* Its nodes go on from it (those online), or forget it (those removed meanwhile). */
    for (uint32_t n = 0; n < parked->unreached; n++) {
      struct fabric_node *node = fabric_node_numbered(fabric, parked->numbers[n]);
      if (node && node->forget_waits > 0 && --node->forget_waits == 0 && node->removed)
        fabric_node_forget(fabric, node);
      else if (node && node->link)
        fabric_node_dispatch(fabric, node);
    }
    free(parked);
  }
  arena_release(&job->arena);
  free(job);
}

void fabric_unpark(struct fabric *fabric, enum fabric_lane lane, uint64_t pos) {
  struct fabric_log *log = &fabric->log[lane];
  struct fabric_parked *first = fabric_log_parked(log, pos);
  if (!first || first->loading || first->stalled || fabric->stopping)
    return;
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job) {
    first->stalled = true; /* tried again by the next sweep */
    return;
  }
  arena_init(&job->arena, (size_t)1 << 32); /* the tasks read back, with all their targets */
  job->kind = STORE_JOB_TASKS_LOAD;
  job->context = fabric;
  job->done = fabric_on_unparked;
  job->load_ids = arena_alloc(&job->arena, FABRIC_UNPARK_BATCH * sizeof(*job->load_ids));
  job->load_tasks = arena_alloc(&job->arena, FABRIC_UNPARK_BATCH * sizeof(*job->load_tasks));
  struct fabric_unpark_batch *batch = arena_alloc(&job->arena, sizeof(*batch));
  if (!job->load_ids || !job->load_tasks || !batch) {
    arena_release(&job->arena);
    free(job);
    first->stalled = true; /* tried again by the next sweep */
    return;
  }
  /* It, and the parked ones after it in the lane: the node that reached it reaches them next.
   * The ids are copied: a stop may free the parked tasks while the writer still reads. */
  size_t targets = 0;
  for (uint64_t at = pos; at < log->end && job->load_count < FABRIC_UNPARK_BATCH &&
                          (job->load_count == 0 || targets < FABRIC_UNPARK_BATCH_TARGETS);
       at++) {
    struct fabric_parked *parked = fabric_log_parked(log, at);
    if (!parked || parked->loading || parked->stalled)
      continue;
    const char *id = arena_strdup(&job->arena, parked->id);
    if (!id)
      break;
    parked->loading = true;
    targets += parked->target_count;
    batch->positions[job->load_count] = at;
    job->load_ids[job->load_count++] = id;
  }
  batch->lane = lane;
  job->owner = batch;
  fabric_submit(fabric, job);
}

size_t fabric_unpark_for(struct fabric *fabric, const struct fabric_node *node) {
  size_t waits = 0;
  for (int lane = 0; lane < FABRIC_LANES; lane++) {
    struct fabric_log *log = &fabric->log[lane];
    for (uint64_t pos = node->cursor[lane].pos; pos < log->end; pos++) {
      struct fabric_parked *parked = pos >= log->base ? fabric_log_parked(log, pos) : NULL;
      if (parked && fabric_parked_waits_for(parked, node->number)) {
        waits++;
        fabric_unpark(fabric, (enum fabric_lane)lane, pos);
      }
    }
  }
  return waits;
}

void fabric_parked_free_all(struct fabric *fabric) {
  for (int lane = 0; lane < FABRIC_LANES; lane++) {
    struct fabric_log *log = &fabric->log[lane];
    for (uint64_t pos = log->base; pos < log->end; pos++) {
      struct fabric_parked *parked = fabric_log_parked(log, pos);
      if (!parked)
        continue;
      fabric_backlog_unpark(fabric, parked);
      free(parked);
      log->entries[pos & log->mask] = NULL;
    }
  }
}
