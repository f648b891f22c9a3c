/* timer_wheel.c — hashed timer wheel: slot = expiry tick modulo the slot count. */
#include "common/timer_wheel.h"

#include <assert.h>

static void timer_wheel_unlink(struct wheel_timer *timer) {
  timer->prev->next = timer->next;
  timer->next->prev = timer->prev;
  timer->next = timer->prev = NULL;
}

void timer_wheel_init(struct timer_wheel *wheel, uint64_t tick_ms, uint64_t now_ms) {
  assert(tick_ms > 0);
  for (size_t i = 0; i < TIMER_WHEEL_SLOTS; i++)
    wheel->slots[i].next = wheel->slots[i].prev = &wheel->slots[i];
  wheel->tick_ms = tick_ms;
  wheel->tick = now_ms / tick_ms;
  wheel->armed = 0;
}

bool timer_wheel_armed(const struct wheel_timer *timer) { return timer->next != NULL; }

void timer_wheel_stop(struct timer_wheel *wheel, struct wheel_timer *timer) {
  if (!timer_wheel_armed(timer))
    return;
  timer_wheel_unlink(timer);
  wheel->armed--;
}

void timer_wheel_start(struct timer_wheel *wheel, struct wheel_timer *timer, uint64_t delay_ms,
                       wheel_timer_cb fire) {
  timer_wheel_stop(wheel, timer);
  uint64_t ticks = (delay_ms + wheel->tick_ms - 1) / wheel->tick_ms;
  timer->expires = wheel->tick + (ticks ? ticks : 1);
  timer->fire = fire;
  struct wheel_timer *head = &wheel->slots[timer->expires % TIMER_WHEEL_SLOTS];
  timer->prev = head->prev;
  timer->next = head;
  head->prev->next = timer;
  head->prev = timer;
  wheel->armed++;
}

/* Moves the timers of one slot that are due by tick onto the due list. */
static void timer_wheel_collect(struct timer_wheel *wheel, size_t slot, uint64_t tick,
                                struct wheel_timer *due) {
  struct wheel_timer *head = &wheel->slots[slot];
  for (struct wheel_timer *timer = head->next, *next; timer != head; timer = next) {
    next = timer->next;
    if (timer->expires > tick)
      continue; /* a later turn of the wheel */
    timer_wheel_unlink(timer);
    timer->prev = due->prev;
    timer->next = due;
    due->prev->next = timer;
    due->prev = timer;
  }
}

void timer_wheel_advance(struct timer_wheel *wheel, uint64_t now_ms) {
  uint64_t target = now_ms / wheel->tick_ms;
  while (wheel->tick < target && wheel->armed > 0) {
    /* After a long pause, visiting each slot once finds everything due. */
    uint64_t steps = target - wheel->tick;
    uint64_t first = steps >= TIMER_WHEEL_SLOTS ? target - TIMER_WHEEL_SLOTS + 1 : wheel->tick + 1;
    struct wheel_timer due = {.next = &due, .prev = &due};
    for (uint64_t t = first; t <= target; t++)
      timer_wheel_collect(wheel, t % TIMER_WHEEL_SLOTS, target, &due);
    wheel->tick = target;
    /* Fire after collecting, so callbacks that re-arm land in the future. */
    while (due.next != &due) {
      struct wheel_timer *timer = due.next;
      timer_wheel_unlink(timer);
      wheel->armed--;
      timer->fire(timer);
    }
  }
  if (wheel->tick < target)
    wheel->tick = target;
}
