/* store_sqlite_tenants.c — the SQLite backend's tenants, their generation and daily quota use. */
#include "common/error.h"
#include "store/sqlite/store_sqlite_internal.h"

#include <string.h>

/* Steps a write whose only expected failure is a uniqueness clash, which becomes
 * CDR_ETENANT_EXISTS instead of a logged storage error. */
static int sqlite_tenant_write(struct sqlite_store *store, enum sqlite_statement which,
                               const char *what) {
  sqlite3_stmt *stmt = store->statements[which];
  int rc = sqlite3_step(stmt);
  int err = rc == SQLITE_CONSTRAINT ? CDR_ETENANT_EXISTS : sqlite_error(store, rc, what);
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  return err;
}

/* Binds the fields after the name, from access key to rate_urls, from column 2 on. */
static void sqlite_tenant_bind(sqlite3_stmt *stmt, const struct tenant *tenant) {
  sqlite_bind_text(stmt, 1, tenant->name);
  sqlite_bind_text(stmt, 2, tenant->access_key);
  sqlite_bind_text(stmt, 3, tenant->secret);
  sqlite_bind_text(stmt, 4, tenant->hosts);
  sqlite_bind_text(stmt, 5, tenant->tag_prefix);
  for (int i = 0; i < QUOTA_COUNT; i++)
    sqlite3_bind_int64(stmt, 6 + i, tenant->quota[i]);
  sqlite3_bind_int64(stmt, 9, tenant->rate_requests);
  sqlite3_bind_int64(stmt, 10, tenant->rate_urls);
}

static int sqlite_tenants_bump(struct sqlite_store *store) {
  return sqlite_run(store, STMT_TENANTS_BUMP, "tenant generation");
}

int sqlite_tenant_insert(struct store *base, const struct tenant *tenant) {
  struct sqlite_store *store = sqlite_of(base);
  /* Tasks are kept by tenant name: a new tenant of a removed one's name would own its tasks. */
  sqlite3_stmt *used = store->statements[STMT_TENANT_HAS_TASKS];
  sqlite_bind_text(used, 1, tenant->name);
  int rc = sqlite3_step(used);
  sqlite3_reset(used);
  sqlite3_clear_bindings(used);
  if (rc == SQLITE_ROW)
    return CDR_ETENANT_NAME_TAKEN;
  if (rc != SQLITE_DONE)
    return sqlite_error(store, rc, "tenant name check");
  sqlite3_stmt *stmt = store->statements[STMT_TENANT_INSERT];
  sqlite_tenant_bind(stmt, tenant);
  sqlite3_bind_int64(stmt, 11, tenant->created_ms);
  int err = sqlite_tenant_write(store, STMT_TENANT_INSERT, "tenant insert");
  return err ? err : sqlite_tenants_bump(store);
}

int sqlite_tenant_update(struct store *base, const struct tenant *tenant) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite_tenant_bind(store->statements[STMT_TENANT_UPDATE], tenant);
  int err = sqlite_tenant_write(store, STMT_TENANT_UPDATE, "tenant update");
  if (!err && sqlite3_changes(store->db) == 0)
    err = CDR_ETENANT_NOT_FOUND;
  return err ? err : sqlite_tenants_bump(store);
}

int sqlite_tenant_delete(struct store *base, const char *name) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite_bind_text(store->statements[STMT_TENANT_DELETE], 1, name);
  int err = sqlite_run(store, STMT_TENANT_DELETE, "tenant delete");
  if (!err && sqlite3_changes(store->db) == 0)
    return CDR_ETENANT_NOT_FOUND;
  sqlite_bind_text(store->statements[STMT_TENANT_USAGE_DELETE], 1, name);
  if (!err)
    err = sqlite_run(store, STMT_TENANT_USAGE_DELETE, "tenant usage delete");
  return err ? err : sqlite_tenants_bump(store);
}

int sqlite_tenants_generation(struct store *base, int64_t *out) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_TENANTS_GENERATION];
  int rc = sqlite3_step(stmt);
  *out = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
  return sqlite_finish(store, stmt, rc, 0, "tenant generation");
}

int sqlite_tenants_load(struct store *base, struct arena *arena, struct tenant **out,
                        size_t *count) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_TENANTS_LOAD];
  struct tenant *tenants = NULL;
  size_t cap = 0, n = 0;
  int err = 0, rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    if ((err = sqlite_grow(arena, (void **)&tenants, sizeof(*tenants), n, &cap)))
      break;
    bool failed = false;
    struct tenant *tenant = &tenants[n++];
    memset(tenant, 0, sizeof(*tenant));
    tenant->name = sqlite_column_text(stmt, 0, arena, &failed);
    tenant->access_key = sqlite_column_text(stmt, 1, arena, &failed);
    tenant->secret = sqlite_column_text(stmt, 2, arena, &failed);
    tenant->hosts = sqlite_column_text(stmt, 3, arena, &failed);
    tenant->tag_prefix = sqlite_column_text(stmt, 4, arena, &failed);
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
  err = sqlite_finish(store, stmt, rc, err, "tenant load");
  if (!err) {
    *out = tenants;
    *count = n;
  }
  return err;
}

int sqlite_quota_usage(struct store *base, const char *tenant, int64_t day,
                       int64_t used[QUOTA_COUNT]) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_QUOTA_USAGE];
  sqlite_bind_text(stmt, 1, tenant);
  sqlite3_bind_int64(stmt, 2, day);
  int rc = sqlite3_step(stmt);
  for (int i = 0; i < QUOTA_COUNT; i++)
    used[i] = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, i) : 0;
  return sqlite_finish(store, stmt, rc, 0, "quota usage");
}

int sqlite_quota_charge(struct store *base, const char *tenant, int64_t day,
                        const int64_t amount[QUOTA_COUNT], const int64_t limit[QUOTA_COUNT],
                        int64_t used[QUOTA_COUNT]) {
  struct sqlite_store *store = sqlite_of(base);
  sqlite3_stmt *stmt = store->statements[STMT_QUOTA_CHARGE];
  sqlite_bind_text(stmt, 1, tenant);
  sqlite3_bind_int64(stmt, 2, day);
  for (int i = 0; i < QUOTA_COUNT; i++) {
    sqlite3_bind_int64(stmt, 3 + i, amount[i]);
    sqlite3_bind_int64(stmt, 6 + i, limit[i]);
  }
  int err = sqlite_run(store, STMT_QUOTA_CHARGE, "quota charge");
  if (err)
    return err;
  if (sqlite3_changes(store->db) > 0)
    return 0;
  err = sqlite_quota_usage(&store->base, tenant, day, used);
  return err ? err : CDR_EQUOTA_EXCEEDED;
}
