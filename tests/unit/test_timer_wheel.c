/* test_timer_wheel.c — the hashed timer wheel. */
#include "unit.h"

#include "common/timer_wheel.h"

#include <string.h>

struct probe {
  struct wheel_timer timer;
  int fired;
  uint64_t fired_at; /* ms passed to advance when it fired */
};

static uint64_t now;
static struct timer_wheel wheel;

static void probe_fire(struct wheel_timer *timer) {
  struct probe *p = (struct probe *)timer;
  p->fired++;
  p->fired_at = now;
}

static void advance_to(uint64_t ms) {
  now = ms;
  timer_wheel_advance(&wheel, ms);
}

static void wheel_fires_after_delay_not_before(void **state) {
  (void)state;
  timer_wheel_init(&wheel, 10, 1000);
  struct probe p = {0};
  timer_wheel_start(&wheel, &p.timer, 95, probe_fire);
  for (uint64_t ms = 1000; ms < 1100; ms += 5)
    advance_to(ms);
  assert_int_equal(p.fired, 0);
  advance_to(1100);
  assert_int_equal(p.fired, 1);
  assert_false(timer_wheel_armed(&p.timer));
  advance_to(5000);
  assert_int_equal(p.fired, 1);
}

static void wheel_stop_prevents_firing(void **state) {
  (void)state;
  timer_wheel_init(&wheel, 10, 0);
  struct probe a = {0}, b = {0};
  timer_wheel_start(&wheel, &a.timer, 50, probe_fire);
  timer_wheel_start(&wheel, &b.timer, 50, probe_fire);
  timer_wheel_stop(&wheel, &a.timer);
  timer_wheel_stop(&wheel, &a.timer); /* twice is harmless */
  advance_to(100);
  assert_int_equal(a.fired, 0);
  assert_int_equal(b.fired, 1);
  assert_int_equal(wheel.armed, 0);
}

static void wheel_handles_delays_beyond_one_turn(void **state) {
  (void)state;
  timer_wheel_init(&wheel, 10, 0);
  struct probe far = {0}, near = {0};
  timer_wheel_start(&wheel, &far.timer, 10 * TIMER_WHEEL_SLOTS * 3 + 20, probe_fire);
  timer_wheel_start(&wheel, &near.timer, 20, probe_fire); /* same slot, earlier turn */
  for (uint64_t ms = 0; ms <= 10 * TIMER_WHEEL_SLOTS * 3; ms += 10)
    advance_to(ms);
  assert_int_equal(near.fired, 1);
  assert_int_equal(far.fired, 0);
  advance_to(10 * TIMER_WHEEL_SLOTS * 3 + 20);
  assert_int_equal(far.fired, 1);
}

static void wheel_catches_up_after_a_long_pause(void **state) {
  (void)state;
  timer_wheel_init(&wheel, 10, 0);
  struct probe p[5];
  memset(p, 0, sizeof(p));
  for (int i = 0; i < 5; i++)
    timer_wheel_start(&wheel, &p[i].timer, (uint64_t)(i + 1) * 1000, probe_fire);
  advance_to(100000); /* far more than one turn in one step */
  for (int i = 0; i < 5; i++)
    assert_int_equal(p[i].fired, 1);
}

struct rearming {
  struct wheel_timer timer;
  int fired;
};

static void rearm_fire(struct wheel_timer *timer) {
  struct rearming *r = (struct rearming *)timer;
  if (++r->fired < 3)
    timer_wheel_start(&wheel, timer, 10, rearm_fire);
}

static void wheel_allows_rearming_from_the_callback(void **state) {
  (void)state;
  timer_wheel_init(&wheel, 10, 0);
  struct rearming r = {0};
  timer_wheel_start(&wheel, &r.timer, 10, rearm_fire);
  advance_to(10);
  assert_int_equal(r.fired, 1); /* the re-armed timer waits for the next tick */
  advance_to(20);
  advance_to(30);
  advance_to(40);
  assert_int_equal(r.fired, 3);
  assert_int_equal(wheel.armed, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(wheel_fires_after_delay_not_before),
      cmocka_unit_test(wheel_stop_prevents_firing),
      cmocka_unit_test(wheel_handles_delays_beyond_one_turn),
      cmocka_unit_test(wheel_catches_up_after_a_long_pause),
      cmocka_unit_test(wheel_allows_rearming_from_the_callback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
