/* callback.c — signed, retried, recorded callback deliveries on one loop. */
#include "engine/notify/callback.h"

#include "common/address.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/curl_uv.h"
#include "common/error.h"
#include "common/list.h"
#include "common/log.h"
#include "engine/notify/alerts.h"
#include "engine/notify/webhook.h"

#include <stdlib.h>
#include <string.h>

enum { CALLBACK_RETRY_MAX_MS = 60000 };

struct delivery {
  struct wheel_timer timer; /* next attempt */
  struct callbacks *callbacks;
  char task_id[TASK_ID_LENGTH + 1];
  char *url;
  char *body;
  size_t body_len;
  int64_t attempts; /* made so far, including those before a restart */
  int64_t first_ms; /* when this engine started delivering it */
  CURL *easy;
  struct curl_slist *headers;
  char error[CURL_ERROR_SIZE];
  bool refused; /* the guard refused an internal address */
  bool in_curl;
  struct list_node link; /* on callbacks->deliveries */
};

struct callbacks {
  struct notify_env env;
  struct alerts *alerts;
  callbacks_save_fn save;
  void *save_context;
  struct curl_uv *curl;
  struct list_head deliveries; /* every delivery not yet done */
};

static void delivery_free(struct callbacks *callbacks, struct delivery *delivery) {
  timer_wheel_stop(callbacks->env.wheel, &delivery->timer);
  if (delivery->in_curl)
    curl_uv_remove(callbacks->curl, delivery->easy);
  list_remove(&callbacks->deliveries, &delivery->link);
  curl_easy_cleanup(delivery->easy);
  curl_slist_free_all(delivery->headers);
  free(delivery->url);
  free(delivery->body);
  free(delivery);
}

/* Connect-time guard: the URL's name may resolve to anything, so the address is checked here. */
static curl_socket_t callbacks_open_socket(void *user, curlsocktype purpose,
                                           struct curl_sockaddr *address) {
  (void)purpose;
  struct delivery *delivery = user;
  const char *allow = delivery->callbacks->env.config->callback_allow;
  if (address_is_internal(&address->addr) && !address_in_list(&address->addr, allow)) {
    delivery->refused = true;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype, address->protocol);
}

static void callbacks_save(struct callbacks *callbacks, const struct delivery *delivery,
                           int64_t status, const char *error, enum callback_state state) {
  struct callback_attempt attempt = {delivery->attempts, clock_now_ms(), status, error};
  callbacks->save(callbacks->save_context, delivery->task_id, &attempt, state);
}

static void callbacks_attempt(struct callbacks *callbacks, struct delivery *delivery);

static void callbacks_on_retry(struct wheel_timer *timer) {
  struct delivery *delivery = (struct delivery *)timer;
  callbacks_attempt(delivery->callbacks, delivery);
}

static void callbacks_on_done(void *context, CURL *easy, CURLcode result) {
  struct callbacks *callbacks = context;
  struct delivery *delivery;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&delivery);
  delivery->in_curl = false;
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  delivery->attempts++;
  const struct engine_config *config = callbacks->env.config;
  if (result == CURLE_OK && status >= 200 && status < 300) {
    callbacks_save(callbacks, delivery, status, NULL, CALLBACK_DELIVERED);
    log_info("callback.delivered", "task %s callback delivered to %s (attempt %lld)",
             delivery->task_id, delivery->url, (long long)delivery->attempts);
    delivery_free(callbacks, delivery);
    return;
  }
  char error[CURL_ERROR_SIZE + 32];
  if (delivery->refused)
    snprintf(error, sizeof(error), "refused: the URL resolves to an internal address");
  else if (result != CURLE_OK)
    snprintf(error, sizeof(error), "%s",
             delivery->error[0] ? delivery->error : curl_easy_strerror(result));
  else
    snprintf(error, sizeof(error), "http_%ld", status);
  uint64_t delay = backoff_delay_ms((uint64_t)config->callback_retry_base_ms, CALLBACK_RETRY_MAX_MS,
                                    (unsigned)delivery->attempts);
  bool retry = !delivery->refused && clock_now_ms() + (int64_t)delay - delivery->first_ms <
                                         config->callback_window_s * 1000;
  callbacks_save(callbacks, delivery, status, error, retry ? CALLBACK_PENDING : CALLBACK_FAILED);
  if (!retry) {
    log_warn("callback.failed", "task %s callback to %s given up after %lld attempts: %s",
             delivery->task_id, delivery->url, (long long)delivery->attempts, error);
    char message[CURL_ERROR_SIZE + 160];
    snprintf(message, sizeof(message), "callback of task %s given up after %lld attempts: %s",
             delivery->task_id, (long long)delivery->attempts, error);
    alerts_raise(callbacks->alerts, "callback_failed", delivery->task_id, message);
    delivery_free(callbacks, delivery);
    return;
  }
  log_info("callback.retry", "task %s callback to %s failed (%s); retry in %llu ms",
           delivery->task_id, delivery->url, error, (unsigned long long)delay);
  timer_wheel_start(callbacks->env.wheel, &delivery->timer, delay, callbacks_on_retry);
}

static void callbacks_attempt(struct callbacks *callbacks, struct delivery *delivery) {
  const struct engine_config *config = callbacks->env.config;
  char task_header[64];
  snprintf(task_header, sizeof(task_header), "X-Cdnrefresh-Task: %s", delivery->task_id);
  struct webhook_post post = {.url = delivery->url,
                              .body = delivery->body,
                              .body_len = delivery->body_len,
                              .secret = config->callback_secret,
                              .timeout_ms = config->callback_timeout_ms,
                              .extra_header = task_header,
                              .owner = delivery};
  CURL *easy = delivery->easy;
  delivery->error[0] = '\0';
  delivery->refused = false;
  int rc = webhook_prepare(easy, &delivery->headers, &post);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, delivery->error);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, callbacks_open_socket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, delivery);
  /* Straight to the receiver, whatever http_proxy says: the address guard above checks the
   * socket curl opens, which through a proxy would be the proxy's, not the receiver's. */
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  if (rc == 0 && curl_uv_add(callbacks->curl, easy) == 0)
    delivery->in_curl = true;
  else
    timer_wheel_start(callbacks->env.wheel, &delivery->timer,
                      (uint64_t)config->callback_retry_base_ms, callbacks_on_retry);
}

void callbacks_deliver(struct callbacks *callbacks, const char *task_id, const char *url,
                       char *body, int64_t attempts_before) {
  struct delivery *delivery = calloc(1, sizeof(*delivery));
  if (!delivery || !body || !(delivery->easy = curl_easy_init()) ||
      !(delivery->url = strdup(url))) {
    log_error("callback.failed", "out of memory preparing the callback of task %s", task_id);
    if (delivery)
      curl_easy_cleanup(delivery->easy);
    free(delivery);
    free(body);
    return;
  }
  delivery->callbacks = callbacks;
  snprintf(delivery->task_id, sizeof(delivery->task_id), "%s", task_id);
  delivery->body = body;
  delivery->body_len = strlen(body);
  delivery->attempts = attempts_before;
  delivery->first_ms = clock_now_ms();
  list_push_front(&callbacks->deliveries, &delivery->link);
  callbacks_attempt(callbacks, delivery);
}

size_t callbacks_pending(const struct callbacks *callbacks) { return callbacks->deliveries.count; }

int callbacks_create(const struct notify_env *env, struct alerts *alerts, callbacks_save_fn save,
                     void *save_context, struct callbacks **out) {
  struct callbacks *callbacks = calloc(1, sizeof(*callbacks));
  if (!callbacks)
    return CDR_ENOMEM;
  callbacks->env = *env;
  callbacks->alerts = alerts;
  callbacks->save = save;
  callbacks->save_context = save_context;
  if (curl_uv_create(env->loop, 8, callbacks_on_done, callbacks, &callbacks->curl)) {
    free(callbacks);
    return CDR_ENOMEM;
  }
  *out = callbacks;
  return 0;
}

void callbacks_destroy(struct callbacks *callbacks) {
  while (callbacks->deliveries.first)
    delivery_free(callbacks, LIST_ENTRY(callbacks->deliveries.first, struct delivery, link));
  curl_uv_destroy(callbacks->curl, NULL, NULL);
  free(callbacks);
}
