/* array.h — growing a malloc'd array by doubling, the one way every module does it. */
#ifndef CDR_ARRAY_H
#define CDR_ARRAY_H

#include <stdbool.h>
#include <stddef.h>

/* Makes room for one more element in *items, which holds count elements of size bytes in *cap
 * allocated: when full, reallocates to twice the capacity (first when empty). False when out of
 * memory; *items and *cap are then unchanged. Use as array_reserve((void **)&array, ...). */
bool array_reserve(void **items, size_t *cap, size_t count, size_t size, size_t first);

#endif
