/* test_json_text.c — the directly written JSON (json_text, the task summary, an item) is byte for
 * byte what jansson's json_dumps(JSON_COMPACT) prints for the same values. */
#include "unit.h"

#include "common/json_text.h"
#include "engine/task_json.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Asserts that text holds exactly what jansson prints for expected (which it takes). */
static void assert_same_as_jansson(struct json_text *text, json_t *expected) {
  char *dumped = json_dumps(expected, JSON_COMPACT | JSON_ENCODE_ANY);
  assert_non_null(dumped);
  assert_false(text->failed);
  assert_int_equal(text->len, strlen(dumped));
  assert_memory_equal(text->data, dumped, text->len);
  free(dumped);
  json_decref(expected);
}

static void strings_are_escaped_like_jansson(void **state) {
  (void)state;
  static const char *const samples[] = {"",
                                        "plain",
                                        "quote \" and backslash \\",
                                        "tab\tnew\nline\rcr",
                                        "\b\f\x01\x1f\x7f",
                                        "https://example.com/a?b=c&d=e#f",
                                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
                                        "/slash/"};
  for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
    struct json_text text;
    json_text_init(&text);
    json_text_string(&text, samples[i]);
    assert_same_as_jansson(&text, json_string(samples[i]));
    json_text_free(&text);
  }
}

static void integers_and_null_match(void **state) {
  (void)state;
  static const int64_t samples[] = {0, 7, -1, 1234567890123LL, INT64_MAX, INT64_MIN};
  for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
    struct json_text text;
    json_text_init(&text);
    json_text_int(&text, samples[i]);
    assert_same_as_jansson(&text, json_integer(samples[i]));
    json_text_free(&text);
  }
  struct json_text text;
  json_text_init(&text);
  json_text_string(&text, NULL);
  assert_same_as_jansson(&text, json_null());
}

static void long_text_moves_to_the_heap(void **state) {
  (void)state;
  char *big = malloc(5000);
  memset(big, '"', 4999); /* every byte escaped: ~10 KB, past the inline buffer */
  big[4999] = '\0';
  struct json_text text;
  json_text_init(&text);
  JSON_TEXT_LITERAL(&text, "[");
  json_text_string(&text, big);
  JSON_TEXT_LITERAL(&text, "]");
  assert_true(text.data != text.inline_buffer);
  assert_same_as_jansson(&text, json_pack("[s]", big));
  json_text_free(&text);
  free(big);
}

/* The summary as jansson builds it from the same fields, in the documented key order. */
static json_t *summary_by_jansson(const struct task *task) {
  json_t *groups = task->node_groups_json ? json_loads(task->node_groups_json, 0, NULL) : NULL;
  json_t *summary = json_pack(
      "{s:s,s:s,s:o,s:s,s:{s:I,s:I,s:I,s:I},s:o,s:o,s:I}", "task_id", task->id, "type",
      task_type_name(task->type), "mode",
      task->type == TASK_PURGE ? json_string(task_mode_name(task->mode)) : json_null(), "status",
      task_state_name(task->state), "targets", "urls", (json_int_t)task->target_counts[TARGET_URL],
      "prefixes", (json_int_t)task->target_counts[TARGET_PREFIX], "regexes",
      (json_int_t)task->target_counts[TARGET_REGEX], "tags",
      (json_int_t)task->target_counts[TARGET_TAG], "nodes",
      groups ? json_pack("{s:o}", "groups", groups) : json_null(), "callback",
      task->callback ? json_string(task->callback) : json_null(), "deadline_s",
      (json_int_t)task->deadline_s);
  json_object_set_new(summary, "verify", json_boolean(task->verify));
  json_object_set_new(
      summary, "counters",
      json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "total", (json_int_t)task->counters.total, "succeeded",
                (json_int_t)task->counters.succeeded, "failed", (json_int_t)task->counters.failed,
                "pending", (json_int_t)task->counters.pending, "unsupported",
                (json_int_t)task->counters.unsupported, "verified",
                (json_int_t)task->counters.verified));
  json_object_set_new(summary, "created_at", json_string("2026-12-01T08:52:11.007Z"));
  json_object_set_new(summary, "started_at", json_null());
  json_object_set_new(summary, "finished_at",
                      task->finished_ms ? json_string("2026-12-01T08:52:12.250Z") : json_null());
  if (task->callback) {
    json_t *attempts = json_array();
    for (int64_t i = 0; i < task->callback_attempt_count; i++) {
      const struct callback_attempt *a = &task->callback_attempts[i];
      json_array_append_new(
          attempts, json_pack("{s:I,s:s,s:I,s:o}", "attempt", (json_int_t)a->attempt, "at",
                              "2026-12-01T08:52:12.250Z", "http_status", (json_int_t)a->http_status,
                              "error", a->error ? json_string(a->error) : json_null()));
    }
    json_object_set_new(summary, "callback_delivery",
                        json_pack("{s:s,s:o}", "state", callback_state_name(task->callback_state),
                                  "attempts", attempts));
  }
  if (task->type == TASK_PRELOAD)
    json_object_set_new(summary, "headers",
                        task->headers_json ? json_loads(task->headers_json, 0, NULL) : json_null());
  if (task->tenant)
    json_object_set_new(summary, "tenant", json_string(task->tenant));
  return summary;
}

static void task_summary_matches_jansson(void **state) {
  (void)state;
  struct callback_attempt attempts[] = {
      {.attempt = 1, .at_ms = 1796115132250LL, .http_status = 500, .error = "HTTP 500 \"oops\""},
      {.attempt = 2, .at_ms = 1796115132250LL, .http_status = 204}};
  struct task purge = {
      .id = "01KB0000000000000000000000",
      .tenant = "acme",
      .type = TASK_PURGE,
      .mode = TASK_MODE_INVALIDATE,
      .state = TASK_QUEUED,
      .node_groups_json = "[\"eu\",\"us-east\"]",
      .callback = "https://hooks.example/done?x=\"1\"",
      .deadline_s = 3600,
      .created_ms = 1796115131007LL,
      .verify = true,
      .counters = {.total = 6, .pending = 4, .succeeded = 1, .failed = 1, .verified = 1},
      .target_counts = {[TARGET_URL] = 3, [TARGET_REGEX] = 1},
      .callback_state = CALLBACK_PENDING,
      .callback_attempt_count = 2,
      .callback_attempts = attempts};
  struct task preload = {.id = "01KB0000000000000000000001",
                         .type = TASK_PRELOAD,
                         .state = TASK_DONE,
                         /* as json_dumps stored it when the task was accepted */
                         .headers_json = "{\"Accept-Encoding\":\"gzip\",\"X-A\":\"\xc3\xa9\"}",
                         .deadline_s = 60,
                         .created_ms = 1796115131007LL,
                         .finished_ms = 1796115132250LL,
                         .target_counts = {[TARGET_URL] = 1}};
  const struct task *tasks[] = {&purge, &preload};
  for (size_t i = 0; i < 2; i++) {
    struct json_text text;
    json_text_init(&text);
    task_json_summary_text(tasks[i], &text);
    assert_same_as_jansson(&text, summary_by_jansson(tasks[i]));
    json_text_free(&text);
  }
}

/* What task_json_item_text used to build with jansson: the reference it must print alike. */
static json_t *item_by_jansson(const struct item_row *row) {
  json_t *nodes = json_array();
  for (size_t i = 0; i < row->node_count; i++) {
    const struct item_node_result *result = &row->nodes[i];
    json_t *node =
        json_pack("{s:s,s:s}", "node", result->node_id, "state", item_state_name(result->state));
    if (result->state == ITEM_SUCCEEDED)
      json_object_set_new(node, "verified", json_boolean(result->verified));
    if (result->reason) {
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

static void item_matches_jansson(void **state) {
  (void)state;
  struct item_node_result results[] = {
      {.node_id = "edge-1", .state = ITEM_SUCCEEDED, .verified = true},
      {.node_id = "edge-2", .state = ITEM_SUCCEEDED},
      {.node_id = "edge-3", .state = ITEM_FAILED, .http_status = 503, .reason = "http_503"},
      {.node_id = "edge-4", .state = ITEM_FAILED, .reason = "connection_refused"},
      {.node_id = "edge-5", .state = ITEM_UNSUPPORTED, .reason = "nginx_cannot_invalidate"},
      {.node_id = "edge-6", .state = ITEM_PENDING},
  };
  struct item_row rows[] = {
      {.index = 41,
       .target = {.kind = TARGET_URL,
                  .value = "https://a.example/x?q=\"1\"&b=%20\xc3\xa9",
                  .state = ITEM_FAILED},
       .nodes = results,
       .node_count = 6},
      {.index = 0, .target = {.kind = TARGET_TAG, .value = "t", .state = ITEM_PENDING}},
  };
  for (size_t i = 0; i < 2; i++) {
    struct json_text text;
    json_text_init(&text);
    task_json_item_text(&rows[i], &text);
    assert_same_as_jansson(&text, item_by_jansson(&rows[i]));
    json_text_free(&text);
  }
  /* A reason that is not printable ASCII (an agent's own bytes) still makes valid JSON. */
  results[3].reason = "bad\xff\xc3 \x01"
                      "end";
  struct json_text text;
  json_text_init(&text);
  task_json_item_text(&rows[0], &text);
  json_t *parsed = json_loadb(text.data, text.len, 0, NULL);
  assert_non_null(parsed);
  json_t *node = json_array_get(json_object_get(parsed, "nodes"), 3);
  assert_string_equal(json_string_value(json_object_get(node, "reason")), "bad?? ?end");
  json_decref(parsed);
  json_text_free(&text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(strings_are_escaped_like_jansson),
      cmocka_unit_test(integers_and_null_match),
      cmocka_unit_test(long_text_moves_to_the_heap),
      cmocka_unit_test(task_summary_matches_jansson),
      cmocka_unit_test(item_matches_jansson),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
