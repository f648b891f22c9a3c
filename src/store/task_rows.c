/* task_rows.c — what both backends write the same way (store_backend.h): a task row's integer
 * columns, and the per-(task, node) rows when a cancel and a finish cross: which nodes a canceled
 * task still owed, and what a node that finished a task did to every item of it. */
#include "store/store_backend.h"

#include <stdlib.h>
#include <string.h>

bool task_rows_owed(const struct task *task, const struct store_node *node) {
  int64_t below = task->type == TASK_PURGE ? node->fast_below : node->slow_below;
  /* Past the watermark, task_items derives its results; off the plan, it never had the task. */
  return task->plan_seq >= below &&
         plan_nodes_has(task->plan_nodes, task->plan_nodes_len, node->number);
}

uint8_t *task_rows_finished(const struct task *task, size_t *bytes, size_t *verified_bytes) {
  *bytes = item_states_bytes(task->target_count);
  *verified_bytes = item_verified_bytes(task->target_count);
  uint8_t *states = malloc(*bytes + *verified_bytes + 1);
  if (states) {
    item_states_fill(states, *bytes, ITEM_SUCCEEDED);
    memset(states + *bytes, 0xff, *verified_bytes);
  }
  return states;
}

void store_task_numbers(const struct task *task, int64_t out[STORE_TASK_NUMBERS]) {
  const int64_t numbers[STORE_TASK_NUMBERS] = {task->deadline_s,
                                               task->created_ms,
                                               task->started_ms,
                                               task->finished_ms,
                                               task->counters.total,
                                               task->counters.succeeded,
                                               task->counters.failed,
                                               task->counters.pending,
                                               task->counters.unsupported,
                                               (int64_t)task->target_counts[TARGET_URL],
                                               (int64_t)task->target_counts[TARGET_PREFIX],
                                               (int64_t)task->target_counts[TARGET_REGEX],
                                               (int64_t)task->target_counts[TARGET_TAG],
                                               task->planned};
  memcpy(out, numbers, sizeof(numbers));
}
