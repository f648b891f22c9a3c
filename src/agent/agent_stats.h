/* agent_stats.h — the agent's counters, read by its /metrics endpoint (agent_metrics.h). Written
 * on the agent's loop (and the histogram from any thread); plain loads elsewhere. */
#ifndef CDR_AGENT_STATS_H
#define CDR_AGENT_STATS_H

#include "common/rate.h"

#include <stdatomic.h>
#include <stdint.h>

enum agent_result { AGENT_SUCCEEDED, AGENT_FAILED, AGENT_UNSUPPORTED, AGENT_RESULTS };

struct agent_stats {
  _Atomic uint64_t items[AGENT_RESULTS]; /* work items finished, by outcome */
  _Atomic uint64_t items_in_progress;    /* held by the executor */
  _Atomic uint64_t link_up;              /* 1 while welcomed by an engine */
  _Atomic uint64_t link_connects;        /* Welcomes received */
  struct histogram cache_request;        /* one HTTP request to the local cache */
};

extern struct agent_stats agent_stats;

/* The counters in the Prometheus text format (malloc'd; NULL when out of memory). cache is the
 * cache kind, given as a label. */
char *agent_stats_prometheus(const char *cache);

#endif
