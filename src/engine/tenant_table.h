/* tenant_table.h — the tenants as the API loops read them: each loop holds an immutable struct
 * tenant_table it swaps when the store's tenant generation changes. Rate-limit buckets must be
 * shared by every loop, so they live apart from the tables in one process-wide registry
 * (tenant_limits_for). */
#ifndef CDR_TENANT_TABLE_H
#define CDR_TENANT_TABLE_H

#include "common/arena.h"
#include "model/tenant.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The buckets of tenant name, created on first use and kept until the process exits (their
 * number is bounded by the tenants ever loaded). NULL when out of memory. Any thread. */
struct tenant_limits *tenant_limits_for(const char *name);

/* An immutable set of tenants sorted by access key, shared by reference count between the loops
 * that use it. */
struct tenant_table {
  _Atomic size_t refs;
  int64_t generation; /* the store's tenant generation it was read at */
  struct arena arena; /* holds the table itself and every string */
  struct tenant *tenants;
  size_t count;
};

/* The tenant whose access key is key[0..len), or NULL. */
const struct tenant *tenant_table_find_key(const struct tenant_table *table, const char *key,
                                           size_t len);

struct store;

/* Reads the store's tenants into a new table (one reference, limits linked) unless the store's
 * tenant generation is still `known`, in which case *out is NULL. Returns 0 or a store error. */
int tenant_table_load(struct store *store, int64_t known, struct tenant_table **out);

/* Drops one reference; the last frees the table. NULL is allowed. Any thread. */
void tenant_table_release(struct tenant_table *table);

#endif
