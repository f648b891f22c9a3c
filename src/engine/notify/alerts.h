/* alerts.h — the alert webhook: events operators get paged for (a node offline or back, a node's
 * backlog above a threshold for too long, a callback given up, store errors) are POSTed as JSON to
 * alerts.url, signed like callbacks. Alerts are deduplicated per (kind, subject): within
 * alerts.window_s of a sent alert, repeats are only counted; when the window ends the count goes
 * out (with the last repeat's message) in one alert, so a flapping node pages once per window and
 * no repeat goes unreported. Best effort: a failed POST is
 * logged, not retried. One loop only: every call comes from env->loop's thread. */
#ifndef CDR_ALERTS_H
#define CDR_ALERTS_H

#include "engine/notify/notify.h"

struct alerts;

/* Creates the alerter on env; with no alerts.url configured it only logs. 0 or CDR_ENOMEM. */
int alerts_create(const struct notify_env *env, struct alerts **out);

/* Raises an alert (alerts NULL: only logs it) of kind ("node_offline") about subject ("edge-7")
 * with a message for people. */
void alerts_raise(struct alerts *alerts, const char *kind, const char *subject,
                  const char *message);

/* Stops sending; frees everything once libuv lets go. */
void alerts_destroy(struct alerts *alerts);

#endif
