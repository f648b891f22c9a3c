/* test_backoff.c — jittered exponential backoff. */
#include "unit.h"

#include "common/backoff.h"

static void backoff_doubles_up_to_its_maximum_with_jitter(void **state) {
  (void)state;
  for (int round = 0; round < 200; round++) {
    uint64_t first = backoff_delay_ms(100, 5000, 1), third = backoff_delay_ms(100, 5000, 3);
    assert_in_range(first, 50, 150);
    assert_in_range(third, 200, 600);
    assert_in_range(backoff_delay_ms(100, 5000, 0), 50, 150); /* 0 counts as the first */
    assert_in_range(backoff_delay_ms(100, 5000, 10), 2500, 7500);
    assert_in_range(backoff_delay_ms(100, 5000, 4000000), 2500, 7500); /* no shift overflow */
  }
  /* Spread: two hundred draws are not all the same. */
  uint64_t low = UINT64_MAX, high = 0;
  for (int i = 0; i < 200; i++) {
    uint64_t d = backoff_delay_ms(1000, 60000, 2);
    low = d < low ? d : low;
    high = d > high ? d : high;
  }
  assert_true(high - low > 100);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(backoff_doubles_up_to_its_maximum_with_jitter),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
