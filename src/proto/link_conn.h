/* link_conn.h — one framed connection of the engine<->agent link, used by both sides.
 *
 * Reads bytes into a reused buffer, cuts them into frames, decodes each into a per-connection arena
 * (reset after every frame) and hands it to on_frame. Frames sent in one loop iteration are
 * gathered into one buffer and written with one uv_write; a second buffer takes new frames while
 * a write is in flight (double buffering, no allocation per frame once warm). Every buffer has the
 * maximum set at init. A malformed frame, a read error or an oversized frame closes the connection
 * with a logged reason; the owner learns it through on_close. Loop thread only.
 *
 * With TLS (link_conn_tls before starting), OpenSSL works on memory BIOs: bytes read are fed to
 * it and the plaintext it gives back goes into the frame buffer; queued frames are encrypted once
 * the handshake is done, and the ciphertext is written with the same double buffering. */
#ifndef CDR_LINK_CONN_H
#define CDR_LINK_CONN_H

#include "proto/frame.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <uv.h>

struct link_conn;
typedef void (*link_frame_cb)(struct link_conn *conn, enum frame_type type,
                              ProtobufCMessage *message);
typedef void (*link_close_cb)(struct link_conn *conn);

struct link_conn {
  uv_tcp_t tcp;
  struct frame_buffer in;      /* bytes read, not yet a whole frame */
  struct frame_buffer out;     /* frames waiting for the next write */
  struct frame_buffer sending; /* frames being written now */
  struct frame_buffer scratch; /* (de)compression space */
  uv_write_t write_req;
  bool writing;
  bool closing;
  const char *finish_why; /* set by link_conn_finish: close once everything queued is written */
  ZSTD_CCtx *compress;
  ZSTD_DCtx *decompress;
  struct arena arena; /* decoded messages of the frame being handled */
  size_t max_payload;
  link_frame_cb on_frame;
  link_close_cb on_close;
  char peer[64]; /* for logs: node id once known, else the address */
  void *owner;
  SSL *ssl;                        /* NULL for a plain connection */
  struct frame_buffer tls_out;     /* ciphertext waiting for the next write */
  struct frame_buffer tls_sending; /* ciphertext being written now */
};

/* Prepares conn on loop; the TCP handle is initialised, ready for uv_accept or uv_tcp_connect.
 * Returns 0 or CDR_ENOMEM. */
int link_conn_init(struct link_conn *conn, uv_loop_t *loop, size_t max_payload,
                   link_frame_cb on_frame, link_close_cb on_close, void *owner);

/* Makes conn a TLS connection (before link_conn_start): the server side of ctx's handshake, or
 * the client side verifying that the peer's certificate names peer_host (an IP address or a DNS
 * name). Returns 0 or CDR_ENOMEM. */
int link_conn_tls(struct link_conn *conn, SSL_CTX *ctx, bool server, const char *peer_host);

/* Starts reading (after accept or connect). Returns 0 or a negative libuv code. */
int link_conn_start(struct link_conn *conn);

/* Queues one frame; it is written at the end of this loop iteration at the latest. Returns 0, or
 * an error after which the connection is being closed. */
int link_conn_send(struct link_conn *conn, enum frame_type type, const ProtobufCMessage *message);

/* Closes the connection once every frame queued so far has been written (a refusal must reach the
 * peer before the connection goes); why is logged then. */
void link_conn_finish(struct link_conn *conn, const char *why);

/* Closes the connection (once); why is logged. on_close runs when libuv has closed the handle,
 * after which the owner may free conn. */
void link_conn_close(struct link_conn *conn, const char *why);

#endif
