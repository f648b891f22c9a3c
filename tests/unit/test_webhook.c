/* test_webhook.c — notify/: the signed POST of callbacks and alerts, and a callback delivery on a
 * loop of its own. Linked against cdr_notify and cdr_common only, which shows the folder needs
 * neither the fabric nor the store. */
#include "unit.h"

#include "engine/notify/alerts.h"
#include "engine/notify/callback.h"
#include "engine/notify/webhook.h"

#include <stdlib.h>
#include <string.h>

static void the_signature_is_hmac_sha256_over_time_dot_body(void **state) {
  (void)state;
  char out[128];
  const char *body = "{\"a\":1}";
  webhook_sign("s3cret", 1700000000, body, strlen(body), out, sizeof(out));
  /* python3: hmac.new(b"s3cret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest() */
  assert_string_equal(out, "t=1700000000,v1="
                           "1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940");
}

static void a_prepared_post_carries_json_signature_and_extra_headers(void **state) {
  (void)state;
  CURL *easy = curl_easy_init();
  assert_non_null(easy);
  struct curl_slist *headers = curl_slist_append(NULL, "X-Old: replaced");
  int owner = 0;
  struct webhook_post post = {.url = "http://127.0.0.1:9/hook",
                              .body = "{}",
                              .body_len = 2,
                              .secret = "k",
                              .timeout_ms = 1000,
                              .extra_header = "X-Cdnrefresh-Task: t1",
                              .owner = &owner};
  assert_int_equal(webhook_prepare(easy, &headers, &post), 0);
  const char *expected[] = {"Content-Type: application/json",
                            "X-Cdnrefresh-Signature: t=", "X-Cdnrefresh-Task: t1"};
  size_t n = 0;
  for (struct curl_slist *at = headers; at; at = at->next, n++) {
    assert_true(n < 3);
    assert_memory_equal(at->data, expected[n], strlen(expected[n]));
  }
  assert_int_equal(n, 3);
  char *private = NULL;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &private);
  assert_ptr_equal(private, &owner);
  curl_easy_cleanup(easy);
  curl_slist_free_all(headers);
}

struct saved {
  int calls;
  char task_id[32];
  char error[128];
  enum callback_state state;
  int64_t attempt;
};

static void record_save(void *context, const char *task_id, const struct callback_attempt *attempt,
                        enum callback_state state) {
  struct saved *saved = context;
  saved->calls++;
  snprintf(saved->task_id, sizeof(saved->task_id), "%s", task_id);
  snprintf(saved->error, sizeof(saved->error), "%s", attempt->error ? attempt->error : "");
  saved->state = state;
  saved->attempt = attempt->attempt;
}

/* The connect-time guard refuses a loopback receiver not in callbacks.allow_internal: the attempt
 * is saved as failed with the reason, never retried, and raised as an alert (logged here). */
static void a_callback_to_an_internal_address_is_refused_and_saved_failed(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  struct timer_wheel wheel;
  timer_wheel_init(&wheel, 10, uv_now(&loop));
  struct engine_config *config = calloc(1, sizeof(*config));
  assert_non_null(config);
  snprintf(config->callback_secret, sizeof(config->callback_secret), "k");
  config->callback_window_s = 60;
  config->callback_retry_base_ms = 100;
  config->callback_timeout_ms = 2000;
  struct notify_env env = {.loop = &loop, .wheel = &wheel, .config = config};
  struct alerts *alerts = NULL;
  struct callbacks *callbacks = NULL;
  struct saved saved = {0};
  assert_int_equal(alerts_create(&env, &alerts), 0);
  assert_int_equal(callbacks_create(&env, alerts, record_save, &saved, &callbacks), 0);
  callbacks_deliver(callbacks, "t-1", "http://127.0.0.1:9/hook", strdup("{\"id\":\"t-1\"}"), 2);
  assert_int_equal(callbacks_pending(callbacks), 1);
  for (int turn = 0; turn < 1000 && callbacks_pending(callbacks); turn++)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(callbacks_pending(callbacks), 0);
  assert_int_equal(saved.calls, 1);
  assert_string_equal(saved.task_id, "t-1");
  assert_int_equal(saved.state, CALLBACK_FAILED);
  assert_int_equal(saved.attempt, 3); /* two before a restart, this one */
  assert_string_equal(saved.error, "refused: the URL resolves to an internal address");
  callbacks_destroy(callbacks);
  alerts_destroy(alerts);
  while (uv_run(&loop, UV_RUN_NOWAIT))
    ;
  assert_int_equal(uv_loop_close(&loop), 0);
  free(config);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(the_signature_is_hmac_sha256_over_time_dot_body),
      cmocka_unit_test(a_prepared_post_carries_json_signature_and_extra_headers),
      cmocka_unit_test(a_callback_to_an_internal_address_is_refused_and_saved_failed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
