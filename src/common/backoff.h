/* backoff.h — jittered exponential backoff, for every retry the engine and the agent make: the
 * pause doubles from a base with each retry up to a maximum, and is spread over 0.5x..1.5x so
 * that many clients that failed together do not all come back together. */
#ifndef CDR_BACKOFF_H
#define CDR_BACKOFF_H

#include <stdint.h>

/* The pause before retry number `retry` (1 for the first): base_ms << (retry - 1), at most
 * max_ms, times a random factor in [0.5, 1.5]. Any thread. */
uint64_t backoff_delay_ms(uint64_t base_ms, uint64_t max_ms, unsigned retry);

#endif
