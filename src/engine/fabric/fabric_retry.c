/* fabric_retry.c — the fabric's clocks for items: retries with exponential backoff and jitter
 * after failures worth retrying, and task deadlines that fail whatever is still pending (with
 * node_offline when the node is not connected, deadline_exceeded otherwise). Both run on the
 * fabric's timer wheel; nothing polls. */
#include "common/backoff.h"
#include "common/clock.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"

#include <stdlib.h>
#include <string.h>

/* 5xx answers, transport failures and a full agent may pass; other failures (4xx, bad regex)
 * will not. */
static bool fabric_retryable(const struct item_result *result) {
  if (result->state != ITEM_FAILED)
    return false;
  if (result->http_status >= 500)
    return true;
  const char *reason = result->reason;
  return result->http_status == 0 &&
         (strcmp(reason, "connection_refused") == 0 || strcmp(reason, "timeout") == 0 ||
          strcmp(reason, "agent_busy") == 0 || strncmp(reason, "transport_error", 15) == 0);
}

static void fabric_on_retry(struct wheel_timer *timer) {
  struct fabric_retry *retry = (struct fabric_retry *)timer;
  struct fabric_task_node *task_node = retry->task_node;
  struct fabric *fabric = retry->fabric;
  list_remove(&task_node->task->retries, &retry->link);
  struct fabric_node *node = task_node->node;
  fabric_redeliver_push(node, task_node, retry->index);
  free(retry);
  task_node->refs--; /* the retry's hold passed to the redeliver list */
  fabric_record_settle(task_node);
  fabric_node_dispatch(fabric, node);
}

bool fabric_retry_failure(struct fabric *fabric, struct fabric_task_node *task_node, size_t index,
                          const struct item_result *result) {
  struct fabric_task *task = task_node->task;
  if (!fabric_retryable(result) || task->finished)
    return false;
  if (!task_node->attempts) {
    task_node->attempts = calloc(task->task->target_count, 1);
    if (!task_node->attempts)
      return false;
  }
  uint8_t *attempts = &task_node->attempts[index];
  if (*attempts < UINT8_MAX)
    (*attempts)++;
  if (*attempts >= fabric->config->max_attempts)
    return false;
  struct fabric_retry *retry = calloc(1, sizeof(*retry));
  if (!retry)
    return false;
  retry->fabric = fabric;
  retry->task_node = task_node;
  retry->index = index;
  task_node->refs++;
  list_push_front(&task->retries, &retry->link);
  uint64_t delay = backoff_delay_ms((uint64_t)fabric->config->retry_base_ms,
                                    (uint64_t)fabric->config->retry_max_ms, *attempts);
  timer_wheel_start(&fabric->wheel, &retry->timer, delay, fabric_on_retry);
  log_debug("item.retry", "task %s item %zu on node %s failed (%s), attempt %u, retry in %llu ms",
            task->task->id, index, task_node->node->id, result->reason, *attempts,
            (unsigned long long)delay);
  return true;
}

void fabric_retries_drop(struct fabric *fabric, struct fabric_task *task) {
  while (task->retries.first) {
    struct fabric_retry *retry = LIST_ENTRY(task->retries.first, struct fabric_retry, link);
    timer_wheel_stop(&fabric->wheel, &retry->timer);
    list_remove(&task->retries, &retry->link);
    struct fabric_task_node *record = retry->task_node;
    free(retry);
    record->refs--;
    fabric_record_settle(record);
  }
}

/* Fails every pending item of record. */
static void fabric_record_fail(struct fabric *fabric, struct fabric_task_node *record,
                               const struct fabric_node *only, const char *reason) {
  struct fabric_task *task = record->task;
  struct item_result result = {.state = ITEM_FAILED,
                               .reason = !only && !record->node->link ? "node_offline" : reason};
  for (size_t i = 0; i < task->task->target_count && !task->finished; i++) {
    if (item_states_get(record->states, i) == ITEM_PENDING)
      fabric_item_record(fabric, record, i, &result);
  }
}

void fabric_items_fail(struct fabric *fabric, struct fabric_task *task,
                       const struct fabric_node *only, const char *reason) {
  fabric_records_for_unreached(fabric, task, only);
  for (struct list_node *at = task->records.first, *next; at; at = next) {
    next = at->next; /* the record may be settled */
    struct fabric_task_node *record = LIST_ENTRY(at, struct fabric_task_node, link);
    if (only && record->node != only)
      continue;
    fabric_record_fail(fabric, record, only, reason);
    if (task->finished)
      return; /* finishing settled what it could; the rest goes with the task */
    fabric_record_settle(record);
  }
}

static void fabric_on_deadline(struct wheel_timer *timer) {
  struct fabric_task *task = CONTAINER_OF(timer, struct fabric_task, deadline);
  struct fabric *fabric = task->fabric;
  if (task->finished)
    return;
  log_info("task.deadline", "task %s reached its deadline of %llds with %lld results pending",
           task->task->id, (long long)task->task->deadline_s,
           (long long)task->task->counters.pending);
  fabric_retries_drop(fabric, task);
  fabric_items_fail(fabric, task, NULL, "deadline_exceeded");
}

void fabric_deadline_arm(struct fabric *fabric, struct fabric_task *task) {
  int64_t due = task->task->created_ms + task->task->deadline_s * 1000 - clock_now_ms();
  timer_wheel_start(&fabric->wheel, &task->deadline, due > 0 ? (uint64_t)due : 0,
                    fabric_on_deadline);
}
