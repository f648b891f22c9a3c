/* fabric_waiting.c — what an unfinished task waits for, for GET /v1/tasks/{id}: the nodes that
 * still owe it a result, how many of them are offline and since when, so that a task done on
 * every online node and waiting only for an offline one says so. */
#include "engine/fabric/fabric_internal.h"

#include <string.h>

/* Counts node, which owes the task a result, in waiting. */
static void fabric_waiting_add(struct task_waiting *waiting, const struct fabric_node *node) {
  waiting->nodes++;
  if (node->link)
    return;
  waiting->offline++;
  int64_t heard_ms = node->last_heartbeat_ms ? node->last_heartbeat_ms : node->last_hello_ms;
  if (!waiting->offline_since_ms || heard_ms < waiting->offline_since_ms)
    waiting->offline_since_ms = heard_ms;
}

bool fabric_task_waiting(struct fabric *fabric, const struct task *asked,
                         struct task_waiting *waiting) {
  enum fabric_lane lane = fabric_task_lane(asked);
  uint64_t pos = fabric_log_find(fabric, lane, asked->plan_seq);
  if (pos == UINT64_MAX)
    return false;
  *waiting = (struct task_waiting){0};
  const struct fabric_parked *parked = fabric_log_parked(&fabric->log[lane], pos);
  if (parked) { /* it waits for the nodes it was parked for, and only them */
    if (strcmp(parked->id, asked->id) != 0)
      return false;
    for (uint32_t n = 0; n < parked->unreached; n++) {
      const struct fabric_node *node = fabric_node_numbered(fabric, parked->numbers[n]);
      if (node)
        fabric_waiting_add(waiting, node);
    }
    return waiting->nodes > 0;
  }
  struct fabric_task *task = fabric_log_at(&fabric->log[lane], pos);
  if (strcmp(task->task->id, asked->id) != 0 || task->finished)
    return false;
  const struct task *t = task->task;
  fabric_records_mark(task, true);
  for (size_t i = 0; i < fabric->node_count; i++) {
    const struct fabric_node *node = fabric->nodes[i];
    if (!plan_nodes_has(t->plan_nodes, t->plan_nodes_len, node->number))
      continue;
    /* A node owes it a result while its cursor has not reached it or its record has items
     * pending (in flight, waiting for a retry or to be sent); an unrecorded one has finished. */
    if (node->scratch ? fabric_record_pending(node->scratch) > 0 : fabric_cursor_before(node, task))
      fabric_waiting_add(waiting, node);
  }
  fabric_records_mark(task, false);
  return waiting->nodes > 0;
}
