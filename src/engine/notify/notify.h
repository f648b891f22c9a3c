/* notify/ — the webhooks the engine sends: task callbacks (callback.c) and operator alerts
 * (alerts.c), both signed JSON POSTs set up by webhook.c on one libuv loop through curl_uv.
 *
 * The folder knows nothing of who calls it: it is created with a notify_env (the loop and timer
 * wheel it runs on and the engine's settings), and callbacks save their attempts through a
 * function given at creation. It may include common/, model/, engine/engine_config.h and its own
 * headers — never the fabric or the store (scripts/check-layers). */
#ifndef CDR_NOTIFY_H
#define CDR_NOTIFY_H

#include "common/timer_wheel.h"
#include "engine/engine_config.h"

#include <uv.h>

/* What the senders run on. Borrowed: it outlives them. */
struct notify_env {
  uv_loop_t *loop;           /* the single loop every call comes from */
  struct timer_wheel *wheel; /* retries and alert windows */
  const struct engine_config *config;
};

#endif
