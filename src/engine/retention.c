/* retention.c — rounds of deleting old finished tasks in bounded pieces (retention.h). */
#include "engine/retention.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

#include <stdlib.h>

enum {
  RETENTION_FIRST_ROUND_MS = 1000,
  RETENTION_ROUND_MS = 60 * 1000,
  RETENTION_PIECE_ROWS = 5000, /* rows one writer job deletes at most (about) */
};

static void retention_on_timer(uv_timer_t *timer);

static void retention_on_piece(struct store_job *job) {
  struct retention *retention = job->context;
  (*retention->jobs_in_flight)--;
  retention->round_pruned += (int64_t)job->pruned;
  bool more = job->result == 0 && job->prune_more;
  if (job->result)
    log_error("tasks.prune", "deleting old tasks failed: %s (tried again next round)",
              cdr_error_message(job->result));
  else if (!more && retention->round_pruned > 0)
    log_info("tasks.pruned", "deleted %lld finished tasks older than %lld days",
             (long long)retention->round_pruned,
             (long long)(retention->keep_ms / (24 * 3600 * 1000LL)));
  if (!more)
    retention->round_pruned = 0;
  arena_release(&job->arena);
  free(job);
  if (!retention->stopping)
    uv_timer_start(&retention->timer, retention_on_timer, more ? 0 : RETENTION_ROUND_MS, 0);
}

static void retention_on_timer(uv_timer_t *timer) {
  struct retention *retention = timer->data;
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job) {
    uv_timer_start(&retention->timer, retention_on_timer, RETENTION_ROUND_MS, 0);
    return;
  }
  arena_init(&job->arena, 1024);
  job->kind = STORE_JOB_PRUNE;
  job->context = retention;
  job->done = retention_on_piece;
  job->reply_to = retention->inbox;
  job->prune_before_ms = clock_now_ms() - retention->keep_ms;
  job->limit = RETENTION_PIECE_ROWS;
  (*retention->jobs_in_flight)++;
  store_worker_submit(retention->writer, job);
}

void retention_start(struct retention *retention, uv_loop_t *loop, struct mailbox *inbox,
                     struct store_worker *writer, _Atomic size_t *jobs_in_flight,
                     int64_t retention_days) {
  *retention = (struct retention){.writer = writer,
                                  .inbox = inbox,
                                  .jobs_in_flight = jobs_in_flight,
                                  .keep_ms = retention_days * 24 * 3600 * 1000};
  uv_timer_init(loop, &retention->timer);
  retention->timer.data = retention;
  if (retention_days > 0)
    uv_timer_start(&retention->timer, retention_on_timer, RETENTION_FIRST_ROUND_MS, 0);
}

void retention_stop(struct retention *retention) {
  retention->stopping = true;
  uv_timer_stop(&retention->timer);
}
