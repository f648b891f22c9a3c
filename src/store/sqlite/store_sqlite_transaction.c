/* store_sqlite_transaction.c — the writer's transactions and what they admit: a task in one call
 * (its id, its quota charge and its insert), the charges written at the commit.
 *
 * The quota ledger keeps one tenant's use on one day within a transaction: read once, charged in
 * memory task by task, written once at the commit, so a group commit costs one upsert per tenant
 * rather than one per task. Exact, because this backend has one writer per store (the engine
 * holds a lock on the data directory): nobody else charges between the read and the write. Ids
 * come from the writer's generator, so they increase in the order tasks are admitted, which with
 * one writer is the commit order the task list's cursor relies on. */
#include "store/sqlite/store_sqlite_internal.h"

#include "common/error.h"

#include <string.h>

static struct quota_ledger_entry *sqlite_ledger_entry(struct sqlite_store *store,
                                                      const char *tenant, int64_t day, int *rc) {
  struct quota_ledger *ledger = &store->ledger;
  for (size_t i = 0; i < ledger->count; i++) {
    if (ledger->entries[i].day == day && strcmp(ledger->entries[i].tenant, tenant) == 0)
      return &ledger->entries[i];
  }
  if (ledger->count == QUOTA_LEDGER_MAX)
    return NULL;
  struct quota_ledger_entry *entry = &ledger->entries[ledger->count];
  *rc = sqlite_quota_usage(&store->base, tenant, day, entry->used);
  if (*rc)
    return NULL;
  entry->tenant = tenant;
  entry->day = day;
  memset(entry->added, 0, sizeof(entry->added));
  ledger->count++;
  return entry;
}

/* Counts task against its tenant's quotas of day, in the ledger (or at once when the ledger is
 * full of other tenants). */
static int sqlite_admission_charge(struct sqlite_store *store, const struct task *task, int64_t day,
                                   const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]) {
  int64_t amount[QUOTA_COUNT];
  tenant_quota_amount(task, amount);
  int rc = 0;
  struct quota_ledger_entry *entry = sqlite_ledger_entry(store, task->tenant, day, &rc);
  if (rc)
    return rc;
  if (!entry)
    return sqlite_quota_charge(&store->base, task->tenant, day, amount, limit, used);
  bool over = false;
  for (int i = 0; i < QUOTA_COUNT; i++) {
    used[i] = entry->used[i] + entry->added[i];
    over |= limit[i] > 0 && used[i] + amount[i] > limit[i];
  }
  if (over)
    return CDR_EQUOTA_EXCEEDED;
  for (int i = 0; i < QUOTA_COUNT; i++)
    entry->added[i] += amount[i];
  return 0;
}

int sqlite_task_admit(struct store *base, struct task *task, int64_t now_ms,
                      const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]) {
  struct sqlite_store *store = sqlite_of(base);
  int rc = task_id_next(&store->ids, now_ms, task->id);
  if (rc)
    return rc;
  task->created_ms = task_id_time_ms(task->id);
  rc = sqlite_admission_charge(store, task, task->created_ms / 86400000, limit, used);
  return rc ? rc : sqlite_task_insert(&store->base, task);
}

/* Writes what the transaction's tasks added to each tenant's use. */
static int sqlite_admission_save(struct sqlite_store *store) {
  static const int64_t no_limit[QUOTA_COUNT];
  int64_t unused[QUOTA_COUNT];
  for (size_t i = 0; i < store->ledger.count; i++) {
    const struct quota_ledger_entry *entry = &store->ledger.entries[i];
    if (memcmp(entry->added, no_limit, sizeof(no_limit)) == 0)
      continue; /* every task of the tenant was over its quota */
    int rc = sqlite_quota_charge(&store->base, entry->tenant, entry->day, entry->added, no_limit,
                                 unused);
    if (rc)
      return rc;
  }
  store->ledger.count = 0;
  return 0;
}

int sqlite_begin(struct store *base) {
  struct sqlite_store *store = sqlite_of(base);
  store->ledger.count = 0;
  return sqlite_run(store, STMT_BEGIN, "begin");
}

int sqlite_commit(struct store *base) {
  struct sqlite_store *store = sqlite_of(base);
  int rc = sqlite_admission_save(store);
  return rc ? rc : sqlite_run(store, STMT_COMMIT, "commit");
}

void sqlite_rollback(struct store *base) {
  struct sqlite_store *store = sqlite_of(base);
  store->ledger.count = 0;
  if (!sqlite3_get_autocommit(store->db))
    sqlite_run(store, STMT_ROLLBACK, "rollback");
}
