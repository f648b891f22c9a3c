/* proto/ — the engine<->agent link both sides speak: link.proto's messages, frames (frame.h:
 * header, zstd, decoding into an arena), connections (this file) and TLS (link_tls.h). May
 * include proto/ and common/ (scripts/check-layers); linked as cdr_proto.
 *
 * link_conn.h — one framed connection of the engine<->agent link, used by both sides.
 *
 * Every connection of one loop thread shares one set of working buffers (struct link_shared): a
 * read lands in the shared read buffer, whole frames are decoded from it into the shared arena
 * (reset after every frame) and handed to on_frame, and only the tail of a frame cut by the read is
 * copied into the connection's own buffer. A frame to send is packed into the shared write buffer
 * and written at once; only what the socket does not take is kept by the connection, and frames
 * sent while a write is in flight queue behind it (double buffering). So an idle connection holds
 * no buffer (link_conn_trim hands back what a busy one grew), and a busy one allocates nothing per
 * frame once warm. Every buffer has the maximum set at init. A malformed frame, a read error or an
 * oversized frame closes the connection with a logged reason; the owner learns it through on_close.
 * Loop thread only.
 *
 * With TLS (link_conn_tls before starting), OpenSSL works on memory BIOs: bytes read are fed to
 * it and the plaintext it gives back goes into the connection's frame buffer; queued frames are
 * encrypted once the handshake is done, and the ciphertext is written with the same double
 * buffering. */
#ifndef CDR_LINK_CONN_H
#define CDR_LINK_CONN_H

#include "proto/frame.h"

#include <openssl/ssl.h>
#include <stdbool.h>
#include <uv.h>

/* The working buffers of every connection on one loop thread; see above. */
struct link_shared {
  struct buf read;    /* where reads land while a connection holds no partial frame */
  struct buf write;   /* where a frame is packed before it is written */
  struct buf scratch; /* (de)compression space */
  struct arena arena; /* decoded messages of the frame being handled */
  ZSTD_CCtx *compress;
  ZSTD_DCtx *decompress;
  size_t max_payload;
};

/* Prepares shared buffers for frames of at most max_payload bytes. Returns 0 or CDR_ENOMEM. */
int link_shared_init(struct link_shared *shared, size_t max_payload);

void link_shared_free(struct link_shared *shared);

struct link_conn;
typedef void (*link_frame_cb)(struct link_conn *conn, enum frame_type type,
                              ProtobufCMessage *message);
typedef void (*link_close_cb)(struct link_conn *conn);

struct link_conn {
  uv_tcp_t tcp;
  struct link_shared *shared;
  struct buf in;      /* the start of a frame a read cut off */
  struct buf out;     /* frames waiting for the next write */
  struct buf sending; /* frames being written now */
  uv_write_t write_req;
  bool writing;
  bool closing;
  const char *finish_why; /* set by link_conn_finish: close once everything queued is written */
  link_frame_cb on_frame;
  link_close_cb on_close;
  char peer[64];      /* for logs: node id once known, else the address */
  size_t max_payload; /* the largest frame payload taken from the peer now */
  void *owner;
  SSL *ssl;               /* NULL for a plain connection */
  struct buf tls_out;     /* ciphertext waiting for the next write */
  struct buf tls_sending; /* ciphertext being written now */
};

/* Prepares conn on loop with the loop thread's shared buffers (frames up to their maximum); the
 * TCP handle is initialised, ready for uv_accept or uv_tcp_connect. */
void link_conn_init(struct link_conn *conn, uv_loop_t *loop, struct link_shared *shared,
                    link_frame_cb on_frame, link_close_cb on_close, void *owner);

/* Makes conn a TLS connection (before link_conn_start): the server side of ctx's handshake, or
 * the client side verifying that the peer's certificate names peer_host (an IP address or a DNS
 * name). Returns 0 or CDR_ENOMEM. */
int link_conn_tls(struct link_conn *conn, SSL_CTX *ctx, bool server, const char *peer_host);

/* Takes frames of at most max_payload bytes (no more than the shared buffers allow) from now
 * on: an engine lets a peer that has not authenticated send only what a Hello needs, so an
 * unknown peer cannot make it hold a large frame. */
void link_conn_set_max_payload(struct link_conn *conn, size_t max_payload);

/* Starts reading (after accept or connect). Returns 0 or a negative libuv code. */
int link_conn_start(struct link_conn *conn);

/* Queues one frame; it is written at the end of this loop iteration at the latest. Returns 0, or
 * an error after which the connection is being closed. */
int link_conn_send(struct link_conn *conn, enum frame_type type, const ProtobufCMessage *message);

/* Closes the connection once every frame queued so far has been written (a refusal must reach the
 * peer before the connection goes); why is logged then. */
void link_conn_finish(struct link_conn *conn, const char *why);

/* Hands back the buffers conn holds but does not use now (call it when the link has been quiet),
 * so an idle connection costs only its handle. */
void link_conn_trim(struct link_conn *conn);

/* Bytes of buffers conn holds now. */
size_t link_conn_buffer_bytes(const struct link_conn *conn);

/* Closes the connection (once); why is logged (NULL: not logged, the caller said it). on_close runs
 * when libuv has closed the handle, after which the owner may free conn. */
void link_conn_close(struct link_conn *conn, const char *why);

#endif
