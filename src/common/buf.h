/* buf.h — a growing byte buffer whose maximum is set when it is created: the one way the project
 * grows a buffer of bytes (link frames, TLS output, Prometheus text, cache file heads, the CLI's
 * responses, the agent's request lines). It doubles from 256 bytes (or the first need) and never
 * allocates past its maximum, so what a peer sends cannot make it grow without bound.
 * (json_text.h keeps its own: its first bytes live inline, so a small answer allocates nothing.) */
#ifndef CDR_BUF_H
#define CDR_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
  uint8_t *data; /* NULL until the first reserve */
  size_t len;    /* bytes in use */
  size_t cap;    /* bytes allocated */
  size_t max;    /* cap never exceeds this */
};

/* An empty buffer that may grow to max bytes. Allocates nothing yet. */
void buf_init(struct buf *buffer, size_t max);

/* Makes room for extra more bytes after len. Returns 0, CDR_EBUFFER_FULL when len + extra would
 * pass max, or CDR_ENOMEM; the buffer is unchanged on failure. */
int buf_reserve(struct buf *buffer, size_t extra);

/* Appends n bytes and keeps a NUL after them (not counted in len), so text can be read as a
 * string. Returns as buf_reserve (room for the NUL included). */
int buf_append(struct buf *buffer, const void *bytes, size_t n);

/* Appends formatted text, NUL-terminated as buf_append. Returns as buf_reserve. */
__attribute__((format(printf, 2, 3))) int buf_printf(struct buf *buffer, const char *format, ...);

/* Drops the first n bytes, moving the rest to the front. */
void buf_consume(struct buf *buffer, size_t n);

/* Frees the bytes; the buffer is empty again, with the same maximum. */
void buf_free(struct buf *buffer);

/* The bytes as text (buf_append and buf_printf keep them NUL-terminated). */
static inline char *buf_text(const struct buf *buffer) { return (char *)buffer->data; }

#endif
