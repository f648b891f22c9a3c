/* json_text.h — appends JSON text to a buffer that starts on the caller's stack, for responses
 * on the hot path where building a jansson tree and dumping it cost more than the request itself.
 * Output is compact and byte-for-byte what jansson's json_dumps(JSON_COMPACT) prints for the same
 * values (strings escaped the same way, UTF-8 kept as it is). */
#ifndef CDR_JSON_TEXT_H
#define CDR_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { JSON_TEXT_INLINE = 1024 };

struct json_text {
  char *data; /* inline_buffer until it outgrows it, then malloc'd */
  size_t len, cap;
  bool failed; /* out of memory: the text is incomplete */
  char inline_buffer[JSON_TEXT_INLINE];
};

void json_text_init(struct json_text *text);
void json_text_free(struct json_text *text);

/* Appends bytes as they are (punctuation, keys known to need no escaping, JSON text). */
void json_text_raw(struct json_text *text, const char *bytes, size_t len);
#define JSON_TEXT_LITERAL(text, literal) json_text_raw((text), literal, sizeof(literal) - 1)

/* Appends s as a JSON string, or null when s is NULL. */
void json_text_string(struct json_text *text, const char *s);

void json_text_int(struct json_text *text, int64_t value);

void json_text_bool(struct json_text *text, bool value);

#endif
