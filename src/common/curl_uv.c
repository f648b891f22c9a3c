/* curl_uv.c — libcurl multi on libuv: sockets become uv_poll handles, curl's timer a uv_timer. */
#include "common/curl_uv.h"

#include "common/error.h"

#include <stdlib.h>

struct curl_uv_socket {
  uv_poll_t poll;
  curl_socket_t fd;
  struct curl_uv *curl_uv;
};

struct curl_uv {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  curl_uv_done_cb done;
  void *context;
  void (*closed)(void *context);
  void *closed_context;
};

static void curl_uv_check_done(struct curl_uv *curl_uv) {
  CURLMsg *message;
  int left;
  while ((message = curl_multi_info_read(curl_uv->multi, &left))) {
    if (message->msg != CURLMSG_DONE)
      continue;
    CURL *easy = message->easy_handle;
    CURLcode result = message->data.result;
    curl_multi_remove_handle(curl_uv->multi, easy);
    curl_uv->done(curl_uv->context, easy, result);
  }
}

static void curl_uv_on_poll(uv_poll_t *poll, int status, int events) {
  struct curl_uv_socket *socket = poll->data;
  int flags = status < 0 ? CURL_CSELECT_ERR : 0;
  if (events & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  int running;
  curl_multi_socket_action(socket->curl_uv->multi, socket->fd, flags, &running);
  curl_uv_check_done(socket->curl_uv);
}

static void curl_uv_on_timer(uv_timer_t *timer) {
  struct curl_uv *curl_uv = timer->data;
  int running;
  curl_multi_socket_action(curl_uv->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  curl_uv_check_done(curl_uv);
}

static int curl_uv_timer_function(CURLM *multi, long timeout_ms, void *user) {
  (void)multi;
  struct curl_uv *curl_uv = user;
  if (timeout_ms < 0)
    uv_timer_stop(&curl_uv->timer);
  else
    uv_timer_start(&curl_uv->timer, curl_uv_on_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

static void curl_uv_socket_closed(uv_handle_t *handle) { free(handle->data); }

static int curl_uv_socket_function(CURL *easy, curl_socket_t fd, int action, void *user,
                                   void *socket_data) {
  (void)easy;
  struct curl_uv *curl_uv = user;
  struct curl_uv_socket *socket = socket_data;
  if (action == CURL_POLL_REMOVE) {
    if (socket) {
      uv_poll_stop(&socket->poll);
      uv_close((uv_handle_t *)&socket->poll, curl_uv_socket_closed);
      curl_multi_assign(curl_uv->multi, fd, NULL);
    }
    return 0;
  }
  if (!socket) {
    socket = calloc(1, sizeof(*socket));
    if (!socket)
      return -1;
    socket->fd = fd;
    socket->curl_uv = curl_uv;
    uv_poll_init_socket(curl_uv->loop, &socket->poll, fd);
    socket->poll.data = socket;
    curl_multi_assign(curl_uv->multi, fd, socket);
  }
  int events =
      (action & CURL_POLL_IN ? UV_READABLE : 0) | (action & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&socket->poll, events, curl_uv_on_poll);
  return 0;
}

int curl_uv_create(uv_loop_t *loop, long max_connections, curl_uv_done_cb done, void *context,
                   struct curl_uv **out) {
  struct curl_uv *curl_uv = calloc(1, sizeof(*curl_uv));
  CURLM *multi = curl_multi_init();
  if (!curl_uv || !multi) {
    free(curl_uv);
    curl_multi_cleanup(multi);
    return CDR_ENOMEM;
  }
  *curl_uv = (struct curl_uv){.loop = loop, .multi = multi, .done = done, .context = context};
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, curl_uv_socket_function);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, curl_uv);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, curl_uv_timer_function);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, curl_uv);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_connections);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, max_connections);
  uv_timer_init(loop, &curl_uv->timer);
  curl_uv->timer.data = curl_uv;
  *out = curl_uv;
  return 0;
}

int curl_uv_add(struct curl_uv *curl_uv, CURL *easy) {
  return curl_multi_add_handle(curl_uv->multi, easy) == CURLM_OK ? 0 : CDR_EINTERNAL;
}

void curl_uv_remove(struct curl_uv *curl_uv, CURL *easy) {
  curl_multi_remove_handle(curl_uv->multi, easy);
}

static void curl_uv_timer_closed(uv_handle_t *handle) {
  struct curl_uv *curl_uv = handle->data;
  void (*closed)(void *) = curl_uv->closed;
  void *closed_context = curl_uv->closed_context;
  free(curl_uv);
  if (closed)
    closed(closed_context);
}

void curl_uv_destroy(struct curl_uv *curl_uv, void (*closed)(void *context), void *closed_context) {
  curl_uv->closed = closed;
  curl_uv->closed_context = closed_context;
  /* Cleanup closes curl's connections, which reports CURL_POLL_REMOVE for each socket. */
  curl_multi_cleanup(curl_uv->multi);
  uv_timer_stop(&curl_uv->timer);
  uv_close((uv_handle_t *)&curl_uv->timer, curl_uv_timer_closed);
}
