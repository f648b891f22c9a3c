/* backoff.c — jittered exponential backoff (backoff.h). */
#include "common/backoff.h"

#include <openssl/rand.h>

uint64_t backoff_delay_ms(uint64_t base_ms, uint64_t max_ms, unsigned retry) {
  unsigned shift = retry > 1 ? retry - 1 : 0;
  uint64_t delay = shift >= 32 || base_ms > (max_ms >> shift) ? max_ms : base_ms << shift;
  uint32_t random = 0;
  RAND_bytes((unsigned char *)&random, sizeof(random)); /* a failure leaves 0: the least pause */
  return delay / 2 + random % (delay + 1);
}
