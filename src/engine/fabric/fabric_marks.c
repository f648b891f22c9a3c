/* fabric_marks.c — each node's watermarks: per lane, the plan_seq of the oldest task the node
 * still owes a result for (at or ahead of its cursor, in flight, waiting for a retry or to be
 * sent again), or one past the latest task planned when it owes none. Saved with the progress
 * every FABRIC_MARKS_MS, they let the store tell every (task, node) result without a row per
 * pair, and a restart send only what lies past them. A canceled task is owed nothing: its
 * unfinished nodes keep records of their own. */
#include "common/clock.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"

#include <stddef.h>

enum { FABRIC_MARKS_MS = 1000 };

static void fabric_on_marks(struct wheel_timer *timer) {
  struct fabric *fabric = CONTAINER_OF(timer, struct fabric, marks);
  fabric_park_sweep(fabric);     /* tasks saved since the last sweep that only offline nodes owe */
  fabric_nodes_save_due(fabric); /* ahead of the watermarks, which update their entries */
  fabric_progress_flush(fabric, true);
  if (!fabric->stopping)
    timer_wheel_start(&fabric->wheel, &fabric->marks, FABRIC_MARKS_MS, fabric_on_marks);
}

void fabric_marks_start(struct fabric *fabric) {
  fabric->marks_current_ms = clock_now_ms(); /* as read back from the store */
  timer_wheel_start(&fabric->wheel, &fabric->marks, FABRIC_MARKS_MS, fabric_on_marks);
}

/* task_node's node owes it a result: its watermark in the task's lane stays at or below it. */
static void fabric_marks_owe(const struct fabric_task_node *task_node) {
  const struct task *task = task_node->task->task;
  if (task->state == TASK_CANCELED)
    return;
  int64_t *below = &task_node->node->open_below[fabric_task_lane(task)];
  if (task->plan_seq < *below)
    *below = task->plan_seq;
}

/* The oldest task a lane's cursor still owes: the one it is on, else the first one still in
 * the log ahead of it (planned onto the node or not: every one before it has been reached). A
 * node with nothing left to send in the lane has passed the whole log. */
static void fabric_marks_owe_cursor(const struct fabric *fabric, struct fabric_node *node,
                                    enum fabric_lane lane) {
  const struct fabric_log *log = &fabric->log[lane];
  struct fabric_cursor *cursor = &node->cursor[lane];
  if (cursor->current) {
    fabric_marks_owe(cursor->current);
    return;
  }
  if (node->lane_items[lane] == 0)
    cursor->pos = log->end;
  for (uint64_t pos = cursor->pos > log->base ? cursor->pos : log->base; pos < log->end; pos++) {
    const struct fabric_task *task = fabric_log_at(log, pos);
    if (fabric_log_held(log, pos) && (!task || task->task->state != TASK_CANCELED)) {
      int64_t plan_seq = fabric_log_seq(log, pos); /* a parked task is never canceled */
      if (plan_seq < node->open_below[lane])
        node->open_below[lane] = plan_seq;
      return;
    }
  }
}

bool fabric_marks_collect(struct fabric *fabric, struct store_job *job) {
  fabric->marks_collected_ms = clock_now_ms();
  for (size_t i = 0; i < fabric->node_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    for (int lane = 0; lane < FABRIC_LANES; lane++) {
      node->open_below[lane] = fabric->plan_seq + 1;
      fabric_marks_owe_cursor(fabric, node, (enum fabric_lane)lane);
    }
    for (uint32_t s = 0; s < node->slot_count; s++) {
      const struct fabric_slot *slot = &node->slots[s];
      if (!slot->used)
        continue;
      fabric_marks_owe(slot->task_node);
      for (uint32_t f = 0; f < slot->follower_count; f++)
        fabric_marks_owe(slot->followers[f].task_node);
    }
    for (size_t r = 0; r < node->redeliver_count; r++)
      fabric_marks_owe(node->redeliver[r].task_node);
  }
  for (struct list_node *at = fabric->tasks.first; at; at = at->next) {
    struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    for (struct list_node *r = task->retries.first; r; r = r->next)
      fabric_marks_owe(LIST_ENTRY(r, struct fabric_retry, link)->task_node);
  }
  job->marks = arena_alloc(&job->arena, (fabric->node_count + 1) * sizeof(*job->marks));
  if (!job->marks)
    return false;
  job->mark_count = 0;
  for (size_t i = 0; i < fabric->node_count; i++) {
    const struct fabric_node *node = fabric->nodes[i];
    if (node->marks_pinned || node->save_due ||
        (node->open_below[FABRIC_FAST] == node->saved_below[FABRIC_FAST] &&
         node->open_below[FABRIC_SLOW] == node->saved_below[FABRIC_SLOW]))
      continue;
    job->marks[job->mark_count++] = (struct store_node_mark){
        node->id, node->open_below[FABRIC_FAST], node->open_below[FABRIC_SLOW]};
  }
  return true;
}

void fabric_marks_saved(struct fabric *fabric, const struct store_job *job) {
  /* The marks are in registry order and name nodes by their entries' own id arrays. */
  size_t m = 0;
  for (size_t i = 0; i < fabric->node_count && m < job->mark_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    if (job->marks[m].node_id != node->id)
      continue;
    node->saved_below[FABRIC_FAST] = job->marks[m].fast_below;
    node->saved_below[FABRIC_SLOW] = job->marks[m].slow_below;
    m++;
  }
}
