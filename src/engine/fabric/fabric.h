/* fabric/ — the agent fabric: the engine's side of every agent link, the node registry, the
 * planner that splits accepted tasks per node, the per-node queues and the recording of results.
 * fabric.c: the thread, loop, registry, recovery at start and the ordered stop; fabric_link.c:
 * agent connections, the only file that sees the wire's Results and sends Work; fabric_plan.c:
 * tasks in memory and their plans; fabric_dispatch.c: windows, queues, Work frames;
 * fabric_results.c: results and progress saves; fabric_retry.c: retries and deadlines;
 * fabric_dedup.c: merging identical purges; fabric_notify.c: its callbacks and alerts;
 * node_tokens.c, agent_auth.c: who may connect. Its files share fabric_internal.h.
 * May include its own headers, engine/notify/, engine/store_worker.h, engine/stats.h,
 * engine/task_json.h, engine/engine_config.h, store/, model/, proto/ and common/ — never the API
 * or the server (scripts/check-layers).
 *
 * The fabric runs on its own thread and libuv loop. Other threads talk to it only by posting
 * store_jobs to it (fabric_post); it answers through the job's reply mailbox. Its state survives
 * a restart through the store: nodes, plans and per-(task, node) results. */
#ifndef CDR_FABRIC_H
#define CDR_FABRIC_H

#include "engine/engine_config.h"
#include "engine/store_worker.h"

struct fabric;

/* What a STORE_JOB_FABRIC job asks for (job->fabric_request). */
enum fabric_request {
  FABRIC_TASK_ACCEPTED, /* job->task was committed: plan and run it; the fabric keeps the job */
  FABRIC_TASK_CANCELED, /* job->task_id was canceled: drop its queued work; the fabric frees it */
  FABRIC_NODES,         /* answer job->answer = json_t array of nodes, reply with on_reply */
  FABRIC_STATS,         /* answer job->answer = json_t object of gauges, reply with on_reply */
  FABRIC_NODE_REMOVE,   /* remove node job->node_id: its pending items fail with node_removed;
                           reply with on_reply (CDR_ENODE_NOT_FOUND if unknown) */
};

/* Whether name[0..len) is a node id, group or cache kind as a Hello may name them: 1..max of
 * A-Z a-z 0-9 . _ - (so every node id an agent registers can be named in a path to remove it). */
bool fabric_name_valid(const char *name, size_t len, size_t max);

/* Loads nodes and unfinished tasks from the store in data_dir, binds the agent listener and starts
 * the fabric thread; store writes go to writer. Returns 0, or a negative code after logging why. */
int fabric_start(const struct engine_config *config, struct store_worker *writer,
                 struct fabric **out);

/* Hands job to the fabric (any thread); see enum fabric_request for who owns it afterwards. */
void fabric_post(struct fabric *fabric, struct store_job *job);

/* Closes agent links, saves every result received, stops the thread and frees the fabric. The
 * store writer must still be running. Main thread. */
void fabric_stop(struct fabric *fabric);

#endif
