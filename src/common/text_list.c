/* text_list.c — lookups in separator-separated lists. */
#include "common/text_list.h"

#include <string.h>

bool text_list_contains(const char *list, char separator, const char *item, size_t len) {
  for (const char *p = list; *p;) {
    const char *end = strchr(p, separator);
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == len && memcmp(p, item, len) == 0)
      return true;
    p += n + (end ? 1 : 0);
  }
  return false;
}
