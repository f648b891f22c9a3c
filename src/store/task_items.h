/* task_items.h — one page of a task's items: each target with its result on every node, as
 * GET /v1/tasks/{id}/items shows them. Runs on a store thread. */
#ifndef CDR_TASK_ITEMS_H
#define CDR_TASK_ITEMS_H

#include "store/store.h"

struct item_node_result {
  const char *node_id;
  enum item_state state;
  bool verified;        /* succeeded, and the agent saw the cache no longer hold it */
  uint32_t http_status; /* failed or unsupported results: the cache's status, 0 when none */
  const char *reason;   /* failed or unsupported results: why; NULL otherwise */
};

struct item_row {
  int64_t index;
  struct task_target target; /* target.state summarises the nodes' results */
  struct item_node_result *nodes;
  size_t node_count;
};

struct item_page {
  struct item_row *rows;
  size_t count;
  int64_t next_cursor; /* pass as `after` for the next page; -1 on the last page */
};

/* Reads the items of task after index `after`: at most limit rows (fewer when their results on
 * every node would not fit a page), only those whose summary state is *filter when filter is
 * non-NULL. A filtered page looks at a bounded number of targets and may
 * hold fewer rows than limit while next_cursor still says more follow. Allocates in arena. */
int task_items_page(struct store *store, const struct task *task, const enum item_state *filter,
                    int64_t after, size_t limit, struct arena *arena, struct item_page *out);

#endif
