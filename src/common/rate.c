/* rate.c — one-second-bucket sliding windows and fixed-bucket histograms, lock-free. */
#include "common/rate.h"

#include <stddef.h>

const double histogram_bounds[HISTOGRAM_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                    0.05,   0.1,   0.25,   0.5,   1.0,  1e300};

void rate_add(struct rate *rate, int64_t now_s, uint64_t n) {
  size_t at = (size_t)(now_s % RATE_SECONDS);
  int64_t held = atomic_load_explicit(&rate->second[at], memory_order_relaxed);
  if (held != now_s && atomic_compare_exchange_strong(&rate->second[at], &held, now_s))
    atomic_store_explicit(&rate->count[at], 0, memory_order_relaxed); /* a new second */
  atomic_fetch_add_explicit(&rate->count[at], n, memory_order_relaxed);
  atomic_fetch_add_explicit(&rate->total, n, memory_order_relaxed);
}

uint64_t rate_sum(struct rate *rate, int64_t now_s, int seconds) {
  uint64_t sum = 0;
  for (int i = 0; i < seconds && i < RATE_SECONDS; i++) {
    int64_t second = now_s - i;
    size_t at = (size_t)(second % RATE_SECONDS);
    if (atomic_load_explicit(&rate->second[at], memory_order_relaxed) == second)
      sum += atomic_load_explicit(&rate->count[at], memory_order_relaxed);
  }
  return sum;
}

void histogram_observe(struct histogram *histogram, uint64_t us) {
  int bucket = 0;
  while (bucket < HISTOGRAM_BUCKETS - 1 && (double)us / 1e6 > histogram_bounds[bucket])
    bucket++;
  atomic_fetch_add_explicit(&histogram->buckets[bucket], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&histogram->count, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&histogram->sum_us, us, memory_order_relaxed);
}
