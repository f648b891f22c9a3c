/* json_text.c — compact JSON text appended to a growing buffer. */
#include "common/json_text.h"

#include <stdlib.h>
#include <string.h>

void json_text_init(struct json_text *text) {
  text->data = text->inline_buffer;
  text->len = 0;
  text->cap = sizeof(text->inline_buffer);
  text->failed = false;
}

void json_text_free(struct json_text *text) {
  if (text->data != text->inline_buffer)
    free(text->data);
  json_text_init(text);
}

static bool json_text_reserve(struct json_text *text, size_t extra) {
  if (text->failed)
    return false;
  if (text->len + extra <= text->cap)
    return true;
  size_t cap = text->cap * 2;
  while (cap < text->len + extra)
    cap *= 2;
  char *data = text->data == text->inline_buffer ? malloc(cap) : realloc(text->data, cap);
  if (!data) {
    text->failed = true;
    return false;
  }
  if (text->data == text->inline_buffer)
    memcpy(data, text->inline_buffer, text->len);
  text->data = data;
  text->cap = cap;
  return true;
}

void json_text_raw(struct json_text *text, const char *bytes, size_t len) {
  if (!json_text_reserve(text, len))
    return;
  memcpy(text->data + text->len, bytes, len);
  text->len += len;
}

void json_text_string(struct json_text *text, const char *s) {
  if (!s) {
    JSON_TEXT_LITERAL(text, "null");
    return;
  }
  static const char hex[] = "0123456789ABCDEF"; /* as jansson writes them */
  size_t len = strlen(s);
  if (!json_text_reserve(text, len * 6 + 2)) /* every byte escaped as \u00XX at worst */
    return;
  char *out = text->data + text->len;
  *out++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char c = *p;
    if (c >= 0x20 && c != '"' && c != '\\') {
      *out++ = (char)c;
      continue;
    }
    *out++ = '\\';
    switch (c) {
    case '"': *out++ = '"'; break;
    case '\\': *out++ = '\\'; break;
    case '\b': *out++ = 'b'; break;
    case '\f': *out++ = 'f'; break;
    case '\n': *out++ = 'n'; break;
    case '\r': *out++ = 'r'; break;
    case '\t': *out++ = 't'; break;
    default:
      *out++ = 'u';
      *out++ = '0';
      *out++ = '0';
      *out++ = hex[c >> 4];
      *out++ = hex[c & 15];
    }
  }
  *out++ = '"';
  text->len = (size_t)(out - text->data);
}

void json_text_int(struct json_text *text, int64_t value) {
  char digits[24];
  size_t n = 0;
  uint64_t magnitude = value < 0 ? 0 - (uint64_t)value : (uint64_t)value;
  do {
    digits[n++] = (char)('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude);
  if (!json_text_reserve(text, n + 1))
    return;
  if (value < 0)
    text->data[text->len++] = '-';
  while (n)
    text->data[text->len++] = digits[--n];
}

void json_text_bool(struct json_text *text, bool value) {
  if (value)
    JSON_TEXT_LITERAL(text, "true");
  else
    JSON_TEXT_LITERAL(text, "false");
}
