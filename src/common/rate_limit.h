/* rate_limit.h — a lock-free token bucket (GCRA: one atomic "theoretical arrival time" per bucket)
 * that any thread may draw from: per-tenant requests/s and URLs/s limits shared by every API loop.
 *
 * A bucket allowing R units per second holds a burst of R units (one second's worth). A draw of n
 * units passes when the bucket holds them; a draw larger than the whole burst passes when the
 * bucket is full and leaves it in debt, so a big request is never refused for ever but still
 * counts fully against the rate. */
#ifndef CDR_RATE_LIMIT_H
#define CDR_RATE_LIMIT_H

#include <stdint.h>

struct rate_limit {
  _Atomic int64_t tat_ns; /* when the bucket will be full again (monotonic ns) */
};

/* Draws cost units at now_ns (CLOCK_MONOTONIC ns) from a bucket of rate_per_s units per second.
 * Returns 0 when they were taken, else the ns to wait before the same draw would pass (> 0); a
 * refused draw takes nothing. rate_per_s must be >= 1. Any thread. */
int64_t rate_limit_take(struct rate_limit *limit, int64_t now_ns, int64_t rate_per_s, int64_t cost);

#endif
