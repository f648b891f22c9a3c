/* test_rate.c — sliding-window rates and histograms. */
#include "unit.h"

#include "common/rate.h"

#include <stdlib.h>

static void rate_sums_recent_seconds_only(void **state) {
  (void)state;
  struct rate *rate = calloc(1, sizeof(*rate));
  rate_add(rate, 1000, 5);
  rate_add(rate, 1000, 1);
  rate_add(rate, 1030, 2);
  rate_add(rate, 1059, 3);
  assert_int_equal(rate_sum(rate, 1059, 60), 11);
  assert_int_equal(rate_sum(rate, 1059, 30), 5);
  assert_int_equal(rate_sum(rate, 1060, 60), 5); /* second 1000 has left the minute */
  assert_int_equal(rate->total, 11);
  free(rate);
}

static void rate_reuses_buckets_after_a_full_turn(void **state) {
  (void)state;
  struct rate *rate = calloc(1, sizeof(*rate));
  rate_add(rate, 100, 7);
  rate_add(rate, 100 + RATE_SECONDS, 1); /* same bucket, 15 minutes later */
  assert_int_equal(rate_sum(rate, 100 + RATE_SECONDS, RATE_SECONDS), 1);
  assert_int_equal(rate->total, 8);
  free(rate);
}

static void histogram_buckets_by_upper_bound(void **state) {
  (void)state;
  struct histogram histogram = {0};
  histogram_observe(&histogram, 400);     /* 0.4 ms */
  histogram_observe(&histogram, 1000);    /* exactly 1 ms */
  histogram_observe(&histogram, 7000);    /* 7 ms */
  histogram_observe(&histogram, 5000000); /* 5 s */
  assert_int_equal(histogram.buckets[0], 1);
  assert_int_equal(histogram.buckets[1], 1);
  assert_int_equal(histogram.buckets[4], 1);
  assert_int_equal(histogram.buckets[HISTOGRAM_BUCKETS - 1], 1);
  assert_int_equal(histogram.count, 4);
  assert_int_equal(histogram.sum_us, 5008400);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rate_sums_recent_seconds_only),
      cmocka_unit_test(rate_reuses_buckets_after_a_full_turn),
      cmocka_unit_test(histogram_buckets_by_upper_bound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
