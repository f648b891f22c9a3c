/* arena.c — chunked bump allocation for per-request and per-job lifetimes. */
#include "common/arena.h"

#include <assert.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { ARENA_CHUNK_DEFAULT = 4096 };

struct arena_chunk {
  struct arena_chunk *next;
  size_t size; /* bytes of data[] */
  size_t used; /* bytes of data[] handed out */
  alignas(max_align_t) unsigned char data[];
};

void arena_init(struct arena *arena, size_t max) {
  arena->head = NULL;
  arena->reserved = 0;
  arena->max = max;
}

/* Adds a chunk for at least min_size bytes; of exactly that many when exact. */
static struct arena_chunk *arena_chunk_add(struct arena *arena, size_t min_size, bool exact) {
  size_t size = min_size > ARENA_CHUNK_DEFAULT || exact ? min_size : ARENA_CHUNK_DEFAULT;
  if (!exact && arena->head && arena->head->size * 2 > size && arena->head->size * 2 >= min_size)
    size = arena->head->size * 2; /* grow geometrically so big jobs need few chunks */
  if (size > arena->max - arena->reserved)
    size = min_size; /* the last chunk before the maximum is only as big as needed */
  if (size > arena->max - arena->reserved)
    return NULL;
  struct arena_chunk *chunk = malloc(sizeof(*chunk) + size);
  if (!chunk)
    return NULL;
  chunk->next = arena->head;
  chunk->size = size;
  chunk->used = 0;
  arena->head = chunk;
  arena->reserved += size;
  return chunk;
}

size_t arena_size_of(size_t size) {
  const size_t align = alignof(max_align_t);
  size_t rounded = (size + align - 1) & ~(align - 1);
  return rounded < size ? SIZE_MAX : rounded;
}

int arena_reserve(struct arena *arena, size_t size) {
  size_t rounded = arena_size_of(size);
  return rounded != SIZE_MAX && arena_chunk_add(arena, rounded, true) ? 0 : -1;
}

void *arena_alloc(struct arena *arena, size_t size) {
  size_t rounded = arena_size_of(size);
  if (rounded == SIZE_MAX)
    return NULL;
  struct arena_chunk *chunk = arena->head;
  if (!chunk || chunk->size - chunk->used < rounded) {
    chunk = arena_chunk_add(arena, rounded, false);
    if (!chunk)
      return NULL;
  }
  void *p = chunk->data + chunk->used;
  chunk->used += rounded;
  assert(chunk->used <= chunk->size);
  return p;
}

char *arena_strndup(struct arena *arena, const char *s, size_t len) {
  if (len == SIZE_MAX)
    return NULL;
  char *copy = arena_alloc(arena, len + 1);
  if (!copy)
    return NULL;
  memcpy(copy, s, len);
  copy[len] = '\0';
  return copy;
}

char *arena_strdup(struct arena *arena, const char *s) {
  return arena_strndup(arena, s, strlen(s));
}

void arena_reset(struct arena *arena) {
  struct arena_chunk *keep = arena->head;
  if (!keep)
    return;
  struct arena_chunk *chunk = keep->next;
  while (chunk) {
    struct arena_chunk *next = chunk->next;
    free(chunk);
    chunk = next;
  }
  keep->next = NULL;
  keep->used = 0;
  arena->reserved = keep->size;
}

void arena_release(struct arena *arena) {
  struct arena_chunk *chunk = arena->head;
  while (chunk) {
    struct arena_chunk *next = chunk->next;
    free(chunk);
    chunk = next;
  }
  arena->head = NULL;
  arena->reserved = 0;
}
