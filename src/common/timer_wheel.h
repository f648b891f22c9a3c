/* timer_wheel.h — one hashed timer wheel for every timer of a loop: heartbeats, link timeouts,
 * retries, batching deadlines. Starting and stopping a timer is O(1) and allocates nothing (the
 * timer is embedded in its owner), so tens of thousands of connections cost one uv_timer, not one
 * each. Timers fire at tick granularity, never early, at most one tick late once advanced.
 * Not thread-safe: one loop owns a wheel. */
#ifndef CDR_TIMER_WHEEL_H
#define CDR_TIMER_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TIMER_WHEEL_SLOTS = 512 };

struct wheel_timer;
typedef void (*wheel_timer_cb)(struct wheel_timer *timer);

/* Embed in the owner; recover the owner with CONTAINER_OF (common/list.h) in the callback. */
struct wheel_timer {
  struct wheel_timer *next, *prev; /* slot list; NULL when not armed */
  uint64_t expires;                /* tick at which it fires */
  wheel_timer_cb fire;
};

struct timer_wheel {
  struct wheel_timer slots[TIMER_WHEEL_SLOTS]; /* list heads */
  uint64_t tick;                               /* last tick processed */
  uint64_t tick_ms;                            /* ms per tick */
  size_t armed;                                /* timers waiting */
};

/* Prepares an empty wheel whose ticks are tick_ms long, starting at now_ms. */
void timer_wheel_init(struct timer_wheel *wheel, uint64_t tick_ms, uint64_t now_ms);

/* Arms timer to call fire after delay_ms (rounded up to whole ticks, at least one). Re-arms a timer
 * that is already armed. */
void timer_wheel_start(struct timer_wheel *wheel, struct wheel_timer *timer, uint64_t delay_ms,
                       wheel_timer_cb fire);

/* Disarms timer; harmless when it is not armed. */
void timer_wheel_stop(struct timer_wheel *wheel, struct wheel_timer *timer);

/* True while timer waits to fire. */
bool timer_wheel_armed(const struct wheel_timer *timer);

/* Fires every timer due at or before now_ms (in tick order when less than one turn of the wheel
 * has passed). Callbacks may start and stop any
 * timer, including the one firing. */
void timer_wheel_advance(struct timer_wheel *wheel, uint64_t now_ms);

#endif
