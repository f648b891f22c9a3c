/* link_conn.c — framed, double-buffered reads and writes over one TCP connection. */
#include "proto/link_conn.h"

#include "common/error.h"
#include "common/log.h"

#include <string.h>

enum { LINK_READ_CHUNK = 64 * 1024 };

int link_conn_init(struct link_conn *conn, uv_loop_t *loop, size_t max_payload,
                   link_frame_cb on_frame, link_close_cb on_close, void *owner) {
  memset(conn, 0, sizeof(*conn));
  size_t max_frame = FRAME_HEADER_SIZE + max_payload;
  frame_buffer_init(&conn->in, max_frame + LINK_READ_CHUNK);
  frame_buffer_init(&conn->out, 4 * max_frame);
  frame_buffer_init(&conn->sending, 4 * max_frame);
  frame_buffer_init(&conn->scratch, max_payload);
  arena_init(&conn->arena, 8 * max_payload + (1 << 20));
  conn->max_payload = max_payload;
  conn->on_frame = on_frame;
  conn->on_close = on_close;
  conn->owner = owner;
  conn->compress = ZSTD_createCCtx();
  conn->decompress = ZSTD_createDCtx();
  if (!conn->compress || !conn->decompress) {
    ZSTD_freeCCtx(conn->compress);
    ZSTD_freeDCtx(conn->decompress);
    return CDR_ENOMEM;
  }
  uv_tcp_init(loop, &conn->tcp);
  conn->tcp.data = conn;
  return 0;
}

static void link_conn_on_closed(uv_handle_t *handle) {
  struct link_conn *conn = handle->data;
  frame_buffer_free(&conn->in);
  frame_buffer_free(&conn->out);
  frame_buffer_free(&conn->sending);
  frame_buffer_free(&conn->scratch);
  arena_release(&conn->arena);
  ZSTD_freeCCtx(conn->compress);
  ZSTD_freeDCtx(conn->decompress);
  conn->on_close(conn);
}

void link_conn_close(struct link_conn *conn, const char *why) {
  if (conn->closing)
    return;
  conn->closing = true;
  log_info("link.closed", "link %s closed: %s", conn->peer, why);
  uv_close((uv_handle_t *)&conn->tcp, link_conn_on_closed);
}

static void link_conn_flush(struct link_conn *conn);

static void link_conn_on_written(uv_write_t *req, int status) {
  struct link_conn *conn = req->data;
  conn->writing = false;
  conn->sending.len = 0;
  if (status < 0) {
    if (status != UV_ECANCELED)
      link_conn_close(conn, uv_strerror(status));
    return;
  }
  link_conn_flush(conn);
}

/* Starts writing whatever is queued, unless a write is already in flight. */
static void link_conn_flush(struct link_conn *conn) {
  if (conn->writing || conn->closing)
    return;
  if (conn->out.len == 0) {
    if (conn->finish_why)
      link_conn_close(conn, conn->finish_why);
    return;
  }
  struct frame_buffer swap = conn->sending;
  conn->sending = conn->out;
  conn->out = swap;
  conn->out.len = 0;
  uv_buf_t buf = uv_buf_init((char *)conn->sending.data, (unsigned)conn->sending.len);
  conn->write_req.data = conn;
  int rc = uv_write(&conn->write_req, (uv_stream_t *)&conn->tcp, &buf, 1, link_conn_on_written);
  if (rc) {
    link_conn_close(conn, uv_strerror(rc));
    return;
  }
  conn->writing = true;
}

void link_conn_finish(struct link_conn *conn, const char *why) {
  conn->finish_why = why;
  uv_read_stop((uv_stream_t *)&conn->tcp);
  link_conn_flush(conn);
}

int link_conn_send(struct link_conn *conn, enum frame_type type, const ProtobufCMessage *message) {
  if (conn->closing)
    return CDR_EIO;
  int rc = frame_append(&conn->out, type, message, conn->compress, &conn->scratch);
  if (rc) {
    link_conn_close(conn,
                    rc == CDR_ENOMEM ? "out of memory" : "peer does not read: send buffer full");
    return rc;
  }
  link_conn_flush(conn);
  return 0;
}

static void link_conn_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct link_conn *conn = handle->data;
  if (frame_buffer_reserve(&conn->in, LINK_READ_CHUNK) != 0) {
    *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS to on_read */
    return;
  }
  *buf = uv_buf_init((char *)conn->in.data + conn->in.len, LINK_READ_CHUNK);
}

/* Decodes and hands over every whole frame in the input buffer. */
static void link_conn_dispatch(struct link_conn *conn) {
  size_t used = 0;
  while (!conn->closing) {
    struct frame_view view;
    int rc = frame_peek(conn->in.data + used, conn->in.len - used, conn->max_payload, &view);
    if (rc == CDR_EAGAIN)
      break;
    ProtobufCMessage *message = NULL;
    if (!rc)
      rc = frame_unpack(&view, conn->decompress, &conn->scratch, conn->max_payload, &conn->arena,
                        &message);
    if (rc) {
      char why[128];
      snprintf(why, sizeof(why), "bad frame from peer: %s", cdr_error_message(rc));
      link_conn_close(conn, why);
      return;
    }
    used += view.frame_len;
    conn->on_frame(conn, view.type, message);
    arena_reset(&conn->arena);
  }
  if (!conn->closing)
    frame_buffer_consume(&conn->in, used);
}

static void link_conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  struct link_conn *conn = stream->data;
  if (nread == UV_EOF) {
    link_conn_close(conn, "peer closed the connection");
    return;
  }
  if (nread == UV_ENOBUFS) {
    link_conn_close(conn, "frame larger than the link allows");
    return;
  }
  if (nread < 0) {
    link_conn_close(conn, uv_strerror((int)nread));
    return;
  }
  conn->in.len += (size_t)nread;
  link_conn_dispatch(conn);
}

int link_conn_start(struct link_conn *conn) {
  uv_tcp_nodelay(&conn->tcp, 1);
  return uv_read_start((uv_stream_t *)&conn->tcp, link_conn_on_alloc, link_conn_on_read);
}
