/* link_conn.c — framed, double-buffered reads and writes over one TCP connection, through
 * buffers shared by every connection of the loop thread. */
#include "proto/link_conn.h"

#include "common/error.h"
#include "common/log.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <string.h>

enum { LINK_READ_CHUNK = 64 * 1024 };

int link_shared_init(struct link_shared *shared, size_t max_payload) {
  size_t max_frame = FRAME_HEADER_SIZE + max_payload;
  buf_init(&shared->read, LINK_READ_CHUNK);
  buf_init(&shared->write, 2 * max_frame); /* a compressed frame may need its bound */
  buf_init(&shared->scratch, max_payload);
  arena_init(&shared->arena, 8 * max_payload + (1 << 20));
  shared->max_payload = max_payload;
  shared->compress = ZSTD_createCCtx();
  shared->decompress = ZSTD_createDCtx();
  if (!shared->compress || !shared->decompress) {
    link_shared_free(shared);
    return CDR_ENOMEM;
  }
  return 0;
}

void link_shared_free(struct link_shared *shared) {
  buf_free(&shared->read);
  buf_free(&shared->write);
  buf_free(&shared->scratch);
  arena_release(&shared->arena);
  ZSTD_freeCCtx(shared->compress);
  ZSTD_freeDCtx(shared->decompress);
  shared->compress = NULL;
  shared->decompress = NULL;
}

void link_conn_init(struct link_conn *conn, uv_loop_t *loop, struct link_shared *shared,
                    link_frame_cb on_frame, link_close_cb on_close, void *owner) {
  memset(conn, 0, sizeof(*conn));
  size_t max_frame = FRAME_HEADER_SIZE + shared->max_payload;
  buf_init(&conn->in, max_frame + LINK_READ_CHUNK);
  buf_init(&conn->out, 4 * max_frame);
  buf_init(&conn->sending, 4 * max_frame);
  conn->shared = shared;
  conn->max_payload = shared->max_payload;
  conn->on_frame = on_frame;
  conn->on_close = on_close;
  conn->owner = owner;
  uv_tcp_init(loop, &conn->tcp);
  conn->tcp.data = conn;
}

void link_conn_set_max_payload(struct link_conn *conn, size_t max_payload) {
  if (max_payload > conn->shared->max_payload)
    max_payload = conn->shared->max_payload;
  conn->max_payload = max_payload;
  size_t in_max = FRAME_HEADER_SIZE + max_payload + LINK_READ_CHUNK;
  if (conn->in.cap <= in_max)
    conn->in.max = in_max; /* a cut-off frame can never grow past what it may be */
}

static void link_conn_free_idle(struct buf *buffer) {
  if (buffer->len == 0)
    buf_free(buffer);
}

void link_conn_trim(struct link_conn *conn) {
  link_conn_free_idle(&conn->in);
  link_conn_free_idle(&conn->out);
  link_conn_free_idle(&conn->tls_out);
  if (!conn->writing) {
    link_conn_free_idle(&conn->sending);
    link_conn_free_idle(&conn->tls_sending);
  }
}

size_t link_conn_buffer_bytes(const struct link_conn *conn) {
  return conn->in.cap + conn->out.cap + conn->sending.cap + conn->tls_out.cap +
         conn->tls_sending.cap;
}

static void link_conn_on_closed(uv_handle_t *handle) {
  struct link_conn *conn = handle->data;
  buf_free(&conn->in);
  buf_free(&conn->out);
  buf_free(&conn->sending);
  buf_free(&conn->tls_out);
  buf_free(&conn->tls_sending);
  SSL_free(conn->ssl); /* and its BIOs */
  conn->on_close(conn);
}

void link_conn_close(struct link_conn *conn, const char *why) {
  if (conn->closing)
    return;
  conn->closing = true;
  if (why)
    log_info("link.closed", "link %s closed: %s", conn->peer, why);
  uv_close((uv_handle_t *)&conn->tcp, link_conn_on_closed);
}

static void link_conn_flush(struct link_conn *conn);

static void link_conn_on_written(uv_write_t *req, int status) {
  struct link_conn *conn = req->data;
  conn->writing = false;
  conn->sending.len = 0;
  conn->tls_sending.len = 0;
  if (status < 0) {
    if (status != UV_ECANCELED)
      link_conn_close(conn, uv_strerror(status));
    return;
  }
  link_conn_flush(conn);
}

/* Closes conn for a TLS failure, naming OpenSSL's reason (and the certificate check's). */
static void link_conn_tls_failed(struct link_conn *conn, const char *what) {
  char why[256], reason[160] = "";
  unsigned long error = ERR_get_error();
  if (error)
    ERR_error_string_n(error, reason, sizeof(reason));
  long verify = SSL_get_verify_result(conn->ssl);
  snprintf(why, sizeof(why), "TLS %s failed: %s%s%s", what, reason[0] ? reason : "peer error",
           verify != X509_V_OK ? ", certificate: " : "",
           verify != X509_V_OK ? X509_verify_cert_error_string(verify) : "");
  ERR_clear_error();
  link_conn_close(conn, why);
}

/* Encrypts the queued frames once the handshake is done, and moves every TLS record OpenSSL has
 * produced (handshake messages included) to tls_out. False when the connection was closed. */
static bool link_conn_tls_encrypt(struct link_conn *conn) {
  if (conn->out.len > 0 && SSL_is_init_finished(conn->ssl)) {
    int n = SSL_write(conn->ssl, conn->out.data, (int)conn->out.len);
    if (n <= 0) {
      link_conn_tls_failed(conn, "write");
      return false;
    }
    conn->out.len = 0; /* a memory BIO takes everything */
  }
  BIO *wbio = SSL_get_wbio(conn->ssl);
  size_t pending;
  while ((pending = BIO_ctrl_pending(wbio)) > 0) {
    if (buf_reserve(&conn->tls_out, pending) != 0) {
      link_conn_close(conn, "peer does not read: send buffer full");
      return false;
    }
    int n = BIO_read(wbio, conn->tls_out.data + conn->tls_out.len, (int)pending);
    if (n <= 0)
      break;
    conn->tls_out.len += (size_t)n;
  }
  return true;
}

/* Starts writing whatever is queued, unless a write is already in flight. */
static void link_conn_flush(struct link_conn *conn) {
  if (conn->writing || conn->closing)
    return;
  if (conn->ssl && !link_conn_tls_encrypt(conn))
    return;
  struct buf *queued = conn->ssl ? &conn->tls_out : &conn->out;
  struct buf *sending = conn->ssl ? &conn->tls_sending : &conn->sending;
  if (queued->len == 0) {
    if (conn->finish_why && conn->out.len == 0)
      link_conn_close(conn, conn->finish_why);
    return;
  }
  struct buf swap = *sending;
  *sending = *queued;
  *queued = swap;
  queued->len = 0;
  uv_buf_t buf = uv_buf_init((char *)sending->data, (unsigned)sending->len);
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

/* Writes the frame packed in the shared write buffer now; keeps what the socket does not take. */
static int link_conn_write_now(struct link_conn *conn) {
  struct buf *packed = &conn->shared->write;
  uv_buf_t buf = uv_buf_init((char *)packed->data, (unsigned)packed->len);
  int written = uv_try_write((uv_stream_t *)&conn->tcp, &buf, 1);
  if (written < 0 && written != UV_EAGAIN) {
    link_conn_close(conn, uv_strerror(written));
    return CDR_EIO;
  }
  size_t done = written > 0 ? (size_t)written : 0;
  if (done == packed->len)
    return 0;
  if (buf_reserve(&conn->out, packed->len - done) != 0) {
    link_conn_close(conn, "out of memory");
    return CDR_ENOMEM;
  }
  memcpy(conn->out.data + conn->out.len, packed->data + done, packed->len - done);
  conn->out.len += packed->len - done;
  link_conn_flush(conn);
  return 0;
}

int link_conn_send(struct link_conn *conn, enum frame_type type, const ProtobufCMessage *message) {
  if (conn->closing)
    return CDR_EIO;
  /* Straight to the socket unless frames are already waiting, which must go first. */
  bool now = !conn->ssl && !conn->writing && conn->out.len == 0;
  struct link_shared *shared = conn->shared;
  struct buf *target = now ? &shared->write : &conn->out;
  if (now)
    shared->write.len = 0;
  int rc = frame_append(target, type, message, shared->compress, &shared->scratch);
  if (rc) {
    link_conn_close(conn,
                    rc == CDR_ENOMEM ? "out of memory" : "peer does not read: send buffer full");
    return rc;
  }
  if (now)
    return link_conn_write_now(conn);
  link_conn_flush(conn);
  return 0;
}

static void link_conn_on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  struct link_conn *conn = handle->data;
  /* The shared read buffer, unless a cut-off frame waits to be completed; with TLS, ciphertext
   * always lands there (OpenSSL copies it in before anything else runs). */
  struct buf *target = conn->ssl || conn->in.len == 0 ? &conn->shared->read : &conn->in;
  if (target == &conn->shared->read)
    target->len = 0;
  if (buf_reserve(target, LINK_READ_CHUNK) != 0) {
    *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS to on_read */
    return;
  }
  *buf = uv_buf_init((char *)target->data + target->len, LINK_READ_CHUNK);
}

/* Decodes and hands over every whole frame in bytes (the connection's buffer or the shared read
 * buffer); the cut-off start of a frame that remains is kept in the connection's buffer. */
static void link_conn_dispatch(struct link_conn *conn, struct buf *bytes) {
  struct link_shared *shared = conn->shared;
  size_t used = 0;
  while (!conn->closing) {
    struct frame_view view;
    int rc = frame_peek(bytes->data + used, bytes->len - used, conn->max_payload, &view);
    if (rc == CDR_EAGAIN)
      break;
    ProtobufCMessage *message = NULL;
    if (!rc)
      rc = frame_unpack(&view, shared->decompress, &shared->scratch, conn->max_payload,
                        &shared->arena, &message);
    if (rc) {
      char why[128];
      snprintf(why, sizeof(why), "bad frame from peer: %s", cdr_error_message(rc));
      link_conn_close(conn, why);
      return;
    }
    used += view.frame_len;
    conn->on_frame(conn, view.type, message);
    arena_reset(&shared->arena);
  }
  if (conn->closing)
    return;
  if (bytes == &conn->in) {
    buf_consume(&conn->in, used);
    return;
  }
  size_t rest = bytes->len - used;
  if (rest == 0)
    return; /* the usual case: the read held whole frames */
  if (buf_reserve(&conn->in, rest) != 0) {
    link_conn_close(conn, "out of memory");
    return;
  }
  memcpy(conn->in.data + conn->in.len, bytes->data + used, rest);
  conn->in.len += rest;
}

/* Feeds ciphertext to OpenSSL, drives the handshake, and appends the plaintext it yields to the
 * input buffer; sends whatever records OpenSSL wants sent. False when the connection closed. */
static bool link_conn_tls_received(struct link_conn *conn, const uint8_t *data, size_t len) {
  if (BIO_write(SSL_get_rbio(conn->ssl), data, (int)len) != (int)len) {
    link_conn_close(conn, "out of memory");
    return false;
  }
  if (!SSL_is_init_finished(conn->ssl)) {
    int rc = SSL_do_handshake(conn->ssl);
    int error = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(conn->ssl, rc);
    if (error != SSL_ERROR_NONE && error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) {
      link_conn_tls_failed(conn, "handshake");
      return false;
    }
  }
  while (SSL_is_init_finished(conn->ssl)) {
    if (buf_reserve(&conn->in, LINK_READ_CHUNK) != 0) {
      link_conn_close(conn, "frame larger than the link allows");
      return false;
    }
    int n = SSL_read(conn->ssl, conn->in.data + conn->in.len, LINK_READ_CHUNK);
    if (n > 0) {
      conn->in.len += (size_t)n;
      continue;
    }
    int error = SSL_get_error(conn->ssl, n);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE)
      break;
    if (error == SSL_ERROR_ZERO_RETURN) {
      link_conn_close(conn, "peer closed the TLS session");
      return false;
    }
    link_conn_tls_failed(conn, "read");
    return false;
  }
  link_conn_flush(conn); /* handshake records, and frames queued before it finished */
  return !conn->closing;
}

static void link_conn_on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
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
  if (conn->ssl) {
    if (link_conn_tls_received(conn, (const uint8_t *)buf->base, (size_t)nread))
      link_conn_dispatch(conn, &conn->in);
    return;
  }
  struct buf *bytes =
      buf->base == (char *)conn->shared->read.data ? &conn->shared->read : &conn->in;
  bytes->len += (size_t)nread;
  link_conn_dispatch(conn, bytes);
}

int link_conn_tls(struct link_conn *conn, SSL_CTX *ctx, bool server, const char *peer_host) {
  size_t max_frame = FRAME_HEADER_SIZE + conn->shared->max_payload;
  buf_init(&conn->tls_out, 5 * max_frame); /* frames plus record overhead */
  buf_init(&conn->tls_sending, 5 * max_frame);
  conn->ssl = SSL_new(ctx);
  BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
  if (!conn->ssl || !rbio || !wbio) {
    BIO_free(rbio);
    BIO_free(wbio);
    SSL_free(conn->ssl);
    conn->ssl = NULL;
    return CDR_ENOMEM;
  }
  SSL_set_bio(conn->ssl, rbio, wbio);
  if (server) {
    SSL_set_accept_state(conn->ssl);
    return 0;
  }
  SSL_set_connect_state(conn->ssl);
  X509_VERIFY_PARAM *param = SSL_get0_param(conn->ssl);
  if (X509_VERIFY_PARAM_set1_ip_asc(param, peer_host) != 1) { /* not an IP: a DNS name */
    /* SSL_set_tlsext_host_name, without its macro's cast that drops const */
    SSL_ctrl(conn->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             (void *)(uintptr_t)peer_host);
    SSL_set1_host(conn->ssl, peer_host);
  }
  return 0;
}

int link_conn_start(struct link_conn *conn) {
  uv_tcp_nodelay(&conn->tcp, 1);
  int rc = uv_read_start((uv_stream_t *)&conn->tcp, link_conn_on_alloc, link_conn_on_read);
  if (!rc && conn->ssl && !SSL_is_server(conn->ssl)) {
    SSL_do_handshake(conn->ssl); /* the ClientHello; the answer comes through on_read */
    link_conn_flush(conn);
  }
  return rc;
}
