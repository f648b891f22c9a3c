/* store_sqlite_fabric.c — the SQLite backend's node registry, task plans and per-node results:
 * what the agent fabric writes and what a restart reads back to resume where it was. */
#include "common/error.h"
#include "store/sqlite/store_sqlite_internal.h"

#include <stdlib.h>
#include <string.h>

int sqlite_node_upsert(struct store *base, const struct store_node *node) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_NODE_UPSERT];
  sqlite_bind_text(stmt, 1, node->id);
  sqlite_bind_text(stmt, 2, node->groups_json);
  sqlite_bind_text(stmt, 3, node->cache_kind);
  sqlite_bind_text(stmt, 4, node->agent_version);
  sqlite3_bind_int64(stmt, 5, node->last_seen_ms);
  sqlite3_bind_int64(stmt, 6, node->first_result_ms);
  sqlite3_bind_int64(stmt, 7, node->number);
  return sqlite_run(store, STMT_NODE_UPSERT, "node upsert");
}

int sqlite_node_marks_save(struct store *base, const struct store_node_mark *marks, size_t count) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_NODE_MARKS];
  int err = 0;
  for (size_t i = 0; !err && i < count; i++) {
    sqlite_bind_text(stmt, 1, marks[i].node_id);
    sqlite3_bind_int64(stmt, 2, marks[i].fast_below);
    sqlite3_bind_int64(stmt, 3, marks[i].slow_below);
    err = sqlite_run(store, STMT_NODE_MARKS, "node marks");
  }
  return err;
}

int sqlite_nodes_load(struct store *base, struct arena *arena, struct store_node **out,
                      size_t *count) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_NODES_LOAD];
  struct store_node *nodes = NULL;
  size_t cap = 0, n = 0;
  int err = 0, rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if ((err = sqlite_grow(arena, (void **)&nodes, sizeof(*nodes), n, &cap)))
      break;
    bool failed = false;
    struct store_node *node = &nodes[n++];
    node->id = sqlite_column_text(stmt, 0, arena, &failed);
    node->groups_json = sqlite_column_text(stmt, 1, arena, &failed);
    node->cache_kind = sqlite_column_text(stmt, 2, arena, &failed);
    node->agent_version = sqlite_column_text(stmt, 3, arena, &failed);
    node->registered_ms = sqlite3_column_int64(stmt, 4);
    node->last_seen_ms = sqlite3_column_int64(stmt, 5);
    node->first_result_ms = sqlite3_column_int64(stmt, 6);
    node->number = sqlite3_column_int64(stmt, 7);
    node->fast_below = sqlite3_column_int64(stmt, 8);
    node->slow_below = sqlite3_column_int64(stmt, 9);
    node->removed = sqlite3_column_int(stmt, 10) != 0;
    if (failed) {
      err = CDR_ENOMEM;
      break;
    }
  }
  *out = nodes;
  *count = n;
  return sqlite_finish(store, stmt, rc, err, "node load");
}

static int sqlite_task_node_save(struct sqlite_store *store, const char *task_id,
                                 const struct store_task_node *node) {
  sqlite3_stmt *stmt = store->statements[STMT_TASK_NODE_SAVE];
  sqlite_bind_text(stmt, 1, task_id);
  sqlite_bind_text(stmt, 2, node->node_id);
  sqlite3_bind_blob(stmt, 3, node->states, (int)node->states_len, SQLITE_STATIC);
  sqlite3_bind_int64(stmt, 4, node->succeeded);
  sqlite3_bind_int64(stmt, 5, node->failed);
  sqlite3_bind_int64(stmt, 6, node->unsupported);
  if (node->verified)
    sqlite3_bind_blob(stmt, 7, node->verified, (int)node->verified_len, SQLITE_STATIC);
  else
    sqlite3_bind_null(stmt, 7);
  sqlite3_bind_int64(stmt, 8, node->verified_count);
  return sqlite_run(store, STMT_TASK_NODE_SAVE, "task node save");
}

int sqlite_task_nodes_hold(struct sqlite_store *store, const struct task *task) {
  struct arena scratch;
  arena_init(&scratch, STORE_SCRATCH_MAX);
  struct store_node *nodes;
  size_t count;
  int err = sqlite_nodes_load(&store->base, &scratch, &nodes, &count);
  sqlite3_stmt *stmt = store->statements[STMT_TASK_NODE_HOLD];
  for (size_t i = 0; !err && i < count; i++) {
    if (!task_rows_owed(task, &nodes[i]))
      continue;
    sqlite_bind_text(stmt, 1, task->id);
    sqlite_bind_text(stmt, 2, nodes[i].id);
    err = sqlite_run(store, STMT_TASK_NODE_HOLD, "task node hold");
  }
  arena_release(&scratch);
  return err;
}

int sqlite_task_plan(struct store *base, const struct task *task) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_TASK_PLAN];
  sqlite_bind_text(stmt, 1, task->id);
  sqlite3_bind_int64(stmt, 2, task->counters.total);
  sqlite3_bind_int64(stmt, 3, task->counters.pending);
  sqlite_bind_text(stmt, 4, task_state_name(task->state));
  sqlite3_bind_int64(stmt, 5, task->finished_ms);
  sqlite3_bind_int64(stmt, 6, task->plan_seq);
  sqlite3_bind_blob(stmt, 7, task->plan_nodes ? (const void *)task->plan_nodes : "",
                    (int)task->plan_nodes_len, SQLITE_STATIC);
  int err = sqlite_run(store, STMT_TASK_PLAN, "task plan");
  if (err || !task->plan_nodes)
    return err;
  /* Canceled before its plan was saved: the cancel found no plan to hold rows for. */
  stmt = store->statements[STMT_TASK_IS_CANCELED];
  sqlite_bind_text(stmt, 1, task->id);
  int rc = sqlite3_step(stmt);
  err = sqlite_finish(store, stmt, rc, 0, "task plan");
  return !err && rc == SQLITE_ROW ? sqlite_task_nodes_hold(store, task) : err;
}

/* task finished on every node, though a cancel reached the store first (the task stays
 * canceled): each node whose row that cancel held, empty (its watermark had not passed the task,
 * and the fabric keeps no row of its own for it), finished it — all succeeded, verified when the
 * task asked, its failure details overriding item by item, as for a task that ended. */
static int sqlite_task_nodes_finish(struct sqlite_store *store, const struct task *task) {
  size_t bytes, verified_bytes;
  uint8_t *states = task_rows_finished(task, &bytes, &verified_bytes);
  if (!states)
    return CDR_ENOMEM;
  sqlite3_stmt *stmt = store->statements[STMT_TASK_NODE_FINISH];
  sqlite_bind_text(stmt, 1, task->id);
  sqlite3_bind_blob(stmt, 2, states, (int)bytes, SQLITE_STATIC);
  if (task->verify)
    sqlite3_bind_blob(stmt, 3, states + bytes, (int)verified_bytes, SQLITE_STATIC);
  sqlite3_bind_int64(stmt, 4, (int64_t)task->target_count);
  sqlite3_bind_int64(stmt, 5, task->verify ? (int64_t)task->target_count : 0);
  int err = sqlite_run(store, STMT_TASK_NODE_FINISH, "task node finish");
  free(states);
  return err;
}

int sqlite_task_progress(struct store *base, const struct task *task,
                         const struct store_task_node *nodes, size_t node_count,
                         const struct store_failure *failures, size_t failure_count) {
  struct sqlite_store *store = sqlite_of(base);
  int err = 0;
  if (task_state_final(task->state) && task->state != TASK_CANCELED)
    err = sqlite_task_nodes_finish(store, task);
  for (size_t i = 0; !err && i < node_count; i++)
    err = sqlite_task_node_save(store, task->id, &nodes[i]);
  sqlite3_stmt *stmt = store->statements[STMT_FAILURE_SAVE];
  for (size_t i = 0; !err && i < failure_count; i++) {
    const struct store_failure *failure = &failures[i];
    sqlite_bind_text(stmt, 1, task->id);
    sqlite3_bind_int64(stmt, 2, failure->index);
    sqlite_bind_text(stmt, 3, failure->node_id);
    sqlite_bind_text(stmt, 4, item_state_name(failure->state));
    sqlite3_bind_int64(stmt, 5, failure->http_status);
    sqlite_bind_text(stmt, 6, failure->reason);
    err = sqlite_run(store, STMT_FAILURE_SAVE, "failure save");
  }
  if (err)
    return err;
  stmt = store->statements[STMT_TASK_PROGRESS];
  sqlite_bind_text(stmt, 1, task->id);
  sqlite3_bind_int64(stmt, 2, task->counters.succeeded);
  sqlite3_bind_int64(stmt, 3, task->counters.failed);
  sqlite3_bind_int64(stmt, 4, task->counters.pending);
  sqlite3_bind_int64(stmt, 5, task->counters.unsupported);
  sqlite3_bind_int64(stmt, 6, task->started_ms);
  sqlite_bind_text(stmt, 7, task_state_name(task->state));
  sqlite3_bind_int64(stmt, 8, task->finished_ms);
  sqlite3_bind_int64(stmt, 9, task->counters.verified);
  return sqlite_run(store, STMT_TASK_PROGRESS, "task progress");
}

/* Loads every target of task into task->targets. */
static int sqlite_targets_load(struct sqlite_store *store, struct task *task, struct arena *arena) {
  task->targets =
      arena_alloc(arena, (task->target_count ? task->target_count : 1) * sizeof(*task->targets));
  if (!task->targets)
    return CDR_ENOMEM;
  sqlite3_stmt *stmt = store->statements[STMT_TARGETS_ALL];
  sqlite_bind_text(stmt, 1, task->id);
  size_t n = 0;
  int err = 0, rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && n < task->target_count) {
    struct task_target *target = &task->targets[n++];
    const char *kind = (const char *)sqlite3_column_text(stmt, 0);
    bool failed = false;
    target->value = sqlite_column_text(stmt, 1, arena, &failed);
    target->state = ITEM_PENDING;
    if (failed || !kind || target_kind_parse(kind, &target->kind)) {
      err = failed ? CDR_ENOMEM : CDR_EINTERNAL;
      break;
    }
  }
  if (!err && n != task->target_count)
    err = CDR_EINTERNAL;
  return sqlite_finish(store, stmt, rc, err, "target load");
}

/* Reads every task row the (unbound) statement which returns, into arena. */
static int sqlite_tasks_read(struct sqlite_store *store, enum sqlite_statement which,
                             struct arena *arena, struct task ***out, size_t *count,
                             const char *what) {
  sqlite3_stmt *stmt = store->statements[which];
  struct task **tasks = NULL;
  size_t cap = 0, n = 0;
  int err = 0, rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if ((err = sqlite_grow(arena, (void **)&tasks, sizeof(*tasks), n, &cap)) ||
        (err = sqlite_task_from_row(stmt, arena, &tasks[n])))
      break;
    n++;
  }
  *out = tasks;
  *count = n;
  return sqlite_finish(store, stmt, rc, err, what);
}

int sqlite_tasks_unfinished(struct store *base, struct arena *arena, struct task ***out,
                            size_t *count) {
  struct sqlite_store *store = sqlite_of(base);
  int err = sqlite_tasks_read(store, STMT_TASKS_UNFINISHED, arena, out, count, "unfinished tasks");
  for (size_t i = 0; !err && i < *count; i++)
    err = sqlite_targets_load(store, (*out)[i], arena);
  return err;
}

int sqlite_tasks_load(struct store *base, const char *const *ids, size_t count, struct arena *arena,
                      struct task **out) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_TASK_LOAD];
  int err = 0;
  for (size_t i = 0; !err && i < count; i++) {
    out[i] = NULL;
    sqlite_bind_text(stmt, 1, ids[i]);
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
      err = sqlite_task_from_row(stmt, arena, &out[i]);
    err = sqlite_finish(store, stmt, rc, err, "task load");
    if (!err && out[i])
      err = sqlite_targets_load(store, out[i], arena);
  }
  return err;
}

/* Reads a task_nodes row's columns from col on (node_id, states, succeeded, failed, unsupported,
 * verified, verified_count) into node. */
static int sqlite_task_node_from_row(sqlite3_stmt *stmt, int col, struct arena *arena,
                                     struct store_task_node *node) {
  bool failed = false;
  node->node_id = sqlite_column_text(stmt, col, arena, &failed);
  node->states = sqlite_column_blob(stmt, col + 1, arena, &node->states_len, &failed);
  node->verified = sqlite_column_blob(stmt, col + 5, arena, &node->verified_len, &failed);
  node->succeeded = sqlite3_column_int64(stmt, col + 2);
  node->failed = sqlite3_column_int64(stmt, col + 3);
  node->unsupported = sqlite3_column_int64(stmt, col + 4);
  node->verified_count = sqlite3_column_int64(stmt, col + 6);
  return failed ? CDR_ENOMEM : 0;
}

/* Reads an item_failures row's columns from col on (idx, node_id, state, http_status, reason). */
static int sqlite_failure_from_row(sqlite3_stmt *stmt, int col, struct arena *arena,
                                   struct store_failure *failure) {
  bool failed = false;
  failure->index = sqlite3_column_int64(stmt, col);
  failure->node_id = sqlite_column_text(stmt, col + 1, arena, &failed);
  const char *state = (const char *)sqlite3_column_text(stmt, col + 2);
  failure->http_status = (uint32_t)sqlite3_column_int64(stmt, col + 3);
  failure->reason = sqlite_column_text(stmt, col + 4, arena, &failed);
  if (failed)
    return CDR_ENOMEM;
  return !state || item_state_parse(state, strlen(state), &failure->state) ? CDR_EINTERNAL : 0;
}

int sqlite_task_nodes_load(struct store *base, const char *task_id, struct arena *arena,
                           struct store_task_node **out, size_t *count) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_TASK_NODES_LOAD];
  sqlite_bind_text(stmt, 1, task_id);
  struct store_task_node *nodes = NULL;
  size_t cap = 0, n = 0;
  int err = 0, rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if ((err = sqlite_grow(arena, (void **)&nodes, sizeof(*nodes), n, &cap)) ||
        (err = sqlite_task_node_from_row(stmt, 0, arena, &nodes[n++])))
      break;
  }
  *out = nodes;
  *count = n;
  return sqlite_finish(store, stmt, rc, err, "task node load");
}

int sqlite_failures_list(struct store *base, const char *task_id, int64_t first, int64_t last,
                         struct arena *arena, struct store_failure **out, size_t *count) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_FAILURES_LIST];
  sqlite_bind_text(stmt, 1, task_id);
  sqlite3_bind_int64(stmt, 2, first);
  sqlite3_bind_int64(stmt, 3, last);
  struct store_failure *failures = NULL;
  size_t cap = 0, n = 0;
  int err = 0, rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if ((err = sqlite_grow(arena, (void **)&failures, sizeof(*failures), n, &cap)) ||
        (err = sqlite_failure_from_row(stmt, 0, arena, &failures[n++])))
      break;
  }
  *out = failures;
  *count = n;
  return sqlite_finish(store, stmt, rc, err, "failure list");
}

int sqlite_unfinished_results(struct store *base, struct arena *arena,
                              struct store_saved_results *out) {
  struct sqlite_store *store = sqlite_of(base);
  memset(out, 0, sizeof(*out));
  sqlite3_stmt *stmt = store->statements[STMT_UNFINISHED_TASK_NODES];
  size_t cap = 0, ids_cap = 0;
  int err = 0, rc;
  bool failed = false;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    size_t n = out->node_count;
    if ((err = sqlite_grow(arena, (void **)&out->nodes, sizeof(*out->nodes), n, &cap)) ||
        (err = sqlite_grow(arena, (void **)&out->node_task_ids, sizeof(char *), n, &ids_cap)) ||
        (err = sqlite_task_node_from_row(stmt, 1, arena, &out->nodes[n])))
      break;
    out->node_task_ids[out->node_count++] = sqlite_column_text(stmt, 0, arena, &failed);
  }
  err = sqlite_finish(store, stmt, rc, err ? err : failed ? CDR_ENOMEM : 0, "unfinished results");
  if (err)
    return err;
  stmt = store->statements[STMT_UNFINISHED_FAILURES];
  cap = ids_cap = 0;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    size_t n = out->failure_count;
    if ((err = sqlite_grow(arena, (void **)&out->failures, sizeof(*out->failures), n, &cap)) ||
        (err = sqlite_grow(arena, (void **)&out->failure_task_ids, sizeof(char *), n, &ids_cap)) ||
        (err = sqlite_failure_from_row(stmt, 1, arena, &out->failures[n])))
      break;
    out->failure_task_ids[out->failure_count++] = sqlite_column_text(stmt, 0, arena, &failed);
  }
  return sqlite_finish(store, stmt, rc, err ? err : failed ? CDR_ENOMEM : 0, "unfinished results");
}

int sqlite_callback_attempt(struct store *base, const char *task_id,
                            const struct callback_attempt *attempt, enum callback_state state) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_CALLBACK_ATTEMPT_SAVE];
  sqlite_bind_text(stmt, 1, task_id);
  sqlite3_bind_int64(stmt, 2, attempt->attempt);
  sqlite3_bind_int64(stmt, 3, attempt->at_ms);
  sqlite3_bind_int64(stmt, 4, attempt->http_status);
  sqlite_bind_text(stmt, 5, attempt->error);
  int err = sqlite_run(store, STMT_CALLBACK_ATTEMPT_SAVE, "callback attempt save");
  if (err)
    return err;
  stmt = store->statements[STMT_CALLBACK_STATE];
  sqlite_bind_text(stmt, 1, task_id);
  sqlite_bind_text(stmt, 2, callback_state_name(state));
  sqlite3_bind_int64(stmt, 3, attempt->attempt);
  return sqlite_run(store, STMT_CALLBACK_STATE, "callback state save");
}

int sqlite_callback_attempts_load(struct store *base, struct task *task, struct arena *arena) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_CALLBACK_ATTEMPTS_LIST];
  sqlite_bind_text(stmt, 1, task->id);
  struct callback_attempt *attempts = NULL;
  size_t cap = 0, n = 0;
  int err = 0, rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if ((err = sqlite_grow(arena, (void **)&attempts, sizeof(*attempts), n, &cap)))
      break;
    bool failed = false;
    struct callback_attempt *attempt = &attempts[n++];
    attempt->attempt = sqlite3_column_int64(stmt, 0);
    attempt->at_ms = sqlite3_column_int64(stmt, 1);
    attempt->http_status = sqlite3_column_int64(stmt, 2);
    attempt->error = sqlite_column_text(stmt, 3, arena, &failed);
    if (failed) {
      err = CDR_ENOMEM;
      break;
    }
  }
  task->callback_attempts = attempts;
  task->callback_attempt_count = (int64_t)n;
  return sqlite_finish(store, stmt, rc, err, "callback attempts");
}

int sqlite_callbacks_pending(struct store *base, struct arena *arena, struct task ***out,
                             size_t *count) {
  struct sqlite_store *store = sqlite_of(base);
  return sqlite_tasks_read(store, STMT_CALLBACKS_PENDING, arena, out, count, "pending callbacks");
}

int sqlite_node_delete(struct store *base, const char *id) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_NODE_DELETE];
  sqlite_bind_text(stmt, 1, id);
  return sqlite_run(store, STMT_NODE_DELETE, "node delete");
}

int sqlite_task_counts(struct store *base, int64_t counts[6]) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_TASK_COUNTS];
  memset(counts, 0, 6 * sizeof(*counts));
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(stmt, 0);
    enum task_state state;
    if (name && task_state_parse(name, strlen(name), &state) == 0)
      counts[state] = sqlite3_column_int64(stmt, 1);
  }
  return sqlite_finish(store, stmt, rc, 0, "task counts");
}
