/* test_arena.c — the bump allocator: alignment, growth, and its maximum. */
#include "unit.h"

#include "common/arena.h"

#include <stdalign.h>
#include <string.h>

static void arena_aligns_every_allocation(void **state) {
  (void)state;
  struct arena arena;
  arena_init(&arena, 1 << 20);
  for (size_t size = 1; size < 100; size += 7) {
    void *p = arena_alloc(&arena, size);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
  }
  arena_release(&arena);
}

static void arena_serves_requests_larger_than_a_chunk(void **state) {
  (void)state;
  struct arena arena;
  arena_init(&arena, 1 << 20);
  char *big = arena_alloc(&arena, 100000);
  assert_non_null(big);
  memset(big, 'x', 100000);
  assert_string_equal(arena_strdup(&arena, "after"), "after");
  arena_release(&arena);
}

static void arena_refuses_past_its_maximum(void **state) {
  (void)state;
  struct arena arena;
  arena_init(&arena, 10000);
  assert_non_null(arena_alloc(&arena, 4000));
  assert_null(arena_alloc(&arena, 9000));
  assert_non_null(arena_alloc(&arena, 100)); /* still serves what fits */
  arena_release(&arena);
  assert_int_equal(arena.reserved, 0);
  assert_non_null(arena_alloc(&arena, 9000)); /* empty again after release */
  arena_release(&arena);
}

static void arena_strndup_terminates(void **state) {
  (void)state;
  struct arena arena;
  arena_init(&arena, 1024);
  assert_string_equal(arena_strndup(&arena, "abcdef", 3), "abc");
  arena_release(&arena);
}

/* A reserved chunk holds exactly what it was reserved for; one byte more takes a chunk of its own.
 */
static void arena_reserve_holds_exactly_what_it_was_sized_for(void **state) {
  (void)state;
  struct arena arena;
  arena_init(&arena, 1 << 20);
  size_t size = arena_size_of(40) + arena_size_of(60) + arena_size_of(1);
  assert_int_equal(size, 48 + 64 + 16);
  assert_int_equal(arena_reserve(&arena, size), 0);
  assert_int_equal(arena.reserved, size);
  assert_non_null(arena_alloc(&arena, 40));
  assert_non_null(arena_alloc(&arena, 60));
  assert_non_null(arena_strdup(&arena, ""));
  assert_int_equal(arena.reserved, size);
  assert_non_null(arena_alloc(&arena, 1));
  assert_true(arena.reserved >= size + 4096);
  assert_int_equal(arena_reserve(&arena, 1 << 20), -1); /* past the maximum */
  arena_release(&arena);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(arena_aligns_every_allocation),
      cmocka_unit_test(arena_reserve_holds_exactly_what_it_was_sized_for),
      cmocka_unit_test(arena_serves_requests_larger_than_a_chunk),
      cmocka_unit_test(arena_refuses_past_its_maximum),
      cmocka_unit_test(arena_strndup_terminates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
