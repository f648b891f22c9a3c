/* store_postgres_fabric.c — the PostgreSQL backend's node registry, task plans, per-node results
 * and callbacks: what the agent fabric writes and what a restart reads back. */
#include "common/error.h"
#include "store/postgres/store_postgres_internal.h"

#include <stdlib.h>
#include <string.h>

int pg_node_upsert(struct store *base, const struct store_node *node) {
  struct pg_params params = {0};
  pg_param_text(&params, node->id);
  pg_param_text(&params, node->groups_json);
  pg_param_text(&params, node->cache_kind);
  pg_param_text(&params, node->agent_version);
  pg_param_int(&params, node->last_seen_ms);
  pg_param_int(&params, node->first_result_ms);
  pg_param_int(&params, node->number);
  return pg_run(pg_of(base), PG_NODE_UPSERT, &params, NULL, "node upsert");
}

int pg_node_marks_save(struct store *base, const struct store_node_mark *marks, size_t count) {
  int err = 0;
  for (size_t i = 0; !err && i < count; i++) {
    struct pg_params params = {0};
    pg_param_text(&params, marks[i].node_id);
    pg_param_int(&params, marks[i].fast_below);
    pg_param_int(&params, marks[i].slow_below);
    err = pg_run(pg_of(base), PG_NODE_MARKS, &params, NULL, "node marks");
  }
  return err;
}

/* Runs statement which and gives its rows to arena-allocated items of size bytes, filled by
 * read(res, row, item, arena): one shape for every read of many rows. */
static int pg_rows(struct pg_store *store, enum pg_statement which, const struct pg_params *params,
                   struct arena *arena, size_t size, void **out, size_t *count,
                   int (*read)(const PGresult *res, int row, void *item, struct arena *arena),
                   const char *what) {
  *out = NULL;
  *count = 0;
  int err;
  PGresult *res = pg_exec(store, which, params, &err, what);
  if (!res)
    return err;
  size_t rows = (size_t)PQntuples(res);
  uint8_t *items = arena_alloc(arena, (rows ? rows : 1) * size);
  err = items ? 0 : CDR_ENOMEM;
  for (size_t row = 0; !err && row < rows; row++) {
    memset(items + row * size, 0, size);
    err = read(res, (int)row, items + row * size, arena);
  }
  PQclear(res);
  if (!err) {
    *out = items;
    *count = rows;
  }
  return err;
}

static int pg_node_read(const PGresult *res, int row, void *item, struct arena *arena) {
  struct store_node *node = item;
  bool failed = false;
  node->id = pg_text(res, row, 0, arena, &failed);
  node->groups_json = pg_text(res, row, 1, arena, &failed);
  node->cache_kind = pg_text(res, row, 2, arena, &failed);
  node->agent_version = pg_text(res, row, 3, arena, &failed);
  node->registered_ms = pg_int(res, row, 4);
  node->last_seen_ms = pg_int(res, row, 5);
  node->first_result_ms = pg_int(res, row, 6);
  node->number = pg_int(res, row, 7);
  node->fast_below = pg_int(res, row, 8);
  node->slow_below = pg_int(res, row, 9);
  node->removed = pg_int(res, row, 10) != 0;
  return failed ? CDR_ENOMEM : 0;
}

int pg_nodes_load(struct store *base, struct arena *arena, struct store_node **out, size_t *count) {
  return pg_rows(pg_of(base), PG_NODES_LOAD, NULL, arena, sizeof(**out), (void **)out, count,
                 pg_node_read, "node load");
}

int pg_task_nodes_hold(struct pg_store *store, const struct task *task) {
  struct arena scratch;
  arena_init(&scratch, STORE_SCRATCH_MAX);
  struct store_node *nodes;
  size_t count;
  int err = pg_nodes_load(&store->base, &scratch, &nodes, &count);
  for (size_t i = 0; !err && i < count; i++) {
    if (!task_rows_owed(task, &nodes[i]))
      continue;
    struct pg_params params = {0};
    pg_param_text(&params, task->id);
    pg_param_text(&params, nodes[i].id);
    err = pg_run(store, PG_TASK_NODE_HOLD, &params, NULL, "task node hold");
  }
  arena_release(&scratch);
  return err;
}

int pg_task_plan(struct store *base, const struct task *task) {
  struct pg_store *store = pg_of(base);
  struct pg_params params = {0};
  pg_param_text(&params, task->id);
  pg_param_int(&params, task->counters.total);
  pg_param_int(&params, task->counters.pending);
  pg_param_text(&params, task_state_name(task->state));
  pg_param_int(&params, task->finished_ms);
  pg_param_int(&params, task->plan_seq);
  pg_param_bytes(&params, task->plan_nodes ? task->plan_nodes : (const uint8_t *)"",
                 task->plan_nodes_len);
  int err = pg_run(store, PG_TASK_PLAN, &params, NULL, "task plan");
  if (err || !task->plan_nodes)
    return err;
  /* Canceled before its plan was saved: the cancel found no plan to hold rows for. */
  struct pg_params id = {0};
  pg_param_text(&id, task->id);
  PGresult *res = pg_exec(store, PG_TASK_IS_CANCELED, &id, &err, "task plan");
  bool canceled = res && PQntuples(res) > 0;
  PQclear(res);
  return !err && canceled ? pg_task_nodes_hold(store, task) : err;
}

/* task finished on every node though a cancel reached the store first: each node whose row that
 * cancel held, empty, finished it (as sqlite_task_nodes_finish says). */
static int pg_task_nodes_finish(struct pg_store *store, const struct task *task) {
  size_t bytes, verified_bytes;
  uint8_t *states = task_rows_finished(task, &bytes, &verified_bytes);
  if (!states)
    return CDR_ENOMEM;
  struct pg_params params = {0};
  pg_param_text(&params, task->id);
  pg_param_bytes(&params, states, bytes);
  pg_param_bytes(&params, task->verify ? states + bytes : NULL, verified_bytes);
  pg_param_int(&params, (int64_t)task->target_count);
  pg_param_int(&params, task->verify ? (int64_t)task->target_count : 0);
  int err = pg_run(store, PG_TASK_NODE_FINISH, &params, NULL, "task node finish");
  free(states);
  return err;
}

int pg_task_progress(struct store *base, const struct task *task,
                     const struct store_task_node *nodes, size_t node_count,
                     const struct store_failure *failures, size_t failure_count) {
  struct pg_store *store = pg_of(base);
  int err = 0;
  if (task_state_final(task->state) && task->state != TASK_CANCELED)
    err = pg_task_nodes_finish(store, task);
  for (size_t i = 0; !err && i < node_count; i++) {
    const struct store_task_node *node = &nodes[i];
    struct pg_params params = {0};
    pg_param_text(&params, task->id);
    pg_param_text(&params, node->node_id);
    pg_param_bytes(&params, node->states ? node->states : (const uint8_t *)"", node->states_len);
    pg_param_int(&params, node->succeeded);
    pg_param_int(&params, node->failed);
    pg_param_int(&params, node->unsupported);
    pg_param_bytes(&params, node->verified, node->verified_len);
    pg_param_int(&params, node->verified_count);
    err = pg_run(store, PG_TASK_NODE_SAVE, &params, NULL, "task node save");
  }
  for (size_t i = 0; !err && i < failure_count; i++) {
    const struct store_failure *failure = &failures[i];
    struct pg_params params = {0};
    pg_param_text(&params, task->id);
    pg_param_int(&params, failure->index);
    pg_param_text(&params, failure->node_id);
    pg_param_text(&params, item_state_name(failure->state));
    pg_param_int(&params, failure->http_status);
    pg_param_text(&params, failure->reason);
    err = pg_run(store, PG_FAILURE_SAVE, &params, NULL, "failure save");
  }
  if (err)
    return err;
  struct pg_params params = {0};
  pg_param_text(&params, task->id);
  pg_param_int(&params, task->counters.succeeded);
  pg_param_int(&params, task->counters.failed);
  pg_param_int(&params, task->counters.pending);
  pg_param_int(&params, task->counters.unsupported);
  pg_param_int(&params, task->started_ms);
  pg_param_text(&params, task_state_name(task->state));
  pg_param_int(&params, task->finished_ms);
  pg_param_int(&params, task->counters.verified);
  return pg_run(store, PG_TASK_PROGRESS, &params, NULL, "task progress");
}

/* Gives task its targets from the rows of res from *row on (task id, kind, value; ordered by
 * task id, then index), moving *row past them; rows of tasks before it (not read with it) are
 * passed over. */
static int pg_targets_take(const PGresult *res, int *row, struct task *task, struct arena *arena) {
  task->targets =
      arena_alloc(arena, (task->target_count ? task->target_count : 1) * sizeof(*task->targets));
  if (!task->targets)
    return CDR_ENOMEM;
  size_t n = 0;
  for (int rows = PQntuples(res); *row < rows; (*row)++) {
    int order = strcmp(PQgetvalue(res, *row, 0), task->id); /* COLLATE "C": byte order */
    if (order > 0)
      break;
    if (order < 0)
      continue;
    if (n == task->target_count)
      return CDR_EINTERNAL;
    struct task_target *target = &task->targets[n++];
    bool failed = false;
    target->value = pg_text(res, *row, 2, arena, &failed);
    target->state = ITEM_PENDING;
    if (failed)
      return CDR_ENOMEM;
    if (target_kind_parse(PQgetvalue(res, *row, 1), &target->kind))
      return CDR_EINTERNAL;
  }
  return n == task->target_count ? 0 : CDR_EINTERNAL;
}

/* Loads every target of task into task->targets. */
static int pg_targets_load(struct pg_store *store, struct task *task, struct arena *arena) {
  struct pg_params params = {0};
  pg_param_text(&params, task->id);
  int err, row = 0;
  PGresult *res = pg_exec(store, PG_TARGETS_ALL, &params, &err, "target load");
  if (res)
    err = pg_targets_take(res, &row, task, arena);
  PQclear(res);
  return err;
}

static int pg_task_read(const PGresult *res, int row, void *item, struct arena *arena) {
  return pg_task_from_row(res, row, arena, item);
}

/* Reads every task row statement which returns, into arena. */
static int pg_tasks_read(struct pg_store *store, enum pg_statement which, struct arena *arena,
                         struct task ***out, size_t *count, const char *what) {
  return pg_rows(store, which, NULL, arena, sizeof(**out), (void **)out, count, pg_task_read, what);
}

int pg_tasks_unfinished(struct store *base, struct arena *arena, struct task ***out,
                        size_t *count) {
  struct pg_store *store = pg_of(base);
  int err = pg_tasks_read(store, PG_TASKS_UNFINISHED, arena, out, count, "unfinished tasks");
  if (err || !*count)
    return err;
  /* Every one's targets in one read, in the tasks' order: a restart with 100,000 unfinished
   * tasks is one round trip, not 100,000. */
  PGresult *res = pg_exec(store, PG_TARGETS_UNFINISHED, NULL, &err, "unfinished targets");
  int row = 0;
  for (size_t i = 0; res && !err && i < *count; i++)
    err = pg_targets_take(res, &row, (*out)[i], arena);
  PQclear(res);
  return err;
}

int pg_tasks_load(struct store *base, const char *const *ids, size_t count, struct arena *arena,
                  struct task **out) {
  struct pg_store *store = pg_of(base);
  int err = 0;
  for (size_t i = 0; !err && i < count; i++) {
    out[i] = NULL;
    struct pg_params params = {0};
    pg_param_text(&params, ids[i]);
    PGresult *res = pg_exec(store, PG_TASK_LOAD, &params, &err, "task load");
    if (res && PQntuples(res))
      err = pg_task_from_row(res, 0, arena, &out[i]);
    PQclear(res);
    if (!err && out[i])
      err = pg_targets_load(store, out[i], arena);
  }
  return err;
}

/* Reads a task_nodes row's columns from col on (node_id, states, succeeded, failed, unsupported,
 * verified, verified_count) into node. */
static int pg_task_node_at(const PGresult *res, int row, int col, void *item, struct arena *arena) {
  struct store_task_node *node = item;
  bool failed = false;
  node->node_id = pg_text(res, row, col, arena, &failed);
  node->states = pg_bytes(res, row, col + 1, arena, &node->states_len, &failed);
  node->verified = pg_bytes(res, row, col + 5, arena, &node->verified_len, &failed);
  node->succeeded = pg_int(res, row, col + 2);
  node->failed = pg_int(res, row, col + 3);
  node->unsupported = pg_int(res, row, col + 4);
  node->verified_count = pg_int(res, row, col + 6);
  return failed ? CDR_ENOMEM : 0;
}

static int pg_task_node_read(const PGresult *res, int row, void *item, struct arena *arena) {
  return pg_task_node_at(res, row, 0, item, arena);
}

int pg_task_nodes_load(struct store *base, const char *task_id, struct arena *arena,
                       struct store_task_node **out, size_t *count) {
  struct pg_params params = {0};
  pg_param_text(&params, task_id);
  return pg_rows(pg_of(base), PG_TASK_NODES_LOAD, &params, arena, sizeof(**out), (void **)out,
                 count, pg_task_node_read, "task node load");
}

/* Reads an item_failures row's columns from col on (idx, node_id, state, http_status, reason). */
static int pg_failure_at(const PGresult *res, int row, int col, void *item, struct arena *arena) {
  struct store_failure *failure = item;
  bool failed = false;
  failure->index = pg_int(res, row, col);
  failure->node_id = pg_text(res, row, col + 1, arena, &failed);
  const char *state = PQgetvalue(res, row, col + 2);
  failure->http_status = (uint32_t)pg_int(res, row, col + 3);
  failure->reason = pg_text(res, row, col + 4, arena, &failed);
  if (failed)
    return CDR_ENOMEM;
  return item_state_parse(state, strlen(state), &failure->state) ? CDR_EINTERNAL : 0;
}

static int pg_failure_read(const PGresult *res, int row, void *item, struct arena *arena) {
  return pg_failure_at(res, row, 0, item, arena);
}

int pg_failures_list(struct store *base, const char *task_id, int64_t first, int64_t last,
                     struct arena *arena, struct store_failure **out, size_t *count) {
  struct pg_params params = {0};
  pg_param_text(&params, task_id);
  pg_param_int(&params, first);
  pg_param_int(&params, last);
  return pg_rows(pg_of(base), PG_FAILURES_LIST, &params, arena, sizeof(**out), (void **)out, count,
                 pg_failure_read, "failure list");
}

/* The saved results of one table for every planned unfinished task: statement which's rows, the
 * task id first, then what read takes from column 1 on; into items (of size bytes) and ids. */
static int pg_saved_read(struct pg_store *store, enum pg_statement which, struct arena *arena,
                         size_t size, void **items, const char ***ids, size_t *count,
                         int (*read)(const PGresult *, int, int, void *, struct arena *)) {
  int err;
  PGresult *res = pg_exec(store, which, NULL, &err, "unfinished results");
  if (!res)
    return err;
  size_t rows = (size_t)PQntuples(res);
  *items = arena_alloc(arena, (rows ? rows : 1) * size);
  *ids = arena_alloc(arena, (rows ? rows : 1) * sizeof(**ids));
  err = *items && *ids ? 0 : CDR_ENOMEM;
  for (size_t row = 0; !err && row < rows; row++) {
    bool failed = false;
    memset((uint8_t *)*items + row * size, 0, size);
    (*ids)[row] = pg_text(res, (int)row, 0, arena, &failed);
    err = failed ? CDR_ENOMEM : read(res, (int)row, 1, (uint8_t *)*items + row * size, arena);
  }
  PQclear(res);
  *count = err ? 0 : rows;
  return err;
}

int pg_unfinished_results(struct store *base, struct arena *arena,
                          struct store_saved_results *out) {
  memset(out, 0, sizeof(*out));
  int err =
      pg_saved_read(pg_of(base), PG_UNFINISHED_TASK_NODES, arena, sizeof(*out->nodes),
                    (void **)&out->nodes, &out->node_task_ids, &out->node_count, pg_task_node_at);
  return err ? err
             : pg_saved_read(pg_of(base), PG_UNFINISHED_FAILURES, arena, sizeof(*out->failures),
                             (void **)&out->failures, &out->failure_task_ids, &out->failure_count,
                             pg_failure_at);
}

int pg_callback_attempt(struct store *base, const char *task_id,
                        const struct callback_attempt *attempt, enum callback_state state) {
  struct pg_store *store = pg_of(base);
  struct pg_params params = {0};
  pg_param_text(&params, task_id);
  pg_param_int(&params, attempt->attempt);
  pg_param_int(&params, attempt->at_ms);
  pg_param_int(&params, attempt->http_status);
  pg_param_text(&params, attempt->error);
  int err = pg_run(store, PG_CALLBACK_ATTEMPT_SAVE, &params, NULL, "callback attempt save");
  if (err)
    return err;
  struct pg_params callback = {0};
  pg_param_text(&callback, task_id);
  pg_param_text(&callback, callback_state_name(state));
  pg_param_int(&callback, attempt->attempt);
  return pg_run(store, PG_CALLBACK_STATE, &callback, NULL, "callback state save");
}

static int pg_attempt_read(const PGresult *res, int row, void *item, struct arena *arena) {
  struct callback_attempt *attempt = item;
  bool failed = false;
  attempt->attempt = pg_int(res, row, 0);
  attempt->at_ms = pg_int(res, row, 1);
  attempt->http_status = pg_int(res, row, 2);
  attempt->error = pg_text(res, row, 3, arena, &failed);
  return failed ? CDR_ENOMEM : 0;
}

int pg_callback_attempts_load(struct store *base, struct task *task, struct arena *arena) {
  struct pg_params params = {0};
  pg_param_text(&params, task->id);
  struct callback_attempt *attempts;
  size_t count;
  int err = pg_rows(pg_of(base), PG_CALLBACK_ATTEMPTS_LIST, &params, arena, sizeof(*attempts),
                    (void **)&attempts, &count, pg_attempt_read, "callback attempts");
  if (!err) {
    task->callback_attempts = attempts;
    task->callback_attempt_count = (int64_t)count;
  }
  return err;
}

int pg_callbacks_pending(struct store *base, struct arena *arena, struct task ***out,
                         size_t *count) {
  return pg_tasks_read(pg_of(base), PG_CALLBACKS_PENDING, arena, out, count, "pending callbacks");
}

int pg_node_delete(struct store *base, const char *id) {
  struct pg_params params = {0};
  pg_param_text(&params, id);
  return pg_run(pg_of(base), PG_NODE_DELETE, &params, NULL, "node delete");
}

int pg_task_counts(struct store *base, int64_t counts[6]) {
  memset(counts, 0, 6 * sizeof(*counts));
  int err;
  PGresult *res = pg_exec(pg_of(base), PG_TASK_COUNTS, NULL, &err, "task counts");
  for (int row = 0; res && row < PQntuples(res); row++) {
    const char *name = PQgetvalue(res, row, 0);
    enum task_state state;
    if (task_state_parse(name, strlen(name), &state) == 0)
      counts[state] = pg_int(res, row, 1);
  }
  PQclear(res);
  return err;
}
