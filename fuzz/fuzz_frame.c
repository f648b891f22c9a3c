/* fuzz_frame.c — libFuzzer target: the link's frame decoder, as a link reads a byte stream from a
 * peer (engine or agent): frames are peeked, decompressed (zstd) and unpacked (protobuf-c) one
 * after another until the bytes run out or a frame is refused, which ends the link. */
#include "common/arena.h"
#include "common/error.h"
#include "proto/frame.h"

#include <assert.h>
#include <stdint.h>
#include <zstd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  enum { MAX_PAYLOAD = 1 << 20 };
  static ZSTD_DCtx *zstd;
  if (!zstd)
    zstd = ZSTD_createDCtx();
  struct buf scratch;
  buf_init(&scratch, MAX_PAYLOAD);
  struct arena arena;
  arena_init(&arena, 4 * MAX_PAYLOAD);
  size_t used = 0;
  for (;;) {
    struct frame_view view;
    int rc = frame_peek(data + used, size - used, MAX_PAYLOAD, &view);
    if (rc)
      break; /* more bytes needed, or a bad header: the link would wait or close */
    assert(view.frame_len <= size - used && view.payload_len <= MAX_PAYLOAD);
    ProtobufCMessage *message = NULL;
    if (frame_unpack(&view, zstd, &scratch, MAX_PAYLOAD, &arena, &message))
      break;
    assert(message != NULL);
    used += view.frame_len;
    arena_reset(&arena);
  }
  arena_release(&arena);
  buf_free(&scratch);
  return 0;
}
