/* alerts.h — the alert webhook: events operators get paged for (a node offline or back, a node's
 * backlog above a threshold for too long, a callback given up, store errors) are POSTed as JSON to
 * alerts.url, signed like callbacks. Alerts are deduplicated per (kind, subject): within
 * alerts.window_s of a sent alert, repeats are only counted; when the window ends the count goes
 * out (with the last repeat's message) in one alert, so a flapping node pages once per window and
 * no repeat goes unreported. Best effort: a failed POST is
 * logged, not retried. Fabric loop only. */
#ifndef CDR_ALERTS_H
#define CDR_ALERTS_H

struct fabric;
struct alerts;

/* Creates the alerter of fabric; with no alerts.url configured it only logs. 0 or CDR_ENOMEM. */
int alerts_create(struct fabric *fabric, struct alerts **out);

/* Raises an alert of kind ("node_offline") about subject ("edge-7") with a message for people. */
void alerts_raise(struct alerts *alerts, const char *kind, const char *subject,
                  const char *message);

/* Stops sending; frees everything once libuv lets go. */
void alerts_destroy(struct alerts *alerts);

#endif
