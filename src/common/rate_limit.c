/* rate_limit.c — the generic cell rate algorithm over one atomic word per bucket. */
#include "common/rate_limit.h"

#include <assert.h>
#include <stdatomic.h>

int64_t rate_limit_take(struct rate_limit *limit, int64_t now_ns, int64_t rate_per_s,
                        int64_t cost) {
  assert(rate_per_s >= 1 && cost >= 0);
  const int64_t interval = 1000000000 / rate_per_s; /* ns one unit costs */
  const int64_t burst = interval * rate_per_s;      /* ns of debt the bucket tolerates */
  const int64_t charge = interval * cost;
  int64_t tat = atomic_load(&limit->tat_ns);
  for (;;) {
    int64_t base = tat > now_ns ? tat : now_ns;
    int64_t debt = base - now_ns;
    if (debt > 0 && debt + charge > burst) {
      int64_t wait = debt + (charge < burst ? charge : burst) - burst;
      return wait > 0 ? wait : 1;
    }
    if (atomic_compare_exchange_weak(&limit->tat_ns, &tat, base + charge))
      return 0;
  }
}
