/* retention.h — forgets finished tasks older than tasks.retention_days, so the store does not
 * grow for ever: a round a second after start and then every minute deletes them (with their
 * targets, per-node results, failure details and callback attempts) in pieces of a few thousand
 * rows, each its own writer job, so no piece holds the writer long and other writes go between
 * them. Tasks still running, and finished ones whose callback is still due, are kept.
 * Runs on one API loop (loop thread only). */
#ifndef CDR_RETENTION_H
#define CDR_RETENTION_H

#include "engine/store_worker.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct retention {
  uv_timer_t timer;
  struct store_worker *writer;
  struct mailbox *inbox;          /* where the loop's store jobs come back */
  _Atomic size_t *jobs_in_flight; /* the loop's count, which its shutdown waits on */
  int64_t keep_ms;                /* tasks.retention_days in ms */
  int64_t round_pruned;           /* tasks deleted in the round under way */
  bool stopping;
};

/* Starts the rounds on loop when retention_days > 0 (0 keeps every task). */
void retention_start(struct retention *retention, uv_loop_t *loop, struct mailbox *inbox,
                     struct store_worker *writer, _Atomic size_t *jobs_in_flight,
                     int64_t retention_days);

/* No more pieces after the one in flight, if any. */
void retention_stop(struct retention *retention);

#endif
