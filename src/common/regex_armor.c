/* regex_armor.c — regexes and URL prefixes written so that no cache's config syntax can split or
 * reinterpret them. */
#include "common/regex_armor.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Bytes that would end a header value, split a ban expression or a rules-file line. */
static bool armor_special(unsigned char c) {
  return c <= ' ' || c == 0x7f || c == '"' || c == '&' || c == '#';
}

/* Appends text to out at *used; false when it does not fit. */
static bool armor_put(char *out, size_t size, size_t *used, const char *text, size_t len) {
  if (*used + len >= size)
    return false;
  memcpy(out + *used, text, len);
  *used += len;
  out[*used] = '\0';
  return true;
}

static bool armor_hex(char *out, size_t size, size_t *used, unsigned char c) {
  char escaped[5];
  snprintf(escaped, sizeof(escaped), "\\x%02x", c);
  return armor_put(out, size, used, escaped, 4);
}

/* A URL prefix as an anchored regex: any scheme of http and https, the rest literal. */
static bool armor_prefix(const char *prefix, char *out, size_t size, size_t *used) {
  const char *rest = strstr(prefix, "://");
  rest = rest ? rest + 3 : prefix;
  if (!armor_put(out, size, used, "^https?://", 10))
    return false;
  for (const unsigned char *c = (const unsigned char *)rest; *c; c++) {
    bool plain = isalnum(*c) || strchr("/-_~%:,;=@!'", *c) || *c >= 0x80;
    bool ok = armor_special(*c) ? armor_hex(out, size, used, *c)
                                : (plain || armor_put(out, size, used, "\\", 1)) &&
                                      armor_put(out, size, used, (const char *)c, 1);
    if (!ok)
      return false;
  }
  return true;
}

bool regex_armor(const char *regex, const char *prefix_of, char *out, size_t size) {
  size_t used = 0;
  if (size == 0)
    return false;
  out[0] = '\0';
  if (prefix_of)
    return armor_prefix(prefix_of, out, size, &used);
  bool quoted = false; /* inside \Q...\E, where an escape would be literal text */
  for (const unsigned char *c = (const unsigned char *)regex; *c; c++) {
    bool ok;
    if (c[0] == '\\' && c[1] && (quoted ? c[1] == 'E' : true)) {
      if (!quoted && armor_special(c[1]))
        ok = armor_hex(out, size, &used, c[1]); /* an escaped special byte is that byte */
      else
        ok = armor_put(out, size, &used, (const char *)c, 2);
      if (c[1] == 'Q' && !quoted)
        quoted = true;
      else if (c[1] == 'E')
        quoted = false;
      c++;
    } else if (armor_special(*c)) {
      ok = quoted ? armor_put(out, size, &used, "\\E", 2) && armor_hex(out, size, &used, *c) &&
                        armor_put(out, size, &used, "\\Q", 2)
                  : armor_hex(out, size, &used, *c);
    } else {
      ok = armor_put(out, size, &used, (const char *)c, 1);
    }
    if (!ok)
      return false;
  }
  return true;
}
