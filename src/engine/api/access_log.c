/* access_log.c — the API's request log (access_log.h). */
#include "engine/api/access_log.h"

#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int access_log_fd = -1;

int access_log_open(const char *path) {
  access_log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  return access_log_fd < 0 ? -errno : 0;
}

/* Sets line[key] to bytes as a string, or — when they are not UTF-8, which a JSON string cannot
 * hold — line[key "_hex"] to their hex, so a request with a hostile target is logged too, and
 * exactly. */
static void access_log_set_bytes(json_t *line, const char *key, const char *bytes, size_t len) {
  json_t *text = json_stringn(bytes, len);
  if (text) {
    json_object_set_new(line, key, text);
    return;
  }
  static const char digits[] = "0123456789abcdef";
  char *hex = malloc(2 * len + 1);
  if (!hex)
    return;
  for (size_t i = 0; i < len; i++) {
    hex[2 * i] = digits[(unsigned char)bytes[i] >> 4];
    hex[2 * i + 1] = digits[(unsigned char)bytes[i] & 15];
  }
  char hex_key[32];
  snprintf(hex_key, sizeof(hex_key), "%s_hex", key);
  json_object_set_new(line, hex_key, json_stringn(hex, 2 * len));
  free(hex);
}

void access_log_write(h2o_req_t *req, int status, int64_t us) {
  if (access_log_fd < 0)
    return;
  char ts[CLOCK_ISO8601_SIZE];
  clock_format_iso8601(clock_now_ms(), ts);
  json_t *line = json_pack("{s:s}", "ts", ts);
  if (line) {
    access_log_set_bytes(line, "method", req->method.base, req->method.len);
    access_log_set_bytes(line, "path", req->path.base, req->path.len);
    json_object_set_new(line, "status", json_integer(status));
    json_object_set_new(line, "us", json_integer((json_int_t)us));
    if (req->entity.base)
      access_log_set_bytes(line, "body", req->entity.base, req->entity.len);
  }
  char *text = line ? json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
  json_decref(line);
  if (!text) {
    log_warn("access_log.write", "out of memory: a request went unlogged");
    return;
  }
  size_t len = strlen(text);
  text[len] = '\n'; /* json_dumps left room: its terminating NUL becomes the newline */
  if (write(access_log_fd, text, len + 1) != (ssize_t)(len + 1))
    log_warn("access_log.write", "cannot write the access log: %s", strerror(errno));
  free(text);
}

void access_log_close(void) {
  if (access_log_fd >= 0)
    close(access_log_fd);
  access_log_fd = -1;
}
