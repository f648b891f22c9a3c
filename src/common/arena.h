/* arena.h — a bump allocator whose memory lives until the whole arena is released.
 *
 * One arena belongs to one request or one store job: everything built for it (the parsed task, its
 * strings, rows read back from the store) is allocated here and freed at once with arena_release().
 * Every arena has a maximum set at init; an allocation past it fails instead of growing without
 * bound. Not thread-safe: one owner at a time. */
#ifndef CDR_ARENA_H
#define CDR_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
  struct arena_chunk *head; /* newest chunk, allocations come from here */
  size_t reserved;          /* bytes held in chunks, counted against max */
  size_t max;               /* bytes; allocations past it return NULL */
};

/* Prepares an empty arena that may hold at most max bytes. Allocates nothing yet. */
void arena_init(struct arena *arena, size_t max);

/* Returns size bytes aligned for any type, or NULL when the arena's maximum or memory is exhausted.
 * The memory is owned by the arena. */
void *arena_alloc(struct arena *arena, size_t size);

/* Adds a chunk of exactly size bytes for the allocations that follow, instead of a chunk of at
 * least 4 KiB when the first of them would not fit: an arena kept long whose contents are known
 * beforehand (a task waiting for its nodes) then costs one allocation of its size. Count each
 * allocation it is for with arena_size_of. Returns 0, or -1 past the maximum or out of memory. */
int arena_reserve(struct arena *arena, size_t size);

/* What an allocation of size bytes takes of an arena (rounded up for alignment). */
size_t arena_size_of(size_t size);

/* Copies len bytes of s into the arena and terminates them with NUL. NULL when out of room. */
char *arena_strndup(struct arena *arena, const char *s, size_t len);

/* arena_strndup of a NUL-terminated string. */
char *arena_strdup(struct arena *arena, const char *s);

/* Forgets every allocation but keeps the newest chunk for reuse, so an arena reset after each
 * frame or batch stops allocating once it has grown to the usual size. */
void arena_reset(struct arena *arena);

/* Frees every chunk; the arena is empty and may be reused with the same maximum. */
void arena_release(struct arena *arena);

#endif
