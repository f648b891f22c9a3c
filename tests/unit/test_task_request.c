/* test_task_request.c — validation of purge and preload bodies. */
#include "unit.h"

#include "common/error.h"
#include "engine/api/task_request.h"

#include <stdio.h>
#include <string.h>

static const struct request_limits limits = {
    .max_items = 5, .max_url_length = 100, .default_deadline_s = 600, .max_deadline_s = 3600};

struct parsed {
  struct arena arena;
  struct task *task;
  struct request_error error;
  int rc;
};

static void parse(struct parsed *p, enum task_type type, const char *body) {
  arena_init(&p->arena, 1 << 20);
  p->task = NULL;
  memset(&p->error, 0, sizeof(p->error));
  p->rc = task_request_parse(type, body, strlen(body), &limits, &tenant_dev, &p->arena, &p->task,
                             &p->error);
}

/* Parses body and checks that it fails with code on field. */
static void expect_error(enum task_type type, const char *body, int code, const char *field) {
  struct parsed p;
  parse(&p, type, body);
  assert_int_equal(p.rc, code);
  assert_int_equal(p.error.code, code);
  assert_string_equal(p.error.field, field);
  assert_true(strlen(p.error.message) > 0);
  assert_null(p.task);
  arena_release(&p.arena);
}

static void request_accepts_a_full_purge(void **state) {
  (void)state;
  struct parsed p;
  parse(&p, TASK_PURGE,
        "{\"urls\":[\"https://A.com/x\"],\"prefixes\":[\"https://a.com/img/\"],"
        "\"regexes\":[\"^https://a\\\\.com/.*\\\\.css$\"],\"tags\":[\"product-42\"],"
        "\"mode\":\"invalidate\",\"nodes\":{\"groups\":[\"eu\",\"us\"]},"
        "\"callback\":\"https://hooks.example/done\",\"deadline_s\":120}");
  assert_int_equal(p.rc, 0);
  struct task *t = p.task;
  assert_int_equal(t->type, TASK_PURGE);
  assert_int_equal(t->mode, TASK_MODE_INVALIDATE);
  assert_int_equal(t->state, TASK_QUEUED);
  assert_int_equal(t->target_count, 4);
  assert_int_equal(t->targets[0].kind, TARGET_URL);
  assert_string_equal(t->targets[0].value, "https://a.com/x");
  assert_int_equal(t->targets[1].kind, TARGET_PREFIX);
  assert_int_equal(t->targets[2].kind, TARGET_REGEX);
  assert_string_equal(t->targets[3].value, "product-42");
  assert_string_equal(t->node_groups_json, "[\"eu\",\"us\"]");
  assert_string_equal(t->callback, "https://hooks.example/done");
  assert_int_equal(t->deadline_s, 120);
  assert_string_equal(t->tenant, "dev");
  arena_release(&p.arena);
}

static void request_defaults_mode_and_deadline(void **state) {
  (void)state;
  struct parsed p;
  parse(&p, TASK_PURGE, "{\"urls\":[\"http://a.com/\"]}");
  assert_int_equal(p.rc, 0);
  assert_int_equal(p.task->mode, TASK_MODE_DELETE);
  assert_int_equal(p.task->deadline_s, 600);
  assert_true(p.task->verify);
  assert_null(p.task->node_groups_json);
  assert_null(p.task->callback);
  arena_release(&p.arena);
  parse(&p, TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"verify\":false}");
  assert_int_equal(p.rc, 0);
  assert_false(p.task->verify);
  arena_release(&p.arena);
  parse(&p, TASK_PRELOAD, "{\"urls\":[\"http://a.com/\"],\"verify\":false}");
  assert_int_equal(p.rc, 0);
  assert_false(p.task->verify); /* a preload's check can be skipped too */
  arena_release(&p.arena);
}

static void request_drops_duplicates_after_normalising(void **state) {
  (void)state;
  struct parsed p;
  parse(&p, TASK_PURGE,
        "{\"urls\":[\"https://a.com/x\",\"HTTPS://A.COM:443/x\",\"https://a.com/y\"],"
        "\"prefixes\":[\"https://a.com/x\"]}");
  assert_int_equal(p.rc, 0);
  assert_int_equal(p.task->target_count, 3); /* the prefix of the same text is a different target */
  assert_int_equal(p.task->target_counts[TARGET_URL], 2);
  assert_int_equal(p.task->target_counts[TARGET_PREFIX], 1);
  arena_release(&p.arena);
}

static void request_accepts_preload_headers(void **state) {
  (void)state;
  struct parsed p;
  parse(&p, TASK_PRELOAD,
        "{\"urls\":[\"https://a.com/v.mp4\"],\"headers\":{\"Accept-Encoding\":\"gzip\"}}");
  assert_int_equal(p.rc, 0);
  assert_int_equal(p.task->type, TASK_PRELOAD);
  assert_string_equal(p.task->headers_json, "{\"Accept-Encoding\":\"gzip\"}");
  arena_release(&p.arena);
}

static void request_rejects_malformed_json(void **state) {
  (void)state;
  expect_error(TASK_PURGE, "{\"urls\":[", CDR_EMALFORMED_JSON, "");
  expect_error(TASK_PURGE, "", CDR_EMALFORMED_JSON, "");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"urls\":[]}", CDR_EMALFORMED_JSON, "");
}

static void request_rejects_wrong_types(void **state) {
  (void)state;
  expect_error(TASK_PURGE, "[]", CDR_EINVALID_TYPE, "");
  expect_error(TASK_PURGE, "{\"urls\":\"http://a.com/\"}", CDR_EINVALID_TYPE, "urls");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\",7]}", CDR_EINVALID_TYPE, "urls[1]");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"nodes\":[]}", CDR_EINVALID_TYPE,
               "nodes");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"deadline_s\":\"9\"}",
               CDR_EINVALID_VALUE, "deadline_s");
}

static void request_rejects_unknown_fields(void **state) {
  (void)state;
  expect_error(TASK_PURGE, "{\"url\":[\"http://a.com/\"]}", CDR_EUNKNOWN_FIELD, "url");
  expect_error(TASK_PRELOAD, "{\"urls\":[\"http://a.com/\"],\"prefixes\":[]}", CDR_EUNKNOWN_FIELD,
               "prefixes");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"headers\":{}}", CDR_EUNKNOWN_FIELD,
               "headers");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"nodes\":{\"group\":[\"eu\"]}}",
               CDR_EUNKNOWN_FIELD, "nodes");
}

static void request_rejects_empty_targets(void **state) {
  (void)state;
  expect_error(TASK_PURGE, "{}", CDR_EEMPTY_TARGETS, "urls");
  expect_error(TASK_PURGE, "{\"urls\":[],\"prefixes\":[]}", CDR_EEMPTY_TARGETS, "urls");
  expect_error(TASK_PRELOAD, "{\"urls\":[]}", CDR_EEMPTY_TARGETS, "urls");
}

static void request_rejects_bad_urls_naming_the_index(void **state) {
  (void)state;
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\",\"a.com/x\"]}", CDR_EINVALID_URL,
               "urls[1]");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/#top\"]}", CDR_EINVALID_URL, "urls[0]");
  expect_error(TASK_PURGE, "{\"urls\":[\"ftp://a.com/x\"]}", CDR_EINVALID_URL, "urls[0]");
  char body[300];
  snprintf(body, sizeof(body), "{\"urls\":[\"http://a.com/%0120d\"]}", 0);
  expect_error(TASK_PURGE, body, CDR_EURL_TOO_LONG, "urls[0]");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"callback\":\"nope\"}", CDR_EINVALID_URL,
               "callback");
}

static void request_rejects_too_many_items_across_lists(void **state) {
  (void)state;
  expect_error(TASK_PURGE,
               "{\"urls\":[\"http://a.com/1\",\"http://a.com/2\",\"http://a.com/3\"],"
               "\"tags\":[\"a\",\"b\",\"c\"]}",
               CDR_ETOO_MANY_ITEMS, "tags");
}

static void request_rejects_prefix_without_path(void **state) {
  (void)state;
  expect_error(TASK_PURGE, "{\"prefixes\":[\"https://a.com\"]}", CDR_EINVALID_PREFIX,
               "prefixes[0]");
  expect_error(TASK_PURGE, "{\"prefixes\":[\"https://a.com/x?y=1\"]}", CDR_EINVALID_PREFIX,
               "prefixes[0]");
  expect_error(TASK_PURGE, "{\"prefixes\":[\"a.com/img/\"]}", CDR_EINVALID_PREFIX, "prefixes[0]");
}

static void request_rejects_regex_that_does_not_compile(void **state) {
  (void)state;
  struct parsed p;
  parse(&p, TASK_PURGE, "{\"regexes\":[\"^https://a\\\\.com/(img\"]}");
  assert_int_equal(p.rc, CDR_EINVALID_REGEX);
  assert_string_equal(p.error.field, "regexes[0]");
  assert_non_null(strstr(p.error.message, "PCRE2"));
  arena_release(&p.arena);
  expect_error(TASK_PURGE, "{\"regexes\":[\"\"]}", CDR_EINVALID_REGEX, "regexes[0]");
}

static void request_rejects_bad_options(void **state) {
  (void)state;
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"mode\":\"soft\"}", CDR_EINVALID_VALUE,
               "mode");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"deadline_s\":0}", CDR_EINVALID_VALUE,
               "deadline_s");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"deadline_s\":3601}", CDR_EINVALID_VALUE,
               "deadline_s");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"nodes\":{\"groups\":[\"e u\"]}}",
               CDR_EINVALID_VALUE, "nodes.groups[0]");
  expect_error(TASK_PURGE, "{\"tags\":[\"has space\"]}", CDR_EINVALID_TAG, "tags[0]");
  expect_error(TASK_PURGE, "{\"urls\":[\"http://a.com/\"],\"verify\":\"no\"}", CDR_EINVALID_TYPE,
               "verify");
  expect_error(TASK_PRELOAD, "{\"urls\":[\"http://a.com/\"],\"verify\":1}", CDR_EINVALID_TYPE,
               "verify");
  expect_error(TASK_PRELOAD, "{\"urls\":[\"http://a.com/\"],\"headers\":{\"Host\":\"x\"}}",
               CDR_EINVALID_VALUE, "headers.Host");
  expect_error(TASK_PRELOAD, "{\"urls\":[\"http://a.com/\"],\"headers\":{\"X-A\":\"a\\r\\nb\"}}",
               CDR_EINVALID_VALUE, "headers.X-A");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(request_accepts_a_full_purge),
      cmocka_unit_test(request_defaults_mode_and_deadline),
      cmocka_unit_test(request_drops_duplicates_after_normalising),
      cmocka_unit_test(request_accepts_preload_headers),
      cmocka_unit_test(request_rejects_malformed_json),
      cmocka_unit_test(request_rejects_wrong_types),
      cmocka_unit_test(request_rejects_unknown_fields),
      cmocka_unit_test(request_rejects_empty_targets),
      cmocka_unit_test(request_rejects_bad_urls_naming_the_index),
      cmocka_unit_test(request_rejects_too_many_items_across_lists),
      cmocka_unit_test(request_rejects_prefix_without_path),
      cmocka_unit_test(request_rejects_regex_that_does_not_compile),
      cmocka_unit_test(request_rejects_bad_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
