/* fabric_notify.c — the fabric's side of notify/: creates the callback deliverer and the alerter on
 * the fabric's loop, hands them a finished task's summary, and saves each callback attempt through
 * the store writer. */
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/notify/alerts.h"
#include "engine/notify/callback.h"
#include "engine/task_json.h"

#include <stdlib.h>
#include <string.h>

static void fabric_on_callback_saved(struct store_job *job) {
  struct fabric *fabric = job->context;
  fabric->jobs_in_flight--;
  if (job->result)
    log_error("callback.save", "callback attempt of task %s could not be saved: %s", job->task_id,
              cdr_error_message(job->result));
  arena_release(&job->arena);
  free(job);
}

static void fabric_save_callback(void *context, const char *task_id,
                                 const struct callback_attempt *attempt,
                                 enum callback_state state) {
  struct fabric *fabric = context;
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job) {
    log_error("callback.save", "out of memory: a callback attempt of task %s went unsaved",
              task_id);
    return;
  }
  job->kind = STORE_JOB_CALLBACK;
  job->context = fabric;
  job->done = fabric_on_callback_saved;
  snprintf(job->task_id, sizeof(job->task_id), "%s", task_id);
  arena_init(&job->arena, 4096);
  job->callback_attempt = *attempt;
  job->callback_attempt.error = attempt->error ? arena_strdup(&job->arena, attempt->error) : NULL;
  job->callback_state = state;
  fabric_submit(fabric, job);
}

int fabric_notify_create(struct fabric *fabric) {
  struct notify_env env = {
      .loop = &fabric->loop, .wheel = &fabric->wheel, .config = fabric->config};
  int rc = alerts_create(&env, &fabric->alerts);
  if (!rc)
    rc = callbacks_create(&env, fabric->alerts, fabric_save_callback, fabric, &fabric->callbacks);
  return rc;
}

void fabric_callback_deliver(struct fabric *fabric, const struct task *task) {
  if (!task->callback || !fabric->callbacks)
    return;
  json_t *summary = task_json_summary(task);
  if (summary)
    json_object_del(summary, "callback_delivery"); /* the receiver gets the task, not our log */
  char *body = summary ? json_dumps(summary, JSON_COMPACT) : NULL;
  json_decref(summary);
  callbacks_deliver(fabric->callbacks, task->id, task->callback, body,
                    task->callback_attempt_count);
}

void fabric_notify_destroy(struct fabric *fabric) {
  if (fabric->callbacks)
    callbacks_destroy(fabric->callbacks);
  fabric->callbacks = NULL;
  if (fabric->alerts)
    alerts_destroy(fabric->alerts);
  fabric->alerts = NULL;
}
