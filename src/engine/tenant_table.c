/* tenant_table.c — the tables of tenants the API loops read, and their shared buckets
 * (tenant_table.h). */
#include "engine/tenant_table.h"

#include "common/error.h"
#include "store/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The process-wide buckets: a list searched only when a table is loaded, never per request. */
struct tenant_limits_entry {
  struct tenant_limits limits;
  struct tenant_limits_entry *next;
  char name[];
};

static pthread_mutex_t tenant_limits_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tenant_limits_entry *tenant_limits_all;

struct tenant_limits *tenant_limits_for(const char *name) {
  pthread_mutex_lock(&tenant_limits_lock);
  struct tenant_limits_entry *entry = tenant_limits_all;
  while (entry && strcmp(entry->name, name) != 0)
    entry = entry->next;
  if (!entry) {
    size_t len = strlen(name);
    entry = calloc(1, sizeof(*entry) + len + 1);
    if (entry) {
      memcpy(entry->name, name, len + 1);
      entry->next = tenant_limits_all;
      tenant_limits_all = entry;
    }
  }
  pthread_mutex_unlock(&tenant_limits_lock);
  return entry ? &entry->limits : NULL;
}

/* Sets every tenant's limits pointer (tenant_limits_for). Returns 0 or CDR_ENOMEM. */
static int tenant_table_link(struct tenant_table *table) {
  for (size_t i = 0; i < table->count; i++) {
    table->tenants[i].limits = tenant_limits_for(table->tenants[i].name);
    if (!table->tenants[i].limits)
      return CDR_ENOMEM;
  }
  return 0;
}

const struct tenant *tenant_table_find_key(const struct tenant_table *table, const char *key,
                                           size_t len) {
  size_t low = 0, high = table ? table->count : 0;
  while (low < high) {
    size_t mid = low + (high - low) / 2;
    const char *candidate = table->tenants[mid].access_key;
    int order = strncmp(candidate, key, len);
    if (order == 0 && candidate[len] != '\0')
      order = 1;
    if (order == 0)
      return &table->tenants[mid];
    if (order < 0)
      low = mid + 1;
    else
      high = mid;
  }
  return NULL;
}

int tenant_table_load(struct store *store, int64_t known, struct tenant_table **out) {
  enum { TENANT_TABLE_MAX = 256 * 1024 * 1024 }; /* bytes: far beyond any real tenant list */
  *out = NULL;
  int64_t generation;
  int rc = store_tenants_generation(store, &generation);
  if (rc || generation == known)
    return rc;
  struct arena arena;
  arena_init(&arena, TENANT_TABLE_MAX);
  struct tenant_table *table = arena_alloc(&arena, sizeof(*table));
  rc = table ? 0 : CDR_ENOMEM;
  if (!rc) {
    memset(table, 0, sizeof(*table));
    rc = store_tenants_load(store, &arena, &table->tenants, &table->count);
  }
  if (!rc)
    rc = tenant_table_link(table);
  if (rc) {
    arena_release(&arena);
    return rc;
  }
  atomic_init(&table->refs, 1);
  table->generation = generation;
  table->arena = arena;
  *out = table;
  return 0;
}

void tenant_table_release(struct tenant_table *table) {
  if (!table || atomic_fetch_sub(&table->refs, 1) != 1)
    return;
  struct arena arena = table->arena; /* the table lives in its own arena */
  arena_release(&arena);
}
