/* store.c — store.h's calls, each sent to the backend of the store it is given
 * (store_backend.h). */
#include "store/store_backend.h"

#include "common/error.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const struct store_backend *const store_backends[] = {&store_sqlite_backend,
                                                             &store_postgres_backend};

/* The backend address names (it starts with the backend's scheme, and more follows), and in *rest
 * what follows the scheme; NULL when none. */
static const struct store_backend *store_backend_of(const char *address, const char **rest) {
  for (size_t i = 0; i < sizeof(store_backends) / sizeof(store_backends[0]); i++) {
    size_t len = strlen(store_backends[i]->scheme);
    if (strncmp(address, store_backends[i]->scheme, len) == 0 && address[len]) {
      *rest = address + len;
      return store_backends[i];
    }
  }
  return NULL;
}

int store_address_check(const char *address, char *err, size_t err_size) {
  const char *rest;
  if (store_backend_of(address, &rest))
    return 0;
  snprintf(err, err_size, "a store address is %s", STORE_ADDRESSES);
  return CDR_ECONFIG;
}

void store_address_describe(const char *address, char *out, size_t size) {
  const char *rest;
  const struct store_backend *backend = store_backend_of(address, &rest);
  if (backend)
    backend->describe(rest, out, size);
  else
    snprintf(out, size, "(not a store address)");
}

int store_open(const char *address, const struct store_options *options, struct store **out,
               char *err, size_t err_size) {
  const char *rest;
  const struct store_backend *backend = store_backend_of(address, &rest);
  if (!backend)
    return store_address_check(address, err, err_size);
  return backend->open(rest, options, out, err, err_size);
}

void store_read_budget_start(struct store *store) { store->backend->read_budget_start(store); }

void store_close(struct store *store) {
  if (store)
    store->backend->close(store);
}

int store_begin(struct store *store) { return store->backend->begin(store); }

int store_commit(struct store *store) { return store->backend->commit(store); }

void store_rollback(struct store *store) { store->backend->rollback(store); }

int store_task_insert(struct store *store, const struct task *task) {
  return store->backend->task_insert(store, task);
}

int store_task_admit(struct store *store, struct task *task, int64_t now_ms,
                     const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]) {
  return store->backend->task_admit(store, task, now_ms, limit, used);
}

int store_task_get(struct store *store, const char *tenant, const char *id, struct arena *arena,
                   struct task **out) {
  return store->backend->task_get(store, tenant, id, arena, out);
}

int store_task_cancel(struct store *store, const char *tenant, const char *id, int64_t now_ms) {
  return store->backend->task_cancel(store, tenant, id, now_ms);
}

int store_tasks_list(struct store *store, const char *tenant, const enum task_state *state,
                     const char *after, size_t limit, struct arena *arena,
                     struct store_task_page *out) {
  return store->backend->tasks_list(store, tenant, state, after, limit, arena, out);
}

int store_targets_list(struct store *store, const char *task_id, int64_t after, size_t limit,
                       struct arena *arena, struct store_target_page *out) {
  return store->backend->targets_list(store, task_id, after, limit, arena, out);
}

int store_node_upsert(struct store *store, const struct store_node *node) {
  return store->backend->node_upsert(store, node);
}

int store_node_marks_save(struct store *store, const struct store_node_mark *marks, size_t count) {
  return store->backend->node_marks_save(store, marks, count);
}

int store_nodes_load(struct store *store, struct arena *arena, struct store_node **out,
                     size_t *count) {
  return store->backend->nodes_load(store, arena, out, count);
}

int store_task_plan(struct store *store, const struct task *task) {
  return store->backend->task_plan(store, task);
}

int store_task_progress(struct store *store, const struct task *task,
                        const struct store_task_node *nodes, size_t node_count,
                        const struct store_failure *failures, size_t failure_count) {
  return store->backend->task_progress(store, task, nodes, node_count, failures, failure_count);
}

int store_tasks_load(struct store *store, const char *const *ids, size_t count, struct arena *arena,
                     struct task **out) {
  return store->backend->tasks_load(store, ids, count, arena, out);
}

int store_tasks_unfinished(struct store *store, struct arena *arena, struct task ***out,
                           size_t *count) {
  return store->backend->tasks_unfinished(store, arena, out, count);
}

int store_task_nodes_load(struct store *store, const char *task_id, struct arena *arena,
                          struct store_task_node **out, size_t *count) {
  return store->backend->task_nodes_load(store, task_id, arena, out, count);
}

int store_unfinished_results(struct store *store, struct arena *arena,
                             struct store_saved_results *out) {
  return store->backend->unfinished_results(store, arena, out);
}

int store_callback_attempt(struct store *store, const char *task_id,
                           const struct callback_attempt *attempt, enum callback_state state) {
  return store->backend->callback_attempt(store, task_id, attempt, state);
}

int store_callback_attempts_load(struct store *store, struct task *task, struct arena *arena) {
  return store->backend->callback_attempts_load(store, task, arena);
}

int store_callbacks_pending(struct store *store, struct arena *arena, struct task ***out,
                            size_t *count) {
  return store->backend->callbacks_pending(store, arena, out, count);
}

enum { STORE_PRUNE_PICK = 64 }; /* tasks looked up per round of a prune */

int store_tasks_prune(struct store *store, int64_t before_ms, size_t max_rows, size_t *pruned,
                      bool *more) {
  char before[TASK_ID_LENGTH + 1];
  task_id_floor(before_ms, before);
  *pruned = 0;
  *more = false;
  size_t rows = 0;
  while (rows < max_rows) {
    char picked[STORE_PRUNE_PICK][TASK_ID_LENGTH + 1];
    size_t count = 0;
    int err = store->backend->prune_pick(store, before, STORE_PRUNE_PICK, picked, &count);
    if (err)
      return err;
    size_t deleted = 0;
    for (; deleted < count && rows < max_rows; deleted++) {
      size_t went = 0;
      if ((err = store->backend->task_delete(store, picked[deleted], &went)))
        return err;
      rows += went;
    }
    *pruned += deleted;
    if (count < STORE_PRUNE_PICK && deleted == count)
      return 0; /* the pick found all there was, and all of it went */
  }
  *more = true;
  return 0;
}

int store_task_counts(struct store *store, int64_t counts[6]) {
  return store->backend->task_counts(store, counts);
}

int store_node_delete(struct store *store, const char *id) {
  return store->backend->node_delete(store, id);
}

int store_failures_list(struct store *store, const char *task_id, int64_t first, int64_t last,
                        struct arena *arena, struct store_failure **out, size_t *count) {
  return store->backend->failures_list(store, task_id, first, last, arena, out, count);
}

int store_tenant_insert(struct store *store, const struct tenant *tenant) {
  return store->backend->tenant_insert(store, tenant);
}

int store_tenant_update(struct store *store, const struct tenant *tenant) {
  return store->backend->tenant_update(store, tenant);
}

int store_tenant_delete(struct store *store, const char *name) {
  return store->backend->tenant_delete(store, name);
}

int store_tenants_generation(struct store *store, int64_t *out) {
  return store->backend->tenants_generation(store, out);
}

int store_tenants_load(struct store *store, struct arena *arena, struct tenant **out,
                       size_t *count) {
  return store->backend->tenants_load(store, arena, out, count);
}

int store_quota_usage(struct store *store, const char *tenant, int64_t day,
                      int64_t used[QUOTA_COUNT]) {
  return store->backend->quota_usage(store, tenant, day, used);
}

int store_quota_charge(struct store *store, const char *tenant, int64_t day,
                       const int64_t amount[QUOTA_COUNT], const int64_t limit[QUOTA_COUNT],
                       int64_t used[QUOTA_COUNT]) {
  /* A day's first charge inserts its row, which the backends' upserts do not check: an amount
   * over its limit by itself is refused here. */
  for (int i = 0; i < QUOTA_COUNT; i++) {
    if (limit[i] > 0 && amount[i] > limit[i]) {
      int err = store_quota_usage(store, tenant, day, used);
      return err ? err : CDR_EQUOTA_EXCEEDED;
    }
  }
  return store->backend->quota_charge(store, tenant, day, amount, limit, used);
}
