/* link_conn.c — framed, double-buffered reads and writes over one TCP connection. */
#include "proto/link_conn.h"

#include "common/error.h"
#include "common/log.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdint.h>
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
  frame_buffer_free(&conn->tls_out);
  frame_buffer_free(&conn->tls_sending);
  SSL_free(conn->ssl); /* and its BIOs */
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
    if (frame_buffer_reserve(&conn->tls_out, pending) != 0) {
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
  struct frame_buffer *queued = conn->ssl ? &conn->tls_out : &conn->out;
  struct frame_buffer *sending = conn->ssl ? &conn->tls_sending : &conn->sending;
  if (queued->len == 0) {
    if (conn->finish_why && conn->out.len == 0)
      link_conn_close(conn, conn->finish_why);
    return;
  }
  struct frame_buffer swap = *sending;
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
  /* With TLS, ciphertext lands in scratch space first (tls_sending is idle outside writes, but
   * reads may come during one, so a buffer of its own: scratch is only used while decoding). */
  struct frame_buffer *target = conn->ssl ? &conn->scratch : &conn->in;
  if (frame_buffer_reserve(target, LINK_READ_CHUNK) != 0) {
    *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS to on_read */
    return;
  }
  *buf = uv_buf_init((char *)target->data + target->len, LINK_READ_CHUNK);
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
    if (frame_buffer_reserve(&conn->in, LINK_READ_CHUNK) != 0) {
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
  if (conn->ssl && !link_conn_tls_received(conn, (const uint8_t *)buf->base, (size_t)nread))
    return;
  if (!conn->ssl)
    conn->in.len += (size_t)nread;
  link_conn_dispatch(conn);
}

int link_conn_tls(struct link_conn *conn, SSL_CTX *ctx, bool server, const char *peer_host) {
  size_t max_frame = FRAME_HEADER_SIZE + conn->max_payload;
  frame_buffer_init(&conn->tls_out, 5 * max_frame); /* frames plus record overhead */
  frame_buffer_init(&conn->tls_sending, 5 * max_frame);
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
