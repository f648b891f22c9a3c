/* stats.h — the engine's counters for GET /v1/stats and GET /metrics (docs/METRICS.md): rates over
 * 1/5/15 minutes and latency histograms, added to from any thread without locks. One instance per
 * process, like a metrics registry. */
#ifndef CDR_STATS_H
#define CDR_STATS_H

#include "common/rate.h"

#include <jansson.h>

enum stats_class { STATS_2XX, STATS_4XX, STATS_5XX, STATS_CLASSES };

struct engine_stats {
  int64_t started_ms;
  struct rate tasks_accepted;
  struct rate items_succeeded;
  struct rate items_failed;        /* failed and unsupported results */
  struct rate api[STATS_CLASSES];  /* API responses by status class */
  struct histogram api_latency;    /* request received -> response sent */
  struct histogram task_latency;   /* task accepted -> last result */
  struct histogram commit_latency; /* one store transaction */
};

extern struct engine_stats engine_stats;

/* Counts an API response with status, sent at now_s (epoch seconds) after us microseconds.
 * Any thread. */
void stats_api_response(int status, int64_t now_s, uint64_t us);

/* GET /v1/stats: the counters, with fabric (its gauges, taken over) and counts (tasks by state,
 * six entries in enum task_state order). Returns a new JSON object. */
json_t *stats_json(json_t *fabric, const int64_t counts[6]);

/* GET /metrics: the same in the Prometheus text format; malloc'd string for the caller. */
char *stats_prometheus(const json_t *fabric, const int64_t counts[6]);

#endif
