/* agent_stats.c — the agent's counters and their Prometheus text (agent_stats.h). */
#include "agent/agent_stats.h"

#include "common/prom.h"

struct agent_stats agent_stats;

char *agent_stats_prometheus(const char *cache) {
  struct buf out;
  buf_init(&out, PROM_TEXT_MAX);
  struct agent_stats *s = &agent_stats;
  static const char *const results[AGENT_RESULTS] = {"succeeded", "failed", "unsupported"};
  prom_metric(&out, "agent_items_total", "counter", "Work items finished on the local cache.");
  for (int r = 0; r < AGENT_RESULTS; r++)
    buf_printf(&out, "cdnrefresh_agent_items_total{cache=\"%s\",result=\"%s\"} %llu\n", cache,
               results[r], (unsigned long long)atomic_load(&s->items[r]));
  prom_metric(&out, "agent_items_in_progress", "gauge",
              "Work items received and not yet finished.");
  buf_printf(&out, "cdnrefresh_agent_items_in_progress %llu\n",
             (unsigned long long)atomic_load(&s->items_in_progress));
  prom_metric(&out, "agent_link_up", "gauge", "1 while an engine has welcomed this agent.");
  buf_printf(&out, "cdnrefresh_agent_link_up %llu\n", (unsigned long long)atomic_load(&s->link_up));
  prom_metric(&out, "agent_link_connects_total", "counter",
              "Links to an engine established since start.");
  buf_printf(&out, "cdnrefresh_agent_link_connects_total %llu\n",
             (unsigned long long)atomic_load(&s->link_connects));
  prom_histogram(&out, "agent_cache_request_duration_seconds",
                 "One HTTP request to the local cache (purge or preload).", &s->cache_request);
  return buf_text(&out);
}
