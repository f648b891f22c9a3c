/* frame.c — encoding and decoding of link frames, with optional zstd payloads. */
#include "proto/frame.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

static const ProtobufCMessageDescriptor *const frame_descriptors[] = {
    [FRAME_HELLO] = &cdr__hello__descriptor,     [FRAME_WELCOME] = &cdr__welcome__descriptor,
    [FRAME_REFUSAL] = &cdr__refusal__descriptor, [FRAME_WORK] = &cdr__work__descriptor,
    [FRAME_RESULTS] = &cdr__results__descriptor, [FRAME_HEARTBEAT] = &cdr__heartbeat__descriptor,
};
static const char *const frame_names[] = {
    [FRAME_HELLO] = "hello", [FRAME_WELCOME] = "welcome", [FRAME_REFUSAL] = "refusal",
    [FRAME_WORK] = "work",   [FRAME_RESULTS] = "results", [FRAME_HEARTBEAT] = "heartbeat",
};
enum { FRAME_TYPE_LAST = FRAME_HEARTBEAT };

const char *frame_type_name(int type) {
  return type >= FRAME_HELLO && type <= FRAME_TYPE_LAST ? frame_names[type] : "unknown";
}

/* Reserves room in a frame buffer, whose maximum is the largest frame the link allows. */
static int frame_reserve(struct buf *buffer, size_t extra) {
  int rc = buf_reserve(buffer, extra);
  return rc == CDR_EBUFFER_FULL ? CDR_EFRAME_TOO_LARGE : rc;
}

static void frame_header_write(uint8_t *at, size_t payload_len, enum frame_type type,
                               uint8_t flags) {
  at[0] = (uint8_t)(payload_len >> 24);
  at[1] = (uint8_t)(payload_len >> 16);
  at[2] = (uint8_t)(payload_len >> 8);
  at[3] = (uint8_t)payload_len;
  at[4] = (uint8_t)type;
  at[5] = flags;
  at[6] = (uint8_t)(FRAME_VERSION >> 8);
  at[7] = (uint8_t)FRAME_VERSION;
}

int frame_append(struct buf *out, enum frame_type type, const ProtobufCMessage *message,
                 ZSTD_CCtx *zstd, struct buf *scratch) {
  size_t plain_len = protobuf_c_message_get_packed_size(message);
  if (plain_len > UINT32_MAX)
    return CDR_EFRAME_TOO_LARGE;
  if (!zstd || plain_len < FRAME_COMPRESS_MIN) {
    int rc = frame_reserve(out, FRAME_HEADER_SIZE + plain_len);
    if (rc)
      return rc;
    frame_header_write(out->data + out->len, plain_len, type, 0);
    protobuf_c_message_pack(message, out->data + out->len + FRAME_HEADER_SIZE);
    out->len += FRAME_HEADER_SIZE + plain_len;
    return 0;
  }
  /* Pack into scratch, then compress straight into out; keep it plain if that is not smaller. */
  scratch->len = 0;
  int rc = frame_reserve(scratch, plain_len);
  if (rc)
    return rc;
  protobuf_c_message_pack(message, scratch->data);
  size_t bound = ZSTD_compressBound(plain_len);
  rc = frame_reserve(out, FRAME_HEADER_SIZE + (bound > plain_len ? bound : plain_len));
  if (rc)
    return rc;
  uint8_t *payload = out->data + out->len + FRAME_HEADER_SIZE;
  size_t packed = ZSTD_compressCCtx(zstd, payload, bound, scratch->data, plain_len, 1);
  uint8_t flags = FRAME_FLAG_ZSTD;
  if (ZSTD_isError(packed) || packed >= plain_len) {
    memcpy(payload, scratch->data, plain_len);
    packed = plain_len;
    flags = 0;
  }
  frame_header_write(out->data + out->len, packed, type, flags);
  out->len += FRAME_HEADER_SIZE + packed;
  return 0;
}

int frame_peek(const uint8_t *data, size_t len, size_t max_payload, struct frame_view *view) {
  if (len < FRAME_HEADER_SIZE)
    return CDR_EAGAIN;
  size_t payload_len =
      (size_t)data[0] << 24 | (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
  unsigned version = (unsigned)data[6] << 8 | data[7];
  if (version != FRAME_VERSION)
    return CDR_EFRAME_VERSION;
  if (data[4] < FRAME_HELLO || data[4] > FRAME_TYPE_LAST)
    return CDR_EFRAME_TYPE;
  if (data[5] & ~FRAME_FLAG_ZSTD)
    return CDR_EFRAME_FLAGS;
  if (payload_len > max_payload)
    return CDR_EFRAME_TOO_LARGE;
  if (len - FRAME_HEADER_SIZE < payload_len)
    return CDR_EAGAIN;
  view->type = (enum frame_type)data[4];
  view->flags = data[5];
  view->payload = data + FRAME_HEADER_SIZE;
  view->payload_len = payload_len;
  view->frame_len = FRAME_HEADER_SIZE + payload_len;
  return 0;
}

static void *frame_arena_alloc(void *data, size_t size) { return arena_alloc(data, size); }

static void frame_arena_free(void *data, void *pointer) {
  (void)data;
  (void)pointer; /* freed with the arena */
}

int frame_unpack(const struct frame_view *view, ZSTD_DCtx *zstd, struct buf *scratch,
                 size_t max_payload, struct arena *arena, ProtobufCMessage **out) {
  const uint8_t *payload = view->payload;
  size_t len = view->payload_len;
  if (view->flags & FRAME_FLAG_ZSTD) {
    unsigned long long size = ZSTD_getFrameContentSize(payload, len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || !zstd)
      return CDR_EFRAME_BODY;
    if (size > max_payload)
      return CDR_EFRAME_TOO_LARGE;
    scratch->len = 0;
    int rc = frame_reserve(scratch, (size_t)size);
    if (rc)
      return rc;
    size_t got = ZSTD_decompressDCtx(zstd, scratch->data, (size_t)size, payload, len);
    if (ZSTD_isError(got) || got != size)
      return CDR_EFRAME_BODY;
    payload = scratch->data;
    len = got;
  }
  ProtobufCAllocator allocator = {frame_arena_alloc, frame_arena_free, arena};
  ProtobufCMessage *message =
      protobuf_c_message_unpack(frame_descriptors[view->type], &allocator, len, payload);
  if (!message)
    return CDR_EFRAME_BODY;
  *out = message;
  return 0;
}
