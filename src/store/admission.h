/* admission.h — what a backend with one writer per store uses to admit tasks (store_task_admit):
 * ids from the writer's own generator, and quota charges kept in memory for the transaction.
 *
 * The ledger keeps one tenant's use on one day within a transaction: read once, charged task by
 * task in memory, written once at the commit, so a group commit costs one upsert per tenant
 * rather than one per task. Exact only while nobody else charges between the read and the write,
 * which is why a backend using it lets one engine write its store. Ids come from the writer's
 * generator, so they increase in the order tasks are admitted: with one writer, commit order,
 * which the task list's cursor relies on. */
#ifndef CDR_STORE_ADMISSION_H
#define CDR_STORE_ADMISSION_H

#include "common/task_id.h"
#include "store/store.h"

/* One tenant's quota use on one day within a writer transaction. */
struct admission_entry {
  const char *tenant; /* the first admitted task's, which outlives the transaction */
  int64_t day;
  int64_t used[QUOTA_COUNT];  /* saved before this transaction */
  int64_t added[QUOTA_COUNT]; /* by this transaction's tasks */
};

enum { ADMISSION_TENANTS_MAX = 32 }; /* tenants per transaction; more are charged one by one */

struct admission {
  struct task_id_generator ids;
  struct admission_entry entries[ADMISSION_TENANTS_MAX];
  size_t count;
};

void admission_init(struct admission *admission);

/* Forgets the charges of the transaction (at its begin and its rollback). */
void admission_reset(struct admission *admission);

/* store_task_admit on store, a connection in a transaction that admission belongs to. */
int admission_admit(struct admission *admission, struct store *store, struct task *task,
                    int64_t now_ms, const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]);

/* Writes what the transaction's tasks added to each tenant's use (before its commit). */
int admission_save(struct admission *admission, struct store *store);

#endif
