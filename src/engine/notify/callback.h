/* callback.h — delivery of task callbacks: when a task has finished (and that is on disk), its
 * summary JSON is POSTed to the task's callback URL, signed (webhook.h), through libcurl multi on
 * the env's loop. A failed delivery is retried with exponential backoff and jitter for
 * callbacks.retry_window_s; every attempt is handed to the save function, so GET /v1/tasks/{id}
 * shows the history and a restart resumes deliveries still pending. Requests to internal addresses
 * (loopback, private, link-local) are refused at connect time unless listed in
 * callbacks.allow_internal. One loop only: every call comes from env->loop's thread. */
#ifndef CDR_CALLBACK_H
#define CDR_CALLBACK_H

#include "engine/notify/notify.h"
#include "model/task.h"

#include <stddef.h>

struct alerts;
struct callbacks;

/* Records one attempt of task_id's delivery (attempt->error is valid during the call only) and
 * the delivery's state after it. */
typedef void (*callbacks_save_fn)(void *context, const char *task_id,
                                  const struct callback_attempt *attempt,
                                  enum callback_state state);

/* Creates the deliverer on env; a delivery given up is raised on alerts (NULL: only logged).
 * 0 or CDR_ENOMEM. */
int callbacks_create(const struct notify_env *env, struct alerts *alerts, callbacks_save_fn save,
                     void *save_context, struct callbacks **out);

/* Starts delivering body (the task's summary JSON, taken over: malloc'd) for task_id to url;
 * attempts_before counts the attempts made before a restart. */
void callbacks_deliver(struct callbacks *callbacks, const char *task_id, const char *url,
                       char *body, int64_t attempts_before);

/* Deliveries not yet finished. */
size_t callbacks_pending(const struct callbacks *callbacks);

/* Stops every delivery (still pending in the store, resumed after a restart) and frees it all. */
void callbacks_destroy(struct callbacks *callbacks);

#endif
