/* executor.c — libcurl multi driven by libuv (socket and timer callbacks), with reused slots. */
#include "agent/executor.h"

#include "common/error.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct exec_slot {
  struct executor *executor;
  struct exec_item item;
  uint64_t tag;
  bool used;
  struct exec_slot *next; /* free list, or waiting list */
  char *target;           /* copy of the item's target */
  size_t target_cap;
  char *url; /* request URL, filled by the driver */
  size_t url_cap;
  char host[320];
  char *header_lines; /* "Name: value" lines of the item's headers, NUL-separated */
  size_t header_lines_cap;
  CURL *easy;
  struct curl_slist *headers;
  struct exec_outcome outcome;
  uv_work_t work;
};

struct exec_socket {
  uv_poll_t poll;
  curl_socket_t fd;
  struct executor *executor;
};

struct executor {
  uv_loop_t *loop;
  struct driver *driver;
  CURLM *multi;
  uv_timer_t timeout;
  struct exec_slot *slots;
  size_t slot_count;
  struct exec_slot *free_slots;
  struct exec_slot *waiting_head, *waiting_tail;
  size_t busy;
  size_t running;   /* requests in curl */
  size_t offloaded; /* items on the thread pool */
  size_t concurrency;
  long timeout_ms;
  executor_done_cb done;
  void *context;
  bool destroying;
  void (*closed)(void *context);
};

/* Grows buffer to at least need bytes; false when out of memory. */
static bool exec_reserve(char **buffer, size_t *cap, size_t need) {
  if (need <= *cap)
    return true;
  size_t grown = *cap ? *cap : 256;
  while (grown < need)
    grown *= 2;
  char *more = realloc(*buffer, grown);
  if (!more)
    return false;
  *buffer = more;
  *cap = grown;
  return true;
}

static void exec_slot_release(struct executor *executor, struct exec_slot *slot) {
  slot->used = false;
  slot->next = executor->free_slots;
  executor->free_slots = slot;
  executor->busy--;
}

static void exec_start_waiting(struct executor *executor);

/* Reports slot's outcome and frees the slot for the next item. */
static void exec_finish(struct executor *executor, struct exec_slot *slot) {
  if (!executor->destroying)
    executor->done(executor->context, slot->tag, slot->item.item_id, &slot->outcome);
  exec_slot_release(executor, slot);
  exec_start_waiting(executor);
}

static size_t exec_discard_body(char *data, size_t size, size_t count, void *user) {
  (void)data;
  (void)user;
  return size * count;
}

static size_t exec_on_header(char *data, size_t size, size_t count, void *user) {
  struct exec_slot *slot = user;
  size_t len = size * count;
  static const char name[] = "x-cache-status:";
  if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
    const char *value = data + sizeof(name) - 1;
    size_t value_len = len - (sizeof(name) - 1);
    while (value_len && (*value == ' ')) {
      value++;
      value_len--;
    }
    while (value_len && (value[value_len - 1] == '\r' || value[value_len - 1] == '\n'))
      value_len--;
    if (value_len >= sizeof(slot->outcome.cache_status))
      value_len = sizeof(slot->outcome.cache_status) - 1;
    memcpy(slot->outcome.cache_status, value, value_len);
    slot->outcome.cache_status[value_len] = '\0';
  }
  return len;
}

static void exec_offload_work(uv_work_t *work) {
  struct exec_slot *slot = work->data;
  slot->executor->driver->offload(slot->executor->driver, &slot->item, &slot->outcome);
}

static void exec_close(struct executor *executor);

static void exec_offload_done(uv_work_t *work, int status) {
  struct exec_slot *slot = work->data;
  struct executor *executor = slot->executor;
  executor->offloaded--;
  if (executor->destroying) {
    exec_slot_release(executor, slot);
    if (executor->offloaded == 0)
      exec_close(executor); /* the destroy was waiting for the thread pool */
    return;
  }
  if (status == UV_ECANCELED)
    driver_outcome_failed(&slot->outcome, 0, CURLE_ABORTED_BY_CALLBACK);
  exec_finish(executor, slot);
}

/* Builds the request the driver planned and hands it to curl. */
static void exec_request_start(struct executor *executor, struct exec_slot *slot,
                               const struct exec_request *request) {
  char host_header[340];
  snprintf(host_header, sizeof(host_header), "Host: %s", slot->host);
  curl_slist_free_all(slot->headers);
  slot->headers = curl_slist_append(NULL, host_header);
  if (request->send_item_headers) {
    const char *line = slot->header_lines;
    for (size_t i = 0; i < slot->item.header_count; i++) {
      slot->headers = curl_slist_append(slot->headers, line);
      line += strlen(line) + 1;
    }
  }
  CURL *easy = slot->easy;
  curl_easy_setopt(easy, CURLOPT_URL, slot->url);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, slot->headers);
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST,
                   strcmp(request->method, "GET") == 0 ? NULL : request->method);
  curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, slot);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, exec_discard_body);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, exec_on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, slot);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, executor->timeout_ms);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  if (curl_multi_add_handle(executor->multi, easy) != CURLM_OK) {
    driver_outcome_failed(&slot->outcome, 0, CURLE_FAILED_INIT);
    exec_finish(executor, slot);
    return;
  }
  executor->running++;
}

/* Asks the driver what slot's item needs and starts it. */
static void exec_slot_run(struct executor *executor, struct exec_slot *slot) {
  memset(&slot->outcome, 0, sizeof(slot->outcome));
  size_t url_need = strlen(slot->item.target) + 512;
  if (!exec_reserve(&slot->url, &slot->url_cap, url_need)) {
    driver_outcome_failed(&slot->outcome, 0, CURLE_OUT_OF_MEMORY);
    exec_finish(executor, slot);
    return;
  }
  struct exec_request request = {slot->url,          slot->url_cap, slot->host,
                                 sizeof(slot->host), "GET",         false};
  switch (executor->driver->prepare(executor->driver, &slot->item, &request, &slot->outcome)) {
  case DRIVER_ANSWERED: exec_finish(executor, slot); return;
  case DRIVER_OFFLOAD:
    slot->work.data = slot;
    executor->offloaded++;
    if (uv_queue_work(executor->loop, &slot->work, exec_offload_work, exec_offload_done) != 0) {
      executor->offloaded--;
      driver_outcome_failed(&slot->outcome, 0, CURLE_FAILED_INIT);
      exec_finish(executor, slot);
    }
    return;
  case DRIVER_REQUEST: exec_request_start(executor, slot, &request); return;
  }
}

static void exec_start_waiting(struct executor *executor) {
  while (!executor->destroying && executor->waiting_head &&
         executor->running + executor->offloaded < executor->concurrency) {
    struct exec_slot *slot = executor->waiting_head;
    executor->waiting_head = slot->next;
    if (!executor->waiting_head)
      executor->waiting_tail = NULL;
    exec_slot_run(executor, slot);
  }
}

/* Collects finished transfers from curl. */
static void exec_check_done(struct executor *executor) {
  CURLMsg *message;
  int left;
  while ((message = curl_multi_info_read(executor->multi, &left))) {
    if (message->msg != CURLMSG_DONE)
      continue;
    CURL *easy = message->easy_handle;
    CURLcode error = message->data.result;
    struct exec_slot *slot;
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&slot);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(executor->multi, easy);
    executor->running--;
    if (error != CURLE_OK)
      status = 0;
    executor->driver->complete(executor->driver, &slot->item, status, error, &slot->outcome);
    exec_finish(executor, slot);
  }
}

static void exec_on_poll(uv_poll_t *poll, int status, int events) {
  struct exec_socket *socket = poll->data;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  int running;
  curl_multi_socket_action(socket->executor->multi, socket->fd, flags, &running);
  exec_check_done(socket->executor);
}

static void exec_on_timeout(uv_timer_t *timer) {
  struct executor *executor = timer->data;
  int running;
  curl_multi_socket_action(executor->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  exec_check_done(executor);
}

static int exec_on_curl_timer(CURLM *multi, long timeout_ms, void *user) {
  (void)multi;
  struct executor *executor = user;
  if (timeout_ms < 0)
    uv_timer_stop(&executor->timeout);
  else
    uv_timer_start(&executor->timeout, exec_on_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

static void exec_socket_closed(uv_handle_t *handle) { free(handle->data); }

static int exec_on_curl_socket(CURL *easy, curl_socket_t fd, int action, void *user,
                               void *socket_data) {
  (void)easy;
  struct executor *executor = user;
  struct exec_socket *socket = socket_data;
  if (action == CURL_POLL_REMOVE) {
    if (socket) {
      uv_poll_stop(&socket->poll);
      uv_close((uv_handle_t *)&socket->poll, exec_socket_closed);
      curl_multi_assign(executor->multi, fd, NULL);
    }
    return 0;
  }
  if (!socket) {
    socket = calloc(1, sizeof(*socket));
    if (!socket)
      return -1;
    socket->fd = fd;
    socket->executor = executor;
    uv_poll_init_socket(executor->loop, &socket->poll, fd);
    socket->poll.data = socket;
    curl_multi_assign(executor->multi, fd, socket);
  }
  int events =
      (action & CURL_POLL_IN ? UV_READABLE : 0) | (action & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&socket->poll, events, exec_on_poll);
  return 0;
}

int executor_create(uv_loop_t *loop, struct driver *driver, size_t window, size_t concurrency,
                    long timeout_ms, executor_done_cb done, void *context, struct executor **out) {
  struct executor *executor = calloc(1, sizeof(*executor));
  struct exec_slot *slots = calloc(window, sizeof(*slots));
  CURLM *multi = curl_multi_init();
  if (!executor || !slots || !multi) {
    free(executor);
    free(slots);
    curl_multi_cleanup(multi);
    return CDR_ENOMEM;
  }
  *executor = (struct executor){.loop = loop,
                                .driver = driver,
                                .multi = multi,
                                .slots = slots,
                                .slot_count = window,
                                .concurrency = concurrency,
                                .timeout_ms = timeout_ms,
                                .done = done,
                                .context = context};
  for (size_t i = window; i-- > 0;) {
    slots[i].executor = executor;
    slots[i].easy = curl_easy_init();
    if (!slots[i].easy)
      return CDR_ENOMEM;
    slots[i].next = executor->free_slots;
    executor->free_slots = &slots[i];
  }
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, exec_on_curl_socket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, executor);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, exec_on_curl_timer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, executor);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)concurrency);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)concurrency);
  uv_timer_init(loop, &executor->timeout);
  executor->timeout.data = executor;
  *out = executor;
  return 0;
}

int executor_submit(struct executor *executor, const Cdr__WorkItem *item, uint64_t tag) {
  struct exec_slot *slot = executor->free_slots;
  if (!slot)
    return CDR_EFRAME_TOO_LARGE;
  size_t header_bytes = 0;
  for (size_t i = 0; i < item->n_headers; i++)
    header_bytes += strlen(item->headers[i]->name) + strlen(item->headers[i]->value) + 3;
  if (!exec_reserve(&slot->target, &slot->target_cap, strlen(item->target) + 1) ||
      !exec_reserve(&slot->header_lines, &slot->header_lines_cap, header_bytes + 1))
    return CDR_ENOMEM;
  executor->free_slots = slot->next;
  executor->busy++;
  slot->used = true;
  slot->tag = tag;
  strcpy(slot->target, item->target);
  char *line = slot->header_lines;
  for (size_t i = 0; i < item->n_headers; i++)
    line += sprintf(line, "%s: %s", item->headers[i]->name, item->headers[i]->value) + 1;
  slot->item = (struct exec_item){item->item_id, item->operation, item->invalidate, slot->target,
                                  NULL,          item->n_headers};
  slot->next = NULL;
  if (executor->waiting_tail)
    executor->waiting_tail->next = slot;
  else
    executor->waiting_head = slot;
  executor->waiting_tail = slot;
  exec_start_waiting(executor);
  return 0;
}

size_t executor_busy(const struct executor *executor) { return executor->busy; }

static void exec_timer_closed(uv_handle_t *handle) {
  struct executor *executor = handle->data;
  for (size_t i = 0; i < executor->slot_count; i++) {
    struct exec_slot *slot = &executor->slots[i];
    curl_easy_cleanup(slot->easy);
    curl_slist_free_all(slot->headers);
    free(slot->target);
    free(slot->url);
    free(slot->header_lines);
  }
  curl_multi_cleanup(executor->multi);
  void (*closed)(void *) = executor->closed;
  void *context = executor->context;
  free(executor->slots);
  free(executor);
  if (closed)
    closed(context);
}

void executor_destroy(struct executor *executor, void (*closed)(void *context)) {
  executor->destroying = true;
  executor->closed = closed;
  for (size_t i = 0; i < executor->slot_count; i++) {
    struct exec_slot *slot = &executor->slots[i];
    if (slot->used && executor->running > 0) {
      CURLMcode rc = curl_multi_remove_handle(executor->multi, slot->easy);
      (void)rc; /* a slot not in curl (waiting, offloaded) is simply not found */
    }
  }
  if (executor->offloaded == 0)
    exec_close(executor);
}

/* Releases everything; curl's sockets are closed through CURL_POLL_REMOVE during cleanup. */
static void exec_close(struct executor *executor) {
  uv_close((uv_handle_t *)&executor->timeout, exec_timer_closed);
}
