/* fabric_internal.h — the agent fabric's state, shared by its files (fabric.c: thread, loop,
 * opening and stop; fabric_registry.c: the nodes; fabric_report.c: node pages and stats;
 * fabric_inbox.c: mail from other threads; fabric_recover.c: the start from the store;
 * fabric_link.c: agent connections; fabric_plan.c: tasks in memory and their plans;
 * fabric_log.c: the lanes' task logs, nodes' cursors and (task, node) records;
 * fabric_dispatch.c: windows, cursors' walk, Work; fabric_results.c: results and progress saves;
 * fabric_marks.c: nodes' watermarks; fabric_backlog.c: the backlog in all and per tenant;
 * fabric_waiting.c: what a task waits for; fabric_park.c: tasks owed only by offline nodes out
 * of memory; fabric_retry.c, fabric_dedup.c, fabric_notify.c).
 * Everything here is touched only on the fabric's loop. */
#ifndef CDR_FABRIC_INTERNAL_H
#define CDR_FABRIC_INTERNAL_H

#include "common/list.h"
#include "common/timer_wheel.h"
#include "engine/fabric/agent_auth.h"
#include "engine/fabric/fabric.h"
#include "engine/fabric/node_tokens.h"
#include "model/item_result.h"
#include "model/tenant.h"
#include "proto/link_conn.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct fabric_node;
struct fabric_task;

/* A node's two lanes: purges, and preloads (never ahead of a purge). */
enum fabric_lane { FABRIC_FAST, FABRIC_SLOW, FABRIC_LANES };

/* One task on one node, held only while the node works on the task (its cursor is on it, or
 * items of it are in flight, waiting for a retry or to be sent again) or while it tells what the
 * plan and the watermarks cannot (kept): the compact result record (2 bits per target) and the
 * send cursor. Every other planned node's results are the task's counters and failure details:
 * pending until its cursor reaches the task, answered once it is released. One allocation with
 * its bitmaps. */
struct fabric_task_node {
  struct fabric_task *task;
  struct fabric_node *node;
  uint8_t *states;   /* item_states_* bitmap */
  uint8_t *verified; /* item_verified_* bitmap */
  size_t next;       /* next target to consider sending */
  int64_t succeeded, failed, unsupported, verified_count;
  uint32_t refs;     /* its items held by slots, followers, the node's redeliver list, retries */
  bool kept;         /* its record is kept in the store: one the plan and watermarks cannot
                        tell (store_task_node in store.h), saved after each of its results;
                        held until its task is freed */
  bool dirty;        /* kept, and changed since it was last saved */
  bool preset;       /* read back at a restart for a node whose cursor has not reached it */
  uint8_t *attempts; /* failed attempts per target, allocated at the first retry (malloc'd) */
  struct list_node link; /* on its task's records */
};

/* A task parked out of memory (fabric_park.c): every node it went to has finished it but
 * offline ones whose cursors have not reached it, and what those need is in the store. It keeps
 * the task's place in its lane's log until one of them reaches it, its deadline passes, it is
 * canceled or one of those nodes is removed; the task is then read back into that place. A
 * task owed only by an offline node costs this and its log entry, not the task. */
struct fabric_parked {
  struct tenant_limits *tenant; /* its part of the backlog, as the task had it */
  int64_t plan_seq;
  int64_t deadline_ms; /* when its time is up (checked by the sweep each second: no timer of its
                          own, which would cost more than the rest of it) */
  char id[TASK_ID_LENGTH + 1];
  uint8_t lane;    /* enum fabric_lane */
  bool loading;    /* a read of it is out */
  bool cancel_due; /* canceled while parked: the cancel applies once it is read back */
  bool stalled;    /* its read failed: tried again by the next sweep only */
  uint32_t target_count;
  uint32_t unreached; /* nodes it waits for, numbers[0..unreached) */
  uint32_t numbers[]; /* their node numbers */
};

/* One lane's log: its tasks in plan order, each at the position it got when it started
 * (fabric_task.log_pos), NULL once freed. An entry is a task, or a parked one (its pointer's low
 * bit set: fabric_log_parked). Positions [base, end) live in a ring. */
struct fabric_log {
  struct fabric_task **entries; /* malloc'd, mask + 1 of them; position p at entries[p & mask] */
  uint64_t mask;
  uint64_t base, end;
};

/* Where a node is in one lane's log: the task it is sending (current, at pos), or the next
 * position to look at. Every planned task before it has been reached (has had a record). */
struct fabric_cursor {
  uint64_t pos;
  struct fabric_task_node *current; /* NULL: pos is not reached yet */
};

struct fabric_failure {
  int64_t index;
  const char *node_id; /* the node's registry entry outlives the task */
  enum item_state state;
  uint32_t http_status;
  char reason[48];
};

struct fabric_task {
  struct fabric *fabric;
  struct task *task; /* with targets, in arena */
  /* its tenant's part of the backlog (fabric_backlog.c); NULL: counted in all only */
  struct tenant_limits *tenant;
  struct arena arena;
  size_t node_count;        /* nodes it is planned onto (the bits of task->plan_nodes) */
  size_t unreached;         /* of them, those whose cursor has not reached it */
  size_t preset_count;      /* records read back for nodes not reached yet */
  uint64_t log_pos;         /* its position in its lane's log */
  bool logged;              /* it has that position */
  struct list_head records; /* struct fabric_task_node.link */
  Cdr__Header **headers;    /* preload headers for work items, in arena */
  size_t header_count;
  uint32_t *dedup_hashes;    /* per target, hashed once for every node (exact-URL purges; in arena;
                                NULL: the task's items are never merged) */
  int64_t in_flight;         /* items sent and not answered, over all nodes */
  bool dirty;                /* progress not saved yet */
  bool state_dirty;          /* its state changed since its last save: saved at once (results.c) */
  bool finished;             /* reached a final state in memory */
  bool callback_due;         /* deliver the callback once the final state is saved */
  bool counted;              /* its pending results are in fabric->pending_items */
  bool records_dirty;        /* some node's record is dirty (most tasks never have one) */
  int saves_in_flight;       /* progress jobs holding a copy of this task's records */
  bool finished_records_due; /* canceled while a save was out: its finished nodes get records
                                once no save is (fabric_records_for_finished) */
  struct fabric_failure *failures; /* unsaved failure details (malloc'd, grows) */
  size_t failure_count, failure_cap;
  struct wheel_timer plan_retry;
  struct wheel_timer deadline; /* fails what is still pending when the task's time is up */
  struct list_head retries;    /* items waiting to be sent again after a failure */
  struct list_node link;       /* on the fabric's list of tasks in memory */
};

/* One failed item waiting for its backoff to pass before it is sent again. */
struct fabric_retry {
  struct wheel_timer timer;
  struct fabric *fabric;
  struct fabric_task_node *task_node;
  size_t index;
  struct list_node link; /* on the task's retries */
};

/* A work item the node holds: which target of which task. */
struct fabric_item_ref {
  struct fabric_task_node *task_node;
  size_t index;
};

struct fabric_slot {
  struct fabric_task_node *task_node;
  size_t index;
  uint32_t generation; /* part of the item id; bumped on reuse so stale results are ignored */
  uint32_t next_free;
  uint32_t dedup_hash; /* its item's dedup hash, while it is in the node's dedup table */
  bool deduped;        /* it is in the table (an exact-URL purge) */
  bool used;
  int64_t sent_ms;                   /* when the item went out */
  struct fabric_item_ref *followers; /* identical purges merged into this one (malloc'd, reused) */
  uint32_t follower_count, follower_cap;
};

struct fabric_link;

/* Sends node (online) a Work frame; 0, or nonzero when the link could not take it (it is then
 * closing, and its items in flight are sent again as its close takes them offline). */
typedef int (*fabric_work_sender)(struct fabric_node *node, const Cdr__Work *work);

struct fabric_node {
  char id[FABRIC_NODE_ID_MAX + 1];
  int64_t number;    /* names it in task plans, for good (store_node.number) */
  char *groups_json; /* malloc'd JSON array */
  char **groups;     /* malloc'd, parsed from groups_json */
  size_t group_count;
  char cache_kind[16];
  char agent_version[32];
  bool packed_work; /* its agent reads exact-URL purges as Work.url_purge_ids / _targets */
  int64_t registered_ms;
  int64_t last_hello_ms;     /* its agent's latest Hello */
  int64_t first_result_ms;   /* its first result of any item, 0 while none (kept in the store) */
  int64_t last_heartbeat_ms; /* last frame from its agent */
  struct fabric_link *link;  /* NULL while offline */
  bool removed;              /* removed by an operator: hidden, planned onto nothing */
  int64_t backlog_since_ms;  /* when its queue went over alerts.backlog_items, 0 if not */
  int64_t saved_below[FABRIC_LANES]; /* its watermarks as the store has them (fabric_marks.c) */
  int64_t open_below[FABRIC_LANES];  /* scratch of fabric_marks_collect */
  bool dispatch_due;   /* on fabric->dispatch_due, sent to at the end of this loop iteration */
  bool marks_pinned;   /* an item it owes was lost to a failed allocation: its watermarks stay
                          where they are until a restart sends that item again */
  size_t forget_waits; /* removed: parked tasks it owes still being read back before it is
                          forgotten (fabric_node_forget) */
  bool save_due;       /* saving its registry entry failed: saved again with the next watermarks */
  bool delete_due;     /* saving its removal failed: the same */
  struct fabric_task_node *scratch;          /* its record of the task being read back or failed */
  struct fabric_cursor cursor[FABRIC_LANES]; /* purges; preloads, never ahead of a purge */
  size_t lane_items[FABRIC_LANES];   /* items each lane has still to send it: its current record's
                                        rest and every planned task ahead of its cursor */
  struct fabric_item_ref *redeliver; /* items in flight when the link died, sent first */
  size_t redeliver_count, redeliver_cap;
  uint32_t window;           /* items its agent takes in flight */
  struct fabric_slot *slots; /* in-flight entries, grown up to the window as work goes out */
  uint32_t slot_count;
  uint32_t free_slot; /* head of the free list; slot_count when none */
  uint32_t in_flight;
  uint64_t done, failed, unsupported; /* results since the engine started */
  uint64_t merged;                    /* purges answered by an identical one already sent (dedup) */
  uint32_t *dedup; /* open addressing over in-flight URL purges: slot + 1, 0 free,
                      UINT32_MAX deleted (malloc'd while online) */
  uint32_t dedup_mask;
  uint32_t dedup_deleted; /* deleted entries; the table is rebuilt past a quarter */
};

struct fabric_link {
  struct link_conn conn;
  struct fabric *fabric;
  struct fabric_node *node;     /* NULL until its Hello is accepted */
  struct wheel_timer heartbeat; /* sends our heartbeat */
  struct wheel_timer liveness;  /* fires when the agent has been silent too long */
  struct list_node all;         /* on fabric->links: every open link, welcomed or not */
  struct list_node pending;     /* on fabric->pending until welcomed */
  char address[48];             /* the peer's numeric IP, read once at accept; "" if unknown */
  bool refused; /* its Hello was refused (or its wrong token waits out the pause for that) */
};

struct fabric {
  const struct engine_config *config;
  struct store_worker *writer;
  uv_loop_t loop;
  pthread_t thread;
  uv_tcp_t listener;
  struct mailbox inbox; /* posted requests and store answers (store jobs) */
  uv_async_t stop;
  uv_timer_t stop_check; /* during stop: waits for links and store writes */
  uint64_t stop_until;   /* loop ms: stop waiting after this */
  bool links_closing;    /* stopping: in-flight work awaited, links closed */
  uv_timer_t tick;       /* drives the wheel */
  uv_check_t dispatch;   /* after each round of I/O: sends the nodes on dispatch_due their work */
  struct fabric_node **dispatch_due; /* malloc'd */
  size_t dispatch_due_count, dispatch_due_cap;
  struct timer_wheel wheel;
  struct wheel_timer flush; /* saves progress shortly after results arrive */
  struct wheel_timer marks; /* saves nodes' watermarks with the progress, every FABRIC_MARKS_MS */
  int64_t plan_seq;         /* the latest task's plan_seq */
  struct fabric_log log[FABRIC_LANES];
  struct list_head spare_records;  /* freed small records, reused before malloc (fabric_log.c) */
  int64_t pending_items;           /* results its tasks in memory wait for */
  uint64_t results_unpublished[2]; /* failed (and unsupported), succeeded results recorded since
                                      the last tick, for engine_stats' rates */
  size_t progress_jobs;            /* progress saves not yet answered by the store */
  size_t stats_steps; /* what the latest stats took to keep the deepest queues: the unit
                         test checks it grows with the fleet, not with its square */
  bool marks_due;     /* watermarks wait for the saves out to be answered (and new saves with
                         them, so a slow writer cannot hold the watermarks back for good) */
  int64_t marks_collected_ms;        /* clock ms of the latest collection of watermarks to save */
  int64_t marks_current_ms;          /* clock ms the saved watermarks were last current at: the
                                        collection of the latest that were saved, or found saved */
  size_t parked_count;               /* tasks parked out of memory (fabric_park.c) */
  _Atomic int64_t published_backlog; /* pending_items as of the latest tick, for other threads */
  _Atomic int64_t charged_backlog;   /* estimates of accepted tasks not yet planned */
  _Atomic int64_t nodes_registered;  /* registered and not removed, for the estimates */
  _Atomic int64_t tenants_waiting;   /* tenants with a backlog, as of the latest tick */
  int64_t parked_targets;            /* the targets of those tasks */
  _Atomic int64_t published_parked;  /* parked_targets as of the latest tick */
  _Atomic int64_t tenants_parking;   /* tenants with tasks parked, as of the latest tick */
  struct tenant_limits **tenants;    /* every tenant counted in the backlog (malloc'd) */
  size_t tenant_count, tenant_cap;
  uint64_t drained_until_ms;  /* loop ms: the tenants' drained counts are published then */
  int64_t node_numbers;       /* node numbers given so far (the next one to give) */
  struct fabric_node **nodes; /* registry, malloc'd */
  size_t node_count, node_cap;
  struct list_head tasks;   /* in memory: running, or waiting for a save (fabric_task.link) */
  struct list_head links;   /* open links (struct fabric_link.all) */
  struct list_head pending; /* links not yet welcomed (struct fabric_link.pending) */
  int64_t pending_evicted;  /* waiting connections closed for the caps since last logged */
  int64_t pending_logged_ms;
  struct callbacks *callbacks; /* NULL once stopping */
  struct alerts *alerts;       /* NULL once stopping */
  struct wheel_timer backlog;  /* checks node queue depths every second */
  size_t jobs_in_flight;       /* store jobs not yet back */
  bool stopping;
  Cdr__WorkItem *work_items; /* reused to build Work frames */
  Cdr__WorkItem **work_pointers;
  size_t work_full;       /* items of the frame being built as messages */
  uint64_t *work_url_ids; /* ... and as packed exact-URL purges (packed_work nodes) */
  char **work_url_targets;
  size_t work_packed;
  size_t work_capacity;
  fabric_work_sender send_work; /* how Work frames leave: fabric_link_send_work */
  struct item_result *results;  /* reused to convert Results frames (fabric_link.c) */
  size_t result_cap;
  struct agent_auth auth;          /* wrong agent tokens seen */
  struct node_tokens *node_tokens; /* NULL without agents.node_tokens_file */
  SSL_CTX *tls;                    /* NULL: agents connect over plain TCP */
  struct link_shared link_buffers; /* the working buffers of every link */
};

/* fabric.c */
/* fabric_start without the thread: state, store recovery and the bound listener; the caller runs
 * the loop (fabric_run) on a thread of its own choosing, as the unit tests do on theirs. */
int fabric_open(const struct engine_config *config, struct store_worker *writer,
                struct fabric **out);
/* Runs the fabric's loop until a stop (fabric->stop sent) has finished, then closes it. */
void fabric_run(struct fabric *fabric);
/* Frees a fabric whose loop has ended. */
void fabric_free(struct fabric *fabric);
void fabric_submit(struct fabric *fabric, struct store_job *job);

/* fabric_registry.c */
struct fabric_node *fabric_node_find(struct fabric *fabric, const char *id);
struct fabric_node *fabric_node_register(struct fabric *fabric, const Cdr__Hello *hello);
/* The registry entry the store kept, back in the registry (number, groups, watermarks, removed
 * or not); NULL when out of memory. */
struct fabric_node *fabric_node_restore(struct fabric *fabric, const struct store_node *entry);
/* Frees node and what it owns (fabric_free). */
void fabric_node_free(struct fabric_node *node);
/* Publishes how many nodes are registered and not removed, for fabric_backlog_charge. */
void fabric_nodes_count(struct fabric *fabric);
/* Writes node's registry entry (groups, cache, version, times) to the store. */
void fabric_node_save(struct fabric *fabric, const struct fabric_node *node);
/* Saves again the registry entries and removals whose save failed (each second). */
void fabric_nodes_save_due(struct fabric *fabric);
/* An operator removed node: its link closes, its pending items fail with node_removed (once the
 * parked tasks it owes are read back). */
void fabric_node_remove(struct fabric *fabric, struct fabric_node *node);
/* Ends what a removed node owed: its pending items fail node_removed, its redeliveries are
 * dropped and its cursors pass every task, so no task waits for it. */
void fabric_node_forget(struct fabric *fabric, struct fabric_node *node);

/* fabric_report.c */
/* GET /v1/nodes: one page of the registry, with the fleet's counts. NULL when out of memory. */
json_t *fabric_nodes_json(struct fabric *fabric, const struct fabric_nodes_page *page);
/* The fabric's part of GET /v1/stats. NULL when out of memory. */
json_t *fabric_stats_json(struct fabric *fabric);
/* Checks each second for nodes whose queue stays deeper than alerts.backlog_items. */
void fabric_queue_alerts_start(struct fabric *fabric);

/* fabric_recover.c */
/* Reads the registry and every unfinished task back from the store into the logs (cursors at the
 * watermarks, removed nodes' debts ended), and resumes the callbacks still due. 0 or an error
 * (logged), after which what it read is the fabric's to free (fabric_free). */
int fabric_recover(struct fabric *fabric);

/* fabric_notify.c */
/* Creates fabric->alerts and fabric->callbacks on the fabric's loop. 0 or CDR_ENOMEM. */
int fabric_notify_create(struct fabric *fabric);
/* Delivers the callback of task (final and saved), if it has one and the fabric is not stopping. */
void fabric_callback_deliver(struct fabric *fabric, const struct task *task);
/* Stops the deliveries (they stay pending in the store) and the alerter; both become NULL. */
void fabric_notify_destroy(struct fabric *fabric);

/* fabric_link.c */
/* The connection to close so that one more from address may wait for its Welcome, or NULL when
 * there is room: at most pending_max wait in all and per_address_max from one address, so peers
 * that never authenticate hold a bounded amount of memory. Past a cap the oldest waiting
 * connection goes — from address, when that is the cap reached — instead of the new one being
 * refused: sockets that send nothing, reopened as fast as they are closed, cannot keep out a real
 * agent, which sends its Hello at once. *from_address counts those waiting from address. */
struct fabric_link *fabric_pending_victim(const struct list_head *pending, const char *address,
                                          size_t pending_max, size_t per_address_max,
                                          size_t *from_address);
void fabric_link_accept(struct fabric *fabric);
/* The fabric's send_work: the frame goes out on node's link. */
int fabric_link_send_work(struct fabric_node *node, const Cdr__Work *work);
void fabric_link_close_all(struct fabric *fabric);

/* fabric_plan.c */
void fabric_task_adopt(struct fabric *fabric, struct store_job *job);
/* Resumes an unfinished task read back from the store, with the per-node rows kept for it and
 * its failure details: what each node already finished is recorded, the rest is sent. */
void fabric_task_recover(struct fabric *fabric, struct task *task, struct store_task_node *saved,
                         size_t saved_count, const struct store_failure *failures,
                         size_t failure_count);
/* Cancels task (as the store has it: id, type, planned, plan_seq) in memory, parked or not. */
void fabric_task_cancel(struct fabric *fabric, const struct task *task);
/* Cancels task, found. */
void fabric_task_cancel_one(struct fabric *fabric, struct fabric_task *task);
/* Puts the task read back for parked (at pos of its lane's log) in its place; false when out of
 * memory (parked stays: the caller tries again later). parked is the caller's to free. */
bool fabric_task_unpark(struct fabric *fabric, struct fabric_parked *parked, uint64_t pos,
                        const struct task *loaded);
void fabric_task_free(struct fabric *fabric, struct fabric_task *task);
/* Frees a task that has ended once nothing refers to it any more (no save or item out). */
void fabric_task_maybe_free(struct fabric *fabric, struct fabric_task *task);
/* Copies task_node's record (bitmaps and counters) into record, allocated in arena; false when
 * out of memory. */
bool fabric_node_record(const struct fabric_task_node *task_node, struct arena *arena,
                        struct store_task_node *record);

/* fabric_log.c */
/* Gives task the next position of its lane's log. False when out of memory. */
bool fabric_log_append(struct fabric *fabric, struct fabric_task *task);
/* Takes a freed task out of its lane's log. */
void fabric_log_erase(struct fabric *fabric, struct fabric_task *task);
/* Whether the lane's log has anything at pos (a task, or a parked one): false once freed. */
static inline bool fabric_log_held(const struct fabric_log *log, uint64_t pos) {
  return log->entries[pos & log->mask] != NULL;
}
/* The task at pos of the lane's log; NULL when freed or parked. */
static inline struct fabric_task *fabric_log_at(const struct fabric_log *log, uint64_t pos) {
  struct fabric_task *task = log->entries[pos & log->mask];
  return (uintptr_t)task & 1 ? NULL : task;
}
/* The parked task at pos of the lane's log; NULL when there is none. */
static inline struct fabric_parked *fabric_log_parked(const struct fabric_log *log, uint64_t pos) {
  uintptr_t entry = (uintptr_t)log->entries[pos & log->mask];
  return entry & 1 ? (struct fabric_parked *)(entry & ~(uintptr_t)1) : NULL;
}
static inline void fabric_log_set_parked(struct fabric_log *log, uint64_t pos,
                                         struct fabric_parked *parked) {
  log->entries[pos & log->mask] = (struct fabric_task *)((uintptr_t)parked | 1);
}
/* The plan_seq of whatever is at pos (held). */
static inline int64_t fabric_log_seq(const struct fabric_log *log, uint64_t pos) {
  const struct fabric_parked *parked = fabric_log_parked(log, pos);
  return parked ? parked->plan_seq : fabric_log_at(log, pos)->task->plan_seq;
}
/* The position of lane's log holding what was planned as plan_seq (a task or a parked one),
 * UINT64_MAX when nothing there is. */
uint64_t fabric_log_find(const struct fabric *fabric, enum fabric_lane lane, int64_t plan_seq);
/* Puts every node's cursors at the first task of each lane its watermark has not passed
 * (after a restart, once the planned tasks are read back in plan order). */
void fabric_log_place_cursors(struct fabric *fabric);
/* Whether node's cursor is still before task (planned onto it or not). */
bool fabric_cursor_before(const struct fabric_node *node, const struct fabric_task *task);
/* A new record of task on node, every item pending, on the task's records; NULL when out of
 * memory. */
struct fabric_task_node *fabric_record_new(struct fabric_task *task, struct fabric_node *node);
/* node's record of task, NULL when it has none. */
struct fabric_task_node *fabric_record_find(const struct fabric_task *task,
                                            const struct fabric_node *node);
/* Gives every planned node (or only that one) whose cursor has not reached task a record,
 * every item pending, held (preset) should the cursor still reach it: to fail or keep what those
 * nodes owe. */
void fabric_records_for_unreached(struct fabric *fabric, struct fabric_task *task,
                                  const struct fabric_node *only);
/* Gives every planned node whose cursor passed canceled task and that has no record (it finished
 * the task) a record saying so, saved with the next flush: it replaces the pending row the
 * cancel gave each node whose saved watermark had not passed the task (store_task_cancel). Only
 * while none of the task's saves is out: a save that fails puts its failure details back, and a
 * record must not reach the store before the details it leaves to them. */
void fabric_records_for_finished(struct fabric *fabric, struct fabric_task *task);
/* Points each node that has a record of task at it (node->scratch), or (mark false) back at NULL.
 */
void fabric_records_mark(const struct fabric_task *task, bool mark);
/* Frees record once nothing needs it: no cursor on it, nothing of it held or pending, not kept. */
void fabric_record_settle(struct fabric_task_node *record);
/* Frees one of task's records (its task is being freed, or it is settled). */
void fabric_record_free(struct fabric_task_node *record);
/* Frees the records kept for reuse (the fabric is being freed). */
void fabric_records_spare_free(struct fabric *fabric);
static inline int64_t fabric_record_pending(const struct fabric_task_node *record) {
  return (int64_t)record->task->task->target_count - record->succeeded - record->failed -
         record->unsupported;
}

/* fabric_dispatch.c */
void fabric_node_online(struct fabric *fabric, struct fabric_node *node, uint32_t window);
void fabric_node_offline(struct fabric *fabric, struct fabric_node *node);
/* Frees an online node's slots while nothing is in flight (a quiet link), so an idle node holds
 * no window; they grow again with the next work. */
void fabric_node_trim(struct fabric_node *node);
/* Puts (task_node, index) on its node's list of items sent first when the node can take work
 * (it holds the record until then). */
void fabric_redeliver_push(struct fabric_node *node, struct fabric_task_node *task_node,
                           size_t index);
/* Has node sent what its window allows at the end of this loop iteration, once however many
 * results, tasks or retries asked for it meanwhile: its Work goes out in one frame, not one per
 * result that freed a slot. */
void fabric_node_dispatch(struct fabric *fabric, struct fabric_node *node);
/* Starts the end-of-iteration sends (fabric->dispatch). */
void fabric_dispatch_start(struct fabric *fabric);

/* fabric_results.c */
/* Records a batch of node's results (a Results frame, converted at the link) and sends more. */
void fabric_results_apply(struct fabric *fabric, struct fabric_node *node,
                          const struct item_result *results, size_t count);
void fabric_item_record(struct fabric *fabric, struct fabric_task_node *task_node, size_t index,
                        const struct item_result *result);
/* Sets a task whose last result came in to its final state; saved with the next flush. */
void fabric_task_finish(struct fabric *fabric, struct fabric_task *task);
/* Saves what changed since the last save; with marks, the nodes' watermarks after it. */
void fabric_progress_flush(struct fabric *fabric, bool marks);
/* Has task's progress saved with the next flush. */
void fabric_task_dirty(struct fabric *fabric, struct fabric_task *task);

/* task_node's record (kept) is to be saved with the next flush. */
static inline void fabric_record_dirty(struct fabric_task_node *task_node) {
  task_node->kept = task_node->dirty = true;
  task_node->task->records_dirty = true;
}

/* fabric_park.c */
/* Parks every task in memory that only offline nodes still owe, and reads back the parked ones
 * due (each second): past their deadline, canceled, reached, waited for by a removal, or whose
 * read failed. */
void fabric_park_sweep(struct fabric *fabric);
/* Has the parked task at pos of lane's log (and the parked ones after it) read back, unless it
 * is being read already. */
void fabric_unpark(struct fabric *fabric, enum fabric_lane lane, uint64_t pos);
/* Has every parked task node (being removed) owes read back; returns how many. */
size_t fabric_unpark_for(struct fabric *fabric, const struct fabric_node *node);
/* Whether the node numbered number is one parked waits for. */
bool fabric_parked_waits_for(const struct fabric_parked *parked, int64_t number);
/* The node with number, NULL when none. */
struct fabric_node *fabric_node_numbered(const struct fabric *fabric, int64_t number);
/* Frees every parked task (the fabric is being freed; the store keeps them). */
void fabric_parked_free_all(struct fabric *fabric);

/* fabric_waiting.c */
/* Fills waiting with the nodes task (as the store has it: id, type, plan_seq) still waits for a
 * result from; false when the fabric does not hold it or it waits for none. */
bool fabric_task_waiting(struct fabric *fabric, const struct task *task,
                         struct task_waiting *waiting);

/* fabric_backlog.c */
/* Adds task's pending results (planned) to the backlog, and to its tenant's (task->tenant). */
void fabric_backlog_count(struct fabric *fabric, struct fabric_task *task);
/* Takes what task still counts out of the backlog (it is being freed). */
void fabric_backlog_uncount(struct fabric *fabric, struct fabric_task *task);
/* One of task's results came in. */
static inline void fabric_backlog_result(struct fabric *fabric, struct fabric_task *task) {
  if (!task->counted)
    return;
  fabric->pending_items--;
  if (task->tenant) {
    task->tenant->fabric_pending--;
    task->tenant->fabric_drained++;
  }
}
/* parked takes the place of a task in memory: what it owes leaves the backlog in memory for the
 * one in the store. */
void fabric_backlog_park(struct fabric *fabric, const struct fabric_parked *parked);
/* parked is read back into memory (its task is counted in the backlog in memory again). */
void fabric_backlog_unpark(struct fabric *fabric, const struct fabric_parked *parked);
/* The earliest deadline of each tenant's parked tasks, for an honest Retry-After: found anew by
 * each sweep of the parked tasks, begun, shown every parked one, and ended (published). */
void fabric_backlog_deadlines_begin(struct fabric *fabric);
static inline void fabric_backlog_parked_deadline(const struct fabric_parked *parked) {
  if (parked->tenant && parked->deadline_ms < parked->tenant->fabric_parked_next_ms)
    parked->tenant->fabric_parked_next_ms = parked->deadline_ms;
}
void fabric_backlog_deadlines_end(struct fabric *fabric);
/* Publishes the backlogs, in all and per tenant, for the API's threads (each tick). */
void fabric_backlog_publish(struct fabric *fabric, uint64_t now_ms);
/* Lets go of the tenants it counted (the fabric is being freed). */
void fabric_backlog_close(struct fabric *fabric);

/* fabric_marks.c */
/* Starts the watermarks' save every FABRIC_MARKS_MS. */
void fabric_marks_start(struct fabric *fabric);
/* Computes every node's watermarks (the oldest task it still owes in each lane) and adds those
 * that moved to job (a progress job: they commit with the results they cover). False when out
 * of memory (nothing is added then). */
bool fabric_marks_collect(struct fabric *fabric, struct store_job *job);
/* The job holding marks was saved: the store has them now. */
void fabric_marks_saved(struct fabric *fabric, const struct store_job *job);
static inline enum fabric_lane fabric_task_lane(const struct task *task) {
  return task->type == TASK_PURGE ? FABRIC_FAST : FABRIC_SLOW;
}

/* fabric_dedup.c */
bool fabric_dedup_join(struct fabric_node *node, struct fabric_task_node *task_node, size_t index);
void fabric_dedup_lead(struct fabric_node *node, uint32_t slot_index);
void fabric_dedup_forget(struct fabric_node *node, uint32_t slot_index);
bool fabric_dedup_open(struct fabric_node *node);
/* Hashes the task's targets once, for the dedup tables of all its nodes. */
void fabric_dedup_prepare(struct fabric_task *task);
void fabric_dedup_close(struct fabric_node *node);

/* fabric_retry.c */
bool fabric_retry_failure(struct fabric *fabric, struct fabric_task_node *task_node, size_t index,
                          const struct item_result *result);
void fabric_retries_drop(struct fabric *fabric, struct fabric_task *task);
void fabric_deadline_arm(struct fabric *fabric, struct fabric_task *task);
void fabric_items_fail(struct fabric *fabric, struct fabric_task *task,
                       const struct fabric_node *only, const char *reason);
/* Items node has still to send: ahead of its cursors, or taken back when its link died. */
size_t fabric_node_queue_depth(const struct fabric_node *node);

#endif
