/* callback.h — delivery of task callbacks: when a task has finished (and that is on disk), its
 * summary JSON is POSTed to the task's callback URL, signed, through libcurl multi on the fabric's
 * loop. A failed delivery is retried with exponential backoff and jitter for
 * callbacks.retry_window_s; every attempt is saved, so GET /v1/tasks/{id} shows the history and a
 * restart resumes deliveries still pending. Requests to internal addresses (loopback, private,
 * link-local) are refused at connect time unless listed in callbacks.allow_internal.
 *
 * Signature (docs/API.md): X-Cdnrefresh-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over
 * "<t>.<body>" keyed with callbacks.secret>. Fabric loop only. */
#ifndef CDR_CALLBACK_H
#define CDR_CALLBACK_H

#include "model/task.h"

#include <stddef.h>

struct fabric;
struct callbacks;

/* Creates the deliverer of fabric (its loop, wheel, config and store writer). 0 or CDR_ENOMEM. */
int callbacks_create(struct fabric *fabric, struct callbacks **out);

/* Starts delivering task's callback (task->callback set, task final). Copies what it needs. */
void callbacks_deliver(struct callbacks *callbacks, const struct task *task);

/* Deliveries not yet finished. */
size_t callbacks_pending(const struct callbacks *callbacks);

/* Stops every delivery (still pending in the store, resumed after a restart) and frees it all;
 * closed(context) runs once libuv has let go. */
void callbacks_destroy(struct callbacks *callbacks, void (*closed)(void *context), void *context);

/* Computes the signature header value for body sent at unix time t into out (out_size >= 96). */
void callbacks_sign(const char *secret, int64_t t, const char *body, size_t body_len, char *out,
                    size_t out_size);

#endif
