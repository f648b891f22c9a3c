/* test_task_id.c — task ids: shape, order, embedded time. */
#include "unit.h"

#include "common/task_id.h"

#include <string.h>

static void task_id_has_ulid_shape(void **state) {
  (void)state;
  struct task_id_generator generator;
  task_id_generator_init(&generator);
  char id[TASK_ID_LENGTH + 1];
  assert_int_equal(task_id_next(&generator, 1795000000123, id), 0);
  assert_int_equal(strlen(id), TASK_ID_LENGTH);
  assert_true(task_id_valid(id, strlen(id)));
  assert_int_equal(task_id_time_ms(id), 1795000000123);
}

static void task_id_increases_within_one_millisecond(void **state) {
  (void)state;
  struct task_id_generator generator;
  task_id_generator_init(&generator);
  char previous[TASK_ID_LENGTH + 1], id[TASK_ID_LENGTH + 1];
  assert_int_equal(task_id_next(&generator, 1000, previous), 0);
  for (int i = 0; i < 10000; i++) {
    assert_int_equal(task_id_next(&generator, 1000, id), 0);
    assert_true(strcmp(previous, id) < 0);
    memcpy(previous, id, sizeof(id));
  }
}

static void task_id_increases_when_clock_steps_back(void **state) {
  (void)state;
  struct task_id_generator generator;
  task_id_generator_init(&generator);
  char first[TASK_ID_LENGTH + 1], second[TASK_ID_LENGTH + 1];
  assert_int_equal(task_id_next(&generator, 5000, first), 0);
  assert_int_equal(task_id_next(&generator, 4000, second), 0);
  assert_true(strcmp(first, second) < 0);
  assert_int_equal(task_id_time_ms(second), 5000);
}

static void task_id_sorts_by_time(void **state) {
  (void)state;
  struct task_id_generator a, b;
  task_id_generator_init(&a);
  task_id_generator_init(&b);
  char early[TASK_ID_LENGTH + 1], late[TASK_ID_LENGTH + 1];
  assert_int_equal(task_id_next(&a, 1700000000000, early), 0);
  assert_int_equal(task_id_next(&b, 1700000000001, late), 0);
  assert_true(strcmp(early, late) < 0);
}

static void task_id_floor_splits_tasks_by_creation_time(void **state) {
  (void)state;
  struct task_id_generator generator;
  task_id_generator_init(&generator);
  char before[TASK_ID_LENGTH + 1], at[TASK_ID_LENGTH + 1], floor[TASK_ID_LENGTH + 1];
  assert_int_equal(task_id_next(&generator, 1795000000999, before), 0);
  assert_int_equal(task_id_next(&generator, 1795000001000, at), 0);
  task_id_floor(1795000001000, floor);
  assert_true(task_id_valid(floor, TASK_ID_LENGTH));
  assert_int_equal(task_id_time_ms(floor), 1795000001000);
  assert_true(strcmp(before, floor) < 0);
  assert_true(strcmp(floor, at) <= 0);
  /* A retention longer than the epoch is old: nothing was created before it. */
  task_id_floor(-86400000, floor);
  assert_string_equal(floor, "00000000000000000000000000");
}

static void task_id_rejects_bad_shapes(void **state) {
  (void)state;
  assert_false(task_id_valid("01M87BCTXNBXVP8BSWWYX7577", 25));
  assert_false(task_id_valid("01M87BCTXNBXVP8BSWWYX7577RR", 27));
  assert_false(task_id_valid("01M87BCTXNBXVP8BSWWYX7577U", 26)); /* U is not Crockford */
  assert_false(task_id_valid("81M87BCTXNBXVP8BSWWYX7577R", 26)); /* over 128 bits */
  assert_false(task_id_valid("01m87bctxnbxvp8bswwyx7577r", 26));
  assert_true(task_id_valid("01M87BCTXNBXVP8BSWWYX7577R", 26));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(task_id_has_ulid_shape),
      cmocka_unit_test(task_id_increases_within_one_millisecond),
      cmocka_unit_test(task_id_increases_when_clock_steps_back),
      cmocka_unit_test(task_id_sorts_by_time),
      cmocka_unit_test(task_id_rejects_bad_shapes),
      cmocka_unit_test(task_id_floor_splits_tasks_by_creation_time),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
