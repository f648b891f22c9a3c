/* store_sqlite_tenants.c — the SQLite backend's tenants, their generation and daily quota use. */
#include "common/error.h"
#include "store/sqlite/store_sqlite_internal.h"

#include <string.h>

/* Steps a write whose only expected failure is a uniqueness clash, which becomes
 * CDR_ETENANT_EXISTS instead of a logged storage error. */
static int store_tenant_write(struct store *store, enum store_statement which, const char *what) {
  sqlite3_stmt *stmt = store->statements[which];
  int rc = sqlite3_step(stmt);
  int err = rc == SQLITE_CONSTRAINT ? CDR_ETENANT_EXISTS : store_error(store, rc, what);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return err;
}

/* Binds the fields after the name, from access key to rate_urls, from column 2 on. */
static void store_tenant_bind(sqlite3_stmt *stmt, const struct tenant *tenant) {
  store_bind_text(stmt, 1, tenant->name);
  store_bind_text(stmt, 2, tenant->access_key);
  store_bind_text(stmt, 3, tenant->secret);
  store_bind_text(stmt, 4, tenant->hosts);
  store_bind_text(stmt, 5, tenant->tag_prefix);
  for (int i = 0; i < QUOTA_COUNT; i++)
    sqlite3_bind_int64(stmt, 6 + i, tenant->quota[i]);
  sqlite3_bind_int64(stmt, 9, tenant->rate_requests);
  sqlite3_bind_int64(stmt, 10, tenant->rate_urls);
}

static int store_tenants_bump(struct store *store) {
  return store_run(store, STMT_TENANTS_BUMP, "tenant generation");
}

int store_tenant_insert(struct store *store, const struct tenant *tenant) {
  /* Tasks are kept by tenant name: a new tenant of a removed one's name would own its tasks. */
  sqlite3_stmt *used = store->statements[STMT_TENANT_HAS_TASKS];
  store_bind_text(used, 1, tenant->name);
  int rc = sqlite3_step(used);
  sqlite3_reset(used);
  sqlite3_clear_bindings(used);
  if (rc == SQLITE_ROW)
    return CDR_ETENANT_NAME_TAKEN;
  if (rc != SQLITE_DONE)
    return store_error(store, rc, "tenant name check");
  sqlite3_stmt *stmt = store->statements[STMT_TENANT_INSERT];
  store_tenant_bind(stmt, tenant);
  sqlite3_bind_int64(stmt, 11, tenant->created_ms);
  int err = store_tenant_write(store, STMT_TENANT_INSERT, "tenant insert");
  return err ? err : store_tenants_bump(store);
}

int store_tenant_update(struct store *store, const struct tenant *tenant) {
  store_tenant_bind(store->statements[STMT_TENANT_UPDATE], tenant);
  int err = store_tenant_write(store, STMT_TENANT_UPDATE, "tenant update");
  if (!err && sqlite3_changes(store->db) == 0)
    err = CDR_ETENANT_NOT_FOUND;
  return err ? err : store_tenants_bump(store);
}

int store_tenant_delete(struct store *store, const char *name) {
  store_bind_text(store->statements[STMT_TENANT_DELETE], 1, name);
  int err = store_run(store, STMT_TENANT_DELETE, "tenant delete");
  if (!err && sqlite3_changes(store->db) == 0)
    return CDR_ETENANT_NOT_FOUND;
  store_bind_text(store->statements[STMT_TENANT_USAGE_DELETE], 1, name);
  if (!err)
    err = store_run(store, STMT_TENANT_USAGE_DELETE, "tenant usage delete");
  return err ? err : store_tenants_bump(store);
}

int store_tenants_generation(struct store *store, int64_t *out) {
  sqlite3_stmt *stmt = store->statements[STMT_TENANTS_GENERATION];
  int rc = sqlite3_step(stmt);
  *out = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
  return store_finish(store, stmt, rc, 0, "tenant generation");
}

int store_tenants_load(struct store *store, struct arena *arena, struct tenant **out,
                       size_t *count) {
  sqlite3_stmt *stmt = store->statements[STMT_TENANTS_LOAD];
  struct tenant *tenants = NULL;
  size_t cap = 0, n = 0;
  int err = 0, rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if ((err = store_grow(arena, (void **)&tenants, sizeof(*tenants), n, &cap)))
      break;
    bool failed = false;
    struct tenant *tenant = &tenants[n++];
    memset(tenant, 0, sizeof(*tenant));
    tenant->name = store_column_text(stmt, 0, arena, &failed);
    tenant->access_key = store_column_text(stmt, 1, arena, &failed);
    tenant->secret = store_column_text(stmt, 2, arena, &failed);
    tenant->hosts = store_column_text(stmt, 3, arena, &failed);
    tenant->tag_prefix = store_column_text(stmt, 4, arena, &failed);
    for (int i = 0; i < QUOTA_COUNT; i++)
      tenant->quota[i] = sqlite3_column_int64(stmt, 5 + i);
    tenant->rate_requests = sqlite3_column_int64(stmt, 8);
    tenant->rate_urls = sqlite3_column_int64(stmt, 9);
    tenant->created_ms = sqlite3_column_int64(stmt, 10);
    if (failed || !tenant->name || !tenant->access_key || !tenant->secret || !tenant->hosts) {
      err = failed ? CDR_ENOMEM : CDR_EINTERNAL;
      break;
    }
  }
  err = store_finish(store, stmt, rc, err, "tenant load");
  if (!err) {
    *out = tenants;
    *count = n;
  }
  return err;
}

int store_quota_usage(struct store *store, const char *tenant, int64_t day,
                      int64_t used[QUOTA_COUNT]) {
  sqlite3_stmt *stmt = store->statements[STMT_QUOTA_USAGE];
  store_bind_text(stmt, 1, tenant);
  sqlite3_bind_int64(stmt, 2, day);
  int rc = sqlite3_step(stmt);
  for (int i = 0; i < QUOTA_COUNT; i++)
    used[i] = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, i) : 0;
  return store_finish(store, stmt, rc, 0, "quota usage");
}

int store_quota_charge(struct store *store, const char *tenant, int64_t day,
                       const int64_t amount[QUOTA_COUNT], const int64_t limit[QUOTA_COUNT],
                       int64_t used[QUOTA_COUNT]) {
  /* A day's first charge inserts its row, which the statement's limits do not look at. */
  for (int i = 0; i < QUOTA_COUNT; i++) {
    if (limit[i] > 0 && amount[i] > limit[i])
      return store_quota_usage(store, tenant, day, used) ? CDR_ESTORE_UNAVAILABLE
                                                         : CDR_EQUOTA_EXCEEDED;
  }
  sqlite3_stmt *stmt = store->statements[STMT_QUOTA_CHARGE];
  store_bind_text(stmt, 1, tenant);
  sqlite3_bind_int64(stmt, 2, day);
  for (int i = 0; i < QUOTA_COUNT; i++) {
    sqlite3_bind_int64(stmt, 3 + i, amount[i]);
    sqlite3_bind_int64(stmt, 6 + i, limit[i]);
  }
  int err = store_run(store, STMT_QUOTA_CHARGE, "quota charge");
  if (err)
    return err;
  if (sqlite3_changes(store->db) > 0)
    return 0;
  err = store_quota_usage(store, tenant, day, used);
  return err ? err : CDR_EQUOTA_EXCEEDED;
}
