/* store_postgres_tenants.c — the PostgreSQL backend's tenants, their generation and daily quota
 * use. A clash (a name or key taken) is found without a failing statement, which would abort the
 * transaction the caller goes on with. */
#include "common/error.h"
#include "store/postgres/store_postgres_internal.h"

#include <string.h>

/* The fields from the name to rate_urls, as the insert and the update take them ($1..$10). */
static void pg_tenant_params(struct pg_params *params, const struct tenant *tenant) {
  pg_param_text(params, tenant->name);
  pg_param_text(params, tenant->access_key);
  pg_param_text(params, tenant->secret);
  pg_param_text(params, tenant->hosts);
  pg_param_text(params, tenant->tag_prefix);
  for (int i = 0; i < QUOTA_COUNT; i++)
    pg_param_int(params, tenant->quota[i]);
  pg_param_int(params, tenant->rate_requests);
  pg_param_int(params, tenant->rate_urls);
}

/* Whether statement which finds a row; 0 or a cdr error. */
static int pg_exists(struct pg_store *store, enum pg_statement which,
                     const struct pg_params *params, bool *found, const char *what) {
  int err;
  PGresult *res = pg_exec(store, which, params, &err, what);
  *found = res && PQntuples(res) > 0;
  PQclear(res);
  return err;
}

static int pg_tenants_bump(struct pg_store *store) {
  return pg_run(store, PG_TENANTS_BUMP, NULL, NULL, "tenant generation");
}

int pg_tenant_insert(struct store *base, const struct tenant *tenant) {
  struct pg_store *store = pg_of(base);
  /* Tasks are kept by tenant name: a new tenant of a removed one's name would own its tasks. */
  struct pg_params name = {0};
  pg_param_text(&name, tenant->name);
  bool used;
  int err = pg_exists(store, PG_TENANT_HAS_TASKS, &name, &used, "tenant name check");
  if (err || used)
    return err ? err : CDR_ETENANT_NAME_TAKEN;
  struct pg_params params = {0};
  pg_tenant_params(&params, tenant);
  pg_param_int(&params, tenant->created_ms);
  int64_t inserted = 0;
  err = pg_run(store, PG_TENANT_INSERT, &params, &inserted, "tenant insert");
  if (!err && !inserted)
    err = CDR_ETENANT_EXISTS; /* its name or its access key is another tenant's */
  return err ? err : pg_tenants_bump(store);
}

int pg_tenant_update(struct store *base, const struct tenant *tenant) {
  struct pg_store *store = pg_of(base);
  struct pg_params params = {0};
  pg_tenant_params(&params, tenant);
  int64_t updated = 0;
  int err = pg_run(store, PG_TENANT_UPDATE, &params, &updated, "tenant update");
  if (!err && !updated) {
    /* Not updated: no such tenant, or its new access key is another's (the update's guard). */
    struct pg_params name = {0};
    pg_param_text(&name, tenant->name);
    bool found;
    err = pg_exists(store, PG_TENANT_FOUND, &name, &found, "tenant check");
    if (!err)
      err = found ? CDR_ETENANT_EXISTS : CDR_ETENANT_NOT_FOUND;
  }
  return err ? err : pg_tenants_bump(store);
}

int pg_tenant_delete(struct store *base, const char *name) {
  struct pg_store *store = pg_of(base);
  struct pg_params params = {0};
  pg_param_text(&params, name);
  int64_t deleted = 0;
  int err = pg_run(store, PG_TENANT_DELETE, &params, &deleted, "tenant delete");
  if (!err && !deleted)
    return CDR_ETENANT_NOT_FOUND;
  if (!err)
    err = pg_run(store, PG_TENANT_USAGE_DELETE, &params, NULL, "tenant usage delete");
  return err ? err : pg_tenants_bump(store);
}

int pg_tenants_generation(struct store *base, int64_t *out) {
  int err;
  PGresult *res = pg_exec(pg_of(base), PG_TENANTS_GENERATION, NULL, &err, "tenant generation");
  *out = res && PQntuples(res) ? pg_int(res, 0, 0) : 0;
  PQclear(res);
  return err;
}

int pg_tenants_load(struct store *base, struct arena *arena, struct tenant **out, size_t *count) {
  int err;
  PGresult *res = pg_exec(pg_of(base), PG_TENANTS_LOAD, NULL, &err, "tenant load");
  if (!res)
    return err;
  size_t rows = (size_t)PQntuples(res);
  struct tenant *tenants = arena_alloc(arena, (rows ? rows : 1) * sizeof(*tenants));
  err = tenants ? 0 : CDR_ENOMEM;
  for (size_t i = 0; !err && i < rows; i++) {
    struct tenant *tenant = &tenants[i];
    memset(tenant, 0, sizeof(*tenant));
    bool failed = false;
    int row = (int)i;
    tenant->name = pg_text(res, row, 0, arena, &failed);
    tenant->access_key = pg_text(res, row, 1, arena, &failed);
    tenant->secret = pg_text(res, row, 2, arena, &failed);
    tenant->hosts = pg_text(res, row, 3, arena, &failed);
    tenant->tag_prefix = pg_text(res, row, 4, arena, &failed);
    for (int q = 0; q < QUOTA_COUNT; q++)
      tenant->quota[q] = pg_int(res, row, 5 + q);
    tenant->rate_requests = pg_int(res, row, 8);
    tenant->rate_urls = pg_int(res, row, 9);
    tenant->created_ms = pg_int(res, row, 10);
    if (failed)
      err = CDR_ENOMEM;
  }
  PQclear(res);
  if (!err) {
    *out = tenants;
    *count = rows;
  }
  return err;
}

int pg_quota_usage(struct store *base, const char *tenant, int64_t day, int64_t used[QUOTA_COUNT]) {
  struct pg_params params = {0};
  pg_param_text(&params, tenant);
  pg_param_int(&params, day);
  int err;
  PGresult *res = pg_exec(pg_of(base), PG_QUOTA_USAGE, &params, &err, "quota usage");
  bool found = res && PQntuples(res) > 0;
  for (int i = 0; i < QUOTA_COUNT; i++)
    used[i] = found ? pg_int(res, 0, i) : 0;
  PQclear(res);
  return err;
}

int pg_quota_charge(struct store *base, const char *tenant, int64_t day,
                    const int64_t amount[QUOTA_COUNT], const int64_t limit[QUOTA_COUNT],
                    int64_t used[QUOTA_COUNT]) {
  struct pg_params params = {0};
  pg_param_text(&params, tenant);
  pg_param_int(&params, day);
  for (int i = 0; i < QUOTA_COUNT; i++)
    pg_param_int(&params, amount[i]);
  for (int i = 0; i < QUOTA_COUNT; i++)
    pg_param_int(&params, limit[i]);
  int64_t charged = 0;
  int err = pg_run(pg_of(base), PG_QUOTA_CHARGE, &params, &charged, "quota charge");
  if (err || charged)
    return err;
  err = pg_quota_usage(base, tenant, day, used);
  return err ? err : CDR_EQUOTA_EXCEEDED;
}
