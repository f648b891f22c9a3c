/* executor.c — libcurl multi driven by libuv (socket and timer callbacks), with reused slots. */
#include "agent/executor.h"

#include "agent/agent_stats.h"
#include "common/buf.h"
#include "common/curl_uv.h"
#include "common/error.h"
#include "common/fifo.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The most any of a slot's buffers holds: a work item's target and headers come in one frame,
 * which the link caps far below this. */
enum { EXEC_BUFFER_MAX = 256 * 1024 * 1024 };

struct exec_slot {
  struct executor *executor;
  struct exec_item item;
  uint64_t tag;
  bool used;
  struct exec_slot *next_free;   /* on the free stack */
  struct fifo_node waiting_link; /* on the waiting queue */
  struct buf target;             /* copy of the item's target */
  struct buf url;                /* request URL, filled by the driver */
  char host[320];
  char host_line[340];  /* "Host: " host */
  char connect_to[600]; /* the driver's CONNECT_TO entry, and the list node curl reads it from */
  struct curl_slist connect_to_node;
  struct buf extra_header; /* the driver's one extra header line */
  struct buf header_lines; /* "Name: value" lines of the item's headers, NUL-separated */
  CURL *easy;
  bool head;                       /* the easy handle is set for HEAD (no body to wait for) */
  struct curl_slist *header_nodes; /* the request's header list, linked through the slot's own
                                      nodes (libcurl only reads it): no allocation per request */
  size_t header_node_cap;
  struct exec_outcome outcome;
  uv_work_t work;
};

struct executor {
  uv_loop_t *loop;
  struct driver *driver;
  struct curl_uv *curl;
  struct exec_slot *slots;
  size_t slot_count;
  struct exec_slot *free_slots;
  struct fifo waiting; /* submitted, not started: beyond the concurrency */
  size_t busy;
  size_t running;   /* requests in curl */
  size_t offloaded; /* items on the thread pool */
  size_t concurrency;
  executor_done_cb done;
  void *context;
  bool destroying;
  void (*closed)(void *context);
};

static void exec_slot_release(struct executor *executor, struct exec_slot *slot) {
  slot->used = false;
  slot->next_free = executor->free_slots;
  executor->free_slots = slot;
  executor->busy--;
  atomic_store(&agent_stats.items_in_progress, executor->busy);
}

static void exec_start_waiting(struct executor *executor);

/* Reports slot's outcome and frees the slot for the next item. */
static void exec_finish(struct executor *executor, struct exec_slot *slot) {
  if (!executor->destroying) {
    enum agent_result result = slot->outcome.outcome == CDR__OUTCOME__SUCCEEDED ? AGENT_SUCCEEDED
                               : slot->outcome.outcome == CDR__OUTCOME__UNSUPPORTED
                                   ? AGENT_UNSUPPORTED
                                   : AGENT_FAILED;
    atomic_fetch_add(&agent_stats.items[result], 1);
    executor->done(executor->context, slot->tag, slot->item.item_id, &slot->outcome);
  }
  exec_slot_release(executor, slot);
  exec_start_waiting(executor);
}

static size_t exec_discard_body(char *data, size_t size, size_t count, void *user) {
  (void)data;
  (void)user;
  return size * count;
}

/* Copies the first word of a header's value into the slot's cache_status. */
static void exec_take_cache_status(struct exec_slot *slot, const char *value, size_t len) {
  while (len && *value == ' ') {
    value++;
    len--;
  }
  size_t word = 0;
  while (word < len && value[word] != ' ' && value[word] != '\r' && value[word] != '\n')
    word++;
  if (word >= sizeof(slot->outcome.cache_status))
    word = sizeof(slot->outcome.cache_status) - 1;
  memcpy(slot->outcome.cache_status, value, word);
  slot->outcome.cache_status[word] = '\0';
}

/* The cache's verdict on a preload: X-Cache-Status (nginx, Varnish and ATS as configured in
 * deploy/), else the first word of X-Cache (Squid: "HIT from host"). */
static size_t exec_on_header(char *data, size_t size, size_t count, void *user) {
  struct exec_slot *slot = user;
  size_t len = size * count;
  static const char status[] = "x-cache-status:", cache[] = "x-cache:";
  if (len > sizeof(status) - 1 && strncasecmp(data, status, sizeof(status) - 1) == 0)
    exec_take_cache_status(slot, data + sizeof(status) - 1, len - (sizeof(status) - 1));
  else if (len > sizeof(cache) - 1 && strncasecmp(data, cache, sizeof(cache) - 1) == 0 &&
           !slot->outcome.cache_status[0])
    exec_take_cache_status(slot, data + sizeof(cache) - 1, len - (sizeof(cache) - 1));
  return len;
}

static void exec_offload_work(uv_work_t *work) {
  struct exec_slot *slot = work->data;
  slot->executor->driver->offload(slot->executor->driver, &slot->item, &slot->outcome);
}

static void exec_close(struct executor *executor);
static void exec_continue(struct executor *executor, struct exec_slot *slot);

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
  if (status == UV_ECANCELED) {
    driver_outcome_failed(&slot->outcome, 0, CURLE_ABORTED_BY_CALLBACK);
    exec_finish(executor, slot);
  } else if (slot->outcome.requests > 0) {
    exec_continue(executor, slot); /* work after a request: the driver may have more to do */
  } else {
    exec_finish(executor, slot);
  }
}

/* Runs the driver's offload for slot's item on the thread pool. */
static void exec_offload_start(struct executor *executor, struct exec_slot *slot) {
  slot->work.data = slot;
  executor->offloaded++;
  if (uv_queue_work(executor->loop, &slot->work, exec_offload_work, exec_offload_done) != 0) {
    executor->offloaded--;
    driver_outcome_failed(&slot->outcome, 0, CURLE_FAILED_INIT);
    exec_finish(executor, slot);
  }
}

/* Links the request's header lines (Host, the driver's header, the item's headers) through the
 * slot's list nodes; NULL when there are none. False when out of memory. */
static bool exec_header_list(struct exec_slot *slot, const struct exec_request *request,
                             struct curl_slist **out) {
  size_t most = 3 + (request->send_item_headers ? slot->item.header_count : 0);
  if (most > slot->header_node_cap) {
    struct curl_slist *nodes = realloc(slot->header_nodes, most * sizeof(*nodes));
    if (!nodes)
      return false;
    slot->header_nodes = nodes;
    slot->header_node_cap = most;
  }
  struct curl_slist *nodes = slot->header_nodes;
  size_t n = 0;
  if (slot->host[0]) {
    snprintf(slot->host_line, sizeof(slot->host_line), "Host: %s", slot->host);
    nodes[n++].data = slot->host_line;
  }
  if (buf_text(&slot->extra_header)[0])
    nodes[n++].data = buf_text(&slot->extra_header);
  if (request->fixed_header)
    nodes[n++].data = (char *)(uintptr_t)request->fixed_header; /* libcurl only reads it */
  if (request->send_item_headers) {
    char *line = buf_text(&slot->header_lines);
    for (size_t i = 0; i < slot->item.header_count; i++) {
      nodes[n++].data = line;
      line += strlen(line) + 1;
    }
  }
  for (size_t i = 0; i < n; i++)
    nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
  *out = n ? nodes : NULL;
  return true;
}

/* Builds the request the driver planned and hands it to curl. */
static void exec_request_start(struct executor *executor, struct exec_slot *slot,
                               const struct exec_request *request) {
  struct curl_slist *headers;
  if (!exec_header_list(slot, request, &headers)) {
    driver_outcome_failed(&slot->outcome, 0, CURLE_OUT_OF_MEMORY);
    exec_finish(executor, slot);
    return;
  }
  /* Only what changes per item; the rest was set once (exec_slot_setup). */
  CURL *easy = slot->easy;
  curl_easy_setopt(easy, CURLOPT_URL, buf_text(&slot->url));
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  bool head = strcmp(request->method, "HEAD") == 0;
  if (head != slot->head) /* a HEAD answer has no body to wait for; set only on a change */
    curl_easy_setopt(easy, CURLOPT_NOBODY, head ? 1L : 0L);
  slot->head = head;
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST,
                   head || strcmp(request->method, "GET") == 0 ? NULL : request->method);
  slot->connect_to_node = (struct curl_slist){slot->connect_to, NULL};
  curl_easy_setopt(easy, CURLOPT_CONNECT_TO, slot->connect_to[0] ? &slot->connect_to_node : NULL);
  slot->outcome.cache_status[0] = '\0'; /* this request's answer, not the last one's */
  if (curl_uv_add(executor->curl, easy) != 0) {
    driver_outcome_failed(&slot->outcome, 0, CURLE_FAILED_INIT);
    exec_finish(executor, slot);
    return;
  }
  slot->outcome.requests++;
  executor->running++;
}

/* A request of slot's to plan in, its buffers emptied; false when out of memory. */
static bool exec_request_init(struct exec_slot *slot, struct exec_request *request) {
  size_t url_need = strlen(slot->item.target) + 512;
  /* A regex armored for a header can grow fourfold (bytes become \xHH). */
  size_t header_need = 4 * strlen(slot->item.target) + 128;
  if (buf_reserve(&slot->url, url_need) != 0 || buf_reserve(&slot->extra_header, header_need) != 0)
    return false;
  slot->host[0] = '\0';
  buf_text(&slot->extra_header)[0] = '\0';
  slot->connect_to[0] = '\0';
  *request = (struct exec_request){.url = buf_text(&slot->url),
                                   .url_size = slot->url.cap,
                                   .host = slot->host,
                                   .host_size = sizeof(slot->host),
                                   .method = "GET",
                                   .header = buf_text(&slot->extra_header),
                                   .header_size = slot->extra_header.cap,
                                   .connect_to = slot->connect_to,
                                   .connect_to_size = sizeof(slot->connect_to)};
  return true;
}

/* Asks the driver what slot's item needs and starts it. */
static void exec_slot_run(struct executor *executor, struct exec_slot *slot) {
  memset(&slot->outcome, 0, sizeof(slot->outcome));
  struct exec_request request;
  if (!exec_request_init(slot, &request)) {
    driver_outcome_failed(&slot->outcome, 0, CURLE_OUT_OF_MEMORY);
    exec_finish(executor, slot);
    return;
  }
  switch (executor->driver->prepare(executor->driver, &slot->item, &request, &slot->outcome)) {
  case DRIVER_ANSWERED: exec_finish(executor, slot); return;
  case DRIVER_OFFLOAD: exec_offload_start(executor, slot); return;
  case DRIVER_REQUEST: exec_request_start(executor, slot, &request); return;
  }
}

/* After an answer, or work that followed one: the driver's next step for slot's item, or the
 * item's end. */
static void exec_continue(struct executor *executor, struct exec_slot *slot) {
  struct driver *driver = executor->driver;
  struct exec_request request;
  if (!driver->follow_up || executor->destroying || !exec_request_init(slot, &request)) {
    exec_finish(executor, slot);
    return;
  }
  switch (driver->follow_up(driver, &slot->item, &request, &slot->outcome)) {
  case DRIVER_REQUEST: exec_request_start(executor, slot, &request); return;
  case DRIVER_OFFLOAD: exec_offload_start(executor, slot); return;
  case DRIVER_ANSWERED: exec_finish(executor, slot); return;
  }
}

static void exec_start_waiting(struct executor *executor) {
  while (!executor->destroying && !fifo_empty(&executor->waiting) &&
         executor->running + executor->offloaded < executor->concurrency) {
    struct exec_slot *slot =
        FIFO_ENTRY(fifo_pop(&executor->waiting), struct exec_slot, waiting_link);
    exec_slot_run(executor, slot);
  }
}

/* A transfer finished: let the driver judge the answer. */
static void exec_on_transfer_done(void *context, CURL *easy, CURLcode error) {
  struct executor *executor = context;
  struct exec_slot *slot;
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&slot);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t total_us = 0;
  if (curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK && total_us >= 0)
    histogram_observe(&agent_stats.cache_request, (uint64_t)total_us);
  executor->running--;
  if (error != CURLE_OK)
    status = 0;
  struct driver *driver = executor->driver;
  driver->complete(driver, &slot->item, status, error, &slot->outcome);
  exec_continue(executor, slot);
}

/* Sets the options every request of slot shares, once: libcurl keeps them across transfers. The
 * cache is local: no proxy, whatever http_proxy says (libcurl would otherwise also read the proxy
 * environment variables on every request). */
static void exec_slot_setup(struct exec_slot *slot, long timeout_ms) {
  buf_init(&slot->target, EXEC_BUFFER_MAX);
  buf_init(&slot->url, EXEC_BUFFER_MAX);
  buf_init(&slot->extra_header, EXEC_BUFFER_MAX);
  buf_init(&slot->header_lines, EXEC_BUFFER_MAX);
  CURL *easy = slot->easy;
  curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, slot);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, exec_discard_body);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, exec_on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, slot);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  /* TLS only ever reaches this edge's own HTTPS entry point (driver_plan_preload), which serves
   * the customers' certificates: there is no third party to verify. */
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  /* The path goes to the cache byte for byte ("//a", "/x/../y"): caches key on the raw URI. */
  curl_easy_setopt(easy, CURLOPT_PATH_AS_IS, 1L);
}

int executor_create(uv_loop_t *loop, struct driver *driver, size_t window, size_t concurrency,
                    long timeout_ms, executor_done_cb done, void *context, struct executor **out) {
  struct executor *executor = calloc(1, sizeof(*executor));
  struct exec_slot *slots = calloc(window, sizeof(*slots));
  struct curl_uv *curl = NULL;
  if (!executor || !slots ||
      curl_uv_create(loop, (long)concurrency, exec_on_transfer_done, executor, &curl)) {
    free(executor);
    free(slots);
    return CDR_ENOMEM;
  }
  *executor = (struct executor){.loop = loop,
                                .driver = driver,
                                .curl = curl,
                                .slots = slots,
                                .slot_count = window,
                                .concurrency = concurrency,
                                .done = done,
                                .context = context};
  for (size_t i = window; i-- > 0;) {
    slots[i].executor = executor;
    slots[i].easy = curl_easy_init();
    if (!slots[i].easy)
      return CDR_ENOMEM;
    exec_slot_setup(&slots[i], timeout_ms);
    slots[i].next_free = executor->free_slots;
    executor->free_slots = &slots[i];
  }
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
  if (buf_reserve(&slot->target, strlen(item->target) + 1) != 0 ||
      buf_reserve(&slot->header_lines, header_bytes + 1) != 0)
    return CDR_ENOMEM;
  executor->free_slots = slot->next_free;
  executor->busy++;
  atomic_store(&agent_stats.items_in_progress, executor->busy);
  slot->used = true;
  slot->tag = tag;
  strcpy(buf_text(&slot->target), item->target);
  char *line = buf_text(&slot->header_lines);
  for (size_t i = 0; i < item->n_headers; i++)
    line += sprintf(line, "%s: %s", item->headers[i]->name, item->headers[i]->value) + 1;
  slot->item = (struct exec_item){.item_id = item->item_id,
                                  .operation = item->operation,
                                  .invalidate = item->invalidate,
                                  .verify = !item->skip_verify,
                                  .target = buf_text(&slot->target),
                                  .header_count = item->n_headers};
  fifo_push(&executor->waiting, &slot->waiting_link);
  exec_start_waiting(executor);
  return 0;
}

size_t executor_busy(const struct executor *executor) { return executor->busy; }

struct exec_drop {
  struct executor *executor;
  uint64_t keep;
};

/* fifo_filter's test: keeps the slots of the kept tag, releases the others. */
static bool exec_keep_waiting(struct fifo_node *node, void *context) {
  struct exec_drop *drop = context;
  struct exec_slot *slot = FIFO_ENTRY(node, struct exec_slot, waiting_link);
  if (slot->tag == drop->keep)
    return true;
  exec_slot_release(drop->executor, slot);
  return false;
}

void executor_drop_waiting(struct executor *executor, uint64_t keep) {
  struct exec_drop drop = {executor, keep};
  fifo_filter(&executor->waiting, exec_keep_waiting, &drop);
}

/* Frees the slots once curl's handles are closed. */
static void exec_curl_closed(void *context) {
  struct executor *executor = context;
  for (size_t i = 0; i < executor->slot_count; i++) {
    struct exec_slot *slot = &executor->slots[i];
    curl_easy_cleanup(slot->easy);
    free(slot->header_nodes);
    buf_free(&slot->target);
    buf_free(&slot->url);
    buf_free(&slot->extra_header);
    buf_free(&slot->header_lines);
  }
  void (*closed)(void *) = executor->closed;
  void *closed_context = executor->context;
  free(executor->slots);
  free(executor);
  if (closed)
    closed(closed_context);
}

void executor_destroy(struct executor *executor, void (*closed)(void *context)) {
  executor->destroying = true;
  executor->closed = closed;
  for (size_t i = 0; i < executor->slot_count; i++) {
    if (executor->slots[i].used)
      curl_uv_remove(executor->curl, executor->slots[i].easy); /* harmless if not in curl */
  }
  if (executor->offloaded == 0)
    exec_close(executor);
}

/* Releases everything; the thread pool has given back every offloaded slot. */
static void exec_close(struct executor *executor) {
  curl_uv_destroy(executor->curl, exec_curl_closed, executor);
}
