/* task_id.h — task ids that are unique and sort by creation time.
 *
 * An id is 26 characters of Crockford base32 (the ULID layout): 48 bits of milliseconds since the
 * epoch, then 80 random bits. Ids from one generator strictly increase, also within one millisecond
 * and when the clock steps back, so sorting ids as strings sorts tasks by creation. */
#ifndef CDR_TASK_ID_H
#define CDR_TASK_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TASK_ID_LENGTH = 26 };

struct task_id_generator {
  int64_t last_ms;          /* time part of the last id handed out */
  unsigned char random[10]; /* random part of the last id, incremented within one millisecond */
};

/* Prepares a generator. */
void task_id_generator_init(struct task_id_generator *generator);

/* Writes the next id for a task created at now_ms into out (NUL-terminated). Returns 0, or
 * CDR_EINTERNAL when the system random source fails. One thread per generator. */
int task_id_next(struct task_id_generator *generator, int64_t now_ms, char out[TASK_ID_LENGTH + 1]);

/* True when s[0..len) has the shape of a task id (length and alphabet). */
bool task_id_valid(const char *s, size_t len);

/* Returns the creation time in ms encoded in a valid id. */
int64_t task_id_time_ms(const char *id);

/* Writes the smallest id of a task created at ms (< 2^48; a time before the epoch counts as the
 * epoch): every task created before ms has an id that sorts before it, every later one after. */
void task_id_floor(int64_t ms, char out[TASK_ID_LENGTH + 1]);

#endif
