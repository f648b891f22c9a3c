/* store_postgres_internal.h — what the PostgreSQL backend's files share: its connection, the
 * prepared statements, its operations (store_postgres_backend's, each documented at its store.h
 * call) and small helpers for parameters, results and errors. Not part of store.h's interface. */
#ifndef CDR_STORE_POSTGRES_INTERNAL_H
#define CDR_STORE_POSTGRES_INTERNAL_H

#include "common/buf.h"
#include "store/admission.h"
#include "store/store_backend.h"

#include <libpq-fe.h>

enum pg_statement {
  PG_TASK_GET,
  PG_TASKS_LIST,
  PG_TASKS_LIST_STATE,
  PG_TASKS_LIST_ALL,
  PG_TASKS_LIST_ALL_STATE,
  PG_TARGETS_LIST,
  PG_NODES_LOAD,
  PG_TASKS_UNFINISHED,
  PG_TARGETS_ALL,
  PG_TARGETS_UNFINISHED,
  PG_UNFINISHED_TASK_NODES,
  PG_UNFINISHED_FAILURES,
  PG_TASK_NODES_LOAD,
  PG_FAILURES_LIST,
  PG_CALLBACKS_PENDING,
  PG_CALLBACK_ATTEMPTS_LIST,
  PG_TASK_COUNTS,
  PG_TENANTS_LOAD,
  PG_TENANTS_GENERATION,
  PG_QUOTA_USAGE,
  PG_TENANT_HAS_TASKS,
  PG_TENANT_FOUND,
  PG_TASK_IS_CANCELED,
  PG_TASK_LOAD,
  PG_FIRST_WRITE,                   /* statements from here on write */
  PG_TASKS_INSERT = PG_FIRST_WRITE, /* many rows: columns as arrays (store_postgres_batch.c) */
  PG_TARGETS_INSERT,
  PG_TASK_CANCEL,
  PG_NODE_UPSERT,
  PG_TASK_PLAN,
  PG_TASK_NODE_SAVE,
  PG_TASK_NODE_HOLD,
  PG_TASK_NODE_FINISH,
  PG_TASK_PROGRESS,
  PG_FAILURE_SAVE,
  PG_CALLBACK_ATTEMPT_SAVE,
  PG_CALLBACK_STATE,
  PG_NODE_DELETE,
  PG_NODE_MARKS,
  PG_TENANT_INSERT,
  PG_TENANT_UPDATE,
  PG_TENANT_DELETE,
  PG_TENANT_USAGE_DELETE,
  PG_TENANTS_BUMP,
  PG_QUOTA_CHARGE,
  PG_PRUNE_PICK,
  PG_PRUNE_TARGETS, /* the deletes of one pruned task, children first, task last */
  PG_PRUNE_TASK_NODES,
  PG_PRUNE_FAILURES,
  PG_PRUNE_CALLBACK_ATTEMPTS,
  PG_PRUNE_TASK,
  PG_STATEMENT_COUNT
};

/* The schema version this build writes; a database of a newer one is refused at open. */
#define PG_SCHEMA_VERSION 2

/* The most parameters a statement takes. */
enum { PG_PARAMS_MAX = 28 };

/* A statement's parameters: text, 64-bit integers as text, bytes in binary. */
struct pg_params {
  int count;
  const char *values[PG_PARAMS_MAX];
  int lengths[PG_PARAMS_MAX];
  int formats[PG_PARAMS_MAX];
  char numbers[PG_PARAMS_MAX][24];
};

enum { PG_BATCH_TASK_COLUMNS = 26, PG_BATCH_TARGET_COLUMNS = 4 };

/* Task inserts not sent yet, each column the elements of an array literal
 * (store_postgres_batch.c). */
struct pg_batch {
  struct buf tasks[PG_BATCH_TASK_COLUMNS];     /* STORE_TASK_COLUMNS, in order */
  struct buf targets[PG_BATCH_TARGET_COLUMNS]; /* task_id, idx, kind, value */
  size_t task_count, target_count;
};

struct pg_store {
  struct store base; /* its backend: store_postgres_backend */
  PGconn *conn;
  bool read_only;
  bool engine;                /* holds the engine lock (store_options.engine) */
  bool prepared;              /* this connection has its statements */
  bool in_transaction;        /* between store_begin and its commit or rollback: pipeline mode */
  size_t queued;              /* statements sent in the pipeline whose results are not collected */
  int64_t read_budget_ms;     /* also the statement_timeout of a reading connection */
  int64_t read_deadline_ms;   /* clock_now_ms() after which reads stop; 0: none */
  struct admission admission; /* the writer's ids and its transaction's quota charges */
  struct pg_batch batch;      /* the transaction's task inserts not sent yet */
  char address[1024];         /* for log lines and errors: the password left out */
  char password[256];         /* the address's, kept out of libpq's messages we repeat */
  char uri[1024];             /* what libpq connects to: never shown (it may hold the password) */
  char xact_id[24];           /* the open transaction's id, to ask what became of its commit */
};

static inline struct pg_store *pg_of(struct store *base) {
  return (struct pg_store *)base; /* base is its first member; NULL stays NULL */
}

/* The operations of store_postgres_backend, each what its store.h call says. */
void pg_describe(const char *rest, char *out, size_t size);
int pg_open(const char *address, const struct store_options *options, struct store **out, char *err,
            size_t err_size);
void pg_read_budget_start(struct store *base);
void pg_close(struct store *base);
int pg_begin(struct store *base);
int pg_commit(struct store *base);
void pg_rollback(struct store *base);
int pg_task_insert(struct store *base, const struct task *task);
int pg_task_admit(struct store *base, struct task *task, int64_t now_ms,
                  const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]);
int pg_task_get(struct store *base, const char *tenant, const char *id, struct arena *arena,
                struct task **out);
int pg_task_cancel(struct store *base, const char *tenant, const char *id, int64_t now_ms);
int pg_tasks_list(struct store *base, const char *tenant, const enum task_state *state,
                  const char *after, size_t limit, struct arena *arena,
                  struct store_task_page *out);
int pg_targets_list(struct store *base, const char *task_id, int64_t after, size_t limit,
                    struct arena *arena, struct store_target_page *out);
int pg_node_upsert(struct store *base, const struct store_node *node);
int pg_node_marks_save(struct store *base, const struct store_node_mark *marks, size_t count);
int pg_nodes_load(struct store *base, struct arena *arena, struct store_node **out, size_t *count);
int pg_task_plan(struct store *base, const struct task *task);
int pg_task_progress(struct store *base, const struct task *task,
                     const struct store_task_node *nodes, size_t node_count,
                     const struct store_failure *failures, size_t failure_count);
int pg_tasks_load(struct store *base, const char *const *ids, size_t count, struct arena *arena,
                  struct task **out);
int pg_tasks_unfinished(struct store *base, struct arena *arena, struct task ***out, size_t *count);
int pg_task_nodes_load(struct store *base, const char *task_id, struct arena *arena,
                       struct store_task_node **out, size_t *count);
int pg_unfinished_results(struct store *base, struct arena *arena, struct store_saved_results *out);
int pg_callback_attempt(struct store *base, const char *task_id,
                        const struct callback_attempt *attempt, enum callback_state state);
int pg_callback_attempts_load(struct store *base, struct task *task, struct arena *arena);
int pg_callbacks_pending(struct store *base, struct arena *arena, struct task ***out,
                         size_t *count);
int pg_prune_pick(struct store *base, const char *before, size_t limit,
                  char (*ids)[TASK_ID_LENGTH + 1], size_t *count);
int pg_task_delete(struct store *base, const char *id, size_t *rows);
int pg_task_counts(struct store *base, int64_t counts[6]);
int pg_node_delete(struct store *base, const char *id);
int pg_failures_list(struct store *base, const char *task_id, int64_t first, int64_t last,
                     struct arena *arena, struct store_failure **out, size_t *count);
int pg_tenant_insert(struct store *base, const struct tenant *tenant);
int pg_tenant_update(struct store *base, const struct tenant *tenant);
int pg_tenant_delete(struct store *base, const char *name);
int pg_tenants_generation(struct store *base, int64_t *out);
int pg_tenants_load(struct store *base, struct arena *arena, struct tenant **out, size_t *count);
int pg_quota_usage(struct store *base, const char *tenant, int64_t day, int64_t used[QUOTA_COUNT]);
int pg_quota_charge(struct store *base, const char *tenant, int64_t day,
                    const int64_t amount[QUOTA_COUNT], const int64_t limit[QUOTA_COUNT],
                    int64_t used[QUOTA_COUNT]);

/* Parameters, in statement order: text (NULL is SQL NULL), an integer, bytes (NULL is SQL NULL). */
void pg_param_text(struct pg_params *params, const char *text);
void pg_param_int(struct pg_params *params, int64_t value);
void pg_param_bytes(struct pg_params *params, const uint8_t *bytes, size_t len);

/* Runs prepared statement which; returns its result (PQclear it), or NULL with *err set (the
 * database's words logged). */
PGresult *pg_exec(struct pg_store *store, enum pg_statement which, const struct pg_params *params,
                  int *err, const char *what);

/* Runs a statement that returns no rows; 0 or a cdr error. *changed: the rows it touched, when
 * non-NULL. */
int pg_run(struct pg_store *store, enum pg_statement which, const struct pg_params *params,
           int64_t *changed, const char *what);

/* Column col of row as an integer (0 when NULL), as text copied into arena (NULL stays NULL,
 * *failed set when out of room), as bytes copied into arena (NUL-padded by one byte). */
int64_t pg_int(const PGresult *res, int row, int col);
const char *pg_text(const PGresult *res, int row, int col, struct arena *arena, bool *failed);
uint8_t *pg_bytes(const PGresult *res, int row, int col, struct arena *arena, size_t *len,
                  bool *failed);

/* The batch of task inserts: started empty, emptied, freed; a task added (it is sent, with the
 * others added since, by pg_batch_flush: pg_exec calls it before any other statement, and the
 * commit before COMMIT). */
void pg_batch_init(struct pg_batch *batch);
void pg_batch_reset(struct pg_batch *batch);
void pg_batch_free(struct pg_batch *batch);
int pg_batch_task(struct pg_batch *batch, const struct task *task);
int pg_batch_flush(struct pg_store *store);

/* Reads row of a result of STORE_TASK_READ_COLUMNS into a task in arena (targets not loaded). */
int pg_task_from_row(const PGresult *res, int row, struct arena *arena, struct task **out);

/* Gives every node of canceled task's plan whose watermark has not passed it a row of its own,
 * every item pending (so canceled), unless it has one (store_postgres_fabric.c). */
int pg_task_nodes_hold(struct pg_store *store, const struct task *task);

#endif
