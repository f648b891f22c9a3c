/* executor.h — runs work items against the local cache: libcurl's multi interface on the agent's
 * libuv loop, keep-alive connections reused, at most `concurrency` requests at once and at most
 * `window` items held. Each item lives in a slot allocated once at start; its buffers grow to the
 * largest URL seen and are then reused, so steady state allocates nothing per item. Blocking
 * driver work (cache directory scans) runs on libuv's thread pool. Loop thread only. */
#ifndef CDR_EXECUTOR_H
#define CDR_EXECUTOR_H

#include "agent/driver.h"

#include <uv.h>

struct executor;

/* Called on the loop for each finished item with the tag given at submit. */
typedef void (*executor_done_cb)(void *context, uint64_t tag, uint64_t item_id,
                                 const struct exec_outcome *outcome);

/* Creates an executor. Returns 0 or CDR_ENOMEM. The driver stays owned by the caller. */
int executor_create(uv_loop_t *loop, struct driver *driver, size_t window, size_t concurrency,
                    long timeout_ms, executor_done_cb done, void *context, struct executor **out);

/* Copies item and starts it (or queues it behind the running ones). tag comes back with the
 * result (the link generation, so results of a dead link are told apart). Returns 0, or
 * CDR_EFRAME_TOO_LARGE when the window is full (the engine overran it) or CDR_ENOMEM. */
int executor_submit(struct executor *executor, const Cdr__WorkItem *item, uint64_t tag);

/* Forgets the items still waiting to start whose tag differs from keep (the link they came on is
 * gone, and the engine sends them again); running and offloaded items finish as usual. */
void executor_drop_waiting(struct executor *executor, uint64_t keep);

/* Items held (running, waiting or offloaded). */
size_t executor_busy(const struct executor *executor);

/* Aborts running requests (their results are not reported) and frees everything once libuv has
 * closed the executor's handles; then calls closed(context) if non-NULL. */
void executor_destroy(struct executor *executor, void (*closed)(void *context));

#endif
