/* admission.c — admitting tasks with one writer per store: ids and a quota ledger per
 * transaction (admission.h says why it is exact). */
#include "store/admission.h"

#include "common/error.h"

#include <string.h>

void admission_init(struct admission *admission) {
  memset(admission, 0, sizeof(*admission));
  task_id_generator_init(&admission->ids);
}

void admission_reset(struct admission *admission) { admission->count = 0; }

static struct admission_entry *admission_entry(struct admission *admission, struct store *store,
                                               const char *tenant, int64_t day, int *rc) {
  for (size_t i = 0; i < admission->count; i++) {
    if (admission->entries[i].day == day && strcmp(admission->entries[i].tenant, tenant) == 0)
      return &admission->entries[i];
  }
  if (admission->count == ADMISSION_TENANTS_MAX)
    return NULL;
  struct admission_entry *entry = &admission->entries[admission->count];
  *rc = store_quota_usage(store, tenant, day, entry->used);
  if (*rc)
    return NULL;
  entry->tenant = tenant;
  entry->day = day;
  memset(entry->added, 0, sizeof(entry->added));
  admission->count++;
  return entry;
}

/* Counts task against its tenant's quotas of day, in the ledger (or at once when the ledger is
 * full of other tenants). */
static int admission_charge(struct admission *admission, struct store *store,
                            const struct task *task, int64_t day, const int64_t limit[QUOTA_COUNT],
                            int64_t used[QUOTA_COUNT]) {
  int64_t amount[QUOTA_COUNT];
  tenant_quota_amount(task, amount);
  int rc = 0;
  struct admission_entry *entry = admission_entry(admission, store, task->tenant, day, &rc);
  if (rc)
    return rc;
  if (!entry)
    return store_quota_charge(store, task->tenant, day, amount, limit, used);
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

int admission_admit(struct admission *admission, struct store *store, struct task *task,
                    int64_t now_ms, const int64_t limit[QUOTA_COUNT], int64_t used[QUOTA_COUNT]) {
  int rc = task_id_next(&admission->ids, now_ms, task->id);
  if (rc)
    return rc;
  task->created_ms = task_id_time_ms(task->id);
  rc = admission_charge(admission, store, task, task->created_ms / 86400000, limit, used);
  return rc ? rc : store_task_insert(store, task);
}

int admission_save(struct admission *admission, struct store *store) {
  static const int64_t no_limit[QUOTA_COUNT];
  int64_t unused[QUOTA_COUNT];
  for (size_t i = 0; i < admission->count; i++) {
    const struct admission_entry *entry = &admission->entries[i];
    if (memcmp(entry->added, no_limit, sizeof(no_limit)) == 0)
      continue; /* every task of the tenant was over its quota */
    int rc = store_quota_charge(store, entry->tenant, entry->day, entry->added, no_limit, unused);
    if (rc)
      return rc;
  }
  admission->count = 0;
  return 0;
}
