/* store_worker.h — runs store calls on their own threads so event loops never wait for the disk.
 *
 * An event loop fills a struct store_job and submits it to a worker; the worker runs it against its
 * store connection and posts it back to the loop's mailbox (common/mailbox.h), which wakes the
 * loop to call job->done there. The writer worker group-commits: it takes every insert and cancel
 * queued (up to the batch maximum), runs them in one transaction and hands them back only after the
 * commit, so a 202 is never sent for a task that is not on disk. If the transaction fails, every
 * job in it fails with CDR_ESTORE_UNAVAILABLE. A task is admitted by one store call
 * (store_task_admit: id, quota charge, insert), so what a shared backend has to do atomically is
 * the store's business, not the worker's. */
#ifndef CDR_STORE_WORKER_H
#define CDR_STORE_WORKER_H

#include "common/arena.h"
#include "common/mailbox.h"
#include "store/store.h"
#include "store/task_items.h"

#include <pthread.h>
#include <stdbool.h>
#include <uv.h>

enum store_job_kind {
  STORE_JOB_INSERT,      /* writer: in task, quota_limit (id, creation time, quota_day are set);
                            out quota_used when the quota is exceeded */
  STORE_JOB_CANCEL,      /* writer: in tenant, task_id; out task */
  STORE_JOB_GET,         /* reader: in tenant, task_id; out task */
  STORE_JOB_LIST,        /* reader: in tenant, task_state?, cursor, limit; out tasks */
  STORE_JOB_TARGETS,     /* reader: in tenant, task_id, item_state?, after_index, limit; out task,
                            items */
  STORE_JOB_NODE_UPSERT, /* writer: in node */
  STORE_JOB_PLAN,        /* writer: in task (with its plan) */
  STORE_JOB_PROGRESS,    /* writer: in progress[] */
  STORE_JOB_CALLBACK,    /* writer: in task_id, callback_attempt, callback_state */
  STORE_JOB_NODE_DELETE, /* writer: in node.id */
  STORE_JOB_COUNTS,      /* reader: out task_counts */
  STORE_JOB_TENANTS,     /* reader: in tenants_generation; out tenant_table when it changed */
  STORE_JOB_QUOTA,       /* reader: in tenant (quota_day is set); out quota_used */
  STORE_JOB_TENANT_LIST, /* reader: out tenant_list with each tenant's use today */
  STORE_JOB_PRUNE,       /* writer: in prune_before_ms, limit (rows); out pruned, prune_more */
  STORE_JOB_TASKS_LOAD,  /* writer: in load_ids[load_count]; out load_tasks (NULL: not there) */
};

/* Every tenant with its use of each quota on one day (in the job's arena). */
struct store_tenant_usage {
  struct tenant *tenants;
  int64_t (*used)[QUOTA_COUNT];
  size_t count;
};

struct store_job;
typedef void (*store_job_done_cb)(struct store_job *job);

struct store_job {
  enum store_job_kind kind;
  struct mail mail;         /* on the worker's queue, then on the mailbox it comes back through */
  struct mailbox *reply_to; /* mailbox of the loop that submitted the job */
  store_job_done_cb done;   /* called on that loop when the job has run */
  void *owner;        /* the submitter's: the pending HTTP request; the fabric's task or tasks */
  void *context;      /* the receiver's context for done: the fabric for its jobs; the API's
                         stats request (its format, the fabric's gauges) for a counts job */
  int result;         /* 0 or a negative cdr code, set before done */
  struct arena arena; /* everything the job reads or builds lives here */
  const char *tenant;
  struct tenant_limits *read_slot; /* the tenant whose expensive reads this one counts among */
  char task_id[TASK_ID_LENGTH + 1];
  bool filter_task_state, filter_item_state;
  enum task_state task_state;
  enum item_state item_state;
  char cursor[TASK_ID_LENGTH + 1]; /* list tasks older than this id; "" for the newest */
  int64_t after_index;             /* list targets after this index */
  size_t limit;                    /* most rows returned */
  struct task *task;
  int64_t backlog_charge; /* STORE_JOB_INSERT: its estimated results in the fabric's backlog */
  struct tenant_limits *backlog_tenant; /* ... and in its tenant's (NULL: in all only) */
  struct store_task_page tasks;
  struct item_page items;
  struct store_node node; /* STORE_JOB_NODE_UPSERT */
  const char **load_ids;  /* STORE_JOB_TASKS_LOAD, in the job's arena */
  struct task **load_tasks;
  size_t load_count;
  struct store_progress *progress; /* STORE_JOB_PROGRESS */
  size_t progress_count;
  struct store_node_mark *marks; /* STORE_JOB_PROGRESS: watermarks saved after the progress */
  size_t mark_count;
  struct callback_attempt callback_attempt; /* STORE_JOB_CALLBACK */
  enum callback_state callback_state;
  int64_t task_counts[6];           /* STORE_JOB_COUNTS: tasks by state */
  int64_t quota_day;                /* days since the epoch (UTC) the quota use is counted on */
  int64_t quota_limit[QUOTA_COUNT]; /* STORE_JOB_INSERT: the tenant's limits; 0: none */
  int64_t quota_used[QUOTA_COUNT];
  int64_t rate_limit[2];                 /* STORE_JOB_QUOTA: requests/s, URLs/s for the answer */
  int64_t tenants_generation;            /* STORE_JOB_TENANTS: the generation the loop has */
  struct tenant_table *tenant_table;     /* STORE_JOB_TENANTS: the new table (one reference) */
  struct store_tenant_usage tenant_list; /* STORE_JOB_TENANT_LIST */
  int64_t prune_before_ms;               /* STORE_JOB_PRUNE: finished tasks created before */
  size_t pruned;                         /* STORE_JOB_PRUNE: tasks deleted */
  bool prune_more;                       /* STORE_JOB_PRUNE: some may remain */
};

/* One task's saved progress in a STORE_JOB_PROGRESS job. */
struct store_progress {
  struct task task; /* id, counters, state and times; its plan too while not known saved */
  struct store_task_node *nodes;
  size_t node_count;
  struct store_failure *failures;
  size_t failure_count;
};

/* Hands job back to the loop of job->reply_to, which calls job->done there (any thread). */
void store_job_reply(struct store_job *job);

struct store_worker;

/* Starts a worker thread owning store (which it closes when stopped). A writer group-commits up to
 * max_batch jobs per transaction. Returns 0 or CDR_ENOMEM / CDR_EINTERNAL. */
int store_worker_start(struct store *store, bool writer, size_t max_batch,
                       struct store_worker **out);

/* Queues job (any thread). job->reply_to and job->done must be set. */
void store_worker_submit(struct store_worker *worker, struct store_job *job);

/* Jobs waiting for the worker (any thread; a snapshot). */
size_t store_worker_queued(struct store_worker *worker);

/* Runs every job still queued, joins the thread, closes the store and frees the worker. */
void store_worker_stop(struct store_worker *worker);

#endif
