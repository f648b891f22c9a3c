/* task_json.c — JSON rendering of tasks for API responses. */
#include "engine/task_json.h"

#include "common/clock.h"

/* An ISO 8601 timestamp, or null for a time that has not happened (0). */
static json_t *task_json_time(int64_t ms) {
  if (ms == 0)
    return json_null();
  char text[CLOCK_ISO8601_SIZE];
  clock_format_iso8601(ms, text);
  return json_string(text);
}

static json_t *task_json_string_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* Parses JSON text stored with the task (groups, headers); null when absent or unreadable. */
static json_t *task_json_embedded(const char *text) {
  json_t *value = text ? json_loads(text, 0, NULL) : NULL;
  return value ? value : json_null();
}

json_t *task_json_summary(const struct task *task) {
  json_t *targets =
      json_pack("{s:I,s:I,s:I,s:I}", "urls", (json_int_t)task->target_counts[TARGET_URL],
                "prefixes", (json_int_t)task->target_counts[TARGET_PREFIX], "regexes",
                (json_int_t)task->target_counts[TARGET_REGEX], "tags",
                (json_int_t)task->target_counts[TARGET_TAG]);
  json_t *counters = json_pack(
      "{s:I,s:I,s:I,s:I,s:I}", "total", (json_int_t)task->counters.total, "succeeded",
      (json_int_t)task->counters.succeeded, "failed", (json_int_t)task->counters.failed, "pending",
      (json_int_t)task->counters.pending, "unsupported", (json_int_t)task->counters.unsupported);
  json_t *groups = task_json_embedded(task->node_groups_json);
  json_t *nodes = json_is_null(groups) ? groups : json_pack("{s:o}", "groups", groups);
  /* A mode only means something for purges. */
  json_t *mode = task->type == TASK_PURGE ? json_string(task_mode_name(task->mode)) : json_null();
  json_t *summary = json_pack(
      "{s:s,s:s,s:o,s:s,s:o,s:o,s:o,s:I,s:o,s:o,s:o,s:o}", "task_id", task->id, "type",
      task_type_name(task->type), "mode", mode, "status", task_state_name(task->state), "targets",
      targets, "nodes", nodes, "callback", task_json_string_or_null(task->callback), "deadline_s",
      (json_int_t)task->deadline_s, "counters", counters, "created_at",
      task_json_time(task->created_ms), "started_at", task_json_time(task->started_ms),
      "finished_at", task_json_time(task->finished_ms));
  if (summary && task->callback) {
    json_t *attempts = json_array();
    for (int64_t i = 0; task->callback_attempts && i < task->callback_attempt_count; i++) {
      const struct callback_attempt *a = &task->callback_attempts[i];
      json_array_append_new(
          attempts, json_pack("{s:I,s:o,s:I,s:o}", "attempt", (json_int_t)a->attempt, "at",
                              task_json_time(a->at_ms), "http_status", (json_int_t)a->http_status,
                              "error", task_json_string_or_null(a->error)));
    }
    json_object_set_new(summary, "callback_delivery",
                        json_pack("{s:s,s:o}", "state", callback_state_name(task->callback_state),
                                  "attempts", attempts));
  }
  if (summary && task->type == TASK_PRELOAD)
    json_object_set_new(summary, "headers", task_json_embedded(task->headers_json));
  if (summary && task->tenant)
    json_object_set_new(summary, "tenant", json_string(task->tenant));
  return summary;
}

json_t *task_json_item(const struct item_row *row) {
  json_t *nodes = json_array();
  for (size_t i = 0; nodes && i < row->node_count; i++) {
    const struct item_node_result *result = &row->nodes[i];
    json_t *node =
        json_pack("{s:s,s:s}", "node", result->node_id, "state", item_state_name(result->state));
    if (node && result->reason) {
      json_object_set_new(node, "reason", json_string(result->reason));
      if (result->http_status)
        json_object_set_new(node, "http_status", json_integer(result->http_status));
    }
    json_array_append_new(nodes, node);
  }
  return json_pack("{s:I,s:s,s:s,s:s,s:o}", "index", (json_int_t)row->index, "kind",
                   target_kind_name(row->target.kind), "target", row->target.value, "state",
                   item_state_name(row->target.state), "nodes", nodes);
}
