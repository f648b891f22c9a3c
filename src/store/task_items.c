/* task_items.c — assembles item rows from targets, per-node results (the rows kept, or what a
 * node's watermark says) and failure details. */
#include "store/task_items.h"

#include "common/error.h"

#include <string.h>

enum {
  /* (target, node) results one page holds at most, whatever its limit of items: a page costs the
   * reader, the JSON render and the client in proportion to its results, so 1,000 items on 200
   * nodes would cost 20x a page on 10 nodes. A page cut short says more follow (next_cursor). */
  TASK_ITEMS_RESULTS_MAX = 10000,
  /* (target, node) results a filtered page looks at before it answers, matched or not (at least
   * one target's), and at most this many targets */
  TASK_ITEMS_SCAN_RESULTS_MAX = 100000,
  TASK_ITEMS_SCAN_MAX = 10000,
};

/* How many targets' results on node_count nodes fit in results: at least one, at most most. */
static size_t task_items_fitting(size_t results, size_t node_count, size_t most) {
  size_t fit = node_count ? results / node_count : most;
  return fit == 0 ? 1 : fit < most ? fit : most;
}

/* Summary of one target over its nodes: pending (or canceled) while any node is pending, else
 * failed if any failed, else unsupported if any was, else succeeded. */
static enum item_state task_items_summary(const struct task *task, const struct item_row *row) {
  bool failed = false, unsupported = false;
  for (size_t i = 0; i < row->node_count; i++) {
    enum item_state state = row->nodes[i].state;
    if (state == ITEM_PENDING || state == ITEM_CANCELED)
      return task->state == TASK_CANCELED ? ITEM_CANCELED : ITEM_PENDING;
    failed |= state == ITEM_FAILED;
    unsupported |= state == ITEM_UNSUPPORTED;
  }
  if (row->node_count == 0)
    return task->state == TASK_CANCELED ? ITEM_CANCELED
           : task->state == TASK_FAILED ? ITEM_FAILED
                                        : ITEM_PENDING;
  return failed ? ITEM_FAILED : unsupported ? ITEM_UNSUPPORTED : ITEM_SUCCEEDED;
}

/* Fills row's per-node results for target index from the bitmaps and the failure details. */
static int task_items_fill(const struct task *task, struct item_row *row,
                           const struct store_task_node *nodes, size_t node_count,
                           const struct store_failure *failures, size_t failure_count,
                           struct arena *arena) {
  row->nodes = arena_alloc(arena, (node_count ? node_count : 1) * sizeof(*row->nodes));
  if (!row->nodes)
    return CDR_ENOMEM;
  row->node_count = node_count;
  size_t byte = (size_t)row->index / 4;
  for (size_t n = 0; n < node_count; n++) {
    struct item_node_result *result = &row->nodes[n];
    result->node_id = nodes[n].node_id;
    result->state = byte < nodes[n].states_len
                        ? item_states_get(nodes[n].states, (size_t)row->index)
                        : ITEM_PENDING;
    if (result->state == ITEM_PENDING && task->state == TASK_CANCELED)
      result->state = ITEM_CANCELED;
    result->verified = result->state == ITEM_SUCCEEDED && nodes[n].verified &&
                       (size_t)row->index / 8 < nodes[n].verified_len &&
                       item_verified_get(nodes[n].verified, (size_t)row->index);
    result->http_status = 0;
    result->reason = NULL;
    for (size_t f = 0; f < failure_count; f++) {
      if (failures[f].index == row->index && strcmp(failures[f].node_id, result->node_id) == 0) {
        result->state = failures[f].state; /* a detail is a final result, whatever is derived */
        result->verified = false;
        result->http_status = failures[f].http_status;
        result->reason = failures[f].reason;
      }
    }
  }
  row->target.state = task_items_summary(task, row);
  return 0;
}

/* A bitmap of targets 2-bit states, every one state, in arena. */
static uint8_t *task_items_states(size_t targets, enum item_state state, struct arena *arena) {
  size_t bytes = item_states_bytes(targets);
  uint8_t *states = arena_alloc(arena, bytes + 1);
  if (states)
    item_states_fill(states, bytes + 1, state);
  return states;
}

/* The per-node results of task, ordered by node id: the rows kept for it, and for every other
 * node of its plan what its watermark says — all succeeded (verified when the task asked) once
 * it passed the task or the task ended (a canceled task's unfinished nodes have rows), else all
 * pending. Failure details override either, item by item, in task_items_fill. */
static int task_items_nodes(struct store *store, const struct task *task, struct arena *arena,
                            struct store_task_node **out, size_t *count) {
  struct store_task_node *rows;
  size_t row_count;
  int rc = store_task_nodes_load(store, task->id, arena, &rows, &row_count);
  if (rc || !task->plan_nodes) {
    *out = rows;
    *count = row_count;
    return rc;
  }
  struct store_node *nodes;
  size_t node_count;
  if ((rc = store_nodes_load(store, arena, &nodes, &node_count)))
    return rc;
  size_t targets = task->target_count;
  uint8_t *done = task_items_states(targets, ITEM_SUCCEEDED, arena);
  uint8_t *open = task_items_states(targets, ITEM_PENDING, arena);
  uint8_t *verified = arena_alloc(arena, item_verified_bytes(targets) + 1);
  struct store_task_node *all = arena_alloc(arena, (row_count + node_count + 1) * sizeof(*all));
  if (!done || !open || !verified || !all)
    return CDR_ENOMEM;
  memset(verified, 0xff, item_verified_bytes(targets) + 1);
  bool ended = task_state_final(task->state) && task->state != TASK_CANCELED;
  size_t n = 0, r = 0;
  for (size_t i = 0; i < node_count; i++) {
    const struct store_node *node = &nodes[i];
    while (r < row_count && strcmp(rows[r].node_id, node->id) < 0)
      all[n++] = rows[r++];
    if (r < row_count && strcmp(rows[r].node_id, node->id) == 0) {
      all[n++] = rows[r++];
      continue;
    }
    if (!plan_nodes_has(task->plan_nodes, task->plan_nodes_len, node->number))
      continue;
    int64_t below = task->type == TASK_PURGE ? node->fast_below : node->slow_below;
    bool finished = ended || task->plan_seq < below;
    all[n++] = (struct store_task_node){.node_id = node->id,
                                        .states = finished ? done : open,
                                        .states_len = item_states_bytes(targets),
                                        .verified = finished && task->verify ? verified : NULL,
                                        .verified_len = item_verified_bytes(targets)};
  }
  while (r < row_count)
    all[n++] = rows[r++];
  *out = all;
  *count = n;
  return 0;
}

int task_items_page(struct store *store, const struct task *task, const enum item_state *filter,
                    int64_t after, size_t limit, struct arena *arena, struct item_page *out) {
  struct store_task_node *nodes;
  size_t node_count;
  int rc = task_items_nodes(store, task, arena, &nodes, &node_count);
  if (rc)
    return rc;
  limit = task_items_fitting(TASK_ITEMS_RESULTS_MAX, node_count, limit);
  out->rows = arena_alloc(arena, limit * sizeof(*out->rows));
  if (!out->rows)
    return CDR_ENOMEM;
  out->count = 0;
  out->next_cursor = -1;
  size_t scan_max =
      task_items_fitting(TASK_ITEMS_SCAN_RESULTS_MAX, node_count, TASK_ITEMS_SCAN_MAX);
  size_t scanned = 0;
  int64_t cursor = after;
  while (out->count < limit) {
    size_t want =
        filter ? (scan_max - scanned < 1000 ? scan_max - scanned : 1000) : limit - out->count;
    struct store_target_page page;
    struct store_failure *failures;
    size_t failure_count;
    if ((rc = store_targets_list(store, task->id, cursor, want, arena, &page)))
      return rc;
    if (page.count == 0)
      return 0;
    if ((rc = store_failures_list(store, task->id, page.indexes[0], page.indexes[page.count - 1],
                                  arena, &failures, &failure_count)))
      return rc;
    for (size_t i = 0; i < page.count && out->count < limit; i++) {
      struct item_row *row = &out->rows[out->count];
      row->index = page.indexes[i];
      row->target = page.targets[i];
      if ((rc = task_items_fill(task, row, nodes, node_count, failures, failure_count, arena)))
        return rc;
      cursor = row->index;
      if (!filter || row->target.state == *filter)
        out->count++;
    }
    scanned += page.count;
    bool more = page.more || cursor < page.indexes[page.count - 1];
    if (!more)
      return 0;
    if (out->count == limit || scanned >= scan_max) {
      out->next_cursor = cursor;
      return 0;
    }
  }
  return 0;
}
