/* fuzz_task_request.c — libFuzzer target: POST /v1/purge and /v1/preload bodies through the
 * request validator (JSON parsing, URL normalisation, PCRE2 compilation, limits). The first byte
 * picks purge or preload (bit 0) and whether the tenant is confined to its hosts and tag namespace
 * (bit 1), which takes regexes through confinement; the rest is the body. Any input must end in a
 * task or an error that names a field, never a crash, a leak or undefined behaviour. */
#include "engine/api/task_request.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  static const struct request_limits limits = {
      .max_items = 64,
      .max_url_length = 512,
      .default_deadline_s = 3600,
      .max_deadline_s = 86400,
      .callback_allow = "127.0.0.1",
  };
  static const struct tenant confined = {
      .name = "fuzz", .hosts = "example.com,*.example.org", .tag_prefix = "t-"};
  enum task_type type = data[0] & 1 ? TASK_PURGE : TASK_PRELOAD;
  const struct tenant *tenant = data[0] & 2 ? &confined : &tenant_dev;
  struct arena arena;
  arena_init(&arena, 1 << 20);
  struct task *task = NULL;
  struct request_error error;
  memset(&error, 0, sizeof(error));
  int rc = task_request_parse(type, (const char *)data + 1, size - 1, &limits, tenant, &arena,
                              &task, &error);
  assert(rc == 0 ? task != NULL : rc < 0 && memchr(error.message, '\0', sizeof(error.message)));
  arena_release(&arena);
  return 0;
}
