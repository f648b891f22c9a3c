/* array.c — doubling growth of malloc'd arrays (array.h). */
#include "common/array.h"

#include <stdlib.h>

bool array_reserve(void **items, size_t *cap, size_t count, size_t size, size_t first) {
  if (count < *cap)
    return true;
  size_t grown = *cap ? *cap * 2 : first;
  void *more = realloc(*items, grown * size);
  if (!more)
    return false;
  *items = more;
  *cap = grown;
  return true;
}
