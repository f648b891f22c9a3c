/* agent_metrics.h — the agent's optional local HTTP endpoint: GET /metrics in the Prometheus text
 * format (agent_stats.h), served by libh2o on the agent's own loop. Loop thread only. */
#ifndef CDR_AGENT_METRICS_H
#define CDR_AGENT_METRICS_H

#include <sys/socket.h>
#include <uv.h>

struct agent_metrics;

/* Listens on address; cache names the cache kind in labels. Returns 0 or a negative libuv
 * error. */
int agent_metrics_start(uv_loop_t *loop, const struct sockaddr_storage *address, const char *cache,
                        struct agent_metrics **out);

/* Stops listening; once open scrapes finished (at most 2 s), stops the loop. */
void agent_metrics_stop(struct agent_metrics *metrics);

/* Releases what is left once the loop has run its close callbacks. */
void agent_metrics_free(struct agent_metrics *metrics);

#endif
