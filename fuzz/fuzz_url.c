/* fuzz_url.c — libFuzzer target: URL normalisation. A URL that normalises must normalise to
 * itself again (normalisation is idempotent) and fit the length limit. */
#include "common/url.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  enum { MAX_LENGTH = 2048 };
  struct arena arena;
  arena_init(&arena, 1 << 20);
  struct url_normalized once, twice;
  const char *why = NULL;
  if (url_normalize((const char *)data, size, MAX_LENGTH, &arena, &once, &why) == 0) {
    assert(once.length <= MAX_LENGTH && strlen(once.text) == once.length);
    assert(once.host_offset + once.host_length <= once.length);
    int again = url_normalize(once.text, once.length, MAX_LENGTH, &arena, &twice, &why);
    assert(again == 0 && twice.length == once.length &&
           memcmp(twice.text, once.text, once.length) == 0);
  }
  arena_release(&arena);
  return 0;
}
