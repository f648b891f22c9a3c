/* access_log.c — the API's request log (access_log.h). */
#include "engine/access_log.h"

#include "common/clock.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int access_log_fd = -1;

int access_log_open(const char *path) {
  access_log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  return access_log_fd < 0 ? -errno : 0;
}

void access_log_write(h2o_req_t *req, int status, int64_t us) {
  if (access_log_fd < 0)
    return;
  char ts[CLOCK_ISO8601_SIZE];
  clock_format_iso8601(clock_now_ms(), ts);
  json_t *line =
      json_pack("{s:s,s:s%,s:s%,s:i,s:I}", "ts", ts, "method", req->method.base, req->method.len,
                "path", req->path.base, req->path.len, "status", status, "us", (json_int_t)us);
  if (line && req->entity.base)
    json_object_set_new(
        line, "body",
        json_stringn(req->entity.base, req->entity.len)); /* NULL (no body) when not UTF-8 */
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
