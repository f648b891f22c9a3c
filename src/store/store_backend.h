/* store_backend.h — what a store backend provides: a const table of its operations, one per
 * call of store.h (each documented there), in the shape of the agent's cache drivers
 * (agent/driver.h). A backend's connection starts with struct store, so store.c can dispatch every
 * call through the table of the store it is given; store_open picks the table by address. */
#ifndef CDR_STORE_BACKEND_H
#define CDR_STORE_BACKEND_H

#include "common/task_id.h"
#include "store/store.h"

/* The most a store call's own scratch arena (the node registry, a task with its targets, read
 * for a cancel) may take: it grows only as rows come, and the registry of a fleet of thousands
 * of nodes takes megabytes, so the bound is only against a runaway. */
#define STORE_SCRATCH_MAX ((size_t)1 << 30)

/* Sorts after every task id (ids are Crockford base32, compared byte by byte): the cursor of a
 * list's first page. */
#define STORE_ID_AFTER_ALL "~"

/* The columns of a task and a tenant, as every backend's tables name them. */
#define STORE_TASK_COLUMNS                                                                         \
  "id, tenant, type, mode, state, node_groups, headers, callback, deadline_s, created_ms, "        \
  "started_ms, finished_ms, total, succeeded, failed, pending, unsupported, urls, prefixes, "      \
  "regexes, tags, planned, callback_state, callback_attempts, verify, verified"

/* What a task read back has: its columns, then its plan. */
#define STORE_TASK_READ_COLUMNS STORE_TASK_COLUMNS ", plan_seq, plan_nodes"

#define STORE_TENANT_COLUMNS                                                                       \
  "name, access_key, secret, hosts, tag_prefix, quota_purge_urls, quota_purge_patterns, "          \
  "quota_preload_urls, rate_requests, rate_urls, created_ms"

/* A canceled task keeps its state and finish time whatever progress is saved after the cancel. */
#define STORE_UNLESS_CANCELED(column, value)                                                       \
  column " = CASE WHEN state = 'canceled' THEN " column " ELSE " value " END"

struct store_backend {
  const char *name;   /* "sqlite" */
  const char *scheme; /* what its addresses start with: "sqlite:" */
  /* What logs and errors show of the address whose scheme is followed by rest: never a
   * password. */
  void (*describe)(const char *rest, char *out, size_t size);
  /* Opens a connection to the store at the address whose scheme is followed by rest. */
  int (*open)(const char *address, const struct store_options *options, struct store **out,
              char *err, size_t err_size);
  void (*read_budget_start)(struct store *store);
  void (*close)(struct store *store);
  int (*begin)(struct store *store);
  int (*commit)(struct store *store);
  void (*rollback)(struct store *store);
  int (*task_insert)(struct store *store, const struct task *task);
  int (*task_admit)(struct store *store, struct task *task, int64_t now_ms,
                    const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]);
  int (*task_get)(struct store *store, const char *tenant, const char *id, struct arena *arena,
                  struct task **out);
  int (*task_cancel)(struct store *store, const char *tenant, const char *id, int64_t now_ms);
  int (*tasks_list)(struct store *store, const char *tenant, const enum task_state *state,
                    const char *after, size_t limit, struct arena *arena,
                    struct store_task_page *out);
  int (*targets_list)(struct store *store, const char *task_id, int64_t after, size_t limit,
                      struct arena *arena, struct store_target_page *out);
  int (*node_upsert)(struct store *store, const struct store_node *node);
  int (*node_marks_save)(struct store *store, const struct store_node_mark *marks, size_t count);
  int (*nodes_load)(struct store *store, struct arena *arena, struct store_node **out,
                    size_t *count);
  int (*task_plan)(struct store *store, const struct task *task);
  int (*task_progress)(struct store *store, const struct task *task,
                       const struct store_task_node *nodes, size_t node_count,
                       const struct store_failure *failures, size_t failure_count);
  int (*tasks_load)(struct store *store, const char *const *ids, size_t count, struct arena *arena,
                    struct task **out);
  int (*tasks_unfinished)(struct store *store, struct arena *arena, struct task ***out,
                          size_t *count);
  int (*task_nodes_load)(struct store *store, const char *task_id, struct arena *arena,
                         struct store_task_node **out, size_t *count);
  int (*unfinished_results)(struct store *store, struct arena *arena,
                            struct store_saved_results *out);
  int (*callback_attempt)(struct store *store, const char *task_id,
                          const struct callback_attempt *attempt, enum callback_state state);
  int (*callback_attempts_load)(struct store *store, struct task *task, struct arena *arena);
  int (*callbacks_pending)(struct store *store, struct arena *arena, struct task ***out,
                           size_t *count);
  /* store_tasks_prune's pieces: up to limit ids of finished tasks with ids below before and no
   * callback still due; and one such task deleted with everything of it, *rows the rows that
   * went. */
  int (*prune_pick)(struct store *store, const char *before, size_t limit,
                    char (*ids)[TASK_ID_LENGTH + 1], size_t *count);
  int (*task_delete)(struct store *store, const char *id, size_t *rows);
  int (*task_counts)(struct store *store, int64_t counts[6]);
  int (*node_delete)(struct store *store, const char *id);
  int (*failures_list)(struct store *store, const char *task_id, int64_t first, int64_t last,
                       struct arena *arena, struct store_failure **out, size_t *count);
  int (*tenant_insert)(struct store *store, const struct tenant *tenant);
  int (*tenant_update)(struct store *store, const struct tenant *tenant);
  int (*tenant_delete)(struct store *store, const char *name);
  int (*tenants_generation)(struct store *store, int64_t *out);
  int (*tenants_load)(struct store *store, struct arena *arena, struct tenant **out, size_t *count);
  int (*quota_usage)(struct store *store, const char *tenant, int64_t day,
                     int64_t used[QUOTA_COUNT]);
  /* Past store.c's check of an amount alone over its limit. */
  int (*quota_charge)(struct store *store, const char *tenant, int64_t day,
                      const int64_t amount[QUOTA_COUNT], const int64_t limit[QUOTA_COUNT],
                      int64_t used[QUOTA_COUNT]);
};

/* The head of every backend's connection. */
struct store {
  const struct store_backend *backend;
};

/* The integer columns of STORE_TASK_COLUMNS, deadline_s to planned, of task, in order
 * (task_rows.c). */
enum { STORE_TASK_NUMBERS = 14 };
void store_task_numbers(const struct task *task, int64_t out[STORE_TASK_NUMBERS]);

/* Whether node still owed task when task was canceled: in its plan, and the watermark of the
 * task's lane not past it (task_rows.c). */
bool task_rows_owed(const struct task *task, const struct store_node *node);

/* The result bitmaps of a node that finished task: every item succeeded, and verified. One
 * malloc'd block (free it): the states (*bytes), then the verified bits (*verified_bytes). */
uint8_t *task_rows_finished(const struct task *task, size_t *bytes, size_t *verified_bytes);

/* The backends. */
extern const struct store_backend store_sqlite_backend;   /* sqlite/ */
extern const struct store_backend store_postgres_backend; /* postgres/ */

#endif
