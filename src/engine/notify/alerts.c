/* alerts.c — deduplicated, signed alert webhook POSTs on one loop. */
#include "engine/notify/alerts.h"

#include "common/clock.h"
#include "common/curl_uv.h"
#include "common/error.h"
#include "common/list.h"
#include "common/log.h"
#include "engine/notify/webhook.h"

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum {
  ALERT_KEYS_MAX = 1024,       /* distinct (kind, subject) pairs remembered */
  ALERT_FLUSH_CHECK_MS = 1000, /* how often windows with counted repeats are looked at */
  ALERT_SUBJECT_MAX = 64,      /* a node id at most; longer subjects are cut */
};

struct alert_key {
  char kind[32];
  char subject[ALERT_SUBJECT_MAX + 1];
  int64_t sent_ms;     /* last alert sent for this key */
  uint64_t suppressed; /* repeats since then */
  char message[256];   /* the last repeat's, sent with the count when the window ends */
};

struct alert_post {
  CURL *easy;
  struct curl_slist *headers;
  char *body;
  struct list_node link; /* on alerts->posts */
};

struct alerts {
  struct notify_env env;
  struct curl_uv *curl;
  struct alert_key *keys;
  size_t key_count;
  struct list_head posts;   /* in flight */
  struct wheel_timer flush; /* armed while some key has repeats counted */
};

static void alerts_post_free(struct alerts *alerts, struct alert_post *post) {
  list_remove(&alerts->posts, &post->link);
  curl_slist_free_all(post->headers);
  curl_easy_cleanup(post->easy);
  free(post->body);
  free(post);
}

static void alerts_on_done(void *context, CURL *easy, CURLcode result) {
  struct alerts *alerts = context;
  struct alert_post *post;
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&post);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  if (result != CURLE_OK || status < 200 || status >= 300)
    log_warn("alert.failed", "alert webhook answered %ld (%s)", status, curl_easy_strerror(result));
  alerts_post_free(alerts, post);
}

static struct alert_key *alerts_key(struct alerts *alerts, const char *kind, const char *subject) {
  for (size_t i = 0; i < alerts->key_count; i++) {
    if (strcmp(alerts->keys[i].kind, kind) == 0 && strcmp(alerts->keys[i].subject, subject) == 0)
      return &alerts->keys[i];
  }
  if (alerts->key_count == ALERT_KEYS_MAX)
    return NULL;
  struct alert_key *key = &alerts->keys[alerts->key_count++];
  memset(key, 0, sizeof(*key));
  snprintf(key->kind, sizeof(key->kind), "%s", kind);
  snprintf(key->subject, sizeof(key->subject), "%s", subject);
  return key;
}

/* Posts one alert: a new event (summary false) carrying the repeats counted before it, or the
 * count of repeats alone at the end of a window (summary true). */
static void alerts_post(struct alerts *alerts, const char *kind, const char *subject,
                        const char *message, uint64_t repeats, bool summary) {
  const struct engine_config *config = alerts->env.config;
  char at[CLOCK_ISO8601_SIZE];
  int64_t now = clock_now_ms();
  clock_format_iso8601(now, at);
  json_t *alert =
      json_pack("{s:s,s:s,s:s,s:I,s:b,s:s}", "alert", kind, "subject", subject, "message", message,
                "repeats", (json_int_t)repeats, "summary", summary, "at", at);
  char *body = alert ? json_dumps(alert, JSON_COMPACT) : NULL;
  json_decref(alert);
  struct alert_post *post = calloc(1, sizeof(*post));
  if (!body || !post || !(post->easy = curl_easy_init())) {
    free(body);
    free(post);
    return;
  }
  post->body = body;
  struct webhook_post request = {.url = config->alert_url,
                                 .body = body,
                                 .body_len = strlen(body),
                                 .secret = config->callback_secret,
                                 .timeout_ms = config->callback_timeout_ms,
                                 .owner = post};
  list_push_front(&alerts->posts, &post->link);
  if (webhook_prepare(post->easy, &post->headers, &request) != 0 ||
      curl_uv_add(alerts->curl, post->easy) != 0)
    alerts_on_done(alerts, post->easy, CURLE_FAILED_INIT);
}

/* Sends the count of every key whose window has ended with repeats counted, as one alert with
 * the last repeat's message, so repeats are reported even when nothing follows them. */
static void alerts_on_flush(struct wheel_timer *timer) {
  struct alerts *alerts = CONTAINER_OF(timer, struct alerts, flush);
  int64_t now = clock_now_ms(), window_ms = alerts->env.config->alert_window_s * 1000;
  bool pending = false;
  for (size_t i = 0; i < alerts->key_count; i++) {
    struct alert_key *key = &alerts->keys[i];
    if (!key->suppressed)
      continue;
    if (now - key->sent_ms < window_ms) {
      pending = true;
      continue;
    }
    alerts_post(alerts, key->kind, key->subject, key->message, key->suppressed, true);
    key->sent_ms = now;
    key->suppressed = 0;
  }
  if (pending)
    timer_wheel_start(alerts->env.wheel, &alerts->flush, ALERT_FLUSH_CHECK_MS, alerts_on_flush);
}

void alerts_raise(struct alerts *alerts, const char *kind, const char *subject,
                  const char *message) {
  log_warn("alert", "%s %s: %s", kind, subject, message);
  if (!alerts || !alerts->env.config->alert_url[0])
    return;
  struct alert_key *key = alerts_key(alerts, kind, subject);
  int64_t now = clock_now_ms();
  if (key && key->sent_ms && now - key->sent_ms < alerts->env.config->alert_window_s * 1000) {
    key->suppressed++;
    snprintf(key->message, sizeof(key->message), "%s", message);
    if (!timer_wheel_armed(&alerts->flush))
      timer_wheel_start(alerts->env.wheel, &alerts->flush, ALERT_FLUSH_CHECK_MS, alerts_on_flush);
    return;
  }
  alerts_post(alerts, kind, subject, message, key ? key->suppressed : 0, false);
  if (key) {
    key->sent_ms = now;
    key->suppressed = 0;
  }
}

int alerts_create(const struct notify_env *env, struct alerts **out) {
  struct alerts *alerts = calloc(1, sizeof(*alerts));
  struct alert_key *keys = calloc(ALERT_KEYS_MAX, sizeof(*keys));
  if (!alerts || !keys || curl_uv_create(env->loop, 2, alerts_on_done, alerts, &alerts->curl)) {
    free(alerts);
    free(keys);
    return CDR_ENOMEM;
  }
  alerts->env = *env;
  alerts->keys = keys;
  *out = alerts;
  return 0;
}

void alerts_destroy(struct alerts *alerts) {
  timer_wheel_stop(alerts->env.wheel, &alerts->flush);
  while (alerts->posts.first) {
    struct alert_post *post = LIST_ENTRY(alerts->posts.first, struct alert_post, link);
    curl_uv_remove(alerts->curl, post->easy);
    alerts_post_free(alerts, post);
  }
  curl_uv_destroy(alerts->curl, NULL, NULL);
  free(alerts->keys);
  free(alerts);
}
