/* fabric_waiting.c — what an unfinished task waits for, for GET /v1/tasks/{id}: the nodes that
 * still owe it a result, how many of them are offline and since when, so that a task done on
 * every online node and waiting only for an offline one says so. */
#include "engine/fabric/fabric_internal.h"

#include <string.h>

bool fabric_task_waiting(struct fabric *fabric, const struct task *asked,
                         struct task_waiting *waiting) {
  struct fabric_task *task = fabric_log_find(fabric, fabric_task_lane(asked), asked->plan_seq);
  if (!task || strcmp(task->task->id, asked->id) != 0 || task->finished)
    return false;
  const struct task *t = task->task;
  *waiting = (struct task_waiting){0};
  fabric_records_mark(task, true);
  for (size_t i = 0; i < fabric->node_count; i++) {
    const struct fabric_node *node = fabric->nodes[i];
    if (!plan_nodes_has(t->plan_nodes, t->plan_nodes_len, node->number))
      continue;
    /* A node owes it a result while its cursor has not reached it or its record has items
     * pending (in flight, waiting for a retry or to be sent); an unrecorded one has finished. */
    bool owes =
        node->scratch ? fabric_record_pending(node->scratch) > 0 : fabric_cursor_before(node, task);
    if (!owes)
      continue;
    waiting->nodes++;
    if (node->link)
      continue;
    waiting->offline++;
    int64_t heard_ms = node->last_heartbeat_ms ? node->last_heartbeat_ms : node->last_hello_ms;
    if (!waiting->offline_since_ms || heard_ms < waiting->offline_since_ms)
      waiting->offline_since_ms = heard_ms;
  }
  fabric_records_mark(task, false);
  return waiting->nodes > 0;
}
