/* clock.h — wall-clock time in the units the project stores and prints. */
#ifndef CDR_CLOCK_H
#define CDR_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t clock_now_ms(void);

enum { CLOCK_ISO8601_SIZE = 25 }; /* "2026-11-24T17:49:30.123Z" plus NUL */

/* Writes ms as an RFC 3339 UTC timestamp with milliseconds into out (CLOCK_ISO8601_SIZE bytes). */
void clock_format_iso8601(int64_t ms, char out[CLOCK_ISO8601_SIZE]);

#endif
