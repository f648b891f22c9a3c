/* task_id.c — time-sortable task id generation (ULID layout, Crockford base32). */
#include "common/task_id.h"

#include "common/error.h"

#include <openssl/rand.h>
#include <string.h>

static const char crockford_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void task_id_generator_init(struct task_id_generator *generator) {
  memset(generator, 0, sizeof(*generator));
  generator->last_ms = -1;
}

/* Increments the 80-bit big-endian random part; returns false when it wraps around. */
static bool task_id_random_increment(unsigned char random[10]) {
  for (int i = 9; i >= 0; i--) {
    if (++random[i] != 0)
      return true;
  }
  return false;
}

/* Returns bit k (0 = most significant) of the 128-bit big-endian value in bytes. */
static unsigned task_id_bit(const unsigned char bytes[16], int k) {
  return (bytes[k / 8] >> (7 - k % 8)) & 1u;
}

int task_id_next(struct task_id_generator *generator, int64_t now_ms,
                 char out[TASK_ID_LENGTH + 1]) {
  if (now_ms > generator->last_ms) {
    if (RAND_bytes(generator->random, sizeof(generator->random)) != 1)
      return CDR_EINTERNAL;
    generator->random[0] &= 0x7f; /* leave headroom so increments within one ms cannot wrap */
    generator->last_ms = now_ms;
  } else if (!task_id_random_increment(generator->random)) {
    generator->last_ms++; /* 2^79 ids in one ms cannot happen; stay monotonic all the same */
  }

  unsigned char bytes[16];
  for (int i = 0; i < 6; i++)
    bytes[i] = (unsigned char)((uint64_t)generator->last_ms >> (8 * (5 - i)));
  memcpy(bytes + 6, generator->random, sizeof(generator->random));

  /* 26 characters carry 130 bits: the value is read with two leading zero bits. */
  for (int c = 0; c < TASK_ID_LENGTH; c++) {
    unsigned value = 0;
    for (int b = 0; b < 5; b++) {
      int k = c * 5 + b - 2;
      value = (value << 1) | (k >= 0 ? task_id_bit(bytes, k) : 0);
    }
    out[c] = crockford_alphabet[value];
  }
  out[TASK_ID_LENGTH] = '\0';
  return 0;
}

static int task_id_digit(char c) {
  const char *p = c ? strchr(crockford_alphabet, c) : NULL;
  return p ? (int)(p - crockford_alphabet) : -1;
}

bool task_id_valid(const char *s, size_t len) {
  if (len != TASK_ID_LENGTH || task_id_digit(s[0]) < 0 || task_id_digit(s[0]) > 7)
    return false;
  for (size_t i = 1; i < len; i++) {
    if (task_id_digit(s[i]) < 0)
      return false;
  }
  return true;
}

void task_id_floor(int64_t ms, char out[TASK_ID_LENGTH + 1]) {
  if (ms < 0)
    ms = 0; /* before the epoch: below every id */
  for (int c = 0; c < 10; c++)
    out[c] = crockford_alphabet[((uint64_t)ms >> (5 * (9 - c))) & 31];
  memset(out + 10, '0', TASK_ID_LENGTH - 10);
  out[TASK_ID_LENGTH] = '\0';
}

int64_t task_id_time_ms(const char *id) {
  int64_t ms = 0;
  for (int c = 0; c < 10; c++)
    ms = (ms << 5) | task_id_digit(id[c]);
  return ms;
}
