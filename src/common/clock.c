/* clock.c — wall-clock reads and timestamp formatting. */
#include "common/clock.h"

#include <time.h>

int64_t clock_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_format_iso8601(int64_t ms, char out[CLOCK_ISO8601_SIZE]) {
  time_t seconds = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&seconds, &tm);
  size_t n = strftime(out, CLOCK_ISO8601_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
  unsigned millis = (unsigned)(ms % 1000);
  out[n++] = '.';
  out[n++] = (char)('0' + millis / 100);
  out[n++] = (char)('0' + millis / 10 % 10);
  out[n++] = (char)('0' + millis % 10);
  out[n++] = 'Z';
  out[n] = '\0';
}
