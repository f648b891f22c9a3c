/* store_sqlite_internal.h — what the SQLite backend's files share: its connection, the prepared
 * statements, its operations (store_sqlite_backend's, each documented at its store.h call) and
 * small helpers. Not part of store.h's interface. */
#ifndef CDR_STORE_SQLITE_INTERNAL_H
#define CDR_STORE_SQLITE_INTERNAL_H

#include "store/admission.h"
#include "store/store_backend.h"

#include <sqlite3.h>

enum sqlite_statement {
  STMT_BEGIN,
  STMT_COMMIT,
  STMT_ROLLBACK,
  STMT_TASK_GET,
  STMT_TASKS_LIST,
  STMT_TASKS_LIST_STATE,
  STMT_TASKS_LIST_ALL,
  STMT_TASKS_LIST_ALL_STATE,
  STMT_TARGETS_LIST,
  STMT_NODES_LOAD,
  STMT_TASKS_UNFINISHED,
  STMT_TARGETS_ALL,
  STMT_TASK_NODES_LOAD,
  STMT_FAILURES_LIST,
  STMT_CALLBACKS_PENDING,
  STMT_CALLBACK_ATTEMPTS_LIST,
  STMT_TASK_COUNTS,
  STMT_TENANTS_LOAD,
  STMT_TENANTS_GENERATION,
  STMT_QUOTA_USAGE,
  STMT_TENANT_HAS_TASKS,
  STMT_TASK_IS_CANCELED,
  STMT_TASK_LOAD,
  STMT_UNFINISHED_TASK_NODES,
  STMT_UNFINISHED_FAILURES,
  STMT_FIRST_WRITE, /* statements from here on write */
  STMT_TASK_INSERT = STMT_FIRST_WRITE,
  STMT_TARGET_INSERT,
  STMT_TASK_CANCEL,
  STMT_NODE_UPSERT,
  STMT_TASK_PLAN,
  STMT_TASK_NODE_SAVE,
  STMT_TASK_NODE_HOLD,
  STMT_TASK_NODE_FINISH,
  STMT_TASK_PROGRESS,
  STMT_FAILURE_SAVE,
  STMT_CALLBACK_ATTEMPT_SAVE,
  STMT_CALLBACK_STATE,
  STMT_NODE_DELETE,
  STMT_NODE_MARKS,
  STMT_TENANT_INSERT,
  STMT_TENANT_UPDATE,
  STMT_TENANT_DELETE,
  STMT_TENANT_USAGE_DELETE,
  STMT_TENANTS_BUMP,
  STMT_QUOTA_CHARGE,
  STMT_PRUNE_PICK,
  STMT_PRUNE_TARGETS, /* the deletes of one pruned task, children first, task last */
  STMT_PRUNE_TASK_NODES,
  STMT_PRUNE_FAILURES,
  STMT_PRUNE_CALLBACK_ATTEMPTS,
  STMT_PRUNE_TASK,
  STMT_COUNT
};

struct sqlite_store {
  struct store base; /* its backend: store_sqlite_backend */
  sqlite3 *db;
  int64_t read_budget_ms;
  int64_t read_deadline_ms; /* clock_now_ms() after which a read is interrupted; 0: none */
  sqlite3_stmt *statements[STMT_COUNT];
  struct admission admission; /* the writer's ids and its transaction's quota charges */
  int lock_fd;                /* the engine lock (store_options.engine), -1 without */
};

/* The connection behind base, a store of this backend. */
static inline struct sqlite_store *sqlite_of(struct store *base) {
  return (struct sqlite_store *)base; /* base is its first member; NULL stays NULL */
}

/* The operations of store_sqlite_backend, each what its store.h call says. */
int sqlite_open(const char *dir, const struct store_options *options, struct store **out, char *err,
                size_t err_size);
void sqlite_read_budget_start(struct store *base);
void sqlite_close(struct store *base);
int sqlite_begin(struct store *base);
int sqlite_commit(struct store *base);
void sqlite_rollback(struct store *base);
int sqlite_task_insert(struct store *base, const struct task *task);
int sqlite_task_admit(struct store *base, struct task *task, int64_t now_ms,
                      const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]);
int sqlite_task_get(struct store *base, const char *tenant, const char *id, struct arena *arena,
                    struct task **out);
int sqlite_task_cancel(struct store *base, const char *tenant, const char *id, int64_t now_ms);
int sqlite_tasks_list(struct store *base, const char *tenant, const enum task_state *state,
                      const char *after, size_t limit, struct arena *arena,
                      struct store_task_page *out);
int sqlite_targets_list(struct store *base, const char *task_id, int64_t after, size_t limit,
                        struct arena *arena, struct store_target_page *out);
int sqlite_node_upsert(struct store *base, const struct store_node *node);
int sqlite_node_marks_save(struct store *base, const struct store_node_mark *marks, size_t count);
int sqlite_nodes_load(struct store *base, struct arena *arena, struct store_node **out,
                      size_t *count);
int sqlite_task_plan(struct store *base, const struct task *task);
int sqlite_task_progress(struct store *base, const struct task *task,
                         const struct store_task_node *nodes, size_t node_count,
                         const struct store_failure *failures, size_t failure_count);
int sqlite_tasks_load(struct store *base, const char *const *ids, size_t count, struct arena *arena,
                      struct task **out);
int sqlite_tasks_unfinished(struct store *base, struct arena *arena, struct task ***out,
                            size_t *count);
int sqlite_task_nodes_load(struct store *base, const char *task_id, struct arena *arena,
                           struct store_task_node **out, size_t *count);
int sqlite_unfinished_results(struct store *base, struct arena *arena,
                              struct store_saved_results *out);
int sqlite_callback_attempt(struct store *base, const char *task_id,
                            const struct callback_attempt *attempt, enum callback_state state);
int sqlite_callback_attempts_load(struct store *base, struct task *task, struct arena *arena);
int sqlite_callbacks_pending(struct store *base, struct arena *arena, struct task ***out,
                             size_t *count);
int sqlite_prune_pick(struct store *base, const char *before, size_t limit,
                      char (*ids)[TASK_ID_LENGTH + 1], size_t *count);
int sqlite_task_delete(struct store *base, const char *id, size_t *rows);
int sqlite_task_counts(struct store *base, int64_t counts[6]);
int sqlite_node_delete(struct store *base, const char *id);
int sqlite_failures_list(struct store *base, const char *task_id, int64_t first, int64_t last,
                         struct arena *arena, struct store_failure **out, size_t *count);
int sqlite_tenant_insert(struct store *base, const struct tenant *tenant);
int sqlite_tenant_update(struct store *base, const struct tenant *tenant);
int sqlite_tenant_delete(struct store *base, const char *name);
int sqlite_tenants_generation(struct store *base, int64_t *out);
int sqlite_tenants_load(struct store *base, struct arena *arena, struct tenant **out,
                        size_t *count);
int sqlite_quota_usage(struct store *base, const char *tenant, int64_t day,
                       int64_t used[QUOTA_COUNT]);
int sqlite_quota_charge(struct store *base, const char *tenant, int64_t day,
                        const int64_t amount[QUOTA_COUNT], const int64_t limit[QUOTA_COUNT],
                        int64_t used[QUOTA_COUNT]);

static inline bool sqlite_statement_writes(int statement) { return statement >= STMT_FIRST_WRITE; }

/* Maps an SQLite result to a cdr code, logging the database's own words for operators. */
int sqlite_error(struct sqlite_store *store, int rc, const char *what);

/* Runs a statement that returns no rows, then resets it and clears its bindings. */
int sqlite_run(struct sqlite_store *store, enum sqlite_statement which, const char *what);

/* Resets a statement after a read loop and turns the last step's code (rc) into a cdr code, unless
 * err already holds one. */
int sqlite_finish(struct sqlite_store *store, sqlite3_stmt *stmt, int rc, int err,
                  const char *what);

/* Grows *items (of size bytes each) in the arena to hold at least count + 1. */
int sqlite_grow(struct arena *arena, void **items, size_t size, size_t count, size_t *cap);

/* Binds text (SQLITE_STATIC: it must outlive the step), or NULL. */
void sqlite_bind_text(sqlite3_stmt *stmt, int index, const char *text);

/* Copies text column col into the arena; NULL stays NULL. Sets *failed when out of room. */
const char *sqlite_column_text(sqlite3_stmt *stmt, int col, struct arena *arena, bool *failed);

/* A copy of blob column col in arena (NUL-padded by one byte); sets *failed when out of memory. */
uint8_t *sqlite_column_blob(sqlite3_stmt *stmt, int col, struct arena *arena, size_t *len,
                            bool *failed);

/* Reads one row of STORE_TASK_READ_COLUMNS into a task allocated in arena (targets not loaded). */
int sqlite_task_from_row(sqlite3_stmt *stmt, struct arena *arena, struct task **out);

/* Gives every node of canceled task's plan whose watermark has not passed it a row of its own,
 * every item pending (so canceled), unless it has one (store_sqlite_fabric.c). */
int sqlite_task_nodes_hold(struct sqlite_store *store, const struct task *task);

#endif
