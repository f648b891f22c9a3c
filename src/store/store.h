/* store/ — durable storage behind one interface (this file): each call is sent by store.c to the
 * backend of the store it is given, through that backend's table of operations
 * (store_backend.h); item pages (task_items.h); the SQLite backend (sqlite/, sharing
 * sqlite/store_sqlite_internal.h). What one engine per store assumes (ids in commit order, exact
 * quota charges, the data directory's lock) lives in the backend. May include store/, model/ and
 * common/ (scripts/check-layers); linked as cdr_store.
 *
 * store.h — durable task storage: the one interface the engine writes tasks through.
 *
 * A struct store is one connection to the backing database (SQLite in WAL mode today; PostgreSQL
 * will implement the same calls for cluster mode). One thread uses a connection at a time. Writers
 * group many inserts into one transaction with store_begin/store_commit: a task is durable once the
 * commit that holds it has returned 0, and not before. Readers see only committed tasks.
 * Every call returns 0 or a negative cdr error code; storage failures (disk full, read-only file,
 * I/O error) come back as CDR_ESTORE_UNAVAILABLE after being logged with the database's reason. */
#ifndef CDR_STORE_H
#define CDR_STORE_H

#include "common/arena.h"
#include "model/task.h"
#include "model/tenant.h"

#include <stdbool.h>

struct store;

struct store_options {
  bool read_only;         /* open an existing database for reading only */
  bool synchronous_full;  /* fsync the WAL on every commit (survives power loss), else only on
                             checkpoints */
  int64_t read_budget_ms; /* a read running longer stops with CDR_EREAD_TOO_LONG; 0: no limit */
  bool engine;            /* the engine's writer: SQLite allows one engine per store, so this
                             takes the data directory's lock (released at store_close), and fails
                             when another engine holds it */
};

/* Store addresses name a backend and where its store is: "sqlite:DIR" is the SQLite database in
 * directory DIR; "postgresql://USER@HOST:PORT/DB" a PostgreSQL database, in libpq's URI form (its
 * parameters, a password among them, are libpq's). STORE_ADDRESSES says so to people. */
#define STORE_ADDRESSES "sqlite:DIR or postgresql://USER@HOST:PORT/DB"

/* Checks that address names a backend this build has; 0, or CDR_ECONFIG with err saying what is
 * accepted (the address is not repeated: it may hold a password). */
int store_address_check(const char *address, char *err, size_t err_size);

/* What logs and errors show of address: where the store is, never a password it holds. */
void store_address_describe(const char *address, char *out, size_t size);

/* Opens (and for writers creates, with its directory and schema) the store at address.
 * On failure returns CDR_ESTORE_UNAVAILABLE with the reason in err (CDR_ECONFIG for an address no
 * backend takes). *out is owned by the caller, released with store_close. */
int store_open(const char *address, const struct store_options *options, struct store **out,
               char *err, size_t err_size);

/* Starts the read budget (store_options.read_budget_ms) of the calls that follow, which together
 * may take that long; call it before each request's reads. */
void store_read_budget_start(struct store *store);

/* Closes the connection; NULL is allowed. */
void store_close(struct store *store);

/* Transactions for group commit. store_begin takes the write lock; store_commit makes every write
 * since durable; store_rollback forgets them. */
int store_begin(struct store *store);
int store_commit(struct store *store);
void store_rollback(struct store *store);

/* Inserts task (which must have an id and creation time) with its targets. Inside a transaction.
 * A backend may send inserts with the transaction's next call or its commit: a failure (a
 * duplicate id) may come from one of those. */
int store_task_insert(struct store *store, const struct task *task);

/* Admits task in the open transaction, in one call: gives it its id and creation time (ids
 * increase in the order tasks are admitted; with the one writer this backend allows, that is
 * commit order, which the task list's cursor relies on), charges its tenant's quotas of that day
 * (UTC) against limit (limit[i] == 0: none), and inserts it with its targets. The charges of a
 * transaction are written at store_commit. Returns 0; CDR_EQUOTA_EXCEEDED with nothing done and
 * used[] the use as it stands, this transaction's earlier tasks included; or a store error. */
int store_task_admit(struct store *store, struct task *task, int64_t now_ms,
                     const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]);

/* Reads task id of tenant into *out, allocated in arena, without its targets (targets == NULL).
 * CDR_ETASK_NOT_FOUND when there is none (other tenants' tasks are not found either). */
int store_task_get(struct store *store, const char *tenant, const char *id, struct arena *arena,
                   struct task **out);

/* Cancels task id of tenant at now_ms: the task ends canceled and its pending targets become
 * canceled; every node of its plan whose watermark has not passed it gets a row of its own,
 * every item pending, unless it has one (the fabric replaces those of the nodes that did finish).
 * CDR_ETASK_NOT_FOUND, or CDR_ETASK_FINAL when it has already finished. */
int store_task_cancel(struct store *store, const char *tenant, const char *id, int64_t now_ms);

struct store_task_page {
  struct task **tasks; /* count tasks, newest first, in the caller's arena */
  size_t count;
  bool more; /* further tasks exist after the last one */
};

/* Lists tenant's tasks (every tenant's when tenant is NULL) newest first, only those in *state when
 * state is non-NULL, starting after task id `after` when non-NULL, at most limit of them. */
int store_tasks_list(struct store *store, const char *tenant, const enum task_state *state,
                     const char *after, size_t limit, struct arena *arena,
                     struct store_task_page *out);

struct store_target_page {
  struct task_target *targets; /* count targets in request order, in the caller's arena */
  int64_t *indexes;            /* position of each target within its task */
  size_t count;
  bool more;
};

/* Lists the targets of task_id (already known to belong to the caller) in order, with index
 * greater than after, at most limit of them. Their state is left ITEM_PENDING: per-node results
 * come from task_items_page. */
int store_targets_list(struct store *store, const char *task_id, int64_t after, size_t limit,
                       struct arena *arena, struct store_target_page *out);

/* An edge node as registered by its agent. */
struct store_node {
  const char *id;
  const char *groups_json; /* JSON array of group names */
  const char *cache_kind;
  const char *agent_version;
  int64_t registered_ms;   /* first Hello */
  int64_t last_seen_ms;    /* latest Hello */
  int64_t first_result_ms; /* its first result of any item, 0 while it has sent none */
  int64_t number;          /* names it in task plans (task.plan_nodes); never given to another */
  /* Watermarks, one per lane (purges, preloads): the node has finished every task of that lane
   * whose plan_seq is below it. Only what is past them is sent again after a restart. */
  int64_t fast_below, slow_below;
  bool removed; /* removed by an operator; kept so its number and its results stay known */
};

/* A node's watermarks, as store_node_marks_save writes them. */
struct store_node_mark {
  const char *node_id;
  int64_t fast_below, slow_below;
};

/* Registers node, or updates its groups, cache, version and last_seen_ms (inside a transaction). */
int store_node_upsert(struct store *store, const struct store_node *node);

/* Saves nodes' watermarks (inside a transaction, after the results they cover). */
int store_node_marks_save(struct store *store, const struct store_node_mark *marks, size_t count);
/* Loads every registered node, removed ones too, into arena, ordered by id. */
int store_nodes_load(struct store *store, struct arena *arena, struct store_node **out,
                     size_t *count);

/* The results of one task on one node: 2 bits per target (item_states_* in task.h), and which
 * succeeded results were verified (item_verified_*). Kept only for the (task, node) pairs that
 * a plan and watermarks cannot tell: a node with a success the agent did not verify though the
 * task asked, and a canceled task's nodes that had not finished (and tasks planned by older
 * engines). Every other pair's results are: a failure detail where there is one, else succeeded
 * (verified when the task asked) once the node's watermark passed the task, else pending. */
struct store_task_node {
  const char *node_id;
  uint8_t *states; /* item_states_bytes(target_count) bytes */
  size_t states_len;
  uint8_t *verified; /* item_verified_bytes(target_count) bytes; may be shorter (older rows) */
  size_t verified_len;
  int64_t succeeded, failed, unsupported, verified_count;
};

/* The detail of one result that was not a success: every failed and unsupported result has one. */
struct store_failure {
  int64_t index; /* target position */
  const char *node_id;
  enum item_state state; /* ITEM_FAILED or ITEM_UNSUPPORTED */
  uint32_t http_status;  /* cache's status, 0 when none */
  const char *reason;    /* "http_503", "connection_refused", "node_offline", ... */
};

/* Records the plan of task: plan_seq, plan_nodes (its results all pending), total and pending,
 * and state / finished_ms (a task with no node fails at once) unless the task was canceled. One
 * row, however many nodes. */
int store_task_plan(struct store *store, const struct task *task);

/* Saves a task's progress: counters, state and times (a canceled task keeps its state), the
 * result bitmaps of the given nodes (those a plan cannot tell, above) and the failure details.
 * Inside a transaction. */
int store_task_progress(struct store *store, const struct task *task,
                        const struct store_task_node *nodes, size_t node_count,
                        const struct store_failure *failures, size_t failure_count);

/* Loads tasks ids[0..count) with their targets and plan into arena: out[i] is ids[i]'s, or NULL
 * when there is no such task. */
int store_tasks_load(struct store *store, const char *const *ids, size_t count, struct arena *arena,
                     struct task **out);

/* Loads every queued or running task with its targets and plan, oldest first, into arena. */
int store_tasks_unfinished(struct store *store, struct arena *arena, struct task ***out,
                           size_t *count);

/* Loads the per-node result bitmaps kept for task_id (see store_task_node), ordered by node id. */
int store_task_nodes_load(struct store *store, const char *task_id, struct arena *arena,
                          struct store_task_node **out, size_t *count);

/* The saved results of every planned unfinished task, for a restart: what store_task_nodes_load
 * and store_failures_list read for one task, for all of them in two reads. Each array is ordered
 * by task id (byte order), node_task_ids[i] naming nodes[i]'s task, failure_task_ids[i]
 * failures[i]'s. */
struct store_saved_results {
  const char **node_task_ids;
  struct store_task_node *nodes;
  size_t node_count;
  const char **failure_task_ids;
  struct store_failure *failures;
  size_t failure_count;
};
int store_unfinished_results(struct store *store, struct arena *arena,
                             struct store_saved_results *out);

/* Records one callback attempt of task_id and the task's callback state after it. */
int store_callback_attempt(struct store *store, const char *task_id,
                           const struct callback_attempt *attempt, enum callback_state state);

/* Loads the callback attempts of task into task->callback_attempts (callback_attempt_count
 * entries), in the caller's arena. */
int store_callback_attempts_load(struct store *store, struct task *task, struct arena *arena);

/* Loads every finished task whose callback is still to be delivered, oldest first. */
int store_callbacks_pending(struct store *store, struct arena *arena, struct task ***out,
                            size_t *count);

/* Deletes finished tasks (done, partial, failed, canceled, with no callback still due) created
 * before before_ms, with their targets, per-node results, failure details and callback attempts
 * — stopping once about max_rows rows went, so each call is a small piece of work. *pruned:
 * tasks deleted; *more: some may remain. Inside a transaction. */
int store_tasks_prune(struct store *store, int64_t before_ms, size_t max_rows, size_t *pruned,
                      bool *more);

/* Counts the tasks in each state (six entries, enum task_state order). */
int store_task_counts(struct store *store, int64_t counts[6]);

/* Marks node id removed (an operator removed it): it stays loaded, flagged, until it returns. */
int store_node_delete(struct store *store, const char *id);

/* Loads the failure details of task_id for targets first..last (inclusive). */
int store_failures_list(struct store *store, const char *task_id, int64_t first, int64_t last,
                        struct arena *arena, struct store_failure **out, size_t *count);

/* Adds tenant (every field set, created_ms included) and moves the tenant generation on. Inside a
 * transaction. CDR_ETENANT_EXISTS when its name or access key is taken, CDR_ETENANT_NAME_TAKEN
 * when tasks of a removed tenant of that name remain (the name cannot be given again). */
int store_tenant_insert(struct store *store, const struct tenant *tenant);

/* Replaces the keys, hosts, tag prefix, quotas and rates of the tenant called tenant->name and
 * moves the generation on. CDR_ETENANT_NOT_FOUND, or CDR_ETENANT_EXISTS when the new access key
 * is another tenant's. Inside a transaction. */
int store_tenant_update(struct store *store, const struct tenant *tenant);

/* Removes tenant name and its quota use (its tasks stay) and moves the generation on.
 * CDR_ETENANT_NOT_FOUND when there is none. Inside a transaction. */
int store_tenant_delete(struct store *store, const char *name);

/* Reads the tenant generation: a number every tenant change increases. */
int store_tenants_generation(struct store *store, int64_t *out);

/* Loads every tenant, ordered by access key, into arena. */
int store_tenants_load(struct store *store, struct arena *arena, struct tenant **out,
                       size_t *count);

/* Reads tenant's use of each quota on day (days since the epoch, UTC); zeros when none. */
int store_quota_usage(struct store *store, const char *tenant, int64_t day,
                      int64_t used[QUOTA_COUNT]);

/* Adds amount[] to tenant's use on day unless that would take a quota with a limit (limit[i] > 0)
 * over it. Returns 0, or CDR_EQUOTA_EXCEEDED with nothing added and used[] set to the use as it
 * stands. Inside a transaction. */
int store_quota_charge(struct store *store, const char *tenant, int64_t day,
                       const int64_t amount[QUOTA_COUNT], const int64_t limit[QUOTA_COUNT],
                       int64_t used[QUOTA_COUNT]);

#endif
