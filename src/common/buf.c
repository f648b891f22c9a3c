/* buf.c — growing byte buffers with a maximum. */
#include "common/buf.h"

#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BUF_FIRST_CAP = 256 };

void buf_init(struct buf *buffer, size_t max) {
  buffer->data = NULL;
  buffer->len = buffer->cap = 0;
  buffer->max = max;
}

int buf_reserve(struct buf *buffer, size_t extra) {
  if (extra > buffer->max || buffer->len > buffer->max - extra)
    return CDR_EBUFFER_FULL;
  size_t need = buffer->len + extra;
  if (need <= buffer->cap)
    return 0;
  size_t cap = buffer->cap ? buffer->cap : BUF_FIRST_CAP;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap > buffer->max)
    cap = buffer->max;
  uint8_t *data = realloc(buffer->data, cap);
  if (!data)
    return CDR_ENOMEM;
  buffer->data = data;
  buffer->cap = cap;
  return 0;
}

int buf_append(struct buf *buffer, const void *bytes, size_t n) {
  int rc = buf_reserve(buffer, n + 1);
  if (rc)
    return rc;
  memcpy(buffer->data + buffer->len, bytes, n);
  buffer->len += n;
  buffer->data[buffer->len] = '\0';
  return 0;
}

int buf_printf(struct buf *buffer, const char *format, ...) {
  va_list args;
  va_start(args, format);
  int n = vsnprintf(NULL, 0, format, args);
  va_end(args);
  if (n < 0)
    return CDR_EINTERNAL;
  int rc = buf_reserve(buffer, (size_t)n + 1);
  if (rc)
    return rc;
  va_start(args, format);
  vsnprintf((char *)buffer->data + buffer->len, (size_t)n + 1, format, args);
  va_end(args);
  buffer->len += (size_t)n;
  return 0;
}

void buf_consume(struct buf *buffer, size_t n) {
  if (n >= buffer->len) {
    buffer->len = 0;
    return;
  }
  memmove(buffer->data, buffer->data + n, buffer->len - n);
  buffer->len -= n;
}

void buf_free(struct buf *buffer) {
  free(buffer->data);
  buf_init(buffer, buffer->max);
}
