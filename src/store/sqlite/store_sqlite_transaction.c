/* store_sqlite_transaction.c — the writer's transactions and what they admit: a task in one call
 * (its id, its quota charge and its insert, admission.h), the charges written at the commit.
 * Exact because this backend has one writer per store: the engine holds a lock on the data
 * directory. */
#include "store/sqlite/store_sqlite_internal.h"

int sqlite_task_admit(struct store *base, struct task *task, int64_t now_ms,
                      const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]) {
  return admission_admit(&sqlite_of(base)->admission, base, task, now_ms, limit, used);
}

int sqlite_begin(struct store *base) {
  struct sqlite_store *store = sqlite_of(base);
  admission_reset(&store->admission);
  return sqlite_run(store, STMT_BEGIN, "begin");
}

int sqlite_commit(struct store *base) {
  struct sqlite_store *store = sqlite_of(base);
  int rc = admission_save(&store->admission, base);
  return rc ? rc : sqlite_run(store, STMT_COMMIT, "commit");
}

void sqlite_rollback(struct store *base) {
  struct sqlite_store *store = sqlite_of(base);
  admission_reset(&store->admission);
  if (!sqlite3_get_autocommit(store->db))
    sqlite_run(store, STMT_ROLLBACK, "rollback");
}
