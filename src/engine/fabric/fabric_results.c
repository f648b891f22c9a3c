/* fabric_results.c — results: each recorded once, while its item is pending, in the
 * 2-bit-per-item record of its (task, node); a task finished when nothing is pending; progress
 * saved to the store in one batch: a task's new state (running, final) FABRIC_FLUSH_MS after it
 * changed, a running task's counters with the watermarks every second — the tasks' counters and
 * failure details, and the few (task, node) records the watermarks cannot tell (store.h). */
#include "common/array.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/notify/alerts.h"
#include "engine/stats.h"

#include <stdlib.h>
#include <string.h>

enum { FABRIC_FLUSH_MS = 50 }; /* a new state is saved this long after it is reached */

/* ---- results ---- */

static void fabric_on_flush(struct wheel_timer *timer) {
  struct fabric *fabric = CONTAINER_OF(timer, struct fabric, flush);
  fabric_progress_flush(fabric, false);
}

/* Whether task's progress goes out with the next save: a running task's counters wait for the
 * one every second, so a fleet's thousands of tasks in flight are not rewritten twenty times a
 * second (each save holds the writer, and the 202s wait behind it); a change of state — its first
 * result, its final state, on which its callback waits — goes at once, and everything once the
 * fabric stops. */
static bool fabric_task_save_due(const struct fabric *fabric, const struct fabric_task *task,
                                 bool marks) {
  return task->dirty && (marks || task->state_dirty || fabric->stopping);
}

void fabric_task_dirty(struct fabric *fabric, struct fabric_task *task) {
  task->dirty = true;
  if (fabric_task_save_due(fabric, task, false) && !timer_wheel_armed(&fabric->flush))
    timer_wheel_start(&fabric->wheel, &fabric->flush, FABRIC_FLUSH_MS, fabric_on_flush);
}

void fabric_task_finish(struct fabric *fabric, struct fabric_task *task) {
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
  task->state_dirty = true;
  log_info("task.finished", "task %s %s: %lld succeeded, %lld failed, %lld unsupported", t->id,
           task_state_name(t->state), (long long)t->counters.succeeded,
           (long long)t->counters.failed, (long long)t->counters.unsupported);
  fabric_task_dirty(fabric, task);
}

/* Keeps the detail of node's failed or unsupported result for the next save. */
static void fabric_failure_add(struct fabric_task *task, struct fabric_node *node,
                               struct fabric_task_node *record, size_t index, enum item_state state,
                               const struct item_result *result) {
  if (!array_reserve((void **)&task->failures, &task->failure_cap, task->failure_count,
                     sizeof(*task->failures), 16)) {
    /* Only the detail is lost: the node's record keeps the state, where no watermark hides it;
     * without a record, its watermarks stay where they are until a restart sends it again. */
    if (record)
      fabric_record_dirty(record);
    else
      node->marks_pinned = true;
    return;
  }
  struct fabric_failure *failure = &task->failures[task->failure_count++];
  failure->index = (int64_t)index;
  failure->node_id = node->id;
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
  if (task_node->kept)
    fabric_record_dirty(task_node);
  fabric->results_unpublished[state == ITEM_SUCCEEDED]++; /* counted once per tick */
  t->counters.pending--;
  fabric_backlog_result(fabric, task);
  if (state == ITEM_SUCCEEDED) {
    task_node->succeeded++;
    t->counters.succeeded++;
    task_node->node->done++;
    if (result->verified && t->verify) { /* a check the task did not ask for does not count */
      item_verified_set(task_node->verified, index);
      task_node->verified_count++;
      t->counters.verified++;
    } else if (t->verify) {
      fabric_record_dirty(task_node); /* an unverified success: only a record tells */
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
    fabric_failure_add(task, task_node->node, task_node, index, state, result);
  }
  if (t->state == TASK_QUEUED) {
    t->state = TASK_RUNNING;
    t->started_ms = clock_now_ms();
    task->state_dirty = true;
  }
  fabric_task_dirty(fabric, task);
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
      struct fabric_task *task = item.task_node->task; /* the record may be freed below */
      task->in_flight--;
      item.task_node->refs--;
      if (!fabric_retry_failure(fabric, item.task_node, item.index, result))
        fabric_item_record(fabric, item.task_node, item.index, result);
      fabric_record_settle(item.task_node);
      fabric_task_maybe_free(fabric, task);
    }
    slot->follower_count = 0;
  }
  fabric_node_dispatch(fabric, node);
}

/* ---- saving progress ---- */

/* Records of task to save: the dirty ones. */
static size_t fabric_records_dirty(const struct fabric_task *task) {
  size_t dirty = 0;
  for (struct list_node *at = task->records_dirty ? task->records.first : NULL; at; at = at->next)
    dirty += LIST_ENTRY(at, struct fabric_task_node, link)->dirty;
  return dirty;
}

static void fabric_on_progress_saved(struct store_job *job) {
  struct fabric *fabric = job->context;
  struct fabric_task **tasks = job->owner;
  bool job_failed = job->result != 0;
  fabric->jobs_in_flight--;
  fabric->progress_jobs--;
  for (size_t i = 0; i < job->progress_count; i++) {
    struct fabric_task *task = tasks[i];
    task->saves_in_flight--;
    if (job->result) {
      /* Put the failure details back and save again shortly; the bitmaps are current anyway. */
      const struct store_progress *p = &job->progress[i];
      for (size_t saved = 0; saved < p->node_count; saved++) {
        struct fabric_task_node *record =
            fabric_record_find(task, fabric_node_find(fabric, p->nodes[saved].node_id));
        if (record) /* saved records were kept: held until the task is freed */
          fabric_record_dirty(record);
      }
      for (size_t f = 0; f < p->failure_count; f++) {
        struct item_result result = {.state = p->failures[f].state,
                                     .http_status = p->failures[f].http_status,
                                     .reason = p->failures[f].reason};
        struct fabric_node *node = fabric_node_find(fabric, p->failures[f].node_id);
        if (node)
          fabric_failure_add(task, node, fabric_record_find(task, node),
                             (size_t)p->failures[f].index, p->failures[f].state, &result);
      }
      task->state_dirty = true; /* what it changed to is saved again at once */
      fabric_task_dirty(fabric, task);
    }
    if (task->finished_records_due && task->saves_in_flight == 0) {
      task->finished_records_due = false;
      fabric_records_for_finished(fabric, task);
      fabric_task_dirty(fabric, task);
    }
  }
  if (job->result) {
    log_error("task.save", "saving results failed (%s); retrying", cdr_error_message(job->result));
    alerts_raise(fabric->alerts, "store_error", "store", "results could not be saved");
  } else {
    fabric_marks_saved(fabric, job);
    if (job->marks) /* this save carried the watermarks (every one that had moved) */
      fabric->marks_current_ms = fabric->marks_collected_ms;
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
  if (fabric->marks_due && fabric->progress_jobs == 0 && !job_failed)
    fabric_progress_flush(fabric, true);
}

/* Copies one dirty task's unsaved state into p, in the job's arena. */
static int fabric_progress_copy(struct fabric_task *task, struct store_progress *p,
                                struct arena *arena) {
  p->task = *task->task;
  p->task.targets = NULL;
  /* Until its plan's save is answered, each save carries the plan as well: a plan whose save
   * failed is retried after saves queued behind it, and a task final in the store without its
   * plan would have no nodes to read results by after a crash. */
  p->task.plan_nodes = NULL;
  if (!task->task->planned) {
    p->task.plan_nodes = arena_alloc(arena, task->task->plan_nodes_len + 1);
    if (!p->task.plan_nodes)
      return CDR_ENOMEM;
    memcpy(p->task.plan_nodes, task->task->plan_nodes, task->task->plan_nodes_len);
  }
  p->nodes = arena_alloc(arena, (fabric_records_dirty(task) + 1) * sizeof(*p->nodes));
  p->failures = arena_alloc(arena, (task->failure_count + 1) * sizeof(*p->failures));
  if (!p->nodes || !p->failures)
    return CDR_ENOMEM;
  p->node_count = 0;
  for (struct list_node *at = task->records_dirty ? task->records.first : NULL; at; at = at->next) {
    struct fabric_task_node *task_node = LIST_ENTRY(at, struct fabric_task_node, link);
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

void fabric_progress_flush(struct fabric *fabric, bool marks) {
  /* Watermarks that wait for the saves out go as soon as those are answered: saves meanwhile wait
   * with them, or a writer slower than their 50 ms cadence would always have one out, and the
   * watermarks (what a restart resends from) would fall behind without bound. */
  if (!marks && fabric->marks_due && fabric->progress_jobs > 0)
    return;
  size_t count = 0, bytes = 0;
  for (struct list_node *at = fabric->tasks.first; at; at = at->next) {
    struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    if (fabric_task_save_due(fabric, task, marks)) {
      count++;
      size_t targets = task->task->target_count, records = fabric_records_dirty(task);
      bytes += records * (item_states_bytes(targets) + item_verified_bytes(targets) + 64) +
               task->failure_count * 128 + 1024 +
               (task->task->planned ? 0 : task->task->plan_nodes_len + 64); /* the plan with it */
    }
  }
  if (count == 0 && !marks)
    return;
  if (marks)
    bytes += fabric->node_count * sizeof(struct store_node_mark);
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job)
    return;
  arena_init(&job->arena, 2 * bytes + (1 << 20));
  job->kind = STORE_JOB_PROGRESS;
  job->context = fabric;
  job->done = fabric_on_progress_saved;
  job->progress = arena_alloc(&job->arena, (count + 1) * sizeof(*job->progress));
  struct fabric_task **tasks = arena_alloc(&job->arena, (count + 1) * sizeof(*tasks));
  if (!job->progress || !tasks) {
    arena_release(&job->arena);
    free(job);
    return;
  }
  bool all_copied = true;
  for (struct list_node *at = fabric->tasks.first; at; at = at->next) {
    struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    if (!fabric_task_save_due(fabric, task, marks))
      continue;
    if (fabric_progress_copy(task, &job->progress[job->progress_count], &job->arena)) {
      all_copied = false;
      continue;
    }
    tasks[job->progress_count++] = task;
    task->dirty = task->state_dirty = false;
    task->failure_count = 0;
    task->saves_in_flight++;
    for (struct list_node *r = task->records_dirty ? task->records.first : NULL; r; r = r->next)
      LIST_ENTRY(r, struct fabric_task_node, link)->dirty = false;
    task->records_dirty = false;
  }
  job->owner = tasks;
  /* After the results: the marks commit with the failure details they pass — none when a task's
   * could not be copied, or an earlier save is still out (it may yet fail and its details come
   * back unsaved): marks must never pass a detail the store may not have. */
  if (marks) {
    fabric->marks_due = fabric->progress_jobs > 0; /* saved as soon as those are answered */
    if (!all_copied || fabric->marks_due || !fabric_marks_collect(fabric, job))
      job->mark_count = 0;
  }
  if (job->progress_count == 0 && job->mark_count == 0) {
    if (job->marks) /* collected, and every one already saved */
      fabric->marks_current_ms = fabric->marks_collected_ms;
    arena_release(&job->arena);
    free(job);
    return;
  }
  fabric->progress_jobs++;
  fabric_submit(fabric, job);
}
