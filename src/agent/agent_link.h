/* agent_link.h — the agent's end of the link: dials the engines in turn, says Hello, takes Work
 * into the executor and sends Results back in batches (one frame per loop iteration at most),
 * heartbeats both ways, and reconnects with jittered exponential backoff. Work that was in flight
 * when a link died is answered by the engine sending it again: results of the old link are
 * dropped. */
#ifndef CDR_AGENT_LINK_H
#define CDR_AGENT_LINK_H

#include "agent/agent_config.h"
#include "agent/executor.h"

#include <openssl/ssl.h>

struct agent_link;

/* Starts dialing, over TLS with tls when not NULL (it stays the caller's). on_stop(context) runs
 * once when the link stops, by agent_link_stop or after the engine refused the agent, so the
 * caller can close its own handles. Returns 0 or a negative code. */
int agent_link_start(uv_loop_t *loop, const struct agent_config *config, struct driver *driver,
                     SSL_CTX *tls, void (*on_stop)(void *context), void *context,
                     struct agent_link **out);

/* Graceful stop: takes no new work, lets the cache requests in progress finish and reports them,
 * then stops (at the latest after drain_ms). Work the engine sends meanwhile is left to it: it
 * sends those items again to this node later. A second call stops at once. */
void agent_link_drain(struct agent_link *link, uint64_t drain_ms);

/* Closes the link and the executor; once the caller's handles are closed too, the loop ends. */
void agent_link_stop(struct agent_link *link);

/* The process exit code the link asks for: 1 after a refusal, else 0. */
int agent_link_exit_code(const struct agent_link *link);

/* Frees the link, once the loop has ended. */
void agent_link_destroy(struct agent_link *link);

#endif
