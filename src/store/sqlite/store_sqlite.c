/* store_sqlite.c — the SQLite backend of store.h: WAL mode, prepared statements, group commit. */
#include "store/sqlite/store_sqlite_internal.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "common/task_id.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const sqlite_sql[STMT_COUNT] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_TASK_INSERT] = "INSERT INTO tasks (" STORE_TASK_COLUMNS ") VALUES "
                         "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    [STMT_TARGET_INSERT] = "INSERT INTO task_targets (task_id, idx, kind, value) VALUES (?,?,?,?)",
    [STMT_TASK_GET] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks WHERE id = ?1 AND tenant = ?2",
    [STMT_TASK_CANCEL] = "UPDATE tasks SET state = 'canceled', finished_ms = ?3 "
                         "WHERE id = ?1 AND tenant = ?2 AND state IN ('queued', 'running')",
    /* One statement per filter, each a range of one index read newest first, so a page costs
     * its own rows however many tasks the store holds (?1 tenant, ?2 state, ?3 the cursor or
     * STORE_ID_AFTER_ALL, ?4 the limit). */
    [STMT_TASKS_LIST] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks INDEXED BY tasks_by_tenant "
                        "WHERE tenant = ?1 AND id < ?3 ORDER BY id DESC LIMIT ?4",
    [STMT_TASKS_LIST_STATE] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks INDEXED BY "
                              "tasks_by_tenant_state WHERE tenant = ?1 AND state = ?2 AND "
                              "id < ?3 ORDER BY id DESC LIMIT ?4",
    [STMT_TASKS_LIST_ALL] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks WHERE id < ?3 "
                            "ORDER BY id DESC LIMIT ?4",
    [STMT_TASKS_LIST_ALL_STATE] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks INDEXED BY "
                                  "tasks_by_state WHERE state = ?2 AND id < ?3 "
                                  "ORDER BY id DESC LIMIT ?4",
    [STMT_TARGETS_LIST] = "SELECT idx, kind, value FROM task_targets WHERE task_id = ?1 "
                          "AND idx > ?2 ORDER BY idx LIMIT ?3",
    [STMT_NODES_LOAD] = "SELECT id, groups, cache_kind, agent_version, registered_ms, "
                        "last_seen_ms, first_result_ms, number, fast_below, slow_below, removed "
                        "FROM nodes ORDER BY id",
    [STMT_TASKS_UNFINISHED] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks "
                              "WHERE state IN ('queued', 'running') ORDER BY id",
    [STMT_TARGETS_ALL] = "SELECT kind, value FROM task_targets WHERE task_id = ?1 ORDER BY idx",
    [STMT_TASK_NODES_LOAD] = "SELECT node_id, states, succeeded, failed, unsupported, verified, "
                             "verified_count "
                             "FROM task_nodes WHERE task_id = ?1 ORDER BY node_id",
    [STMT_FAILURES_LIST] = "SELECT idx, node_id, state, http_status, reason FROM item_failures "
                           "WHERE task_id = ?1 AND idx BETWEEN ?2 AND ?3 ORDER BY idx, node_id",
    /* The planner would rather walk every finished task by state than the small partial index. */
    [STMT_CALLBACKS_PENDING] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks INDEXED BY "
                               "tasks_callback_pending WHERE callback_state = 'pending' AND "
                               "state IN ('done', 'partial', 'failed', 'canceled') ORDER BY id",
    [STMT_CALLBACK_ATTEMPTS_LIST] = "SELECT attempt, at_ms, http_status, error FROM "
                                    "callback_attempts WHERE task_id = ?1 ORDER BY attempt",
    [STMT_CALLBACK_ATTEMPT_SAVE] = "INSERT OR REPLACE INTO callback_attempts (task_id, attempt, "
                                   "at_ms, http_status, error) VALUES (?,?,?,?,?)",
    [STMT_CALLBACK_STATE] = "UPDATE tasks SET callback_state = ?2, callback_attempts = ?3 "
                            "WHERE id = ?1",
    [STMT_TASK_COUNTS] = "SELECT state, tasks FROM task_state_counts",
    [STMT_NODE_DELETE] = "UPDATE nodes SET removed = 1 WHERE id = ?1",
    [STMT_NODE_MARKS] = "UPDATE nodes SET fast_below = ?2, slow_below = ?3 WHERE id = ?1",
    [STMT_TENANTS_LOAD] = "SELECT " STORE_TENANT_COLUMNS " FROM tenants ORDER BY access_key",
    [STMT_TENANTS_GENERATION] = "SELECT value FROM meta WHERE key = 'tenants_generation'",
    [STMT_QUOTA_USAGE] = "SELECT purge_urls, purge_patterns, preload_urls FROM quota_usage "
                         "WHERE tenant = ?1 AND day = ?2",
    [STMT_TENANT_INSERT] = "INSERT INTO tenants (" STORE_TENANT_COLUMNS ") VALUES "
                           "(?,?,?,?,?,?,?,?,?,?,?)",
    [STMT_TENANT_UPDATE] = "UPDATE tenants SET access_key = ?2, secret = ?3, hosts = ?4, "
                           "tag_prefix = ?5, quota_purge_urls = ?6, quota_purge_patterns = ?7, "
                           "quota_preload_urls = ?8, rate_requests = ?9, rate_urls = ?10 "
                           "WHERE name = ?1",
    [STMT_TENANT_DELETE] = "DELETE FROM tenants WHERE name = ?1",
    [STMT_TENANT_HAS_TASKS] = "SELECT 1 FROM tasks WHERE tenant = ?1 LIMIT 1",
    [STMT_TASK_IS_CANCELED] = "SELECT 1 FROM tasks WHERE id = ?1 AND state = 'canceled'",
    /* Every planned unfinished task's saved results at once, for a restart. */
    [STMT_UNFINISHED_TASK_NODES] = "SELECT n.task_id, n.node_id, n.states, n.succeeded, n.failed, "
                                   "n.unsupported, n.verified, n.verified_count FROM task_nodes AS "
                                   "n JOIN tasks ON tasks.id = n.task_id WHERE tasks.state IN "
                                   "('queued', 'running') AND tasks.planned = 1 "
                                   "ORDER BY n.task_id, n.node_id",
    [STMT_UNFINISHED_FAILURES] = "SELECT f.task_id, f.idx, f.node_id, f.state, f.http_status, "
                                 "f.reason FROM item_failures AS f JOIN tasks ON tasks.id = "
                                 "f.task_id WHERE tasks.state IN ('queued', 'running') AND "
                                 "tasks.planned = 1 ORDER BY f.task_id, f.idx, f.node_id",
    [STMT_TASK_LOAD] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks WHERE id = ?1",
    [STMT_TENANT_USAGE_DELETE] = "DELETE FROM quota_usage WHERE tenant = ?1",
    [STMT_TENANTS_BUMP] = "UPDATE meta SET value = value + 1 WHERE key = 'tenants_generation'",
    /* The limits (?6..?8, 0 for none) are checked against the stored use; store_quota_charge
     * checks a day's first charge. */
    [STMT_QUOTA_CHARGE] =
        "INSERT INTO quota_usage (tenant, day, purge_urls, purge_patterns, preload_urls) "
        "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (tenant, day) DO UPDATE SET "
        "purge_urls = purge_urls + ?3, purge_patterns = purge_patterns + ?4, "
        "preload_urls = preload_urls + ?5 WHERE (?6 = 0 OR purge_urls + ?3 <= ?6) AND "
        "(?7 = 0 OR purge_patterns + ?4 <= ?7) AND (?8 = 0 OR preload_urls + ?5 <= ?8)",
    [STMT_NODE_UPSERT] = "INSERT INTO nodes (id, groups, cache_kind, agent_version, registered_ms,"
                         " last_seen_ms, first_result_ms, number) VALUES (?1, ?2, ?3, ?4, ?5, ?5,"
                         " ?6, ?7) ON CONFLICT (id) DO UPDATE SET groups = ?2, cache_kind = ?3,"
                         " agent_version = ?4, last_seen_ms = ?5,"
                         " first_result_ms = MAX(first_result_ms, ?6), removed = 0",
    [STMT_TASK_PLAN] =
        "UPDATE tasks SET planned = 1, total = ?2, pending = ?3, plan_seq = ?6, plan_nodes = "
        "?7, " STORE_UNLESS_CANCELED("state", "?4") ", " STORE_UNLESS_CANCELED(
            "finished_ms", "?5") " WHERE id = ?1",
    [STMT_TASK_NODE_SAVE] = "INSERT OR REPLACE INTO task_nodes (task_id, node_id, states, "
                            "succeeded, failed, unsupported, verified, verified_count) "
                            "VALUES (?,?,?,?,?,?,?,?)",
    /* A row with no states: every item pending, read as canceled once the task is. */
    [STMT_TASK_NODE_FINISH] = "UPDATE task_nodes SET states = ?2, verified = ?3, succeeded = ?4, "
                              "verified_count = ?5 WHERE task_id = ?1 AND length(states) = 0",
    [STMT_TASK_NODE_HOLD] = "INSERT OR IGNORE INTO task_nodes (task_id, node_id, states, "
                            "succeeded, failed, unsupported, verified, verified_count) "
                            "VALUES (?1, ?2, X'', 0, 0, 0, NULL, 0)",
    [STMT_TASK_PROGRESS] =
        "UPDATE tasks SET succeeded = ?2, failed = ?3, pending = ?4, "
        "unsupported = ?5, started_ms = ?6, verified = ?9, " STORE_UNLESS_CANCELED(
            "state", "?7") ", " STORE_UNLESS_CANCELED("finished_ms", "?8") " WHERE id = ?1",
    [STMT_FAILURE_SAVE] = "INSERT OR REPLACE INTO item_failures (task_id, idx, node_id, state, "
                          "http_status, reason) VALUES (?,?,?,?,?,?)",
    /* Finished tasks created before ?1 whose callback is not still due, oldest states' ranges
     * of tasks_by_state read in id order. */
    [STMT_PRUNE_PICK] = "SELECT id FROM tasks INDEXED BY tasks_by_state WHERE state IN ('done', "
                        "'partial', 'failed', 'canceled') AND id < ?1 AND callback_state != "
                        "'pending' LIMIT ?2",
    [STMT_PRUNE_TARGETS] = "DELETE FROM task_targets WHERE task_id = ?1",
    [STMT_PRUNE_TASK_NODES] = "DELETE FROM task_nodes WHERE task_id = ?1",
    [STMT_PRUNE_FAILURES] = "DELETE FROM item_failures WHERE task_id = ?1",
    [STMT_PRUNE_CALLBACK_ATTEMPTS] = "DELETE FROM callback_attempts WHERE task_id = ?1",
    [STMT_PRUNE_TASK] = "DELETE FROM tasks WHERE id = ?1",
};

static const char sqlite_schema[] =
    "CREATE TABLE IF NOT EXISTS tasks ("
    " id TEXT PRIMARY KEY, tenant TEXT NOT NULL, type TEXT NOT NULL, mode TEXT NOT NULL,"
    " state TEXT NOT NULL, node_groups TEXT, headers TEXT, callback TEXT,"
    " deadline_s INTEGER NOT NULL, created_ms INTEGER NOT NULL, started_ms INTEGER NOT NULL,"
    " finished_ms INTEGER NOT NULL, total INTEGER NOT NULL, succeeded INTEGER NOT NULL,"
    " failed INTEGER NOT NULL, pending INTEGER NOT NULL, unsupported INTEGER NOT NULL,"
    " urls INTEGER NOT NULL, prefixes INTEGER NOT NULL, regexes INTEGER NOT NULL,"
    " tags INTEGER NOT NULL, planned INTEGER NOT NULL, callback_state TEXT NOT NULL,"
    " callback_attempts INTEGER NOT NULL, verify INTEGER NOT NULL DEFAULT 1,"
    " verified INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    /* Only tasks whose callback is still due: most tasks have none, and their inserts skip it. */
    "DROP INDEX IF EXISTS tasks_by_callback;"
    "CREATE INDEX IF NOT EXISTS tasks_callback_pending ON tasks (id) WHERE callback_state = "
    "'pending';"
    "CREATE TABLE IF NOT EXISTS callback_attempts ("
    " task_id TEXT NOT NULL, attempt INTEGER NOT NULL, at_ms INTEGER NOT NULL,"
    " http_status INTEGER NOT NULL, error TEXT, PRIMARY KEY (task_id, attempt)) WITHOUT ROWID;"
    /* A tenant's tasks newest first, all of them or in one state: a filtered page reads only its
     * rows, never every task of the tenant (each state change updates it: two per task). */
    "CREATE INDEX IF NOT EXISTS tasks_by_tenant ON tasks (tenant, id);"
    "CREATE INDEX IF NOT EXISTS tasks_by_tenant_state ON tasks (tenant, state, id);"
    "CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks (state, id);"
    /* Tasks by state, kept by triggers on every write path, so counting is six rows read, not
     * every task (sqlite_open fills it for a store that predates it). */
    "CREATE TABLE IF NOT EXISTS task_state_counts ("
    " state TEXT PRIMARY KEY, tasks INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TRIGGER IF NOT EXISTS task_state_count_insert AFTER INSERT ON tasks BEGIN"
    " INSERT INTO task_state_counts (state, tasks) VALUES (NEW.state, 1)"
    " ON CONFLICT (state) DO UPDATE SET tasks = tasks + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS task_state_count_update AFTER UPDATE OF state ON tasks"
    " WHEN OLD.state IS NOT NEW.state BEGIN"
    " UPDATE task_state_counts SET tasks = tasks - 1 WHERE state = OLD.state;"
    " INSERT INTO task_state_counts (state, tasks) VALUES (NEW.state, 1)"
    " ON CONFLICT (state) DO UPDATE SET tasks = tasks + 1; END;"
    "CREATE TRIGGER IF NOT EXISTS task_state_count_delete AFTER DELETE ON tasks BEGIN"
    " UPDATE task_state_counts SET tasks = tasks - 1 WHERE state = OLD.state; END;"
    "CREATE TABLE IF NOT EXISTS task_targets ("
    " task_id TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY (task_id, idx)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS nodes ("
    " id TEXT PRIMARY KEY, groups TEXT NOT NULL, cache_kind TEXT NOT NULL,"
    " agent_version TEXT NOT NULL, registered_ms INTEGER NOT NULL,"
    " last_seen_ms INTEGER NOT NULL, first_result_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    /* states: 2 bits per target (enum item_state), the compact per-(task, node) result record;
     * verified: 1 bit per target, the succeeded results the agent verified */
    "CREATE TABLE IF NOT EXISTS task_nodes ("
    " task_id TEXT NOT NULL, node_id TEXT NOT NULL, states BLOB NOT NULL,"
    " succeeded INTEGER NOT NULL, failed INTEGER NOT NULL, unsupported INTEGER NOT NULL,"
    " verified BLOB, verified_count INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (task_id, node_id)) WITHOUT ROWID;"
    /* only results that were not a success carry a detail row */
    "CREATE TABLE IF NOT EXISTS item_failures ("
    " task_id TEXT NOT NULL, idx INTEGER NOT NULL, node_id TEXT NOT NULL, state TEXT NOT NULL,"
    " http_status INTEGER NOT NULL, reason TEXT NOT NULL,"
    " PRIMARY KEY (task_id, idx, node_id)) WITHOUT ROWID;"
    /* tenants: secrets are kept as they are, since checking an HMAC needs them */
    "CREATE TABLE IF NOT EXISTS tenants ("
    " name TEXT PRIMARY KEY, access_key TEXT NOT NULL UNIQUE, secret TEXT NOT NULL,"
    " hosts TEXT NOT NULL, tag_prefix TEXT, quota_purge_urls INTEGER NOT NULL,"
    " quota_purge_patterns INTEGER NOT NULL, quota_preload_urls INTEGER NOT NULL,"
    " rate_requests INTEGER NOT NULL, rate_urls INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL) WITHOUT ROWID;"
    /* day: days since the epoch, UTC */
    "CREATE TABLE IF NOT EXISTS quota_usage ("
    " tenant TEXT NOT NULL, day INTEGER NOT NULL, purge_urls INTEGER NOT NULL,"
    " purge_patterns INTEGER NOT NULL, preload_urls INTEGER NOT NULL,"
    " PRIMARY KEY (tenant, day)) WITHOUT ROWID;"
    /* tenants_generation: bumped by every tenant change, so engines notice and reload */
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta (key, value) VALUES ('tenants_generation', 0);"
    "PRAGMA user_version = 10;";

/* Columns added since a table was first created: CREATE TABLE IF NOT EXISTS leaves an older
 * store's tables as they were, so these are added to them at open (schema 7: verification;
 * 8: a node's first result; 9: task_state_counts, filled by sqlite_count_states; 10: node
 * numbers and watermarks, task plans, filled by sqlite_migrate_plans). */
static const struct {
  const char *table, *column, *declaration;
} sqlite_added_columns[] = {
    {"tasks", "verify", "INTEGER NOT NULL DEFAULT 1"},
    {"tasks", "verified", "INTEGER NOT NULL DEFAULT 0"},
    {"task_nodes", "verified", "BLOB"},
    {"task_nodes", "verified_count", "INTEGER NOT NULL DEFAULT 0"},
    {"nodes", "first_result_ms", "INTEGER NOT NULL DEFAULT 0"},
    {"nodes", "number", "INTEGER NOT NULL DEFAULT -1"},
    {"nodes", "fast_below", "INTEGER NOT NULL DEFAULT 0"},
    {"nodes", "slow_below", "INTEGER NOT NULL DEFAULT 0"},
    {"nodes", "removed", "INTEGER NOT NULL DEFAULT 0"},
    {"tasks", "plan_seq", "INTEGER NOT NULL DEFAULT 0"},
    {"tasks", "plan_nodes", "BLOB"},
};

/* Adds every column of sqlite_added_columns its table lacks. */
static int sqlite_add_columns(sqlite3 *db) {
  for (size_t i = 0; i < sizeof(sqlite_added_columns) / sizeof(sqlite_added_columns[0]); i++) {
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT 1 FROM pragma_table_info('%s') WHERE name = '%s'",
             sqlite_added_columns[i].table, sqlite_added_columns[i].column);
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
      return rc;
    rc = sqlite3_step(stmt);
    sqlite3_finalize(stmt);
    if (rc == SQLITE_ROW)
      continue;
    if (rc != SQLITE_DONE)
      return rc;
    snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN %s %s", sqlite_added_columns[i].table,
             sqlite_added_columns[i].column, sqlite_added_columns[i].declaration);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
      return rc;
  }
  return SQLITE_OK;
}

enum { STORE_PROGRESS_STEPS = 10000 }; /* VM steps between looks at the read budget (~0.1 ms) */

/* SQLite's progress handler: stops a statement once the read budget is spent. */
static int sqlite_on_progress(void *arg) {
  struct sqlite_store *store = arg;
  return store->read_deadline_ms && clock_now_ms() > store->read_deadline_ms;
}

void sqlite_read_budget_start(struct store *base) {
  struct sqlite_store *store = sqlite_of(base);
  if (store->read_budget_ms > 0)
    store->read_deadline_ms = clock_now_ms() + store->read_budget_ms;
}

/* Fills task_state_counts from the tasks when it is empty but they are not: a store from before
 * the table existed (its triggers keep it from then on). One scan, once. */
static int sqlite_count_states(sqlite3 *db) {
  return sqlite3_exec(db,
                      "INSERT INTO task_state_counts (state, tasks) SELECT state, count(*) FROM "
                      "tasks WHERE NOT EXISTS (SELECT 1 FROM task_state_counts) GROUP BY state",
                      NULL, NULL, NULL);
}

/* Schema 10 keeps a task's plan as a bitmap over node numbers and a node's progress as watermarks
 * instead of one row per (task, node). An older store's nodes get numbers; its unfinished tasks
 * are planned again from the start (their rows and details go: purges and preloads are
 * idempotent, and every result is recorded once in the new layout); its finished tasks keep
 * their rows, which item pages still read. Each statement finds nothing to do the next time. */
static int sqlite_migrate_plans(sqlite3 *db) {
  return sqlite3_exec(
      db,
      "WITH numbered AS (SELECT id, (SELECT max(number) FROM nodes) + row_number() OVER (ORDER BY"
      " id) AS n FROM nodes WHERE number < 0)"
      " UPDATE nodes SET number = numbered.n FROM numbered WHERE nodes.id = numbered.id;"
      "CREATE TEMP TABLE replanned AS SELECT id FROM tasks WHERE state IN ('queued', 'running')"
      " AND planned = 1 AND plan_nodes IS NULL;"
      "DELETE FROM task_nodes WHERE task_id IN (SELECT id FROM replanned);"
      "DELETE FROM item_failures WHERE task_id IN (SELECT id FROM replanned);"
      "UPDATE tasks SET planned = 0, state = 'queued', succeeded = 0, failed = 0, unsupported = 0,"
      " verified = 0 WHERE id IN (SELECT id FROM replanned);"
      "DROP TABLE replanned;",
      NULL, NULL, NULL);
}

int sqlite_error(struct sqlite_store *store, int rc, const char *what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW)
    return 0;
  if (rc == SQLITE_NOMEM)
    return CDR_ENOMEM;
  if (rc == SQLITE_INTERRUPT) {
    log_warn("store.read_too_long", "%s ran past store.read_budget_ms (%lld ms) and was stopped",
             what, (long long)store->read_budget_ms);
    return CDR_EREAD_TOO_LONG;
  }
  log_error("store.error", "%s failed: %s (sqlite code %d)", what, sqlite3_errmsg(store->db), rc);
  return CDR_ESTORE_UNAVAILABLE;
}

static int sqlite_mkdir(const char *dir, char *err, size_t err_size) {
  char path[4096];
  if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
    snprintf(err, err_size, "data dir path is too long");
    return CDR_ESTORE_UNAVAILABLE;
  }
  for (char *p = path + 1;; p++) {
    if (*p == '/' || *p == '\0') {
      char saved = *p;
      *p = '\0';
      if (mkdir(path, 0750) != 0 && errno != EEXIST) {
        snprintf(err, err_size, "cannot create data dir %s: %s", path, strerror(errno));
        return CDR_ESTORE_UNAVAILABLE;
      }
      *p = saved;
      if (saved == '\0')
        return 0;
    }
  }
}

/* Process-wide SQLite settings, before its first use. Memory statistics take a global mutex on
 * every allocation; nothing reads them. */
static void sqlite_configure(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

/* Takes the data directory's engine lock: this backend lets one engine use a store (its writer is
 * the only one admitting tasks, so ids and quota charges need no coordination). */
static int sqlite_lock(struct sqlite_store *store, const char *dir, char *err, size_t err_size) {
  char path[4200];
  snprintf(path, sizeof(path), "%s/engine.lock", dir);
  store->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (store->lock_fd >= 0 && flock(store->lock_fd, LOCK_EX | LOCK_NB) == 0)
    return 0;
  snprintf(err, err_size, "data dir %s is in use by another engine (cannot lock %s: %s)", dir, path,
           strerror(errno));
  return CDR_ESTORE_UNAVAILABLE;
}

int sqlite_open(const char *dir, const struct store_options *options, struct store **out, char *err,
                size_t err_size) {
  static pthread_once_t configured = PTHREAD_ONCE_INIT;
  pthread_once(&configured, sqlite_configure);
  if (!options->read_only && sqlite_mkdir(dir, err, err_size))
    return CDR_ESTORE_UNAVAILABLE;
  struct sqlite_store *store = calloc(1, sizeof(*store));
  if (!store)
    return CDR_ENOMEM;
  store->base.backend = &store_sqlite_backend;
  store->lock_fd = -1;
  admission_init(&store->admission);
  if (options->engine && sqlite_lock(store, dir, err, err_size)) {
    sqlite_close(&store->base);
    return CDR_ESTORE_UNAVAILABLE;
  }
  char path[4200];
  snprintf(path, sizeof(path), "%s/cdnrefresh.db", dir);
  int flags =
      options->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path, &store->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK)
    goto fail;
  sqlite3_busy_timeout(store->db, 5000);
  store->read_budget_ms = options->read_budget_ms;
  if (options->read_budget_ms > 0)
    sqlite3_progress_handler(store->db, STORE_PROGRESS_STEPS, sqlite_on_progress, store);
  char pragmas[160];
  snprintf(pragmas, sizeof(pragmas), "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;",
           options->synchronous_full ? "FULL" : "NORMAL");
  if (!options->read_only) {
    rc = sqlite3_exec(store->db, pragmas, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
      rc = sqlite3_exec(store->db, sqlite_schema, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
      rc = sqlite_add_columns(store->db);
    if (rc == SQLITE_OK)
      rc = sqlite_count_states(store->db);
    if (rc == SQLITE_OK)
      rc = sqlite_migrate_plans(store->db);
    if (rc != SQLITE_OK)
      goto fail;
  }
  for (int i = 0; i < STMT_COUNT; i++) {
    if (options->read_only && sqlite_statement_writes(i))
      continue; /* a read-only connection never runs them */
    rc = sqlite3_prepare_v3(store->db, sqlite_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                            &store->statements[i], NULL);
    if (rc != SQLITE_OK)
      goto fail;
  }
  *out = &store->base;
  return 0;

fail:
  snprintf(err, err_size, "cannot open %s: %s", path,
           store->db ? sqlite3_errmsg(store->db) : sqlite3_errstr(rc));
  sqlite_close(&store->base);
  return CDR_ESTORE_UNAVAILABLE;
}

void sqlite_close(struct store *base) {
  struct sqlite_store *store = sqlite_of(base);
  if (!store)
    return;
  for (int i = 0; i < STMT_COUNT; i++)
    sqlite3_finalize(store->statements[i]);
  sqlite3_close(store->db);
  if (store->lock_fd >= 0)
    close(store->lock_fd);
  free(store);
}

int sqlite_run(struct sqlite_store *store, enum sqlite_statement which, const char *what) {
  sqlite3_stmt *stmt = store->statements[which];
  int rc = sqlite3_step(stmt);
  int err = sqlite_error(store, rc, what);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return err;
}

int sqlite_finish(struct sqlite_store *store, sqlite3_stmt *stmt, int rc, int err,
                  const char *what) {
  if (!err && rc != SQLITE_DONE && rc != SQLITE_ROW)
    err = sqlite_error(store, rc, what);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return err;
}

int sqlite_grow(struct arena *arena, void **items, size_t size, size_t count, size_t *cap) {
  if (count < *cap)
    return 0;
  size_t grown = *cap ? *cap * 2 : 16;
  void *more = arena_alloc(arena, grown * size);
  if (!more)
    return CDR_ENOMEM;
  if (count)
    memcpy(more, *items, count * size);
  *items = more;
  *cap = grown;
  return 0;
}

void sqlite_bind_text(sqlite3_stmt *stmt, int index, const char *text) {
  if (text)
    sqlite3_bind_text(stmt, index, text, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(stmt, index);
}

int sqlite_task_insert(struct store *base, const struct task *task) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_TASK_INSERT];
  int col = 1;
  sqlite_bind_text(stmt, col++, task->id);
  sqlite_bind_text(stmt, col++, task->tenant);
  sqlite_bind_text(stmt, col++, task_type_name(task->type));
  sqlite_bind_text(stmt, col++, task_mode_name(task->mode));
  sqlite_bind_text(stmt, col++, task_state_name(task->state));
  sqlite_bind_text(stmt, col++, task->node_groups_json);
  sqlite_bind_text(stmt, col++, task->headers_json);
  sqlite_bind_text(stmt, col++, task->callback);
  int64_t numbers[STORE_TASK_NUMBERS];
  store_task_numbers(task, numbers);
  for (size_t i = 0; i < STORE_TASK_NUMBERS; i++)
    sqlite3_bind_int64(stmt, col++, numbers[i]);
  sqlite_bind_text(stmt, col++, callback_state_name(task->callback_state));
  sqlite3_bind_int64(stmt, col++, task->callback_attempt_count);
  sqlite3_bind_int(stmt, col++, task->verify);
  sqlite3_bind_int64(stmt, col++, task->counters.verified);
  int err = sqlite_run(store, STMT_TASK_INSERT, "task insert");

  stmt = store->statements[STMT_TARGET_INSERT];
  for (size_t i = 0; !err && i < task->target_count; i++) {
    const struct task_target *target = &task->targets[i];
    sqlite_bind_text(stmt, 1, task->id);
    sqlite3_bind_int64(stmt, 2, (int64_t)i);
    sqlite_bind_text(stmt, 3, target_kind_name(target->kind));
    sqlite_bind_text(stmt, 4, target->value);
    err = sqlite_run(store, STMT_TARGET_INSERT, "target insert");
  }
  return err;
}

const char *sqlite_column_text(sqlite3_stmt *stmt, int col, struct arena *arena, bool *failed) {
  const unsigned char *text = sqlite3_column_text(stmt, col);
  if (!text)
    return NULL;
  char *copy = arena_strndup(arena, (const char *)text, (size_t)sqlite3_column_bytes(stmt, col));
  if (!copy)
    *failed = true;
  return copy;
}

uint8_t *sqlite_column_blob(sqlite3_stmt *stmt, int col, struct arena *arena, size_t *len,
                            bool *failed) {
  *len = (size_t)sqlite3_column_bytes(stmt, col);
  uint8_t *copy = arena_alloc(arena, *len + 1);
  if (!copy) {
    *failed = true;
    return NULL;
  }
  if (*len)
    memcpy(copy, sqlite3_column_blob(stmt, col), *len);
  return copy;
}

int sqlite_task_from_row(sqlite3_stmt *stmt, struct arena *arena, struct task **out) {
  struct task *task = arena_alloc(arena, sizeof(*task));
  if (!task)
    return CDR_ENOMEM;
  memset(task, 0, sizeof(*task));
  bool failed = false;
  const char *text = (const char *)sqlite3_column_text(stmt, 0);
  snprintf(task->id, sizeof(task->id), "%s", text ? text : "");
  task->tenant = sqlite_column_text(stmt, 1, arena, &failed);
  const char *type = (const char *)sqlite3_column_text(stmt, 2);
  const char *mode = (const char *)sqlite3_column_text(stmt, 3);
  const char *state = (const char *)sqlite3_column_text(stmt, 4);
  if (!type || !mode || !state || task_type_parse(type, &task->type) ||
      task_mode_parse(mode, &task->mode) || task_state_parse(state, strlen(state), &task->state)) {
    log_error("store.corrupt", "task %s has an unknown type, mode or state", task->id);
    return CDR_EINTERNAL;
  }
  task->node_groups_json = sqlite_column_text(stmt, 5, arena, &failed);
  task->headers_json = sqlite_column_text(stmt, 6, arena, &failed);
  task->callback = sqlite_column_text(stmt, 7, arena, &failed);
  int64_t *numbers[] = {
      &task->deadline_s,      &task->created_ms,       &task->started_ms,
      &task->finished_ms,     &task->counters.total,   &task->counters.succeeded,
      &task->counters.failed, &task->counters.pending, &task->counters.unsupported};
  int col = 8;
  for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
    *numbers[i] = sqlite3_column_int64(stmt, col++);
  for (int kind = 0; kind < TARGET_KIND_COUNT; kind++) {
    task->target_counts[kind] = (size_t)sqlite3_column_int64(stmt, col++);
    task->target_count += task->target_counts[kind];
  }
  task->planned = sqlite3_column_int(stmt, col++) != 0;
  const char *callback = (const char *)sqlite3_column_text(stmt, col++);
  if (!callback || callback_state_parse(callback, &task->callback_state))
    return CDR_EINTERNAL;
  task->callback_attempt_count = sqlite3_column_int64(stmt, col++);
  task->verify = sqlite3_column_int(stmt, col++) != 0;
  task->counters.verified = sqlite3_column_int64(stmt, col++);
  task->plan_seq = sqlite3_column_int64(stmt, col++);
  if (sqlite3_column_type(stmt, col) != SQLITE_NULL)
    task->plan_nodes = sqlite_column_blob(stmt, col, arena, &task->plan_nodes_len, &failed);
  if (failed)
    return CDR_ENOMEM;
  *out = task;
  return 0;
}

int sqlite_task_get(struct store *base, const char *tenant, const char *id, struct arena *arena,
                    struct task **out) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_TASK_GET];
  sqlite_bind_text(stmt, 1, id);
  sqlite_bind_text(stmt, 2, tenant);
  int rc = sqlite3_step(stmt);
  int err = rc == SQLITE_ROW    ? sqlite_task_from_row(stmt, arena, out)
            : rc == SQLITE_DONE ? CDR_ETASK_NOT_FOUND
                                : sqlite_error(store, rc, "task get");
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return err;
}

int sqlite_task_cancel(struct store *base, const char *tenant, const char *id, int64_t now_ms) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_TASK_CANCEL];
  sqlite_bind_text(stmt, 1, id);
  sqlite_bind_text(stmt, 2, tenant);
  sqlite3_bind_int64(stmt, 3, now_ms);
  int err = sqlite_run(store, STMT_TASK_CANCEL, "task cancel");
  if (err)
    return err;
  bool canceled = sqlite3_changes(store->db) > 0;
  struct arena scratch;
  arena_init(&scratch, STORE_SCRATCH_MAX);
  struct task *task;
  err = sqlite_task_get(base, tenant, id, &scratch, &task);
  /* The nodes that had not finished the task get their rows in this transaction, not when the
   * fabric learns of the cancel: their watermarks pass a canceled task, and a crash in between
   * would leave nothing to say those nodes never ran it. */
  if (!err && canceled && task->plan_nodes)
    err = sqlite_task_nodes_hold(store, task);
  arena_release(&scratch);
  /* Nothing changed: either no such task, or it has already finished. */
  return err ? err : canceled ? 0 : CDR_ETASK_FINAL;
}

int sqlite_tasks_list(struct store *base, const char *tenant, const enum task_state *state,
                      const char *after, size_t limit, struct arena *arena,
                      struct store_task_page *out) {
  struct sqlite_store *store = sqlite_of(base);
  enum sqlite_statement which = tenant ? (state ? STMT_TASKS_LIST_STATE : STMT_TASKS_LIST)
                                       : (state ? STMT_TASKS_LIST_ALL_STATE : STMT_TASKS_LIST_ALL);
  sqlite3_stmt *stmt = store->statements[which];
  sqlite_bind_text(stmt, 1, tenant);
  sqlite_bind_text(stmt, 2, state ? task_state_name(*state) : NULL);
  sqlite_bind_text(stmt, 3, after ? after : STORE_ID_AFTER_ALL);
  sqlite3_bind_int64(stmt, 4, (int64_t)limit + 1); /* one extra row tells whether more exist */
  out->tasks = arena_alloc(arena, (limit + 1) * sizeof(*out->tasks));
  out->count = 0;
  out->more = false;
  int err = out->tasks ? 0 : CDR_ENOMEM;
  int rc = SQLITE_DONE;
  while (!err && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if (out->count == limit) {
      out->more = true;
      break;
    }
    err = sqlite_task_from_row(stmt, arena, &out->tasks[out->count]);
    if (!err)
      out->count++;
  }
  if (!err && rc != SQLITE_ROW)
    err = sqlite_error(store, rc, "task list");
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return err;
}

int sqlite_prune_pick(struct store *base, const char *before, size_t limit,
                      char (*ids)[TASK_ID_LENGTH + 1], size_t *count) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *pick = store->statements[STMT_PRUNE_PICK];
  sqlite_bind_text(pick, 1, before);
  sqlite3_bind_int64(pick, 2, (int64_t)limit);
  *count = 0;
  int rc;
  while ((rc = sqlite3_step(pick)) == SQLITE_ROW && *count < limit)
    snprintf(ids[(*count)++], sizeof(ids[0]), "%s", (const char *)sqlite3_column_text(pick, 0));
  return sqlite_finish(store, pick, rc, 0, "prune pick");
}

int sqlite_task_delete(struct store *base, const char *id, size_t *rows) {
  struct sqlite_store *store = sqlite_of(base);
  *rows = 0;
  for (int which = STMT_PRUNE_TARGETS; which <= STMT_PRUNE_TASK; which++) {
    sqlite_bind_text(store->statements[which], 1, id);
    int err = sqlite_run(store, (enum sqlite_statement)which, "prune");
    if (err)
      return err;
    *rows += (size_t)sqlite3_changes(store->db);
  }
  return 0;
}

int sqlite_targets_list(struct store *base, const char *task_id, int64_t after, size_t limit,
                        struct arena *arena, struct store_target_page *out) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_TARGETS_LIST];
  sqlite_bind_text(stmt, 1, task_id);
  sqlite3_bind_int64(stmt, 2, after);
  sqlite3_bind_int64(stmt, 3, (int64_t)limit + 1);
  out->targets = arena_alloc(arena, (limit + 1) * sizeof(*out->targets));
  out->indexes = arena_alloc(arena, (limit + 1) * sizeof(*out->indexes));
  out->count = 0;
  out->more = false;
  int err = out->targets && out->indexes ? 0 : CDR_ENOMEM;
  int rc = SQLITE_DONE;
  while (!err && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if (out->count == limit) {
      out->more = true;
      break;
    }
    struct task_target *target = &out->targets[out->count];
    const char *kind = (const char *)sqlite3_column_text(stmt, 1);
    bool failed = false;
    target->value = sqlite_column_text(stmt, 2, arena, &failed);
    target->state = ITEM_PENDING;
    if (failed)
      err = CDR_ENOMEM;
    else if (!kind || target_kind_parse(kind, &target->kind))
      err = CDR_EINTERNAL;
    out->indexes[out->count++] = sqlite3_column_int64(stmt, 0);
  }
  if (!err && rc != SQLITE_ROW)
    err = sqlite_error(store, rc, "target list");
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return err;
}

/* A directory holds no secret: the address is shown as it is. */
static void sqlite_describe(const char *dir, char *out, size_t size) {
  snprintf(out, size, "sqlite:%s", dir);
}

const struct store_backend store_sqlite_backend = {
    .name = "sqlite",
    .scheme = "sqlite:",
    .describe = sqlite_describe,
    .open = sqlite_open,
    .read_budget_start = sqlite_read_budget_start,
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .task_insert = sqlite_task_insert,
    .task_admit = sqlite_task_admit,
    .task_get = sqlite_task_get,
    .task_cancel = sqlite_task_cancel,
    .tasks_list = sqlite_tasks_list,
    .targets_list = sqlite_targets_list,
    .node_upsert = sqlite_node_upsert,
    .node_marks_save = sqlite_node_marks_save,
    .nodes_load = sqlite_nodes_load,
    .task_plan = sqlite_task_plan,
    .task_progress = sqlite_task_progress,
    .tasks_load = sqlite_tasks_load,
    .tasks_unfinished = sqlite_tasks_unfinished,
    .task_nodes_load = sqlite_task_nodes_load,
    .unfinished_results = sqlite_unfinished_results,
    .callback_attempt = sqlite_callback_attempt,
    .callback_attempts_load = sqlite_callback_attempts_load,
    .callbacks_pending = sqlite_callbacks_pending,
    .prune_pick = sqlite_prune_pick,
    .task_delete = sqlite_task_delete,
    .task_counts = sqlite_task_counts,
    .node_delete = sqlite_node_delete,
    .failures_list = sqlite_failures_list,
    .tenant_insert = sqlite_tenant_insert,
    .tenant_update = sqlite_tenant_update,
    .tenant_delete = sqlite_tenant_delete,
    .tenants_generation = sqlite_tenants_generation,
    .tenants_load = sqlite_tenants_load,
    .quota_usage = sqlite_quota_usage,
    .quota_charge = sqlite_quota_charge,
};
