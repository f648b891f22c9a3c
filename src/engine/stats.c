/* stats.c — rendering of the engine's counters as JSON and as Prometheus text. */
#include "engine/stats.h"

#include "common/clock.h"
#include "engine/task.h"
#include "version.h"

#include <stdarg.h>
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

struct stats_text {
  char *data;
  size_t len, cap;
};

__attribute__((format(printf, 2, 3))) static void stats_printf(struct stats_text *out,
                                                               const char *format, ...) {
  for (;;) {
    va_list args;
    va_start(args, format);
    int n = vsnprintf(out->data ? out->data + out->len : NULL, out->data ? out->cap - out->len : 0,
                      format, args);
    va_end(args);
    if (n < 0)
      return;
    if (out->data && out->len + (size_t)n < out->cap) {
      out->len += (size_t)n;
      return;
    }
    size_t cap = out->cap ? out->cap * 2 : 8192;
    while (cap < out->len + (size_t)n + 1)
      cap *= 2;
    char *grown = realloc(out->data, cap);
    if (!grown)
      return;
    out->data = grown;
    out->cap = cap;
  }
}

static void stats_metric(struct stats_text *out, const char *name, const char *type,
                         const char *help) {
  stats_printf(out, "# HELP cdnrefresh_%s %s\n# TYPE cdnrefresh_%s %s\n", name, help, name, type);
}

static void stats_histogram(struct stats_text *out, const char *name, const char *help,
                            struct histogram *histogram) {
  stats_metric(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
    cumulative += atomic_load(&histogram->buckets[i]);
    if (i == HISTOGRAM_BUCKETS - 1)
      stats_printf(out, "cdnrefresh_%s_bucket{le=\"+Inf\"} %llu\n", name,
                   (unsigned long long)cumulative);
    else
      stats_printf(out, "cdnrefresh_%s_bucket{le=\"%g\"} %llu\n", name, histogram_bounds[i],
                   (unsigned long long)cumulative);
  }
  stats_printf(out, "cdnrefresh_%s_sum %.6f\ncdnrefresh_%s_count %llu\n", name,
               (double)atomic_load(&histogram->sum_us) / 1e6, name,
               (unsigned long long)atomic_load(&histogram->count));
}

static long long stats_gauge(const json_t *fabric, const char *key) {
  return (long long)json_integer_value(json_object_get(fabric, key));
}

char *stats_prometheus(const json_t *fabric, const int64_t counts[6]) {
  struct stats_text out = {0};
  struct engine_stats *s = &engine_stats;
  stats_metric(&out, "tasks_accepted_total", "counter", "Tasks answered 202 since start.");
  stats_printf(&out, "cdnrefresh_tasks_accepted_total %llu\n",
               (unsigned long long)atomic_load(&s->tasks_accepted.total));
  stats_metric(&out, "items_total", "counter", "(item, node) results recorded since start.");
  stats_printf(&out, "cdnrefresh_items_total{result=\"succeeded\"} %llu\n",
               (unsigned long long)atomic_load(&s->items_succeeded.total));
  stats_printf(&out, "cdnrefresh_items_total{result=\"failed\"} %llu\n",
               (unsigned long long)atomic_load(&s->items_failed.total));
  stats_metric(&out, "api_responses_total", "counter", "API responses by status class.");
  static const char *const classes[] = {"2xx", "4xx", "5xx"};
  for (int c = 0; c < STATS_CLASSES; c++)
    stats_printf(&out, "cdnrefresh_api_responses_total{class=\"%s\"} %llu\n", classes[c],
                 (unsigned long long)atomic_load(&s->api[c].total));
  stats_metric(&out, "tasks", "gauge", "Tasks in the store by state.");
  for (int state = TASK_QUEUED; state <= TASK_CANCELED; state++)
    stats_printf(&out, "cdnrefresh_tasks{state=\"%s\"} %lld\n",
                 task_state_name((enum task_state)state), (long long)counts[state]);
  stats_metric(&out, "nodes", "gauge", "Registered edge nodes by link state.");
  stats_printf(
      &out, "cdnrefresh_nodes{state=\"online\"} %lld\ncdnrefresh_nodes{state=\"offline\"} %lld\n",
      stats_gauge(fabric, "nodes_online"), stats_gauge(fabric, "nodes_offline"));
  stats_metric(&out, "queue_items", "gauge", "Work items waiting in node queues, by lane.");
  stats_printf(
      &out,
      "cdnrefresh_queue_items{lane=\"fast\"} %lld\ncdnrefresh_queue_items{lane=\"slow\"} %lld\n",
      stats_gauge(fabric, "queue_fast"), stats_gauge(fabric, "queue_slow"));
  stats_metric(&out, "in_flight_items", "gauge", "Work items sent to agents and not answered.");
  stats_printf(&out, "cdnrefresh_in_flight_items %lld\n", stats_gauge(fabric, "in_flight"));
  stats_metric(&out, "callbacks_pending", "gauge", "Task callbacks not yet delivered.");
  stats_printf(&out, "cdnrefresh_callbacks_pending %lld\n",
               stats_gauge(fabric, "callbacks_pending"));
  stats_histogram(&out, "api_request_duration_seconds", "API request to response time.",
                  &s->api_latency);
  stats_histogram(&out, "task_duration_seconds", "Task acceptance to its last (item, node) result.",
                  &s->task_latency);
  stats_histogram(&out, "store_commit_duration_seconds", "One store transaction (group commit).",
                  &s->commit_latency);
  return out.data;
}
