/* rate.h — counters and histograms that many threads add to without a lock, read by the stats
 * endpoints. A rate keeps one-second buckets for the last 15 minutes, so "events in the last 1, 5
 * or 15 minutes" is a sum over buckets, never a scan of history. Adds from several threads race
 * only when a bucket turns over (a few events may land in the older second): fine for stats. */
#ifndef CDR_RATE_H
#define CDR_RATE_H

#include <stdatomic.h>
#include <stdint.h>

enum { RATE_SECONDS = 900 };

struct rate {
  _Atomic int64_t second[RATE_SECONDS]; /* which second each bucket holds */
  _Atomic uint64_t count[RATE_SECONDS];
  _Atomic uint64_t total; /* since start */
};

/* Counts n events at now_s (seconds). Any thread. */
void rate_add(struct rate *rate, int64_t now_s, uint64_t n);

/* Events in the `seconds` seconds up to now_s (at most RATE_SECONDS). Any thread. */
uint64_t rate_sum(struct rate *rate, int64_t now_s, int seconds);

enum { HISTOGRAM_BUCKETS = 12 };

/* Upper bounds of the histogram buckets, in seconds (the last one is +Inf). */
extern const double histogram_bounds[HISTOGRAM_BUCKETS];

struct histogram {
  _Atomic uint64_t buckets[HISTOGRAM_BUCKETS]; /* not cumulative */
  _Atomic uint64_t count;
  _Atomic uint64_t sum_us; /* sum of observations in microseconds */
};

/* Records one observation of us microseconds. Any thread. */
void histogram_observe(struct histogram *histogram, uint64_t us);

#endif
