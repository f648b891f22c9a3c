/* stats.c — rendering of the engine's counters as JSON and as Prometheus text. */
#include "engine/stats.h"

#include "common/clock.h"
#include "common/prom.h"
#include "model/task.h"
#include "version.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct engine_stats engine_stats;

void stats_api_response(int status, int64_t now_s, uint64_t us) {
  enum stats_class class = status >= 500 ? STATS_5XX : status >= 400 ? STATS_4XX : STATS_2XX;
  rate_add(&engine_stats.api[class], now_s, 1);
  histogram_observe(&engine_stats.api_latency, us);
}

static json_t *stats_rate_json(struct rate *rate, int64_t now_s) {
  return json_pack("{s:f,s:f,s:f,s:I}", "per_s_1m", (double)rate_sum(rate, now_s, 60) / 60.0,
                   "per_s_5m", (double)rate_sum(rate, now_s, 300) / 300.0, "per_s_15m",
                   (double)rate_sum(rate, now_s, 900) / 900.0, "total",
                   (json_int_t)atomic_load(&rate->total));
}

static json_t *stats_latency_json(struct histogram *histogram) {
  uint64_t count = atomic_load(&histogram->count);
  double mean = count ? (double)atomic_load(&histogram->sum_us) / (double)count / 1000.0 : 0.0;
  return json_pack("{s:I,s:f}", "count", (json_int_t)count, "mean_ms", mean);
}

json_t *stats_json(json_t *fabric, const int64_t counts[6]) {
  int64_t now_ms = clock_now_ms(), now_s = now_ms / 1000;
  json_t *by_state = json_object();
  for (int state = TASK_QUEUED; state <= TASK_CANCELED; state++)
    json_object_set_new(by_state, task_state_name((enum task_state)state),
                        json_integer(counts[state]));
  struct engine_stats *s = &engine_stats;
  return json_pack(
      "{s:s,s:I,s:o,s:o,s:{s:o,s:o,s:o,s:o,s:o,s:o},s:{s:o,s:o,s:o}}", "version", CDR_VERSION,
      "uptime_s", (json_int_t)((now_ms - s->started_ms) / 1000), "fabric", fabric, "tasks_by_state",
      by_state, "rates", "tasks_accepted", stats_rate_json(&s->tasks_accepted, now_s),
      "items_succeeded", stats_rate_json(&s->items_succeeded, now_s), "items_failed",
      stats_rate_json(&s->items_failed, now_s), "api_2xx",
      stats_rate_json(&s->api[STATS_2XX], now_s), "api_4xx",
      stats_rate_json(&s->api[STATS_4XX], now_s), "api_5xx",
      stats_rate_json(&s->api[STATS_5XX], now_s), "latency", "api",
      stats_latency_json(&s->api_latency), "task", stats_latency_json(&s->task_latency),
      "store_commit", stats_latency_json(&s->commit_latency));
}

static long long stats_gauge(const json_t *fabric, const char *key) {
  return (long long)json_integer_value(json_object_get(fabric, key));
}

char *stats_prometheus(const json_t *fabric, const int64_t counts[6]) {
  struct buf out;
  buf_init(&out, PROM_TEXT_MAX);
  struct engine_stats *s = &engine_stats;
  prom_metric(&out, "tasks_accepted_total", "counter", "Tasks answered 202 since start.");
  buf_printf(&out, "cdnrefresh_tasks_accepted_total %llu\n",
             (unsigned long long)atomic_load(&s->tasks_accepted.total));
  prom_metric(&out, "items_total", "counter", "(item, node) results recorded since start.");
  buf_printf(&out, "cdnrefresh_items_total{result=\"succeeded\"} %llu\n",
             (unsigned long long)atomic_load(&s->items_succeeded.total));
  buf_printf(&out, "cdnrefresh_items_total{result=\"failed\"} %llu\n",
             (unsigned long long)atomic_load(&s->items_failed.total));
  prom_metric(&out, "api_responses_total", "counter", "API responses by status class.");
  static const char *const classes[] = {"2xx", "4xx", "5xx"};
  for (int c = 0; c < STATS_CLASSES; c++)
    buf_printf(&out, "cdnrefresh_api_responses_total{class=\"%s\"} %llu\n", classes[c],
               (unsigned long long)atomic_load(&s->api[c].total));
  prom_metric(&out, "tasks", "gauge", "Tasks in the store by state.");
  for (int state = TASK_QUEUED; state <= TASK_CANCELED; state++)
    buf_printf(&out, "cdnrefresh_tasks{state=\"%s\"} %lld\n",
               task_state_name((enum task_state)state), (long long)counts[state]);
  prom_metric(&out, "nodes", "gauge", "Registered edge nodes by link state.");
  buf_printf(&out,
             "cdnrefresh_nodes{state=\"online\"} %lld\ncdnrefresh_nodes{state=\"offline\"} %lld\n",
             stats_gauge(fabric, "nodes_online"), stats_gauge(fabric, "nodes_offline"));
  prom_metric(&out, "queue_items", "gauge", "Work items waiting in node queues, by lane.");
  buf_printf(
      &out,
      "cdnrefresh_queue_items{lane=\"fast\"} %lld\ncdnrefresh_queue_items{lane=\"slow\"} %lld\n",
      stats_gauge(fabric, "queue_fast"), stats_gauge(fabric, "queue_slow"));
  prom_metric(&out, "in_flight_items", "gauge", "Work items sent to agents and not answered.");
  buf_printf(&out, "cdnrefresh_in_flight_items %lld\n", stats_gauge(fabric, "in_flight"));
  prom_metric(&out, "tasks_parked", "gauge",
              "Unfinished tasks only offline nodes owe, kept in the store, not in memory.");
  buf_printf(&out, "cdnrefresh_tasks_parked %lld\n", stats_gauge(fabric, "tasks_parked"));
  prom_metric(&out, "parked_targets", "gauge",
              "Targets of the parked tasks (bounded by limits.max_parked_targets).");
  buf_printf(&out, "cdnrefresh_parked_targets %lld\n", stats_gauge(fabric, "parked_targets"));
  prom_metric(&out, "backlog_results", "gauge",
              "Unfinished (URL, node) results of the tasks in memory (bounded by "
              "limits.max_unfinished_results).");
  buf_printf(&out, "cdnrefresh_backlog_results %lld\n", stats_gauge(fabric, "backlog_results"));
  prom_metric(&out, "watermarks_age_seconds", "gauge",
              "Since the nodes' saved watermarks (where a restart resends from) were current.");
  buf_printf(&out, "cdnrefresh_watermarks_age_seconds %.3f\n",
             (double)stats_gauge(fabric, "watermarks_age_ms") / 1000.0);
  prom_metric(&out, "callbacks_pending", "gauge", "Task callbacks not yet delivered.");
  buf_printf(&out, "cdnrefresh_callbacks_pending %lld\n", stats_gauge(fabric, "callbacks_pending"));
  prom_histogram(&out, "api_request_duration_seconds", "API request to response time.",
                 &s->api_latency);
  prom_histogram(&out, "task_duration_seconds", "Task acceptance to its last (item, node) result.",
                 &s->task_latency);
  prom_histogram(&out, "store_commit_duration_seconds", "One store transaction (group commit).",
                 &s->commit_latency);
  return buf_text(&out);
}
