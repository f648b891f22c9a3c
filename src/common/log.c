/* log.c — JSON-lines logging to stderr. */
#include "common/log.h"

#include "common/clock.h"
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum log_level log_threshold = LOG_INFO;
static const char *const log_level_names[] = {"debug", "info", "warn", "error"};

void log_level_set(enum log_level level) { log_threshold = level; }

int log_level_parse(const char *name, enum log_level *level) {
  for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
    if (strcmp(name, log_level_names[i]) == 0) {
      *level = (enum log_level)i;
      return 0;
    }
  }
  return CDR_EINVALID_VALUE;
}

/* Appends s to out[*len..size) with JSON string escaping, stopping early if out is full. */
static void log_append_escaped(char *out, size_t size, size_t *len, const char *s) {
  for (; *s && *len + 7 < size; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      out[(*len)++] = '\\';
      out[(*len)++] = (char)c;
    } else if (c < 0x20) {
      *len += (size_t)snprintf(out + *len, size - *len, "\\u%04x", c);
    } else {
      out[(*len)++] = (char)c;
    }
  }
}

void log_write(enum log_level level, const char *event, const char *format, ...) {
  if (level < log_threshold)
    return;
  char message[1024];
  va_list args;
  va_start(args, format);
  vsnprintf(message, sizeof(message), format, args);
  va_end(args);

  char ts[CLOCK_ISO8601_SIZE];
  clock_format_iso8601(clock_now_ms(), ts);
  char line[2048];
  size_t len = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"",
                                ts, log_level_names[level]);
  log_append_escaped(line, sizeof(line), &len, event);
  len += (size_t)snprintf(line + len, sizeof(line) - len, "\",\"msg\":\"");
  log_append_escaped(line, sizeof(line), &len, message);
  len += (size_t)snprintf(line + len, sizeof(line) - len, "\"}\n");
  if (len >= sizeof(line))
    len = sizeof(line) - 1;
  ssize_t written = write(STDERR_FILENO, line, len);
  (void)written; /* nowhere left to report a failed log write */
}
