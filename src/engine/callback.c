/* callback.c — signed, retried, recorded callback deliveries on the fabric's loop. */
#include "engine/callback.h"

#include "common/address.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/curl_uv.h"
#include "common/error.h"
#include "common/list.h"
#include "common/log.h"
#include "engine/alerts.h"
#include "engine/fabric_internal.h"
#include "engine/task_json.h"

#include <openssl/hmac.h>
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
  struct fabric *fabric;
  struct curl_uv *curl;
  struct list_head deliveries; /* every delivery not yet done */
};

void callbacks_sign(const char *secret, int64_t t, const char *body, size_t body_len, char *out,
                    size_t out_size) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  char prefix[32];
  int prefix_len = snprintf(prefix, sizeof(prefix), "%lld.", (long long)t);
  unsigned char *signed_text = malloc((size_t)prefix_len + body_len);
  if (signed_text) {
    memcpy(signed_text, prefix, (size_t)prefix_len);
    memcpy(signed_text + prefix_len, body, body_len);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), signed_text, (size_t)prefix_len + body_len,
         digest, &digest_len);
    free(signed_text);
  }
  int n = snprintf(out, out_size, "t=%lld,v1=", (long long)t);
  for (unsigned i = 0; i < digest_len && (size_t)n + 2 < out_size; i++)
    n += snprintf(out + n, out_size - (size_t)n, "%02x", digest[i]);
}

static void delivery_free(struct callbacks *callbacks, struct delivery *delivery) {
  timer_wheel_stop(&callbacks->fabric->wheel, &delivery->timer);
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
  const char *allow = delivery->callbacks->fabric->config->callback_allow;
  if (address_is_internal(&address->addr) && !address_in_list(&address->addr, allow)) {
    delivery->refused = true;
    return CURL_SOCKET_BAD;
  }
  return socket(address->family, address->socktype, address->protocol);
}

static void callbacks_on_saved(struct store_job *job) {
  struct fabric *fabric = job->context;
  fabric->jobs_in_flight--;
  if (job->result)
    log_error("callback.save", "callback attempt of task %s could not be saved: %s", job->task_id,
              cdr_error_message(job->result));
  arena_release(&job->arena);
  free(job);
}

static void callbacks_save(struct callbacks *callbacks, const struct delivery *delivery,
                           int64_t status, const char *error, enum callback_state state) {
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job)
    return;
  job->kind = STORE_JOB_CALLBACK;
  job->context = callbacks->fabric;
  job->done = callbacks_on_saved;
  memcpy(job->task_id, delivery->task_id, sizeof(job->task_id));
  arena_init(&job->arena, 4096);
  const char *error_copy = error ? arena_strdup(&job->arena, error) : NULL;
  job->callback_attempt =
      (struct callback_attempt){delivery->attempts, clock_now_ms(), status, error_copy};
  job->callback_state = state;
  fabric_submit(callbacks->fabric, job);
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
  const struct engine_config *config = callbacks->fabric->config;
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
    alerts_raise(callbacks->fabric->alerts, "callback_failed", delivery->task_id, message);
    delivery_free(callbacks, delivery);
    return;
  }
  log_info("callback.retry", "task %s callback to %s failed (%s); retry in %llu ms",
           delivery->task_id, delivery->url, error, (unsigned long long)delay);
  timer_wheel_start(&callbacks->fabric->wheel, &delivery->timer, delay, callbacks_on_retry);
}

static void callbacks_attempt(struct callbacks *callbacks, struct delivery *delivery) {
  const struct engine_config *config = callbacks->fabric->config;
  char signature[128], header[160];
  int64_t now_s = clock_now_ms() / 1000;
  callbacks_sign(config->callback_secret, now_s, delivery->body, delivery->body_len, signature,
                 sizeof(signature));
  curl_slist_free_all(delivery->headers);
  delivery->headers = curl_slist_append(NULL, "Content-Type: application/json");
  snprintf(header, sizeof(header), "X-Cdnrefresh-Signature: %s", signature);
  delivery->headers = curl_slist_append(delivery->headers, header);
  snprintf(header, sizeof(header), "X-Cdnrefresh-Task: %s", delivery->task_id);
  delivery->headers = curl_slist_append(delivery->headers, header);
  CURL *easy = delivery->easy;
  delivery->error[0] = '\0';
  delivery->refused = false;
  curl_easy_setopt(easy, CURLOPT_URL, delivery->url);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, delivery->body);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)delivery->body_len);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, delivery->headers);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, config->callback_timeout_ms);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, delivery);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, delivery->error);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, callbacks_open_socket);
  curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, delivery);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  /* Straight to the receiver, whatever http_proxy says: the address guard above checks the
   * socket curl opens, which through a proxy would be the proxy's, not the receiver's. */
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  if (curl_uv_add(callbacks->curl, easy) == 0)
    delivery->in_curl = true;
  else
    timer_wheel_start(&callbacks->fabric->wheel, &delivery->timer,
                      (uint64_t)config->callback_retry_base_ms, callbacks_on_retry);
}

void callbacks_deliver(struct callbacks *callbacks, const struct task *task) {
  struct delivery *delivery = calloc(1, sizeof(*delivery));
  json_t *summary = task_json_summary(task);
  if (summary)
    json_object_del(summary, "callback_delivery"); /* the receiver gets the task, not our log */
  char *body = summary ? json_dumps(summary, JSON_COMPACT) : NULL;
  json_decref(summary);
  if (!delivery || !body || !(delivery->easy = curl_easy_init()) ||
      !(delivery->url = strdup(task->callback))) {
    log_error("callback.failed", "out of memory preparing the callback of task %s", task->id);
    if (delivery) {
      curl_easy_cleanup(delivery->easy);
      free(delivery->url);
    }
    free(delivery);
    free(body);
    return;
  }
  delivery->callbacks = callbacks;
  memcpy(delivery->task_id, task->id, sizeof(delivery->task_id));
  delivery->body = body;
  delivery->body_len = strlen(body);
  delivery->attempts = task->callback_attempt_count;
  delivery->first_ms = clock_now_ms();
  list_push_front(&callbacks->deliveries, &delivery->link);
  callbacks_attempt(callbacks, delivery);
}

size_t callbacks_pending(const struct callbacks *callbacks) { return callbacks->deliveries.count; }

int callbacks_create(struct fabric *fabric, struct callbacks **out) {
  struct callbacks *callbacks = calloc(1, sizeof(*callbacks));
  if (!callbacks)
    return CDR_ENOMEM;
  callbacks->fabric = fabric;
  if (curl_uv_create(&fabric->loop, 8, callbacks_on_done, callbacks, &callbacks->curl)) {
    free(callbacks);
    return CDR_ENOMEM;
  }
  *out = callbacks;
  return 0;
}

void callbacks_destroy(struct callbacks *callbacks, void (*closed)(void *context), void *context) {
  while (callbacks->deliveries.first)
    delivery_free(callbacks, LIST_ENTRY(callbacks->deliveries.first, struct delivery, link));
  curl_uv_destroy(callbacks->curl, closed, context);
  free(callbacks);
}
