/* frame.h — framing of the engine<->agent link (docs/PROTOCOL.md, a contract).
 *
 * A frame is an 8-byte header — payload length (u32, big-endian), type (u8), flags (u8), protocol
 * version (u16, big-endian) — then the payload: one protobuf message of the type's kind
 * (link.proto), zstd-compressed when flag FRAME_FLAG_ZSTD is set. A receiver refuses a frame whose
 * length exceeds its maximum, whose version or type it does not know, or that sets unknown flags;
 * the link is then dropped with that reason. Buffers are reused across frames, never allocated per
 * frame once warm. */
#ifndef CDR_FRAME_H
#define CDR_FRAME_H

#include "common/arena.h"
#include "common/buf.h"
#include "proto/link.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

enum frame_type {
  FRAME_HELLO = 1,
  FRAME_WELCOME = 2,
  FRAME_REFUSAL = 3,
  FRAME_WORK = 4,
  FRAME_RESULTS = 5,
  FRAME_HEARTBEAT = 6,
};

enum {
  FRAME_VERSION = 1,
  FRAME_HEADER_SIZE = 8,
  FRAME_FLAG_ZSTD = 0x01,
  FRAME_COMPRESS_MIN = 4096, /* payload bytes from which compression is tried */
};

/* Packs message as a frame of type onto the end of out; compresses with zstd (when non-NULL) if
 * the payload is at least FRAME_COMPRESS_MIN bytes and compression makes it smaller. scratch is a
 * reusable buffer for the uncompressed payload. Returns 0, CDR_EFRAME_TOO_LARGE or CDR_ENOMEM. */
int frame_append(struct buf *out, enum frame_type type, const ProtobufCMessage *message,
                 ZSTD_CCtx *zstd, struct buf *scratch);

struct frame_view {
  enum frame_type type;
  uint8_t flags;
  const uint8_t *payload;
  size_t payload_len;
  size_t frame_len; /* header + payload: bytes to consume */
};

/* Looks for one whole frame at the start of data[0..len). Returns 0 with *view set; CDR_EAGAIN
 * when more bytes are needed; or CDR_EFRAME_TOO_LARGE (payload over max_payload),
 * CDR_EFRAME_VERSION, CDR_EFRAME_TYPE, CDR_EFRAME_FLAGS, which end the link. */
int frame_peek(const uint8_t *data, size_t len, size_t max_payload, struct frame_view *view);

/* Decodes the view's payload (decompressing into scratch first when flagged, at most
 * max_payload bytes) into a message allocated in arena. Returns 0 with *out set, or
 * CDR_EFRAME_BODY / CDR_EFRAME_TOO_LARGE. The message lives until the arena is reset. */
int frame_unpack(const struct frame_view *view, ZSTD_DCtx *zstd, struct buf *scratch,
                 size_t max_payload, struct arena *arena, ProtobufCMessage **out);

/* Name of a frame type for logs ("work"); "unknown" otherwise. */
const char *frame_type_name(int type);

#endif
