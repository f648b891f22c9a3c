/* task_json.c — JSON rendering of tasks for API responses. */
#include "engine/task_json.h"

#include "common/clock.h"

#include <string.h>

/* An ISO 8601 timestamp, or null for a time that has not happened (0). */
static void task_json_time(struct json_text *out, int64_t ms) {
  if (ms == 0) {
    JSON_TEXT_LITERAL(out, "null");
    return;
  }
  char text[CLOCK_ISO8601_SIZE];
  clock_format_iso8601(ms, text);
  json_text_string(out, text);
}

/* JSON text stored with the task (groups, headers), written by json_dumps(JSON_COMPACT) when it
 * was accepted: it goes out as it is. */
static void task_json_embedded(struct json_text *out, const char *stored) {
  if (stored)
    json_text_raw(out, stored, strlen(stored));
  else
    JSON_TEXT_LITERAL(out, "null");
}

void task_json_summary_text(const struct task *task, struct json_text *out) {
  JSON_TEXT_LITERAL(out, "{\"task_id\":");
  json_text_string(out, task->id);
  JSON_TEXT_LITERAL(out, ",\"type\":");
  json_text_string(out, task_type_name(task->type));
  JSON_TEXT_LITERAL(out, ",\"mode\":"); /* a mode only means something for purges */
  json_text_string(out, task->type == TASK_PURGE ? task_mode_name(task->mode) : NULL);
  JSON_TEXT_LITERAL(out, ",\"status\":");
  json_text_string(out, task_state_name(task->state));
  static const char *const kinds[] = {
      ",\"targets\":{\"urls\":", ",\"prefixes\":", ",\"regexes\":", ",\"tags\":"};
  static const enum target_kind order[] = {TARGET_URL, TARGET_PREFIX, TARGET_REGEX, TARGET_TAG};
  for (size_t i = 0; i < 4; i++) {
    json_text_raw(out, kinds[i], strlen(kinds[i]));
    json_text_int(out, task->target_counts[order[i]]);
  }
  JSON_TEXT_LITERAL(out, "},\"nodes\":");
  if (task->node_groups_json) {
    JSON_TEXT_LITERAL(out, "{\"groups\":");
    task_json_embedded(out, task->node_groups_json);
    JSON_TEXT_LITERAL(out, "}");
  } else {
    JSON_TEXT_LITERAL(out, "null");
  }
  JSON_TEXT_LITERAL(out, ",\"callback\":");
  json_text_string(out, task->callback);
  JSON_TEXT_LITERAL(out, ",\"deadline_s\":");
  json_text_int(out, task->deadline_s);
  JSON_TEXT_LITERAL(out, ",\"verify\":");
  json_text_bool(out, task->verify);
  JSON_TEXT_LITERAL(out, ",\"counters\":{\"total\":");
  json_text_int(out, task->counters.total);
  JSON_TEXT_LITERAL(out, ",\"succeeded\":");
  json_text_int(out, task->counters.succeeded);
  JSON_TEXT_LITERAL(out, ",\"failed\":");
  json_text_int(out, task->counters.failed);
  JSON_TEXT_LITERAL(out, ",\"pending\":");
  json_text_int(out, task->counters.pending);
  JSON_TEXT_LITERAL(out, ",\"unsupported\":");
  json_text_int(out, task->counters.unsupported);
  JSON_TEXT_LITERAL(out, ",\"verified\":");
  json_text_int(out, task->counters.verified);
  JSON_TEXT_LITERAL(out, "}");
  if (task->waiting) {
    JSON_TEXT_LITERAL(out, ",\"waiting_for\":{\"nodes\":");
    json_text_int(out, task->waiting->nodes);
    JSON_TEXT_LITERAL(out, ",\"online\":");
    json_text_int(out, task->waiting->nodes - task->waiting->offline);
    JSON_TEXT_LITERAL(out, ",\"offline\":");
    json_text_int(out, task->waiting->offline);
    JSON_TEXT_LITERAL(out, ",\"offline_since\":");
    task_json_time(out, task->waiting->offline_since_ms);
    JSON_TEXT_LITERAL(out, "}");
  }
  JSON_TEXT_LITERAL(out, ",\"created_at\":");
  task_json_time(out, task->created_ms);
  JSON_TEXT_LITERAL(out, ",\"started_at\":");
  task_json_time(out, task->started_ms);
  JSON_TEXT_LITERAL(out, ",\"finished_at\":");
  task_json_time(out, task->finished_ms);
  if (task->callback) {
    JSON_TEXT_LITERAL(out, ",\"callback_delivery\":{\"state\":");
    json_text_string(out, callback_state_name(task->callback_state));
    JSON_TEXT_LITERAL(out, ",\"attempts\":[");
    for (int64_t i = 0; task->callback_attempts && i < task->callback_attempt_count; i++) {
      const struct callback_attempt *a = &task->callback_attempts[i];
      if (i > 0)
        JSON_TEXT_LITERAL(out, ",");
      JSON_TEXT_LITERAL(out, "{\"attempt\":");
      json_text_int(out, a->attempt);
      JSON_TEXT_LITERAL(out, ",\"at\":");
      task_json_time(out, a->at_ms);
      JSON_TEXT_LITERAL(out, ",\"http_status\":");
      json_text_int(out, a->http_status);
      JSON_TEXT_LITERAL(out, ",\"error\":");
      json_text_string(out, a->error);
      JSON_TEXT_LITERAL(out, "}");
    }
    JSON_TEXT_LITERAL(out, "]}");
  }
  if (task->type == TASK_PRELOAD) {
    JSON_TEXT_LITERAL(out, ",\"headers\":");
    task_json_embedded(out, task->headers_json);
  }
  if (task->tenant) {
    JSON_TEXT_LITERAL(out, ",\"tenant\":");
    json_text_string(out, task->tenant);
  }
  JSON_TEXT_LITERAL(out, "}");
}

json_t *task_json_summary(const struct task *task) {
  struct json_text text;
  json_text_init(&text);
  task_json_summary_text(task, &text);
  json_t *summary = text.failed ? NULL : json_loadb(text.data, text.len, 0, NULL);
  json_text_free(&text);
  return summary;
}

/* Appends a result's reason as printable ASCII: agents send codes (http_503, still_cached), and
 * one that sent other bytes must not make the page invalid JSON. */
static void task_json_reason(struct json_text *out, const char *reason) {
  char clean[64];
  size_t n = 0;
  for (const unsigned char *at = (const unsigned char *)reason; *at && n < sizeof(clean) - 1; at++)
    clean[n++] = *at >= 0x20 && *at < 0x7f ? (char)*at : '?';
  clean[n] = '\0';
  json_text_string(out, clean);
}

void task_json_item_text(const struct item_row *row, struct json_text *out) {
  JSON_TEXT_LITERAL(out, "{\"index\":");
  json_text_int(out, row->index);
  JSON_TEXT_LITERAL(out, ",\"kind\":");
  json_text_string(out, target_kind_name(row->target.kind));
  JSON_TEXT_LITERAL(out, ",\"target\":");
  json_text_string(out, row->target.value);
  JSON_TEXT_LITERAL(out, ",\"state\":");
  json_text_string(out, item_state_name(row->target.state));
  JSON_TEXT_LITERAL(out, ",\"nodes\":[");
  for (size_t i = 0; i < row->node_count; i++) {
    const struct item_node_result *result = &row->nodes[i];
    if (i > 0)
      JSON_TEXT_LITERAL(out, ",");
    JSON_TEXT_LITERAL(out, "{\"node\":");
    json_text_string(out, result->node_id);
    JSON_TEXT_LITERAL(out, ",\"state\":");
    json_text_string(out, item_state_name(result->state));
    if (result->state == ITEM_SUCCEEDED) {
      JSON_TEXT_LITERAL(out, ",\"verified\":");
      json_text_bool(out, result->verified);
    }
    if (result->reason) {
      JSON_TEXT_LITERAL(out, ",\"reason\":");
      task_json_reason(out, result->reason);
      if (result->http_status) {
        JSON_TEXT_LITERAL(out, ",\"http_status\":");
        json_text_int(out, result->http_status);
      }
    }
    JSON_TEXT_LITERAL(out, "}");
  }
  JSON_TEXT_LITERAL(out, "]}");
}
