/* fabric_recover.c — the fabric's start from the store: the node registry, then every unfinished
 * task put back into its lane's log in plan order, each node's cursor at its watermark, removed
 * nodes' debts ended, and the callbacks still due resumed. */
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"

#include <stdlib.h>
#include <string.h>

/* qsort order of tasks read back: those resumed from their plans by plan_seq, then the others
 * as they came (their ids are time-sortable). */
static int fabric_task_plan_order(const void *a, const void *b) {
  const struct task *x = *(const struct task *const *)a, *y = *(const struct task *const *)b;
  if (task_resumable(x) != task_resumable(y))
    return task_resumable(x) ? -1 : 1;
  if (task_resumable(x))
    return x->plan_seq < y->plan_seq ? -1 : x->plan_seq > y->plan_seq;
  return strcmp(x->id, y->id);
}

/* Reads the registry and every unfinished task back from the store (start-up, before the loop
 * runs, so blocking reads are fine here). */
/* The rows of ids (count of them, in byte order) equal to id: how many, from *first. */
static size_t recover_range(const char *const *ids, size_t count, const char *id, size_t *first) {
  size_t low = 0, high = count;
  while (low < high) {
    size_t middle = low + (high - low) / 2;
    if (strcmp(ids[middle], id) < 0)
      low = middle + 1;
    else
      high = middle;
  }
  size_t end = low;
  while (end < count && strcmp(ids[end], id) == 0)
    end++;
  *first = low;
  return end - low;
}

int fabric_recover(struct fabric *fabric) {
  struct store_options options = {.read_only = true};
  struct store *store;
  char err[512];
  if (store_open(fabric->config->store_address, &options, &store, err, sizeof(err))) {
    log_error("fabric.recover", "%s", err);
    return CDR_ESTORE_UNAVAILABLE;
  }
  struct arena arena;
  arena_init(&arena, (size_t)1 << 34);
  struct store_node *nodes;
  size_t node_count = 0, task_count = 0;
  struct task **tasks;
  int rc = store_nodes_load(store, &arena, &nodes, &node_count);
  for (size_t i = 0; !rc && i < node_count; i++) {
    struct fabric_node *node = fabric_node_restore(fabric, &nodes[i]);
    if (!node) {
      rc = CDR_ENOMEM;
      break;
    }
    /* New plans must come after everything a watermark already passed. */
    for (int lane = 0; lane < FABRIC_LANES; lane++) {
      if (node->saved_below[lane] - 1 > fabric->plan_seq)
        fabric->plan_seq = node->saved_below[lane] - 1;
    }
  }
  fabric_nodes_count(fabric);
  if (!rc)
    rc = store_tasks_unfinished(store, &arena, &tasks, &task_count);
  /* Their saved results, all in two reads (one a task would be 200,000 round trips to a
   * PostgreSQL server with 100,000 unfinished tasks). */
  struct store_saved_results results = {0};
  if (!rc && task_count)
    rc = store_unfinished_results(store, &arena, &results);
  for (size_t i = 0; i < task_count; i++) {
    if (tasks[i]->plan_seq > fabric->plan_seq)
      fabric->plan_seq = tasks[i]->plan_seq;
  }
  /* The planned tasks take their places in the logs in plan order, the cursors go where the
   * watermarks say, and then the tasks never planned are planned anew, after them. */
  size_t resumable = 0;
  if (!rc && task_count > 1)
    qsort(tasks, task_count, sizeof(*tasks), fabric_task_plan_order);
  while (!rc && resumable < task_count && task_resumable(tasks[resumable]))
    resumable++;
  for (size_t i = 0; !rc && i <= task_count; i++) {
    if (i == resumable)
      fabric_log_place_cursors(fabric);
    if (i == task_count)
      break;
    size_t saved_first = 0, saved_count = 0, failure_first = 0, failure_count = 0;
    if (tasks[i]->planned) {
      saved_count =
          recover_range(results.node_task_ids, results.node_count, tasks[i]->id, &saved_first);
      failure_count = recover_range(results.failure_task_ids, results.failure_count, tasks[i]->id,
                                    &failure_first);
    }
    fabric_task_recover(fabric, tasks[i], saved_count ? results.nodes + saved_first : NULL,
                        saved_count, failure_count ? results.failures + failure_first : NULL,
                        failure_count);
  }
  /* A node removed just before a stop: its removal was saved, the failures of what it owed may
   * not have been. Its tasks were read back waiting for it; they stop waiting now. */
  for (size_t i = 0; !rc && i < fabric->node_count; i++) {
    if (fabric->nodes[i]->removed)
      fabric_node_forget(fabric, fabric->nodes[i]);
  }
  struct task **callbacks = NULL;
  size_t callback_count = 0;
  if (!rc)
    rc = store_callbacks_pending(store, &arena, &callbacks, &callback_count);
  for (size_t i = 0; !rc && i < callback_count; i++)
    fabric_callback_deliver(fabric, callbacks[i]);
  if (rc)
    log_error("fabric.recover", "cannot read nodes and tasks back: %s", cdr_error_message(rc));
  else
    log_info("fabric.recovered",
             "%zu nodes registered, %zu unfinished tasks resumed, %zu callbacks to deliver",
             node_count, task_count, callback_count);
  arena_release(&arena);
  store_close(store);
  return rc;
}
