/* store_postgres.c — the PostgreSQL backend of store.h (libpq): its connection, schema versions,
 * prepared statements, group commit, and the task calls the API makes.
 *
 * A connection runs one statement at a time, blocking its own thread (each store worker has its
 * own connection, as with SQLite). A connection lost between transactions is opened again by the
 * next call; one lost inside a transaction fails that transaction, whose writes PostgreSQL has
 * rolled back, so nothing is reported durable that was not committed. */
#include "store/postgres/store_postgres_internal.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Advisory lock keys: the engine's (one engine per store, held by its writer for as long as it
 * runs), the schema migration's (held by the transaction that migrates) and the write lock (held
 * by every write transaction). */
#define PG_LOCK_ENGINE "7234017113409405001"
#define PG_LOCK_MIGRATE "7234017113409405002"
#define PG_LOCK_WRITE "7234017113409405003"

static const char *const pg_sql[PG_STATEMENT_COUNT] = {
    /* Many rows at once, each parameter an array of one column (store_postgres_batch.c). */
    [PG_TASKS_INSERT] =
        "INSERT INTO tasks (" STORE_TASK_COLUMNS ") SELECT * FROM unnest($1::text[], "
        "$2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
        "$8::text[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], "
        "$13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[], "
        "$17::bigint[], $18::bigint[], $19::bigint[], $20::bigint[], "
        "$21::bigint[], $22::bigint[], $23::text[], $24::bigint[], "
        "$25::bigint[], $26::bigint[])",
    [PG_TARGETS_INSERT] = "INSERT INTO task_targets (task_id, idx, kind, value) SELECT * FROM "
                          "unnest($1::text[], $2::bigint[], $3::text[], $4::text[])",
    [PG_TASK_GET] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks WHERE id = $1 AND tenant = $2",
    [PG_TASK_CANCEL] = "UPDATE tasks SET state = 'canceled', finished_ms = $3 "
                       "WHERE id = $1 AND tenant = $2 AND state IN ('queued', 'running')",
    /* One statement per filter, each a range of one index read newest first ($1 tenant, $2
     * state, $3 the cursor or STORE_ID_AFTER_ALL, $4 the limit); ids compare byte by byte (their
     * columns are COLLATE "C"), as the cursor needs. */
    [PG_TASKS_LIST] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks WHERE tenant = $1 AND "
                      "id < $2 ORDER BY id DESC LIMIT $3",
    [PG_TASKS_LIST_STATE] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks WHERE tenant = $1 AND "
                            "state = $4 AND id < $2 ORDER BY id DESC LIMIT $3",
    [PG_TASKS_LIST_ALL] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks WHERE id < $1 "
                          "ORDER BY id DESC LIMIT $2",
    [PG_TASKS_LIST_ALL_STATE] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks WHERE state = $3 "
                                "AND id < $1 ORDER BY id DESC LIMIT $2",
    [PG_TARGETS_LIST] = "SELECT idx, kind, value FROM task_targets WHERE task_id = $1 "
                        "AND idx > $2 ORDER BY idx LIMIT $3",
    [PG_NODES_LOAD] = "SELECT id, groups, cache_kind, agent_version, registered_ms, "
                      "last_seen_ms, first_result_ms, number, fast_below, slow_below, removed "
                      "FROM nodes ORDER BY id",
    [PG_TASKS_UNFINISHED] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks "
                            "WHERE state IN ('queued', 'running') ORDER BY id",
    [PG_TARGETS_ALL] = "SELECT task_id, kind, value FROM task_targets WHERE task_id = $1 "
                       "ORDER BY idx",
    /* Every planned unfinished task's saved results at once, for a restart. */
    [PG_UNFINISHED_TASK_NODES] = "SELECT n.task_id, n.node_id, n.states, n.succeeded, n.failed, "
                                 "n.unsupported, n.verified, n.verified_count FROM task_nodes AS n "
                                 "JOIN tasks ON tasks.id = n.task_id WHERE tasks.state IN "
                                 "('queued', 'running') AND tasks.planned = 1 "
                                 "ORDER BY n.task_id, n.node_id",
    [PG_UNFINISHED_FAILURES] = "SELECT f.task_id, f.idx, f.node_id, f.state, f.http_status, "
                               "f.reason FROM item_failures AS f JOIN tasks ON tasks.id = "
                               "f.task_id WHERE tasks.state IN ('queued', 'running') AND "
                               "tasks.planned = 1 ORDER BY f.task_id, f.idx, f.node_id",
    [PG_TARGETS_UNFINISHED] = "SELECT t.task_id, t.kind, t.value FROM task_targets AS t JOIN tasks "
                              "ON tasks.id = t.task_id WHERE tasks.state IN ('queued', 'running') "
                              "ORDER BY t.task_id, t.idx",
    [PG_TASK_NODES_LOAD] = "SELECT node_id, states, succeeded, failed, unsupported, verified, "
                           "verified_count FROM task_nodes WHERE task_id = $1 ORDER BY node_id",
    [PG_FAILURES_LIST] = "SELECT idx, node_id, state, http_status, reason FROM item_failures "
                         "WHERE task_id = $1 AND idx BETWEEN $2 AND $3 ORDER BY idx, node_id",
    [PG_CALLBACKS_PENDING] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks WHERE "
                             "callback_state = 'pending' AND state IN ('done', 'partial', "
                             "'failed', 'canceled') ORDER BY id",
    [PG_CALLBACK_ATTEMPTS_LIST] = "SELECT attempt, at_ms, http_status, error FROM "
                                  "callback_attempts WHERE task_id = $1 ORDER BY attempt",
    [PG_CALLBACK_ATTEMPT_SAVE] = "INSERT INTO callback_attempts (task_id, attempt, at_ms, "
                                 "http_status, error) VALUES ($1, $2, $3, $4, $5) ON CONFLICT "
                                 "(task_id, attempt) DO UPDATE SET at_ms = EXCLUDED.at_ms, "
                                 "http_status = EXCLUDED.http_status, error = EXCLUDED.error",
    [PG_CALLBACK_STATE] = "UPDATE tasks SET callback_state = $2, callback_attempts = $3 "
                          "WHERE id = $1",
    [PG_TASK_COUNTS] = "SELECT state, tasks FROM task_state_counts",
    [PG_NODE_DELETE] = "UPDATE nodes SET removed = 1 WHERE id = $1",
    [PG_NODE_MARKS] = "UPDATE nodes SET fast_below = $2, slow_below = $3 WHERE id = $1",
    [PG_TENANTS_LOAD] = "SELECT " STORE_TENANT_COLUMNS " FROM tenants ORDER BY access_key",
    [PG_TENANTS_GENERATION] = "SELECT value FROM meta WHERE key = 'tenants_generation'",
    [PG_QUOTA_USAGE] = "SELECT purge_urls, purge_patterns, preload_urls FROM quota_usage "
                       "WHERE tenant = $1 AND day = $2",
    [PG_TENANT_INSERT] = "INSERT INTO tenants (" STORE_TENANT_COLUMNS ") VALUES ($1, $2, $3, $4, "
                         "$5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    [PG_TENANT_UPDATE] = "UPDATE tenants SET access_key = $2, secret = $3, hosts = $4, "
                         "tag_prefix = $5, quota_purge_urls = $6, quota_purge_patterns = $7, "
                         "quota_preload_urls = $8, rate_requests = $9, rate_urls = $10 "
                         "WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM tenants AS other WHERE "
                         "other.access_key = $2 AND other.name <> $1)",
    [PG_TENANT_DELETE] = "DELETE FROM tenants WHERE name = $1",
    [PG_TENANT_HAS_TASKS] = "SELECT 1 FROM tasks WHERE tenant = $1 LIMIT 1",
    [PG_TENANT_FOUND] = "SELECT 1 FROM tenants WHERE name = $1",
    [PG_TASK_IS_CANCELED] = "SELECT 1 FROM tasks WHERE id = $1 AND state = 'canceled'",
    [PG_TASK_LOAD] = "SELECT " STORE_TASK_READ_COLUMNS " FROM tasks WHERE id = $1",
    [PG_TENANT_USAGE_DELETE] = "DELETE FROM quota_usage WHERE tenant = $1",
    [PG_TENANTS_BUMP] = "UPDATE meta SET value = value + 1 WHERE key = 'tenants_generation'",
    /* The limits ($6..$8, 0 for none) are checked against the stored use; store_quota_charge
     * checks a day's first charge. */
    [PG_QUOTA_CHARGE] =
        "INSERT INTO quota_usage AS q (tenant, day, purge_urls, purge_patterns, preload_urls) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, day) DO UPDATE SET "
        "purge_urls = q.purge_urls + $3, purge_patterns = q.purge_patterns + $4, "
        "preload_urls = q.preload_urls + $5 WHERE ($6::bigint = 0 OR q.purge_urls + $3 <= $6) "
        "AND ($7::bigint = 0 OR q.purge_patterns + $4 <= $7) AND "
        "($8::bigint = 0 OR q.preload_urls + $5 <= $8)",
    [PG_NODE_UPSERT] = "INSERT INTO nodes AS n (id, groups, cache_kind, agent_version, "
                       "registered_ms, last_seen_ms, first_result_ms, number) VALUES ($1, $2, $3, "
                       "$4, $5, $5, $6, $7) ON CONFLICT (id) DO UPDATE SET groups = $2, "
                       "cache_kind = $3, agent_version = $4, last_seen_ms = $5, "
                       "first_result_ms = GREATEST(n.first_result_ms, $6), removed = 0",
    [PG_TASK_PLAN] =
        "UPDATE tasks SET planned = 1, total = $2, pending = $3, plan_seq = $6, "
        "plan_nodes = $7, " STORE_UNLESS_CANCELED("state", "$4::text") ", " STORE_UNLESS_CANCELED(
            "finished_ms", "$5::bigint") " WHERE "
                                         "id = $1",
    [PG_TASK_NODE_SAVE] = "INSERT INTO task_nodes (task_id, node_id, states, succeeded, failed, "
                          "unsupported, verified, verified_count) VALUES ($1, $2, $3, $4, $5, "
                          "$6, $7, $8) ON CONFLICT (task_id, node_id) DO UPDATE SET "
                          "states = EXCLUDED.states, succeeded = EXCLUDED.succeeded, "
                          "failed = EXCLUDED.failed, unsupported = EXCLUDED.unsupported, "
                          "verified = EXCLUDED.verified, verified_count = EXCLUDED.verified_count",
    /* A row with no states: every item pending, read as canceled once the task is. */
    [PG_TASK_NODE_FINISH] = "UPDATE task_nodes SET states = $2, verified = $3, succeeded = $4, "
                            "verified_count = $5 WHERE task_id = $1 AND octet_length(states) = 0",
    [PG_TASK_NODE_HOLD] = "INSERT INTO task_nodes (task_id, node_id, states, succeeded, failed, "
                          "unsupported, verified, verified_count) VALUES ($1, $2, ''::bytea, 0, "
                          "0, 0, NULL, 0) ON CONFLICT DO NOTHING",
    [PG_TASK_PROGRESS] =
        "UPDATE tasks SET succeeded = $2, failed = $3, pending = $4, "
        "unsupported = $5, started_ms = $6, verified = $9, " STORE_UNLESS_CANCELED(
            "state", "$7::text") ", " STORE_UNLESS_CANCELED("finished_ms", "$8::bigint") " WHERE "
                                                                                         "id = $1",
    [PG_FAILURE_SAVE] = "INSERT INTO item_failures (task_id, idx, node_id, state, http_status, "
                        "reason) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (task_id, idx, "
                        "node_id) DO UPDATE SET state = EXCLUDED.state, http_status = "
                        "EXCLUDED.http_status, reason = EXCLUDED.reason",
    [PG_PRUNE_PICK] = "SELECT id FROM tasks WHERE state IN ('done', 'partial', 'failed', "
                      "'canceled') AND id < $1 AND callback_state <> 'pending' LIMIT $2",
    [PG_PRUNE_TARGETS] = "DELETE FROM task_targets WHERE task_id = $1",
    [PG_PRUNE_TASK_NODES] = "DELETE FROM task_nodes WHERE task_id = $1",
    [PG_PRUNE_FAILURES] = "DELETE FROM item_failures WHERE task_id = $1",
    [PG_PRUNE_CALLBACK_ATTEMPTS] = "DELETE FROM callback_attempts WHERE task_id = $1",
    [PG_PRUNE_TASK] = "DELETE FROM tasks WHERE id = $1",
};

/* The schema, one migration per version: migration i takes a database from version i to i + 1.
 * Text that is compared or ordered (ids, names, keys) is COLLATE "C": byte order, as SQLite's,
 * whatever the database's locale. */
static const char *const pg_migrations[PG_SCHEMA_VERSION] = {
    "CREATE TABLE tasks ("
    " id TEXT COLLATE \"C\" PRIMARY KEY, tenant TEXT COLLATE \"C\" NOT NULL, type TEXT NOT NULL,"
    " mode TEXT NOT NULL, state TEXT NOT NULL, node_groups TEXT, headers TEXT, callback TEXT,"
    " deadline_s BIGINT NOT NULL, created_ms BIGINT NOT NULL, started_ms BIGINT NOT NULL,"
    " finished_ms BIGINT NOT NULL, total BIGINT NOT NULL, succeeded BIGINT NOT NULL,"
    " failed BIGINT NOT NULL, pending BIGINT NOT NULL, unsupported BIGINT NOT NULL,"
    " urls BIGINT NOT NULL, prefixes BIGINT NOT NULL, regexes BIGINT NOT NULL,"
    " tags BIGINT NOT NULL, planned INTEGER NOT NULL, callback_state TEXT NOT NULL,"
    " callback_attempts BIGINT NOT NULL, verify INTEGER NOT NULL, verified BIGINT NOT NULL,"
    " plan_seq BIGINT NOT NULL DEFAULT 0, plan_nodes BYTEA);"
    /* Only tasks whose callback is still due: most tasks have none, and their inserts skip it. */
    "CREATE INDEX tasks_callback_pending ON tasks (id) WHERE callback_state = 'pending';"
    /* A tenant's tasks newest first, all of them or in one state. */
    "CREATE INDEX tasks_by_tenant ON tasks (tenant, id);"
    "CREATE INDEX tasks_by_tenant_state ON tasks (tenant, state, id);"
    "CREATE INDEX tasks_by_state ON tasks (state, id);"
    /* Tasks by state, kept by a trigger, so counting reads six rows, not every task. */
    "CREATE TABLE task_state_counts (state TEXT PRIMARY KEY, tasks BIGINT NOT NULL);"
    "CREATE FUNCTION task_state_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " IF TG_OP = 'UPDATE' AND OLD.state = NEW.state THEN RETURN NULL; END IF;"
    " IF TG_OP <> 'INSERT' THEN"
    "  UPDATE task_state_counts SET tasks = tasks - 1 WHERE state = OLD.state; END IF;"
    " IF TG_OP <> 'DELETE' THEN"
    "  INSERT INTO task_state_counts AS c (state, tasks) VALUES (NEW.state, 1)"
    "  ON CONFLICT (state) DO UPDATE SET tasks = c.tasks + 1; END IF;"
    " RETURN NULL; END $$;"
    "CREATE TRIGGER task_state_count AFTER INSERT OR DELETE OR UPDATE OF state ON tasks"
    " FOR EACH ROW EXECUTE FUNCTION task_state_count();"
    "CREATE TABLE callback_attempts ("
    " task_id TEXT COLLATE \"C\" NOT NULL, attempt BIGINT NOT NULL, at_ms BIGINT NOT NULL,"
    " http_status BIGINT NOT NULL, error TEXT, PRIMARY KEY (task_id, attempt));"
    "CREATE TABLE task_targets ("
    " task_id TEXT COLLATE \"C\" NOT NULL, idx BIGINT NOT NULL, kind TEXT NOT NULL,"
    " value TEXT NOT NULL, PRIMARY KEY (task_id, idx));"
    "CREATE TABLE nodes ("
    " id TEXT COLLATE \"C\" PRIMARY KEY, groups TEXT NOT NULL, cache_kind TEXT NOT NULL,"
    " agent_version TEXT NOT NULL, registered_ms BIGINT NOT NULL, last_seen_ms BIGINT NOT NULL,"
    " first_result_ms BIGINT NOT NULL DEFAULT 0, number BIGINT NOT NULL,"
    " fast_below BIGINT NOT NULL DEFAULT 0, slow_below BIGINT NOT NULL DEFAULT 0,"
    " removed INTEGER NOT NULL DEFAULT 0);"
    /* states: 2 bits per target (enum item_state); verified: 1 bit per target */
    "CREATE TABLE task_nodes ("
    " task_id TEXT COLLATE \"C\" NOT NULL, node_id TEXT COLLATE \"C\" NOT NULL,"
    " states BYTEA NOT NULL, succeeded BIGINT NOT NULL, failed BIGINT NOT NULL,"
    " unsupported BIGINT NOT NULL, verified BYTEA, verified_count BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (task_id, node_id));"
    "CREATE TABLE item_failures ("
    " task_id TEXT COLLATE \"C\" NOT NULL, idx BIGINT NOT NULL,"
    " node_id TEXT COLLATE \"C\" NOT NULL, state TEXT NOT NULL, http_status BIGINT NOT NULL,"
    " reason TEXT NOT NULL, PRIMARY KEY (task_id, idx, node_id));"
    /* secrets are kept as they are, since checking an HMAC needs them */
    "CREATE TABLE tenants ("
    " name TEXT COLLATE \"C\" PRIMARY KEY, access_key TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    " secret TEXT NOT NULL, hosts TEXT NOT NULL, tag_prefix TEXT,"
    " quota_purge_urls BIGINT NOT NULL, quota_purge_patterns BIGINT NOT NULL,"
    " quota_preload_urls BIGINT NOT NULL, rate_requests BIGINT NOT NULL,"
    " rate_urls BIGINT NOT NULL, created_ms BIGINT NOT NULL);"
    /* day: days since the epoch, UTC */
    "CREATE TABLE quota_usage ("
    " tenant TEXT COLLATE \"C\" NOT NULL, day BIGINT NOT NULL, purge_urls BIGINT NOT NULL,"
    " purge_patterns BIGINT NOT NULL, preload_urls BIGINT NOT NULL, PRIMARY KEY (tenant, day));"
    /* tenants_generation: bumped by every tenant change, so engines notice and reload */
    "INSERT INTO meta (key, value) VALUES ('tenants_generation', 0);",
    /* 2: tasks come in many rows per statement (a group commit's): they are counted by state
     * once per statement, not once per row. */
    "CREATE FUNCTION task_state_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " INSERT INTO task_state_counts AS c (state, tasks) SELECT state, count(*) FROM inserted"
    " GROUP BY state ON CONFLICT (state) DO UPDATE SET tasks = c.tasks + EXCLUDED.tasks;"
    " RETURN NULL; END $$;"
    "CREATE TRIGGER task_state_count_insert AFTER INSERT ON tasks REFERENCING NEW TABLE AS"
    " inserted FOR EACH STATEMENT EXECUTE FUNCTION task_state_count_inserted();"
    "DROP TRIGGER task_state_count ON tasks;"
    "CREATE TRIGGER task_state_count AFTER DELETE OR UPDATE OF state ON tasks"
    " FOR EACH ROW EXECUTE FUNCTION task_state_count();",
};

void pg_param_text(struct pg_params *params, const char *text) {
  int i = params->count++;
  params->values[i] = text;
  params->lengths[i] = 0;
  params->formats[i] = 0;
}

void pg_param_int(struct pg_params *params, int64_t value) {
  int i = params->count++;
  snprintf(params->numbers[i], sizeof(params->numbers[i]), "%lld", (long long)value);
  params->values[i] = params->numbers[i];
  params->lengths[i] = 0;
  params->formats[i] = 0;
}

void pg_param_bytes(struct pg_params *params, const uint8_t *bytes, size_t len) {
  int i = params->count++;
  params->values[i] = (const char *)bytes;
  params->lengths[i] = (int)len;
  params->formats[i] = 1; /* binary: the bytes as they are */
}

int64_t pg_int(const PGresult *res, int row, int col) {
  return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

const char *pg_text(const PGresult *res, int row, int col, struct arena *arena, bool *failed) {
  if (PQgetisnull(res, row, col))
    return NULL;
  char *copy = arena_strndup(arena, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
  if (!copy)
    *failed = true;
  return copy;
}

static int pg_hex(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

uint8_t *pg_bytes(const PGresult *res, int row, int col, struct arena *arena, size_t *len,
                  bool *failed) {
  /* bytea in text results is "\x" and two hex digits a byte (bytea_output = hex, set at open) */
  const char *text = PQgetvalue(res, row, col);
  size_t digits = (size_t)PQgetlength(res, row, col);
  if (digits < 2 || text[0] != '\\' || text[1] != 'x') {
    *len = 0;
    uint8_t *none = arena_alloc(arena, 1);
    *failed |= !none;
    return none;
  }
  *len = (digits - 2) / 2;
  uint8_t *copy = arena_alloc(arena, *len + 1);
  if (!copy) {
    *failed = true;
    return NULL;
  }
  for (size_t i = 0; i < *len; i++) {
    int high = pg_hex(text[2 + 2 * i]), low = pg_hex(text[3 + 2 * i]);
    copy[i] = (uint8_t)((high < 0 ? 0 : high) << 4 | (low < 0 ? 0 : low));
  }
  copy[*len] = 0;
  return copy;
}

/* The database's words for the last failure: the result's message, else the connection's, without
 * its trailing newline. */
static void pg_reason(const struct pg_store *store, const PGresult *res, char *out, size_t size) {
  const char *message = res ? PQresultErrorMessage(res) : "";
  if (!*message)
    message = PQerrorMessage(store->conn);
  size_t len = strlen(message);
  while (len && (message[len - 1] == '\n' || message[len - 1] == ' '))
    len--;
  /* libpq and the server may repeat what they were given: an address libpq read as something
   * else (a database name, a host) can carry the password along, which is written as ***. */
  size_t secret = strlen(store->password), n = 0;
  for (size_t i = 0; i < len && n + 1 < size;) {
    if (secret && strncmp(message + i, store->password, secret) == 0) {
      for (const char *star = "***"; *star && n + 1 < size;)
        out[n++] = *star++;
      i += secret;
    } else {
      out[n++] = message[i++];
    }
  }
  if (size)
    out[n] = '\0';
}

/* Runs sql (no parameters, any number of statements); 0, or CDR_ESTORE_UNAVAILABLE with the
 * reason in err. */
static int pg_simple(struct pg_store *store, const char *sql, char *err, size_t err_size) {
  PGresult *res = PQexec(store->conn, sql);
  ExecStatusType status = PQresultStatus(res);
  int rc = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ? 0 : CDR_ESTORE_UNAVAILABLE;
  if (rc)
    pg_reason(store, res, err, err_size);
  PQclear(res);
  return rc;
}

/* The schema version of the database; 0 when it has none yet; -1 on failure (err says why). */
static int64_t pg_schema_version(struct pg_store *store, char *err, size_t err_size) {
  PGresult *res = PQexec(store->conn, "SELECT value FROM meta WHERE key = 'schema_version'");
  int64_t version = -1;
  if (PQresultStatus(res) == PGRES_TUPLES_OK)
    version = PQntuples(res) ? pg_int(res, 0, 0) : 0;
  else
    pg_reason(store, res, err, err_size);
  PQclear(res);
  return version;
}

/* Brings the schema to PG_SCHEMA_VERSION in one transaction, under the migration lock (two
 * engines starting at once: the second waits, then finds nothing to do); refuses a newer one. */
static int pg_migrate(struct pg_store *store, char *err, size_t err_size) {
  char reason[512] = "";
  int rc =
      pg_simple(store,
                "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_MIGRATE ");"
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
                reason, sizeof(reason));
  int64_t version = rc ? -1 : pg_schema_version(store, reason, sizeof(reason));
  if (version > PG_SCHEMA_VERSION) {
    snprintf(err, err_size,
             "the database at %s has schema version %lld, newer than this engine's %d: run the "
             "engine that wrote it, or a newer one",
             store->address, (long long)version, PG_SCHEMA_VERSION);
    pg_simple(store, "ROLLBACK", reason, sizeof(reason));
    return CDR_ESTORE_UNAVAILABLE;
  }
  for (int64_t v = version; v >= 0 && v < PG_SCHEMA_VERSION && !rc; v++) {
    rc = pg_simple(store, pg_migrations[v], reason, sizeof(reason));
    if (!rc)
      log_info("store.migrated", "%s: schema version %lld to %lld", store->address, (long long)v,
               (long long)v + 1);
  }
  if (version < 0)
    rc = CDR_ESTORE_UNAVAILABLE;
  char save[160];
  snprintf(save, sizeof(save),
           "INSERT INTO meta (key, value) VALUES ('schema_version', %d) ON CONFLICT (key) DO "
           "UPDATE SET value = EXCLUDED.value; COMMIT",
           PG_SCHEMA_VERSION);
  if (!rc)
    rc = pg_simple(store, save, reason, sizeof(reason));
  if (rc) {
    snprintf(err, err_size, "cannot create the schema at %s: %s", store->address, reason);
    pg_simple(store, "ROLLBACK", reason, sizeof(reason));
  }
  return rc;
}

/* A reading connection checks the schema an engine made: there, and not newer than this build. */
static int pg_schema_check(struct pg_store *store, char *err, size_t err_size) {
  char reason[512] = "";
  int64_t version = pg_schema_version(store, reason, sizeof(reason));
  if (version == PG_SCHEMA_VERSION)
    return 0;
  if (version < 0)
    snprintf(err, err_size, "cannot read the schema version at %s: %s", store->address, reason);
  else if (version == 0)
    snprintf(err, err_size,
             "the database at %s has no cdnrefresh schema yet (the engine creates it)",
             store->address);
  else
    snprintf(err, err_size, "the database at %s has schema version %lld; this build knows %d",
             store->address, (long long)version, PG_SCHEMA_VERSION);
  return CDR_ESTORE_UNAVAILABLE;
}

/* What a fresh connection needs before its first call: its settings, the engine lock for the
 * engine's writer, its statements prepared. Run at open and after every reconnect. */
static int pg_session_start(struct pg_store *store, char *err, size_t err_size) {
  char reason[512] = "";
  char settings[256];
  snprintf(settings, sizeof(settings),
           "SET bytea_output = hex; SET client_min_messages = warning; "
           "SET default_transaction_read_only = %s",
           store->read_only ? "on" : "off");
  if (pg_simple(store, settings, reason, sizeof(reason))) {
    snprintf(err, err_size, "cannot set up a connection to %s: %s", store->address, reason);
    return CDR_ESTORE_UNAVAILABLE;
  }
  if (store->engine) {
    PGresult *res = PQexec(store->conn, "SELECT pg_try_advisory_lock(" PG_LOCK_ENGINE ")");
    bool locked = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                  strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    pg_reason(store, res, reason, sizeof(reason));
    PQclear(res);
    if (!locked) {
      snprintf(err, err_size, "the database at %s is in use by another engine%s%s", store->address,
               *reason ? ": " : "", reason);
      return CDR_ESTORE_UNAVAILABLE;
    }
  }
  int rc =
      store->read_only ? pg_schema_check(store, err, err_size) : pg_migrate(store, err, err_size);
  for (int i = 0; !rc && i < PG_STATEMENT_COUNT; i++) {
    if (store->read_only && i >= PG_FIRST_WRITE)
      continue; /* a reading connection never runs them */
    char name[16];
    snprintf(name, sizeof(name), "s%d", i);
    PGresult *res = PQprepare(store->conn, name, pg_sql[i], 0, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      pg_reason(store, res, reason, sizeof(reason));
      snprintf(err, err_size, "cannot prepare statement %d at %s: %s", i, store->address, reason);
      rc = CDR_ESTORE_UNAVAILABLE;
    }
    PQclear(res);
  }
  store->prepared = rc == 0;
  return rc;
}

/* The value of keyword in options, "" when unset. */
static const char *pg_option(const PQconninfoOption *options, const char *keyword) {
  for (const PQconninfoOption *option = options; option && option->keyword; option++) {
    if (strcmp(option->keyword, keyword) == 0)
      return option->val ? option->val : "";
  }
  return "";
}

/* libpq's reading of a PostgreSQL address (postgresql:// and rest); NULL when it cannot read it,
 * or reads what can only be a password with an @ or a / left unencoded: a port that is not a
 * number, a host with an @ (showing or connecting to those would spill part of it). */
static PQconninfoOption *pg_address_parse(const char *rest) {
  char uri[1024];
  snprintf(uri, sizeof(uri), "postgresql://%s", rest);
  PQconninfoOption *options = PQconninfoParse(uri, NULL);
  const char *port = pg_option(options, "port");
  if (options && (port[strspn(port, "0123456789,")] || strchr(pg_option(options, "host"), '@'))) {
    PQconninfoFree(options);
    return NULL;
  }
  return options;
}

void pg_describe(const char *rest, char *out, size_t size) {
  PQconninfoOption *options = pg_address_parse(rest);
  if (!options) {
    snprintf(out, size, "postgresql://(an address libpq cannot read)");
    return;
  }
  const char *user = pg_option(options, "user"), *port = pg_option(options, "port");
  snprintf(out, size, "postgresql://%s%s%s%s%s/%s", user, *user ? "@" : "",
           pg_option(options, "host"), *port ? ":" : "", port, pg_option(options, "dbname"));
  PQconninfoFree(options);
}

/* A new connection to the store's address, giving up after connect_timeout seconds unless the
 * address says otherwise (its own settings come after these). Keepalives find a connection whose
 * server went away without a word (a failover, a network cut). */
static PGconn *pg_connect(const struct pg_store *store, const char *connect_timeout) {
  const char *const keywords[] = {"connect_timeout",
                                  "application_name",
                                  "keepalives_idle",
                                  "keepalives_interval",
                                  "keepalives_count",
                                  "dbname",
                                  NULL};
  const char *const values[] = {connect_timeout, "cdnrefresh", "10", "5", "3", store->uri, NULL};
  return PQconnectdbParams(keywords, values, 1);
}

int pg_open(const char *address, const struct store_options *options, struct store **out, char *err,
            size_t err_size) {
  struct pg_store *store = calloc(1, sizeof(*store));
  if (!store)
    return CDR_ENOMEM;
  store->base.backend = &store_postgres_backend;
  store->read_only = options->read_only;
  store->engine = options->engine;
  store->read_budget_ms = options->read_budget_ms;
  admission_init(&store->admission);
  pg_batch_init(&store->batch);
  pg_describe(address, store->address, sizeof(store->address));
  PQconninfoOption *parsed = pg_address_parse(address);
  if (!parsed) {
    snprintf(err, err_size,
             "the PostgreSQL address is not one libpq can read as it is meant (an @, / or : in "
             "a password must be percent-encoded, as %%40, %%2F, %%3A)");
    free(store);
    return CDR_ECONFIG;
  }
  snprintf(store->password, sizeof(store->password), "%s", pg_option(parsed, "password"));
  PQconninfoFree(parsed);
  snprintf(store->uri, sizeof(store->uri), "postgresql://%s", address);
  store->conn = pg_connect(store, "5");
  if (!store->conn) {
    free(store);
    return CDR_ENOMEM;
  }
  int rc = 0;
  if (PQstatus(store->conn) != CONNECTION_OK) {
    char reason[512];
    pg_reason(store, NULL, reason, sizeof(reason));
    snprintf(err, err_size, "cannot connect to %s: %s", store->address, reason);
    rc = CDR_ESTORE_UNAVAILABLE;
  }
  if (!rc)
    rc = pg_session_start(store, err, err_size);
  if (rc) {
    pg_close(&store->base);
    return rc;
  }
  *out = &store->base;
  return 0;
}

void pg_close(struct store *base) {
  struct pg_store *store = pg_of(base);
  if (!store)
    return;
  PQfinish(store->conn);
  pg_batch_free(&store->batch);
  free(store);
}

void pg_read_budget_start(struct store *base) {
  struct pg_store *store = pg_of(base);
  if (store->read_budget_ms > 0)
    store->read_deadline_ms = clock_now_ms() + store->read_budget_ms;
}

/* Makes sure the connection is up before a call outside a transaction: a lost one (PostgreSQL
 * restarted, a failover) is opened again and set up as at open. */
static int pg_ready(struct pg_store *store, bool in_transaction) {
  if (PQstatus(store->conn) == CONNECTION_OK && store->prepared)
    return 0;
  if (in_transaction)
    return CDR_ESTORE_UNAVAILABLE; /* the transaction went with the connection */
  store->queued = 0;
  PQreset(store->conn); /* also ends pipeline mode */
  char err[768];
  if (PQstatus(store->conn) != CONNECTION_OK) {
    pg_reason(store, NULL, err, sizeof(err));
    log_error("store.unavailable", "cannot reconnect to %s: %s", store->address, err);
    return CDR_ESTORE_UNAVAILABLE;
  }
  int rc = pg_session_start(store, err, sizeof(err));
  if (rc)
    log_error("store.unavailable", "%s", err);
  else
    log_info("store.reconnected", "connected to %s again", store->address);
  return rc;
}

/* Whether a call that failed may run once more on a new connection: the connection was lost
 * outside a transaction, and the call only reads (a lost write might have been done). */
static bool pg_may_retry(struct pg_store *store, enum pg_statement which) {
  return PQstatus(store->conn) == CONNECTION_BAD && !store->in_transaction &&
         which < PG_FIRST_WRITE;
}

/* Sends prepared statement name and waits for its result, no longer than the read deadline when
 * there is one: past it the statement is canceled, and the server answers query_canceled. A
 * failed result, or NULL, when the connection failed. */
static PGresult *pg_send_and_wait(struct pg_store *store, const char *name,
                                  const struct pg_params *params) {
  if (!PQsendQueryPrepared(store->conn, name, params ? params->count : 0,
                           params ? params->values : NULL, params ? params->lengths : NULL,
                           params ? params->formats : NULL, 0))
    return NULL;
  bool canceled = false;
  while (PQisBusy(store->conn)) {
    int timeout = -1;
    if (store->read_deadline_ms && !canceled) {
      int64_t left = store->read_deadline_ms - clock_now_ms();
      timeout = left > 0 ? (int)left : 0;
    }
    struct pollfd socket = {.fd = PQsocket(store->conn), .events = POLLIN};
    int ready = poll(&socket, 1, timeout);
    if (ready == 0) {
      PGcancel *cancel = PQgetCancel(store->conn);
      char ignored[256];
      if (cancel)
        PQcancel(cancel, ignored, sizeof(ignored));
      PQfreeCancel(cancel);
      canceled = true;
    } else if ((ready < 0 && errno != EINTR) || (ready > 0 && !PQconsumeInput(store->conn))) {
      break;
    }
  }
  PGresult *res = PQgetResult(store->conn), *more;
  while ((more = PQgetResult(store->conn)))
    PQclear(more);
  return res;
}

/* Inside a transaction the connection is in pipeline mode: writes whose result only matters if
 * it failed are sent without waiting (pg_run), and their results are collected, the first failure
 * kept, when a statement needs its own (its result comes after theirs), every PG_PIPELINE_MAX
 * writes, and before the commit. A group commit's writes then cost the server's work, not a
 * round trip each. */
enum { PG_PIPELINE_MAX = 1024 };

/* The connection can no longer be trusted with the transaction (its pipeline lost its place):
 * the next call outside a transaction opens it again, and the server, seeing the old one
 * closed, rolls the transaction back and releases its locks. */
static void pg_broken(struct pg_store *store) {
  store->prepared = false;
  store->queued = 0;
}

/* Collects the results of every statement sent since the last collection; returns the last
 * one's, or the first failure's when one failed (PQclear it); NULL when the connection went. */
static PGresult *pg_pipeline_collect(struct pg_store *store) {
  PGresult *kept = NULL;
  bool synced = PQpipelineSync(store->conn) == 1;
  for (bool ended = false; synced;) {
    PGresult *res = PQgetResult(store->conn);
    if (!res) {
      /* The end of one statement's results; two ends in a row: libpq gave up on the
       * connection without saying so in its status. */
      if (ended || PQstatus(store->conn) == CONNECTION_BAD)
        break;
      ended = true;
      continue;
    }
    ended = false;
    ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_PIPELINE_SYNC) {
      PQclear(res);
      store->queued = 0;
      return kept;
    }
    ExecStatusType so_far = kept ? PQresultStatus(kept) : PGRES_COMMAND_OK;
    if (so_far == PGRES_COMMAND_OK || so_far == PGRES_TUPLES_OK) {
      PQclear(kept);
      kept = res;
    } else {
      PQclear(res); /* after a failure: aborted, the failure says why */
    }
  }
  PQclear(kept);
  pg_broken(store);
  return NULL;
}

/* Sends statement name in the transaction's pipeline; false when it could not be. */
static bool pg_pipeline_send(struct pg_store *store, const char *name,
                             const struct pg_params *params) {
  if (PQstatus(store->conn) != CONNECTION_OK ||
      !PQsendQueryPrepared(store->conn, name, params ? params->count : 0,
                           params ? params->values : NULL, params ? params->lengths : NULL,
                           params ? params->formats : NULL, 0))
    return false;
  store->queued++;
  return true;
}

/* The writes sent without waiting: 0 when every one was done, else CDR_ESTORE_UNAVAILABLE
 * after logging the first failure. */
static int pg_pipeline_check(struct pg_store *store, const char *what) {
  if (!store->queued)
    return 0;
  PGresult *res = pg_pipeline_collect(store);
  ExecStatusType status = PQresultStatus(res);
  int err = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK ? 0 : CDR_ESTORE_UNAVAILABLE;
  if (err) {
    char reason[512];
    pg_reason(store, res, reason, sizeof(reason));
    log_error("store.error", "%s failed at %s: %s", what, store->address,
              *reason ? reason : "the connection was lost");
  }
  PQclear(res);
  return err;
}

PGresult *pg_exec(struct pg_store *store, enum pg_statement which, const struct pg_params *params,
                  int *err, const char *what) {
  if (store->read_deadline_ms && clock_now_ms() > store->read_deadline_ms) {
    log_warn("store.read_too_long", "%s ran past store.read_budget_ms (%lld ms) and was stopped",
             what, (long long)store->read_budget_ms);
    *err = CDR_EREAD_TOO_LONG;
    return NULL;
  }
  if (store->batch.task_count && (*err = pg_batch_flush(store)))
    return NULL; /* what follows may read the tasks inserted before it */
  char name[16];
  snprintf(name, sizeof(name), "s%d", (int)which);
  PGresult *res = NULL;
  for (int attempt = 0; attempt < 2; attempt++) {
    PQclear(res);
    if ((*err = pg_ready(store, store->in_transaction)))
      return NULL;
    if (!store->in_transaction)
      res = pg_send_and_wait(store, name, params);
    else
      res = pg_pipeline_send(store, name, params) ? pg_pipeline_collect(store) : NULL;
    ExecStatusType status = PQresultStatus(res);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
      return res;
    if (!pg_may_retry(store, which))
      break;
  }
  const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  bool canceled = state && strcmp(state, "57014") == 0; /* query_canceled: the read deadline */
  char reason[512];
  pg_reason(store, res, reason, sizeof(reason));
  if (canceled)
    log_warn("store.read_too_long", "%s ran past store.read_budget_ms (%lld ms) and was stopped",
             what, (long long)store->read_budget_ms);
  else
    log_error("store.error", "%s failed at %s: %s (sqlstate %s)", what, store->address, reason,
              state ? state : "none: the connection was lost");
  PQclear(res);
  *err = canceled ? CDR_EREAD_TOO_LONG : CDR_ESTORE_UNAVAILABLE;
  return NULL;
}

int pg_run(struct pg_store *store, enum pg_statement which, const struct pg_params *params,
           int64_t *changed, const char *what) {
  int err;
  if (store->in_transaction && !changed) {
    if (store->batch.task_count && (err = pg_batch_flush(store)))
      return err;
    char name[16];
    snprintf(name, sizeof(name), "s%d", (int)which);
    if (!pg_pipeline_send(store, name, params)) {
      log_error("store.error", "%s failed at %s: the connection was lost", what, store->address);
      return CDR_ESTORE_UNAVAILABLE;
    }
    return store->queued < PG_PIPELINE_MAX ? 0 : pg_pipeline_check(store, what);
  }
  PGresult *res = pg_exec(store, which, params, &err, what);
  if (res && changed)
    *changed = strtoll(PQcmdTuples(res), NULL, 10);
  PQclear(res);
  return err;
}

/* Runs a transaction statement; 0, or CDR_ESTORE_UNAVAILABLE after logging why. */
static int pg_transaction_step(struct pg_store *store, const char *sql) {
  char reason[512];
  int rc = pg_simple(store, sql, reason, sizeof(reason));
  if (rc)
    log_error("store.error", "%s failed at %s: %s", sql, store->address, reason);
  return rc;
}

/* Begins a transaction holding the write lock (one writer at a time, as SQLite's BEGIN
 * IMMEDIATE: the engine's writer and the tenant command) and notes its transaction id. */
static int pg_begin_once(struct pg_store *store) {
  PGresult *res = PQexec(store->conn, "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_WRITE
                                      "); SELECT pg_current_xact_id()");
  int rc =
      PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 ? 0 : CDR_ESTORE_UNAVAILABLE;
  if (!rc) {
    snprintf(store->xact_id, sizeof(store->xact_id), "%s", PQgetvalue(res, 0, 0));
  } else {
    char reason[512];
    pg_reason(store, res, reason, sizeof(reason));
    log_error("store.error", "begin failed at %s: %s", store->address, reason);
    if (PQstatus(store->conn) == CONNECTION_OK)
      pg_simple(store, "ROLLBACK", reason, sizeof(reason));
  }
  PQclear(res);
  return rc;
}

int pg_begin(struct store *base) {
  struct pg_store *store = pg_of(base);
  admission_reset(&store->admission);
  pg_batch_reset(&store->batch);
  int rc = pg_ready(store, false);
  if (!rc)
    rc = pg_begin_once(store);
  if (rc && PQstatus(store->conn) == CONNECTION_BAD && !pg_ready(store, false))
    rc = pg_begin_once(store); /* lost while idle: begin on a new connection */
  if (!rc && !PQenterPipelineMode(store->conn)) {
    log_error("store.error", "cannot send writes ahead at %s", store->address);
    pg_simple(store, "ROLLBACK", (char[512]){0}, 512);
    rc = CDR_ESTORE_UNAVAILABLE;
  }
  store->in_transaction = rc == 0;
  return rc;
}

enum { PG_COMMIT_CHECK_MS = 2000 }; /* how long a commit whose answer was lost is looked for */

/* The connection went while COMMIT was on its way: the server may have committed or not. A new
 * connection asks it what became of the transaction (pg_xact_status), so a commit that took is
 * reported as one and nothing is answered 503 that was kept. 0 when it committed. */
static int pg_commit_outcome(struct pg_store *store) {
  int64_t give_up = clock_now_ms() + PG_COMMIT_CHECK_MS;
  char sql[96], reason[512];
  snprintf(sql, sizeof(sql), "SELECT pg_xact_status('%s'::xid8)", store->xact_id);
  do {
    /* A connection of its own: the writer's would take the engine lock again, which the old
     * session may hold until the server notices it is gone. */
    PGconn *asker = pg_connect(store, "2");
    PGresult *res = PQstatus(asker) == CONNECTION_OK ? PQexec(asker, sql) : NULL;
    const char *status = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
                             ? PQgetvalue(res, 0, 0)
                             : "unknown";
    int rc = strcmp(status, "committed") == 0 ? 0
             : strcmp(status, "aborted") == 0 ? CDR_ESTORE_UNAVAILABLE
                                              : 1;
    PQclear(res);
    PQfinish(asker);
    if (rc <= 0) {
      log_warn("store.commit_checked", "the connection to %s was lost during a commit, which %s",
               store->address, rc == 0 ? "had taken" : "had not");
      return rc;
    }
    usleep(100 * 1000); /* in progress, or no connection yet */
  } while (clock_now_ms() < give_up);
  pg_reason(store, NULL, reason, sizeof(reason));
  log_error("store.commit_unknown",
            "the connection to %s was lost during a commit, and whether it took cannot be told: "
            "its tasks are answered 503, and if it took, they run after the next restart (%s)",
            store->address, reason);
  return CDR_ESTORE_UNAVAILABLE;
}

int pg_commit(struct store *base) {
  struct pg_store *store = pg_of(base);
  int rc = pg_batch_flush(store);
  if (!rc)
    rc = admission_save(&store->admission, base);
  if (!rc)
    rc = pg_pipeline_check(store, "a write");
  if (!rc && !PQexitPipelineMode(store->conn)) {
    log_error("store.error", "commit failed at %s: its writes were not all answered",
              store->address);
    pg_broken(store);
    rc = CDR_ESTORE_UNAVAILABLE;
  }
  if (rc)
    return rc;
  store->in_transaction = false;
  /* COMMIT of a transaction that failed answers ROLLBACK without an error: that is no commit. */
  PGresult *res = PQexec(store->conn, "COMMIT");
  const char *tag = PQresultStatus(res) == PGRES_COMMAND_OK ? PQcmdStatus(res) : "";
  rc = strcmp(tag, "COMMIT") == 0 ? 0 : CDR_ESTORE_UNAVAILABLE;
  if (rc) {
    char reason[512];
    pg_reason(store, res, reason, sizeof(reason));
    log_error("store.error", "commit failed at %s: %s", store->address,
              *reason ? reason : "the transaction had failed");
  }
  PQclear(res);
  if (rc && PQstatus(store->conn) == CONNECTION_BAD)
    rc = pg_commit_outcome(store);
  return rc;
}

void pg_rollback(struct store *base) {
  struct pg_store *store = pg_of(base);
  admission_reset(&store->admission);
  pg_batch_reset(&store->batch);
  if (store->in_transaction && PQstatus(store->conn) == CONNECTION_OK && store->prepared) {
    PQclear(store->queued ? pg_pipeline_collect(store) : NULL); /* what failed was logged */
    if (store->prepared && PQexitPipelineMode(store->conn))
      pg_transaction_step(store, "ROLLBACK");
    else
      pg_broken(store);
  }
  store->queued = 0;
  store->in_transaction = false;
}

int pg_task_admit(struct store *base, struct task *task, int64_t now_ms,
                  const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]) {
  return admission_admit(&pg_of(base)->admission, base, task, now_ms, limit, used);
}

int pg_task_insert(struct store *base, const struct task *task) {
  struct pg_store *store = pg_of(base);
  int err = pg_batch_task(&store->batch, task);
  /* Sent with the transaction's next statement or its commit; at once outside one. */
  return err || store->in_transaction ? err : pg_batch_flush(store);
}

int pg_task_from_row(const PGresult *res, int row, struct arena *arena, struct task **out) {
  struct task *task = arena_alloc(arena, sizeof(*task));
  if (!task)
    return CDR_ENOMEM;
  memset(task, 0, sizeof(*task));
  bool failed = false;
  snprintf(task->id, sizeof(task->id), "%s", PQgetvalue(res, row, 0));
  task->tenant = pg_text(res, row, 1, arena, &failed);
  const char *state = PQgetvalue(res, row, 4);
  if (task_type_parse(PQgetvalue(res, row, 2), &task->type) ||
      task_mode_parse(PQgetvalue(res, row, 3), &task->mode) ||
      task_state_parse(state, strlen(state), &task->state)) {
    log_error("store.corrupt", "task %s has an unknown type, mode or state", task->id);
    return CDR_EINTERNAL;
  }
  task->node_groups_json = pg_text(res, row, 5, arena, &failed);
  task->headers_json = pg_text(res, row, 6, arena, &failed);
  task->callback = pg_text(res, row, 7, arena, &failed);
  int64_t *numbers[] = {
      &task->deadline_s,      &task->created_ms,       &task->started_ms,
      &task->finished_ms,     &task->counters.total,   &task->counters.succeeded,
      &task->counters.failed, &task->counters.pending, &task->counters.unsupported};
  int col = 8;
  for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
    *numbers[i] = pg_int(res, row, col++);
  for (int kind = 0; kind < TARGET_KIND_COUNT; kind++) {
    task->target_counts[kind] = (size_t)pg_int(res, row, col++);
    task->target_count += task->target_counts[kind];
  }
  task->planned = pg_int(res, row, col++) != 0;
  if (callback_state_parse(PQgetvalue(res, row, col++), &task->callback_state))
    return CDR_EINTERNAL;
  task->callback_attempt_count = pg_int(res, row, col++);
  task->verify = pg_int(res, row, col++) != 0;
  task->counters.verified = pg_int(res, row, col++);
  task->plan_seq = pg_int(res, row, col++);
  if (!PQgetisnull(res, row, col))
    task->plan_nodes = pg_bytes(res, row, col, arena, &task->plan_nodes_len, &failed);
  if (failed)
    return CDR_ENOMEM;
  *out = task;
  return 0;
}

int pg_task_get(struct store *base, const char *tenant, const char *id, struct arena *arena,
                struct task **out) {
  struct pg_params params = {0};
  pg_param_text(&params, id);
  pg_param_text(&params, tenant);
  int err;
  PGresult *res = pg_exec(pg_of(base), PG_TASK_GET, &params, &err, "task get");
  if (res)
    err = PQntuples(res) ? pg_task_from_row(res, 0, arena, out) : CDR_ETASK_NOT_FOUND;
  PQclear(res);
  return err;
}

int pg_task_cancel(struct store *base, const char *tenant, const char *id, int64_t now_ms) {
  struct pg_store *store = pg_of(base);
  struct pg_params params = {0};
  pg_param_text(&params, id);
  pg_param_text(&params, tenant);
  pg_param_int(&params, now_ms);
  int64_t changed = 0;
  int err = pg_run(store, PG_TASK_CANCEL, &params, &changed, "task cancel");
  if (err)
    return err;
  struct arena scratch;
  arena_init(&scratch, STORE_SCRATCH_MAX);
  struct task *task;
  err = pg_task_get(base, tenant, id, &scratch, &task);
  /* The nodes that had not finished get their rows in this transaction (see store_sqlite.c). */
  if (!err && changed && task->plan_nodes)
    err = pg_task_nodes_hold(store, task);
  arena_release(&scratch);
  return err ? err : changed ? 0 : CDR_ETASK_FINAL;
}

int pg_tasks_list(struct store *base, const char *tenant, const enum task_state *state,
                  const char *after, size_t limit, struct arena *arena,
                  struct store_task_page *out) {
  enum pg_statement which = tenant ? (state ? PG_TASKS_LIST_STATE : PG_TASKS_LIST)
                                   : (state ? PG_TASKS_LIST_ALL_STATE : PG_TASKS_LIST_ALL);
  struct pg_params params = {0};
  if (tenant)
    pg_param_text(&params, tenant);
  pg_param_text(&params, after ? after : STORE_ID_AFTER_ALL);
  pg_param_int(&params, (int64_t)limit + 1); /* one extra row tells whether more exist */
  if (state)
    pg_param_text(&params, task_state_name(*state));
  out->count = 0;
  out->more = false;
  out->tasks = arena_alloc(arena, (limit + 1) * sizeof(*out->tasks));
  if (!out->tasks)
    return CDR_ENOMEM;
  int err;
  PGresult *res = pg_exec(pg_of(base), which, &params, &err, "task list");
  int rows = res ? PQntuples(res) : 0;
  for (int row = 0; !err && row < rows; row++) {
    if (out->count == limit) {
      out->more = true;
      break;
    }
    err = pg_task_from_row(res, row, arena, &out->tasks[out->count]);
    if (!err)
      out->count++;
  }
  PQclear(res);
  return err;
}

int pg_prune_pick(struct store *base, const char *before, size_t limit,
                  char (*ids)[TASK_ID_LENGTH + 1], size_t *count) {
  struct pg_params params = {0};
  pg_param_text(&params, before);
  pg_param_int(&params, (int64_t)limit);
  int err;
  PGresult *res = pg_exec(pg_of(base), PG_PRUNE_PICK, &params, &err, "prune pick");
  *count = 0;
  for (int row = 0; res && row < PQntuples(res) && *count < limit; row++)
    snprintf(ids[(*count)++], sizeof(ids[0]), "%s", PQgetvalue(res, row, 0));
  PQclear(res);
  return err;
}

int pg_task_delete(struct store *base, const char *id, size_t *rows) {
  struct pg_params params = {0};
  pg_param_text(&params, id);
  *rows = 0;
  for (int which = PG_PRUNE_TARGETS; which <= PG_PRUNE_TASK; which++) {
    int64_t changed = 0;
    int err = pg_run(pg_of(base), (enum pg_statement)which, &params, &changed, "prune");
    if (err)
      return err;
    *rows += (size_t)changed;
  }
  return 0;
}

int pg_targets_list(struct store *base, const char *task_id, int64_t after, size_t limit,
                    struct arena *arena, struct store_target_page *out) {
  struct pg_params params = {0};
  pg_param_text(&params, task_id);
  pg_param_int(&params, after);
  pg_param_int(&params, (int64_t)limit + 1);
  out->count = 0;
  out->more = false;
  out->targets = arena_alloc(arena, (limit + 1) * sizeof(*out->targets));
  out->indexes = arena_alloc(arena, (limit + 1) * sizeof(*out->indexes));
  if (!out->targets || !out->indexes)
    return CDR_ENOMEM;
  int err;
  PGresult *res = pg_exec(pg_of(base), PG_TARGETS_LIST, &params, &err, "target list");
  int rows = res ? PQntuples(res) : 0;
  for (int row = 0; !err && row < rows; row++) {
    if (out->count == limit) {
      out->more = true;
      break;
    }
    struct task_target *target = &out->targets[out->count];
    bool failed = false;
    target->value = pg_text(res, row, 2, arena, &failed);
    target->state = ITEM_PENDING;
    if (failed)
      err = CDR_ENOMEM;
    else if (target_kind_parse(PQgetvalue(res, row, 1), &target->kind))
      err = CDR_EINTERNAL;
    out->indexes[out->count++] = pg_int(res, row, 0);
  }
  PQclear(res);
  return err;
}

const struct store_backend store_postgres_backend = {
    .name = "postgresql",
    .scheme = "postgresql://",
    .describe = pg_describe,
    .open = pg_open,
    .read_budget_start = pg_read_budget_start,
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .task_insert = pg_task_insert,
    .task_admit = pg_task_admit,
    .task_get = pg_task_get,
    .task_cancel = pg_task_cancel,
    .tasks_list = pg_tasks_list,
    .targets_list = pg_targets_list,
    .node_upsert = pg_node_upsert,
    .node_marks_save = pg_node_marks_save,
    .nodes_load = pg_nodes_load,
    .task_plan = pg_task_plan,
    .task_progress = pg_task_progress,
    .tasks_load = pg_tasks_load,
    .tasks_unfinished = pg_tasks_unfinished,
    .task_nodes_load = pg_task_nodes_load,
    .unfinished_results = pg_unfinished_results,
    .callback_attempt = pg_callback_attempt,
    .callback_attempts_load = pg_callback_attempts_load,
    .callbacks_pending = pg_callbacks_pending,
    .prune_pick = pg_prune_pick,
    .task_delete = pg_task_delete,
    .task_counts = pg_task_counts,
    .node_delete = pg_node_delete,
    .failures_list = pg_failures_list,
    .tenant_insert = pg_tenant_insert,
    .tenant_update = pg_tenant_update,
    .tenant_delete = pg_tenant_delete,
    .tenants_generation = pg_tenants_generation,
    .tenants_load = pg_tenants_load,
    .quota_usage = pg_quota_usage,
    .quota_charge = pg_quota_charge,
};
