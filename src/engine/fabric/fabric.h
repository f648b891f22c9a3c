/* fabric/ — the agent fabric: the engine's side of every agent link, the node registry, the
 * planner that splits accepted tasks per node, each lane's log of tasks that every node's cursor
 * walks, and the recording of results.
 * fabric.c: the thread, loop, opening and the ordered stop; fabric_registry.c: the nodes;
 * fabric_report.c: node pages, stats, the backlog alert; fabric_inbox.c: mail from other
 * threads; fabric_recover.c: the start from the store; fabric_link.c:
 * agent connections, the only file that sees the wire's Results and sends Work; fabric_plan.c:
 * tasks in memory and their plans; fabric_log.c: the logs, cursors and (task, node) records;
 * fabric_dispatch.c: windows, the cursors' walk, Work frames; fabric_marks.c: watermarks;
 * fabric_results.c: results and progress saves; fabric_retry.c: retries and deadlines;
 * fabric_dedup.c: merging identical purges; fabric_notify.c: its callbacks and alerts;
 * node_tokens.c, agent_auth.c: who may connect. Its files share fabric_internal.h.
 * May include its own headers, engine/notify/, engine/store_worker.h, engine/stats.h,
 * engine/task_json.h, engine/engine_config.h, store/, model/, proto/ and common/ — never the API
 * or the server (scripts/check-layers).
 *
 * The fabric runs on its own thread and libuv loop. Other threads talk to it only through its
 * mailbox: a committed task (fabric_accept), a cancel (fabric_cancel) and questions
 * (fabric_ask), answered through the asker's mailbox. Its state survives a restart through the
 * store: nodes, plans and per-(task, node) results. */
#ifndef CDR_FABRIC_H
#define CDR_FABRIC_H

#include "common/mailbox.h"
#include "engine/engine_config.h"
#include "engine/store_worker.h"

#include <jansson.h>

struct fabric;
struct tenant_limits;

enum { FABRIC_NODE_ID_MAX = 64 };

/* What an operator's request asks the fabric. */
enum fabric_question {
  FABRIC_NODES,        /* nodes_page in; answer: a json_t object, GET /v1/nodes's body */
  FABRIC_STATS,        /* answer: a json_t object of the fabric's gauges */
  FABRIC_NODE_REMOVE,  /* remove node_id: its pending items fail with node_removed
                          (result CDR_ENODE_NOT_FOUND when there is no such node) */
  FABRIC_TASK_WAITING, /* what task_waiting.task (planned, read from the store) waits for */
};

struct fabric_query;
typedef void (*fabric_answered_cb)(struct fabric_query *query);

/* A question to the fabric from another loop, allocated by the asker, which it is again once
 * answered runs. */
struct fabric_query {
  struct mail mail;
  struct fabric *fabric;
  enum fabric_question question;
  char node_id[FABRIC_NODE_ID_MAX + 1];  /* FABRIC_NODE_REMOVE */
  struct fabric_nodes_page {             /* FABRIC_NODES: which nodes, in registration order */
    int state;                           /* 0: any, 1: online only, 2: offline only */
    char search[FABRIC_NODE_ID_MAX + 1]; /* "": all; else nodes whose id or a group holds it */
    size_t cursor;                       /* registry position to start at (a next_cursor) */
    size_t limit;                        /* nodes on the page at most */
  } nodes_page;
  struct fabric_task_waiting {
    struct store_job *job;      /* the asker's read of the task (job->task), which this completes */
    struct task_waiting answer; /* what the fabric says */
    bool found;                 /* the task is in the fabric and waits for some node */
  } task_waiting;
  struct mailbox *reply_to; /* the asker's loop, where answered runs */
  fabric_answered_cb answered;
  void *owner;         /* the asker's: its pending request (NULL once the client has gone) */
  const void *context; /* the asker's: what it renders the answer as */
  int result;          /* 0 or a negative cdr code */
  json_t *answer;      /* FABRIC_NODES, FABRIC_STATS: the asker's to free */
};

/* Whether name[0..len) is a node id, group or cache kind as a Hello may name them: 1..max of
 * A-Z a-z 0-9 . _ - (so every node id an agent registers can be named in a path to remove it). */
bool fabric_name_valid(const char *name, size_t len, size_t max);

/* Loads nodes and unfinished tasks from the store in data_dir, binds the agent listener and starts
 * the fabric thread; store writes go to writer. Returns 0, or a negative code after logging why. */
int fabric_start(const struct engine_config *config, struct store_worker *writer,
                 struct fabric **out);

/* Hands the fabric job, whose task (job->task, in job->arena) is committed, to plan and run; the
 * fabric owns the job from here (any thread). */
void fabric_accept(struct fabric *fabric, struct store_job *job);

/* Tells the fabric that task was canceled (the store says so already, and task is what it read
 * back: id, type and plan): its queued work is dropped (any thread). */
void fabric_cancel(struct fabric *fabric, const struct task *task);

/* Asks the fabric query->question; query->answered(query) runs on query->reply_to's loop with
 * result and answer set (any thread). */
void fabric_ask(struct fabric *fabric, struct fabric_query *query);

/* Closes agent links, saves every result received, stops the thread and frees the fabric. The
 * store writer must still be running. Main thread. */
void fabric_stop(struct fabric *fabric);
/* The backlog in memory (limits.max_unfinished_results): (URL, node) results the fabric's tasks
 * in memory still wait for, and an estimate for the tasks accepted and not yet planned. The
 * tasks parked in the store for offline nodes are not in it. Any thread. */
int64_t fabric_backlog(const struct fabric *fabric);
/* The part of it that is tenant's tasks' (struct tenant_limits: backlog + charged). Any thread. */
int64_t fabric_tenant_backlog(const struct tenant_limits *tenant);
/* How many tenants have tasks in the fabric that wait for results, as of its latest tick. */
int64_t fabric_tenants_waiting(const struct fabric *fabric);
/* Adds an accepted task's estimated results (targets × nodes registered) to the backlog, and to
 * its tenant's, until the fabric plans it, and returns the estimate, which the caller keeps in
 * job->backlog_charge (or gives back with fabric_backlog_refund when the task is not stored).
 * Any thread. */
int64_t fabric_backlog_charge(struct fabric *fabric, struct tenant_limits *tenant, size_t targets);
void fabric_backlog_refund(struct fabric *fabric, struct tenant_limits *tenant, int64_t charge);
/* The backlog in the store (limits.max_parked_targets): the targets of the tasks parked there
 * that only offline nodes owe, as of the fabric's latest tick (a tenant's part: struct
 * tenant_limits: parked). Any thread. */
int64_t fabric_parked(const struct fabric *fabric);
/* How many tenants have tasks parked, as of the fabric's latest tick. */
int64_t fabric_tenants_parking(const struct fabric *fabric);

#endif
