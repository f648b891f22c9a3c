/* test_fabric.c — the fabric's logic without sockets: dispatch within windows, purges ahead of
 * preloads, results (stale, repeated, merged), retries and a node going offline, each step
 * followed by the fabric's invariants. The fabric runs on this thread against a real store
 * writer in a temporary directory; its Work frames are caught at its one sending function
 * (fabric->send_work) and results go in as the link hands them over (fabric_results_apply). */
#include "unit.h"

#include "common/clock.h"
#include "common/log.h"
#include "engine/api/task_request.h"
#include "engine/engine_config.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/store_worker.h"
#include "engine/tenant_table.h"
#include "store/sqlite/store_sqlite_internal.h" /* the writer's connection, to slow it */
#include "store/store.h"
#include "store/task_items.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { LAB_NODES = 12, LAB_SENT_MAX = 4096, LAB_TASKS_MAX = 128 };

struct sent_item {
  const struct fabric_node *node;
  uint64_t item_id;
  Cdr__Operation operation;
  char target[160];
};

struct lab {
  char dir[64];
  struct engine_config config;
  struct store *store; /* the writer's connection */
  struct store_worker *writer;
  struct fabric *fabric;
  struct fabric_link links[LAB_NODES]; /* never connected: they only mark a node online */
  struct fabric_node *nodes[LAB_NODES];
  struct sent_item sent[LAB_SENT_MAX];
  size_t sent_count;
  size_t frames;
  char task_ids[LAB_TASKS_MAX][TASK_ID_LENGTH + 1]; /* of the tasks submitted, in order */
  size_t task_count;
};

static struct lab *lab; /* the fabric's send_work has no context of its own */

static int lab_send_work(struct fabric_node *node, const Cdr__Work *work) {
  lab->frames++;
  for (size_t i = 0; i < work->n_items && lab->sent_count < LAB_SENT_MAX; i++) {
    struct sent_item *sent = &lab->sent[lab->sent_count++];
    sent->node = node;
    sent->item_id = work->items[i]->item_id;
    sent->operation = work->items[i]->operation;
    snprintf(sent->target, sizeof(sent->target), "%s", work->items[i]->target);
  }
  return 0;
}

/* Runs the fabric's loop until done() holds, or fails the test after ms naming the wait and
 * the line that waited (every wait has the same line in here). */
static void lab_wait(bool (*done)(void), const char *name, int64_t ms, int line) {
  int64_t until = clock_now_ms() + ms;
  while (!done()) {
    if (clock_now_ms() >= until)
      fail_msg("line %d: %s did not hold within %lld ms", line, name, (long long)ms);
    uv_run(&lab->fabric->loop, UV_RUN_ONCE);
  }
}
#define lab_until_within(done, ms) lab_wait(done, #done, ms, __LINE__)
#define lab_until(done) lab_until_within(done, 5000)

/* Opens the store in lab->dir and a fabric on it, which reads back what the store holds. */
static void lab_start(void) {
  char err[512];
  struct store_options options = {.read_only = false};
  assert_int_equal(store_open(lab->config.store_address, &options, &lab->store, err, sizeof(err)),
                   0);
  assert_int_equal(store_worker_start(lab->store, true, 64, &lab->writer), 0);
  assert_int_equal(fabric_open(&lab->config, lab->writer, &lab->fabric), 0);
  lab->fabric->send_work = lab_send_work;
}

static void lab_close(void);

static void lab_open(void) {
  if (lab) /* left open by a test that failed: closed, so the next one's checks are its own */
    lab_close();
  lab = calloc(1, sizeof(*lab));
  assert_non_null(lab);
  snprintf(lab->dir, sizeof(lab->dir), "/tmp/cdr-test-fabric-XXXXXX");
  assert_non_null(mkdtemp(lab->dir));
  const char *args[] = {"test_fabric", "--data-dir",     lab->dir,      "--agent-listen",
                        "127.0.0.1:0", "--api-listen",   "127.0.0.1:0", "--retry-base-ms",
                        "1",           "--retry-max-ms", "2",           "--max-attempts",
                        "3",           "--dev"};
  enum { ARGC = sizeof(args) / sizeof(args[0]) };
  static char storage[ARGC][128]; /* argv is mutable */
  char *argv[ARGC + 1];
  for (int i = 0; i < ARGC; i++) {
    snprintf(storage[i], sizeof(storage[i]), "%s", args[i]);
    argv[i] = storage[i];
  }
  argv[ARGC] = NULL;
  int argc = ARGC;
  struct settings_cli cli;
  char err[512];
  if (engine_config_load(&lab->config, argc, argv, &cli, err, sizeof(err)) != 0)
    fail_msg("%s", err);
  log_level_set(getenv("LAB_DEBUG") ? LOG_DEBUG : LOG_WARN);
  lab_start();
}

static bool lab_jobs_back(void) { return lab->fabric->jobs_in_flight == 0; }

/* Takes node offline, as its link's closing would. */
static void lab_offline(struct fabric_node *node) {
  node->link = NULL;
  fabric_node_offline(lab->fabric, node);
}

/* Stops the fabric as the engine does, its nodes' links closed first; the store stays. */
static void lab_stop(void) {
  lab_until(lab_jobs_back);
  for (size_t i = 0; i < LAB_NODES; i++) {
    if (lab->nodes[i] && lab->nodes[i]->link)
      lab_offline(lab->nodes[i]);
    lab->nodes[i] = NULL;
  }
  uv_async_send(&lab->fabric->stop);
  fabric_run(lab->fabric);
  fabric_free(lab->fabric);
  store_worker_stop(lab->writer);
}

static void lab_close(void) {
  lab_stop();
  char command[128];
  snprintf(command, sizeof(command), "rm -rf %s", lab->dir);
  assert_int_equal(system(command), 0);
  free(lab);
  lab = NULL;
}

/* Registers node id as its agent's Hello would, with window. */
static struct fabric_node *lab_register(const char *id, uint32_t window) {
  char node_id[32], cache_kind[] = "nginx", version[] = "test";
  snprintf(node_id, sizeof(node_id), "%s", id);
  Cdr__Hello hello;
  cdr__hello__init(&hello);
  hello.node_id = node_id;
  hello.cache_kind = cache_kind;
  hello.agent_version = version;
  hello.window = window;
  struct fabric_node *node = fabric_node_register(lab->fabric, &hello);
  assert_non_null(node);
  return node;
}

static struct fabric_node *lab_node(size_t i, uint32_t window) {
  char id[16];
  snprintf(id, sizeof(id), "edge-%zu", i);
  struct fabric_node *node = lab_register(id, window);
  lab->links[i] = (struct fabric_link){.fabric = lab->fabric, .node = node};
  node->link = &lab->links[i];
  lab->nodes[i] = node;
  fabric_node_online(lab->fabric, node, window);
  uv_run(&lab->fabric->loop, UV_RUN_NOWAIT);
  return node;
}

/* Set, the next task committed has the store's write lock taken (by lab_locker) before the
 * fabric adopts it: its plan's save fails after the store's busy timeout. */
static bool lab_lock_before_plan;
static struct store *lab_locker;
static struct store *lab_store_connect(bool read_only);

static void lab_on_inserted(struct store_job *job) {
  lab->fabric->jobs_in_flight--;
  assert_int_equal(job->result, 0);
  memcpy(lab->task_ids[lab->task_count++], job->task->id, TASK_ID_LENGTH + 1);
  if (lab_lock_before_plan) {
    lab_lock_before_plan = false;
    lab_locker = lab_store_connect(false);
    assert_int_equal(store_begin(lab_locker), 0);
  }
  fabric_accept(lab->fabric, job);
}

static struct fabric_task *lab_task(size_t n) {
  for (struct list_node *at = lab->fabric->tasks.first; at; at = at->next) {
    struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    if (strcmp(task->task->id, lab->task_ids[n]) == 0)
      return task;
  }
  return NULL;
}

static size_t lab_tasks_wanted;
/* The task submitted last is committed, adopted by the fabric and its plan saved. */
static bool lab_last_task_planned(void) {
  if (lab->task_count < lab_tasks_wanted)
    return false;
  struct fabric_task *task = lab_task(lab->task_count - 1);
  return task && task->task->planned;
}

/* Submits a task as the API does (body as POSTed, for every node). */
static void lab_post(enum task_type type, const char *body) {
  struct store_job *job = calloc(1, sizeof(*job));
  assert_non_null(job);
  arena_init(&job->arena, 1 << 20);
  job->kind = STORE_JOB_INSERT;
  job->tenant = tenant_dev.name;
  job->done = lab_on_inserted;
  struct request_limits limits = {.max_items = 1000,
                                  .max_url_length = 2048,
                                  .default_deadline_s = 3600,
                                  .max_deadline_s = 86400,
                                  .callback_allow = ""};
  struct request_error error;
  assert_int_equal(task_request_parse(type, body, strlen(body), &limits, &tenant_dev, &job->arena,
                                      &job->task, &error),
                   0);
  job->backlog_tenant = tenant_limits_for(tenant_dev.name);
  job->backlog_charge =
      fabric_backlog_charge(lab->fabric, job->backlog_tenant, job->task->target_count);
  fabric_submit(lab->fabric, job);
  lab_tasks_wanted = lab->task_count + 1;
}

/* Submits a task as the API does and waits until it is committed, adopted and its plan saved. */
static void lab_submit(enum task_type type, const char *body) {
  lab_post(type, body);
  lab_until(lab_last_task_planned);
}

/* Hands the fabric node's result for the item sent as sent[n]. */
static void lab_answer(size_t n, enum item_state state, uint32_t http_status, const char *reason) {
  struct sent_item *sent = &lab->sent[n];
  struct item_result result = {.item_id = sent->item_id,
                               .state = state,
                               .http_status = http_status,
                               .verified = state == ITEM_SUCCEEDED,
                               .reason = reason};
  for (size_t i = 0; i < LAB_NODES; i++) {
    if (lab->nodes[i] == sent->node)
      fabric_results_apply(lab->fabric, lab->nodes[i], &result, 1);
  }
  uv_run(&lab->fabric->loop, UV_RUN_NOWAIT); /* the end of the iteration sends what it freed */
}

/* Items a node's lane has still to send, counted the slow way: the rest of its current record
 * and every planned task still in the log ahead of its cursor. */
static size_t lab_lane_items(const struct fabric *fabric, const struct fabric_node *node,
                             enum fabric_lane lane) {
  const struct fabric_log *log = &fabric->log[lane];
  const struct fabric_cursor *cursor = &node->cursor[lane];
  size_t items = 0;
  uint64_t pos = cursor->pos;
  if (cursor->current) {
    assert_int_equal(cursor->current->task->log_pos, pos);
    items += cursor->current->task->task->target_count - cursor->current->next;
    pos++;
  }
  for (pos = pos > log->base ? pos : log->base; pos < log->end; pos++) {
    const struct fabric_task *task = fabric_log_at(log, pos);
    const struct fabric_parked *parked = fabric_log_parked(log, pos);
    if (task && plan_nodes_has(task->task->plan_nodes, task->task->plan_nodes_len, node->number))
      items += task->task->target_count;
    else if (parked && fabric_parked_waits_for(parked, node->number))
      items += parked->target_count;
  }
  return items;
}

/* Holds on record: slots, followers, redeliver entries and retries naming it. */
static uint32_t lab_record_refs(const struct fabric *fabric,
                                const struct fabric_task_node *record) {
  uint32_t refs = 0;
  const struct fabric_node *node = record->node;
  for (uint32_t s = 0; s < node->slot_count; s++) {
    const struct fabric_slot *slot = &node->slots[s];
    if (!slot->used)
      continue;
    refs += slot->task_node == record;
    for (uint32_t f = 0; f < slot->follower_count; f++)
      refs += slot->followers[f].task_node == record;
  }
  for (size_t r = 0; r < node->redeliver_count; r++)
    refs += node->redeliver[r].task_node == record;
  for (struct list_node *at = record->task->retries.first; at; at = at->next)
    refs += LIST_ENTRY(at, struct fabric_retry, link)->task_node == record;
  (void)fabric;
  return refs;
}

/* What must hold between any two events: a node's in_flight is its used slots, its lane counts
 * what its cursors have still to send; a task's pending count is its records' pending bits plus
 * every item of the planned nodes that have not reached it, and the fabric's backlog their sum;
 * a task's unreached count is those nodes; a record's refs are what holds it; a task's in_flight
 * is the items of it in some node's slots (or following one); and no node's watermark, as it
 * would be saved now, passes a task it still owes a result (a canceled task is owed none). */
static void lab_check_invariants(void) {
  struct fabric *fabric = lab->fabric;
  struct store_job marks = {.arena = {0}};
  arena_init(&marks.arena, 1 << 20);
  assert_true(fabric_marks_collect(fabric, &marks));
  arena_release(&marks.arena);
  int64_t backlog = 0, tenant_backlog = 0;
  for (size_t i = 0; i < fabric->node_count; i++) {
    const struct fabric_node *node = fabric->nodes[i];
    uint32_t used = 0;
    for (uint32_t s = 0; s < node->slot_count; s++)
      used += node->slots[s].used;
    assert_int_equal(used, node->in_flight);
    assert_true(node->in_flight <= node->window);
    assert_int_equal(node->lane_items[FABRIC_FAST], lab_lane_items(fabric, node, FABRIC_FAST));
    assert_int_equal(node->lane_items[FABRIC_SLOW], lab_lane_items(fabric, node, FABRIC_SLOW));
  }
  for (struct list_node *at = fabric->tasks.first; at; at = at->next) {
    const struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    const struct task *t = task->task;
    int64_t pending = 0, in_slots = 0;
    size_t unreached = 0;
    for (size_t i = 0; i < fabric->node_count; i++) {
      const struct fabric_node *node = fabric->nodes[i];
      if (!t->plan_nodes || !plan_nodes_has(t->plan_nodes, t->plan_nodes_len, node->number))
        continue;
      const struct fabric_task_node *record = fabric_record_find(task, node);
      bool before = task->logged && fabric_cursor_before(node, task);
      unreached += before;
      int64_t owed = 0;
      if (record) {
        assert_int_equal(record->refs, lab_record_refs(fabric, record));
        for (size_t k = 0; k < t->target_count; k++)
          owed += item_states_get(record->states, k) == ITEM_PENDING;
        assert_int_equal(owed, fabric_record_pending(record));
      } else if (before) {
        owed = (int64_t)t->target_count;
      }
      pending += owed;
      if (owed && t->state != TASK_CANCELED)
        assert_true(t->plan_seq >= node->open_below[fabric_task_lane(t)]);
      for (uint32_t s = 0; s < node->slot_count; s++) {
        const struct fabric_slot *slot = &node->slots[s];
        if (!slot->used)
          continue;
        in_slots += slot->task_node->task == task;
        for (uint32_t f = 0; f < slot->follower_count; f++)
          in_slots += slot->followers[f].task_node->task == task;
      }
    }
    assert_int_equal(unreached, task->unreached);
    assert_int_equal(pending, t->counters.pending);
    assert_int_equal(in_slots, task->in_flight);
    backlog += task->counted ? pending : 0;
    tenant_backlog += task->counted && task->tenant ? pending : 0;
    assert_true(!task->tenant || task->tenant == tenant_limits_for(tenant_dev.name));
  }
  /* A parked task is in the backlog in the store, not in memory; every one of the nodes it
   * waits for is offline and has still to reach it. */
  size_t parked_count = 0;
  int64_t parked_targets = 0, tenant_parked = 0;
  for (int lane = 0; lane < FABRIC_LANES; lane++) {
    const struct fabric_log *log = &fabric->log[lane];
    for (uint64_t pos = log->base; pos < log->end; pos++) {
      const struct fabric_parked *parked = fabric_log_parked(log, pos);
      if (!parked)
        continue;
      parked_count++;
      parked_targets += parked->target_count;
      tenant_parked += parked->tenant ? parked->target_count : 0;
      for (uint32_t n = 0; n < parked->unreached; n++) {
        const struct fabric_node *node = fabric_node_numbered(fabric, parked->numbers[n]);
        assert_non_null(node);
        assert_true(node->cursor[lane].pos <= pos);
      }
    }
  }
  assert_int_equal(parked_count, fabric->parked_count);
  assert_int_equal(parked_targets, fabric->parked_targets);
  assert_int_equal(backlog, fabric->pending_items);
  /* Every task is the dev tenant's: its part is the whole backlog, and nothing else is charged. */
  assert_int_equal(tenant_backlog, tenant_limits_for(tenant_dev.name)->fabric_pending);
  assert_int_equal(tenant_parked, tenant_limits_for(tenant_dev.name)->fabric_parked);
  assert_int_equal(atomic_load(&tenant_limits_for(tenant_dev.name)->charged), 0);
}

static void work_goes_out_within_the_window_and_results_free_it(void **state) {
  (void)state;
  lab_open();
  struct fabric_node *node = lab_node(0, 4);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\",\"http://a.example/1\","
                         "\"http://a.example/2\",\"http://a.example/3\",\"http://a.example/4\","
                         "\"http://a.example/5\",\"http://a.example/6\",\"http://a.example/7\","
                         "\"http://a.example/8\",\"http://a.example/9\"]}");
  assert_int_equal(lab->sent_count, 4);
  assert_int_equal(node->in_flight, 4);
  assert_string_equal(lab->sent[0].target, "http://a.example/0");
  assert_int_equal(lab->sent[0].operation, CDR__OPERATION__PURGE_URL);
  lab_check_invariants();
  lab_answer(0, ITEM_SUCCEEDED, 200, "");
  lab_answer(1, ITEM_SUCCEEDED, 404, "");
  lab_check_invariants();
  assert_int_equal(lab->sent_count, 6); /* each result returns one unit of window */
  assert_int_equal(node->in_flight, 4);
  for (size_t n = 2; n < 10; n++) {
    lab_answer(n, ITEM_SUCCEEDED, 200, "");
    lab_check_invariants();
  }
  assert_int_equal(lab->sent_count, 10);
  struct fabric_task *task = lab_task(0);
  assert_non_null(task);
  assert_true(task->finished);
  assert_int_equal(task->task->state, TASK_DONE);
  assert_int_equal(task->task->counters.succeeded, 10);
  assert_int_equal(task->task->counters.verified, 10);
  assert_int_equal(node->in_flight, 0);
  lab_close();
}

static void stale_and_repeated_results_are_ignored(void **state) {
  (void)state;
  lab_open();
  struct fabric_node *node = lab_node(0, 2);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\",\"http://a.example/1\","
                         "\"http://a.example/2\"]}");
  assert_int_equal(lab->sent_count, 2);
  struct item_result stale = {.item_id = lab->sent[0].item_id + (1ull << 32), /* a generation on */
                              .state = ITEM_FAILED,
                              .reason = "http_500"};
  fabric_results_apply(lab->fabric, node, &stale, 1);
  struct item_result unknown = {.item_id = 4000, .state = ITEM_FAILED, .reason = ""};
  fabric_results_apply(lab->fabric, node, &unknown, 1);
  assert_int_equal(node->in_flight, 2);
  assert_int_equal(lab->sent_count, 2);
  lab_check_invariants();
  lab_answer(0, ITEM_SUCCEEDED, 200, "");
  assert_int_equal(lab->sent_count, 3);        /* the freed slot went to the third URL */
  lab_answer(0, ITEM_FAILED, 500, "http_500"); /* again: its slot has a new generation now */
  lab_check_invariants();
  struct fabric_task *task = lab_task(0);
  assert_int_equal(task->task->counters.succeeded, 1);
  assert_int_equal(task->task->counters.failed, 0);
  assert_int_equal(node->in_flight, 2);
  lab_answer(1, ITEM_SUCCEEDED, 200, "");
  lab_answer(2, ITEM_UNSUPPORTED, 0, "nginx_has_no_tags");
  lab_check_invariants();
  assert_true(task->finished);
  assert_int_equal(task->task->state, TASK_PARTIAL);
  assert_int_equal(task->task->counters.unsupported, 1);
  lab_close();
}

static void purges_go_ahead_of_preloads(void **state) {
  (void)state;
  lab_open();
  lab_node(0, 1);
  lab_submit(TASK_PRELOAD, "{\"urls\":[\"http://a.example/p0\",\"http://a.example/p1\","
                           "\"http://a.example/p2\"]}");
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/u0\"]}");
  assert_int_equal(lab->sent_count, 1);
  assert_int_equal(lab->sent[0].operation, CDR__OPERATION__PRELOAD);
  lab_check_invariants();
  lab_answer(0, ITEM_SUCCEEDED, 200, "");
  assert_int_equal(lab->sent_count, 2);
  assert_string_equal(lab->sent[1].target, "http://a.example/u0"); /* ahead of p1 and p2 */
  lab_check_invariants();
  lab_answer(1, ITEM_SUCCEEDED, 200, "");
  lab_answer(2, ITEM_SUCCEEDED, 200, "");
  lab_answer(3, ITEM_SUCCEEDED, 200, "");
  assert_string_equal(lab->sent[3].target, "http://a.example/p2");
  lab_check_invariants();
  assert_true(lab_task(0)->finished && lab_task(1)->finished);
  lab_close();
}

static size_t lab_sent_wanted;
static bool lab_sent_enough(void) { return lab->sent_count >= lab_sent_wanted; }

static void a_retryable_failure_is_sent_again_until_its_attempts_run_out(void **state) {
  (void)state;
  lab_open(); /* --max-attempts 3, retries after 1-2 ms */
  struct fabric_node *node = lab_node(0, 4);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/r\",\"http://a.example/f\"]}");
  assert_int_equal(lab->sent_count, 2);
  lab_answer(1, ITEM_FAILED, 404, "http_404"); /* a 4xx will not get better: recorded at once */
  struct fabric_task *task = lab_task(0);
  assert_int_equal(task->task->counters.failed, 1);
  lab_answer(0, ITEM_FAILED, 503, "http_503");
  assert_int_equal(task->task->counters.pending, 1); /* not recorded: waits for its retry */
  /* the failed one is not in flight again until its retry goes (in 1-2 ms: it may have) */
  assert_int_equal(node->in_flight, lab->sent_count - 2);
  lab_check_invariants();
  lab_sent_wanted = 3;
  lab_until(lab_sent_enough);
  assert_string_equal(lab->sent[2].target, "http://a.example/r");
  lab_check_invariants();
  lab_answer(2, ITEM_FAILED, 0, "timeout");
  lab_sent_wanted = 4;
  lab_until(lab_sent_enough);
  lab_answer(3, ITEM_FAILED, 502, "http_502"); /* the third attempt: no more */
  lab_check_invariants();
  assert_int_equal(lab->sent_count, 4);
  assert_true(task->finished);
  assert_int_equal(task->task->state, TASK_FAILED);
  assert_int_equal(task->task->counters.failed, 2);
  lab_close();
}

/* The purge a task joins must have gone out after that task was accepted: here the window is
 * full while B and C are accepted, so B's purge of "same" is sent after both, and C joins it. */
static void an_identical_purge_in_flight_is_joined_not_sent_again(void **state) {
  (void)state;
  lab_open();
  struct fabric_node *node = lab_node(0, 2);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/x0\",\"http://a.example/x1\"]}");
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/same\"]}");
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/same\",\"http://a.example/other\"]}");
  assert_int_equal(lab->sent_count, 2);
  lab_answer(0, ITEM_SUCCEEDED, 200, "");
  assert_int_equal(lab->sent_count, 3);
  assert_string_equal(lab->sent[2].target, "http://a.example/same");
  lab_answer(1, ITEM_SUCCEEDED, 200, "");
  assert_int_equal(lab->sent_count, 4); /* C's "same" joined B's; only "other" went out */
  assert_string_equal(lab->sent[3].target, "http://a.example/other");
  assert_int_equal(node->merged, 1);
  lab_check_invariants();
  lab_answer(2, ITEM_SUCCEEDED, 200, "");
  lab_check_invariants();
  assert_true(lab_task(1)->finished);
  assert_int_equal(lab_task(2)->task->counters.succeeded, 1); /* the follower got the result */
  lab_answer(3, ITEM_SUCCEEDED, 200, "");
  assert_true(lab_task(2)->finished);
  assert_int_equal(lab_task(2)->task->state, TASK_DONE);
  assert_int_equal(node->in_flight, 0);
  lab_close();
}

/* The object may have been cached again since that purge went out: the later task's purge is
 * sent on its own. */
static void a_purge_sent_before_a_task_was_accepted_does_not_stand_in_for_it(void **state) {
  (void)state;
  lab_open();
  struct fabric_node *node = lab_node(0, 4);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/same\"]}");
  assert_int_equal(lab->sent_count, 1);
  usleep(3000); /* ids and times are in milliseconds: the next task is accepted after the send */
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/same\"]}");
  assert_int_equal(lab->sent_count, 2);
  assert_string_equal(lab->sent[1].target, "http://a.example/same");
  assert_int_equal(node->merged, 0);
  lab_check_invariants();
  lab_answer(0, ITEM_SUCCEEDED, 200, "");
  assert_true(lab_task(0)->finished);
  assert_false(lab_task(1)->finished); /* the first purge's result is not the second's */
  lab_answer(1, ITEM_SUCCEEDED, 200, "");
  assert_true(lab_task(1)->finished);
  lab_close();
}

static void a_node_going_offline_gets_its_work_again_when_back(void **state) {
  (void)state;
  lab_open();
  struct fabric_node *node = lab_node(0, 2);
  struct fabric_node *other = lab_node(1, 2);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\",\"http://a.example/1\","
                         "\"http://a.example/2\"]}");
  assert_int_equal(lab->sent_count, 4); /* two to each node */
  lab_check_invariants();
  lab_offline(node);
  assert_int_equal(node->in_flight, 0);
  assert_int_equal(fabric_node_queue_depth(node), 3); /* two taken back, one never sent */
  lab_check_invariants();
  for (size_t n = 0; n < lab->sent_count; n++) {
    if (lab->sent[n].node == other)
      lab_answer(n, ITEM_SUCCEEDED, 200, "");
  }
  size_t before = lab->sent_count;
  node->link = &lab->links[0];
  fabric_node_online(lab->fabric, node, 2);
  uv_run(&lab->fabric->loop, UV_RUN_NOWAIT);
  assert_int_equal(lab->sent_count, before + 2);
  assert_ptr_equal(lab->sent[before].node, node);
  lab_check_invariants();
  struct fabric_task *task = lab_task(0);
  assert_int_equal(task->task->counters.pending, 3);
  for (size_t n = before; n < lab->sent_count; n++) /* the third goes out as the first returns */
    lab_answer(n, ITEM_SUCCEEDED, 200, "");
  assert_int_equal(lab->sent_count, before + 3);
  lab_check_invariants();
  assert_true(task->finished);
  assert_int_equal(task->task->counters.succeeded, 6);
  lab_close();
}

/* A task waits in one allocation of its own size, not in its request's arena (4 KiB or more):
 * its copy, targets, strings, plan and dedup hashes or preload headers all fit the chunk reserved
 * for them, whatever kind of task it is. */
static void a_task_is_kept_in_an_arena_of_its_size(void **state) {
  (void)state;
  lab_open();
  for (size_t i = 0; i < 3; i++)
    lab_node(i, 4);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\",\"http://a.example/1\"],"
                         "\"callback\":\"http://hooks.example/done\"}");
  lab_submit(TASK_PRELOAD, "{\"urls\":[\"http://a.example/p\"],\"headers\":{\"Accept-Encoding\":"
                           "\"gzip\",\"X-Variant\":\"b\"}}");
  for (size_t t = 0; t < 2; t++) {
    const struct fabric_task *task = lab_task(t);
    assert_non_null(task);
    assert_true(task->task->planned);
    assert_true(task->arena.reserved < 1024); /* one chunk: anything past it would add 4 KiB */
  }
  assert_int_equal(lab_task(1)->header_count, 2);
  lab_check_invariants();
  lab_close();
}

/* A node removed just before the engine stopped: its removal is in the store, the failures of
 * what it owed are not (a kill -9 in between). Read back, no task waits for it: its items fail
 * node_removed and the task ends partial. */
static struct store *lab_reader;
static struct arena lab_reads;
static bool lab_first_task_partial(void) {
  struct task *task;
  arena_reset(&lab_reads);
  return store_task_get(lab_reader, tenant_dev.name, lab->task_ids[0], &lab_reads, &task) == 0 &&
         task->state == TASK_PARTIAL;
}

static void a_node_removed_before_a_restart_is_not_waited_for(void **state) {
  (void)state;
  lab_open();
  lab_node(0, 4);
  struct fabric_node *gone = lab_node(1, 4);
  lab_offline(gone);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\",\"http://a.example/1\"]}");
  assert_int_equal(lab->sent_count, 2); /* edge-0's; edge-1 is offline */
  lab_answer(0, ITEM_SUCCEEDED, 200, "");
  lab_answer(1, ITEM_SUCCEEDED, 200, "");
  lab_stop();
  char err[512];
  struct store_options options = {.read_only = false};
  struct store *store;
  assert_int_equal(store_open(lab->config.store_address, &options, &store, err, sizeof(err)), 0);
  assert_int_equal(store_begin(store), 0);
  assert_int_equal(store_node_delete(store, "edge-1"), 0);
  assert_int_equal(store_commit(store), 0);
  store_close(store);
  lab_start();
  options.read_only = true;
  assert_int_equal(store_open(lab->config.store_address, &options, &lab_reader, err, sizeof(err)),
                   0);
  arena_init(&lab_reads, 1 << 20);
  lab_until(lab_first_task_partial);
  struct task *task;
  assert_int_equal(store_task_get(lab_reader, tenant_dev.name, lab->task_ids[0], &lab_reads, &task),
                   0);
  assert_int_equal(task->counters.succeeded, 2);
  assert_int_equal(task->counters.failed, 2);
  assert_int_equal(task->counters.pending, 0);
  struct store_failure *failures;
  size_t count;
  assert_int_equal(store_failures_list(lab_reader, task->id, 0, 10, &lab_reads, &failures, &count),
                   0);
  assert_int_equal(count, 2);
  assert_string_equal(failures[0].node_id, "edge-1");
  assert_string_equal(failures[0].reason, "node_removed");
  lab_check_invariants();
  arena_release(&lab_reads);
  store_close(lab_reader);
  lab_close();
}

static bool lab_first_task_gone(void) { return lab_task(0) == NULL; }

/* The sent item of task target on node i (its index in lab->sent). */
static size_t lab_sent_index(size_t i, const char *target) {
  for (size_t n = 0; n < lab->sent_count; n++) {
    if (lab->sent[n].node == lab->nodes[i] && strcmp(lab->sent[n].target, target) == 0)
      return n;
  }
  fail_msg("nothing sent to edge-%zu for %s", i, target);
  return 0;
}

/* A connection of the test's own to the lab's store (as the API's or another process's). */
static struct store *lab_store_connect(bool read_only) {
  char err[512];
  struct store_options options = {.read_only = read_only};
  struct store *store;
  assert_int_equal(store_open(lab->config.store_address, &options, &store, err, sizeof(err)), 0);
  return store;
}

/* Cancels task n in the store as the API does, on a connection of its own, which it returns
 * (open) for the test's reads. */
static struct store *lab_store_cancel(size_t n) {
  struct store *api = lab_store_connect(false);
  assert_int_equal(store_begin(api), 0);
  assert_int_equal(store_task_cancel(api, tenant_dev.name, lab->task_ids[n], clock_now_ms()), 0);
  assert_int_equal(store_commit(api), 0);
  return api;
}

/* Cancels task n as the API does: in the store, then telling the fabric with the task the store
 * read back (*task, in reads). Returns the store connection, open. */
static struct store *lab_cancel(size_t n, struct arena *reads, struct task **task) {
  struct store *api = lab_store_cancel(n);
  assert_int_equal(store_task_get(api, tenant_dev.name, lab->task_ids[n], reads, task), 0);
  fabric_cancel(lab->fabric, *task);
  return api;
}

/* Brings edge-0 online with window and edge-1 registered and offline; returns edge-1. */
static struct fabric_node *lab_edge_1_away(uint32_t window) {
  lab_node(0, window);
  struct fabric_node *away = lab_node(1, window);
  lab_offline(away);
  return away;
}

/* A canceled task's rows say what each node did, whatever the watermarks say later: edge-0
 * purged one URL and failed the other (its detail not saved yet when the cancel came), edge-1
 * purged both (its record freed: only its cursor knew), edge-2 was offline and never ran it. */
static void a_canceled_task_keeps_what_each_node_did(void **state) {
  (void)state;
  lab_open();
  lab_node(0, 4);
  lab_node(1, 4);
  struct fabric_node *offline = lab_node(2, 4);
  lab_offline(offline);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\",\"http://a.example/1\"]}");
  lab_answer(lab_sent_index(0, "http://a.example/0"), ITEM_SUCCEEDED, 200, "");
  lab_answer(lab_sent_index(0, "http://a.example/1"), ITEM_FAILED, 404, "http_404");
  lab_answer(lab_sent_index(1, "http://a.example/0"), ITEM_SUCCEEDED, 200, "");
  lab_answer(lab_sent_index(1, "http://a.example/1"), ITEM_SUCCEEDED, 200, "");
  /* The API's cancel commits first (on a connection of its own), then tells the fabric. */
  struct arena reads;
  arena_init(&reads, 1 << 20);
  struct task *task;
  struct store *api = lab_cancel(0, &reads, &task);
  lab_until(lab_first_task_gone); /* saved and freed */
  lab_check_invariants();
  /* Every watermark moves past the task, as it would after a restart (it is owed nothing). */
  struct store_node_mark marks[] = {
      {"edge-0", 100, 100}, {"edge-1", 100, 100}, {"edge-2", 100, 100}};
  assert_int_equal(store_begin(api), 0);
  assert_int_equal(store_node_marks_save(api, marks, 3), 0);
  assert_int_equal(store_commit(api), 0);
  assert_int_equal(store_task_get(api, tenant_dev.name, lab->task_ids[0], &reads, &task), 0);
  assert_int_equal(task->state, TASK_CANCELED);
  struct item_page page;
  assert_int_equal(task_items_page(api, task, NULL, -1, 10, &reads, &page), 0);
  assert_int_equal(page.count, 2);
  for (size_t i = 0; i < 2; i++) {
    const struct item_row *row = &page.rows[i];
    assert_int_equal(row->node_count, 3);
    assert_int_equal(row->nodes[0].state, i == 0 ? ITEM_SUCCEEDED : ITEM_FAILED);
    assert_true(row->nodes[0].verified == (i == 0));
    assert_int_equal(row->nodes[1].state, ITEM_SUCCEEDED);
    assert_true(row->nodes[1].verified);
    assert_string_equal(row->nodes[2].node_id, "edge-2");
    assert_int_equal(row->nodes[2].state, ITEM_CANCELED);
  }
  assert_int_equal(page.rows[1].nodes[0].http_status, 404);
  arena_release(&reads);
  store_close(api);
  lab_close();
}

static size_t lab_parked_wanted;
static bool lab_parked_enough(void) { return lab->fabric->parked_count == lab_parked_wanted; }
static bool lab_all_tasks_gone(void) { return lab->fabric->tasks.first == NULL; }

/* Task n as the store holds it, read on its own connection: its numbers only (state,
 * counters, plan_seq, planned), none of what it points to. */
static struct task lab_stored(size_t n) {
  struct store *reader = lab_store_connect(true);
  struct arena reads;
  arena_init(&reads, 1 << 16);
  struct task *task;
  assert_int_equal(store_task_get(reader, tenant_dev.name, lab->task_ids[n], &reads, &task), 0);
  struct task numbers = *task;
  numbers.targets = NULL;
  numbers.plan_nodes = NULL;
  numbers.tenant = numbers.node_groups_json = numbers.headers_json = numbers.callback = NULL;
  arena_release(&reads);
  store_close(reader);
  return numbers;
}

/* The store's state of task n (and its counters when asked for). */
static enum task_state lab_stored_state(size_t n, struct task_counters *counters) {
  struct task task = lab_stored(n);
  if (counters)
    *counters = task.counters;
  return task.state;
}

/* Tasks that only an offline node still owes leave memory once saved, parked in their places in
 * the logs; when the node is back its cursors read them back and it gets every one of them, in
 * plan order, and each ends with every result recorded once. The preload, still in memory (edge-0
 * has not answered it), waits for the purges being read back: never ahead of a purge. */
static void tasks_owed_only_by_an_offline_node_are_parked_and_come_back_in_order(void **state) {
  (void)state;
  lab_open();
  struct fabric_node *away = lab_edge_1_away(8);
  lab_submit(TASK_PRELOAD, "{\"urls\":[\"http://a.example/p\"]}");
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\",\"http://a.example/1\"]}");
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/2\"],\"deadline_s\":600}");
  assert_int_equal(lab->sent_count, 4);
  size_t preload = lab_sent_index(0, "http://a.example/p");
  for (size_t n = 0; n < 4; n++) {
    if (n != preload)
      lab_answer(n, ITEM_SUCCEEDED, 200, "");
  }
  lab_parked_wanted = 2;
  lab_until(lab_parked_enough); /* at the next sweep, once their progress is saved */
  assert_ptr_equal(lab->fabric->tasks.first, &lab_task(0)->link); /* the preload only */
  assert_int_equal(fabric_node_queue_depth(away), 4);
  lab_check_invariants();
  struct task_counters counters;
  assert_int_equal(lab_stored_state(1, &counters), TASK_RUNNING);
  assert_int_equal(counters.pending, 2);
  /* The API sees the preload's two results in the backlog in memory and the purges' three
   * targets in the one in the store, with the earliest of their deadlines (the second purge's,
   * 600 s, not the first one's hour) for its Retry-After. */
  struct tenant_limits *tenant = tenant_limits_for(tenant_dev.name);
  fabric_backlog_publish(lab->fabric, uv_now(&lab->fabric->loop));
  assert_int_equal(fabric_backlog(lab->fabric), 2);
  assert_int_equal(fabric_parked(lab->fabric), 3);
  assert_int_equal(fabric_tenants_parking(lab->fabric), 1);
  assert_int_equal(atomic_load(&tenant->parked), 3);
  int64_t short_deadline = 0;
  const struct fabric_log *purges = &lab->fabric->log[FABRIC_FAST];
  for (uint64_t pos = purges->base; pos < purges->end; pos++) {
    const struct fabric_parked *parked = fabric_log_parked(purges, pos);
    if (parked && parked->target_count == 1)
      short_deadline = parked->deadline_ms;
  }
  int64_t now_ms = clock_now_ms();
  assert_true(short_deadline > now_ms + 590000 && short_deadline <= now_ms + 600000);
  assert_int_equal(atomic_load(&tenant->parked_next_ms), short_deadline);

  away->link = &lab->links[1];
  fabric_node_online(lab->fabric, away, 8);
  lab_sent_wanted = 8;
  lab_until(lab_sent_enough);
  const char *order[] = {"http://a.example/0", "http://a.example/1", "http://a.example/2",
                         "http://a.example/p"};
  for (size_t n = 0; n < 4; n++) {
    assert_ptr_equal(lab->sent[4 + n].node, away);
    assert_string_equal(lab->sent[4 + n].target, order[n]);
  }
  assert_int_equal(lab->fabric->parked_count, 0);
  lab_check_invariants();
  fabric_backlog_publish(lab->fabric, uv_now(&lab->fabric->loop));
  /* Back in memory: the 4 results the node that came back owes, the preload's on the other. */
  assert_int_equal(fabric_backlog(lab->fabric), 5);
  assert_int_equal(fabric_parked(lab->fabric), 0);
  assert_int_equal(atomic_load(&tenant->parked), 0);
  lab_answer(preload, ITEM_SUCCEEDED, 200, "");
  for (size_t n = 4; n < 8; n++)
    lab_answer(n, ITEM_SUCCEEDED, 200, "");
  lab_check_invariants();
  lab_until(lab_all_tasks_gone);
  for (size_t t = 0; t < 3; t++) {
    assert_int_equal(lab_stored_state(t, &counters), TASK_DONE);
    assert_int_equal(counters.succeeded, counters.total);
    assert_int_equal(counters.verified, counters.total);
  }
  lab_close();
}

static bool lab_removal_answered;
static void lab_on_answered_removal(struct fabric_query *query) {
  assert_int_equal(query->result, 0);
  lab_removal_answered = true;
}
static bool lab_removal_done(void) { return lab_removal_answered; }
static bool lab_second_task_partial(void) { return lab_stored_state(1, NULL) == TASK_PARTIAL; }

/* Whether task n is parked: a stub in its place in a log. */
static bool lab_parked(size_t n) {
  for (int lane = 0; lane < FABRIC_LANES; lane++) {
    const struct fabric_log *log = &lab->fabric->log[lane];
    for (uint64_t pos = log->base; pos < log->end; pos++) {
      const struct fabric_parked *parked = fabric_log_parked(log, pos);
      if (parked && strcmp(parked->id, lab->task_ids[n]) == 0)
        return true;
    }
  }
  return false;
}

/* The first task has left the fabric: neither parked nor in memory (finished and saved). */
static bool lab_first_task_left(void) { return !lab_parked(0) && !lab_task(0); }

/* The one failure detail of task n: its node and reason. */
static void lab_assert_one_failure(struct store *store, size_t n, const char *node_id,
                                   const char *reason) {
  struct arena reads;
  arena_init(&reads, 1 << 16);
  struct store_failure *failures;
  size_t count;
  assert_int_equal(store_failures_list(store, lab->task_ids[n], 0, 10, &reads, &failures, &count),
                   0);
  assert_int_equal(count, 1);
  assert_string_equal(failures[0].node_id, node_id);
  assert_string_equal(failures[0].reason, reason);
  arena_release(&reads);
}

/* A parked task is read back for whatever ends it: a cancel (its offline node's items read
 * canceled), its deadline (node_offline) or its node's removal (node_removed). */
static void a_parked_task_ends_canceled_at_its_deadline_or_when_its_node_is_removed(void **state) {
  (void)state;
  lab_open();
  struct fabric_node *away = lab_edge_1_away(8);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/c\"]}");
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/d\"],\"deadline_s\":2}");
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/r\"]}");
  for (size_t n = 0; n < 3; n++)
    lab_answer(n, ITEM_SUCCEEDED, 200, "");
  lab_parked_wanted = 3;
  lab_until(lab_parked_enough);
  lab_check_invariants();

  struct arena reads;
  arena_init(&reads, 1 << 20);
  struct task *task;
  struct store *api = lab_cancel(0, &reads, &task);
  lab_until(lab_first_task_left); /* read back, canceled and saved */
  lab_check_invariants();
  lab_until(lab_second_task_partial); /* its deadline: 2 s after it was created */
  lab_assert_one_failure(api, 1, away->id, "node_offline");
  lab_check_invariants();

  static struct fabric_query query;
  query = (struct fabric_query){.question = FABRIC_NODE_REMOVE,
                                .reply_to = &lab->fabric->inbox,
                                .answered = lab_on_answered_removal};
  snprintf(query.node_id, sizeof(query.node_id), "%s", away->id);
  lab_removal_answered = false;
  fabric_ask(lab->fabric, &query);
  lab_until(lab_removal_done);
  lab_parked_wanted = 0; /* the third task is read back by the next sweep, for the removal */
  lab_until(lab_parked_enough);
  lab_until(lab_all_tasks_gone);
  lab_check_invariants();
  assert_int_equal(lab_stored_state(0, NULL), TASK_CANCELED);
  assert_int_equal(store_task_get(api, tenant_dev.name, lab->task_ids[0], &reads, &task), 0);
  struct item_page page;
  assert_int_equal(task_items_page(api, task, NULL, -1, 10, &reads, &page), 0);
  assert_int_equal(page.rows[0].nodes[0].state, ITEM_SUCCEEDED);
  assert_int_equal(page.rows[0].nodes[1].state, ITEM_CANCELED);
  assert_int_equal(lab_stored_state(2, NULL), TASK_PARTIAL);
  lab_assert_one_failure(api, 2, away->id, "node_removed");
  arena_release(&reads);
  store_close(api);
  lab_close();
}

/* A parked task canceled in the store whose cancel has not reached the fabric yet when its node
 * comes back and reads it back: it is read back canceled, the node is not sent it and its items
 * read canceled, never succeeded; the cancel's mail, when it comes, changes nothing. */
static void a_parked_task_read_back_canceled_is_not_sent(void **state) {
  (void)state;
  lab_open();
  struct fabric_node *away = lab_edge_1_away(8);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/k\"]}");
  lab_answer(0, ITEM_SUCCEEDED, 200, "");
  lab_parked_wanted = 1;
  lab_until(lab_parked_enough);
  struct store *api = lab_store_cancel(0);
  away->link = &lab->links[1];
  fabric_node_online(lab->fabric, away, 8);
  lab_parked_wanted = 0;
  lab_until(lab_parked_enough);
  lab_until(lab_all_tasks_gone);
  assert_int_equal(lab->sent_count, 1); /* edge-0's only */
  struct arena reads;
  arena_init(&reads, 1 << 20);
  struct task *task;
  assert_int_equal(store_task_get(api, tenant_dev.name, lab->task_ids[0], &reads, &task), 0);
  fabric_cancel(lab->fabric, task); /* the mail, late */
  lab_until(lab_jobs_back);
  struct item_page page;
  assert_int_equal(task_items_page(api, task, NULL, -1, 10, &reads, &page), 0);
  assert_int_equal(page.rows[0].nodes[0].state, ITEM_SUCCEEDED);
  assert_int_equal(page.rows[0].nodes[1].state, ITEM_CANCELED);
  lab_check_invariants();
  arena_release(&reads);
  store_close(api);
  lab_close();
}

static bool lab_edge_0_passed_first_task(void) {
  return lab->nodes[0]->saved_below[FABRIC_FAST] > lab_task(0)->task->plan_seq;
}

/* Items sent to node i since sent[from]. */
static size_t lab_sent_to(size_t i, size_t from) {
  size_t count = 0;
  for (size_t n = from; n < lab->sent_count; n++)
    count += lab->sent[n].node == lab->nodes[i];
  return count;
}

/* A task read back at a restart resumes each node where it was: edge-0, whose watermark passed
 * it (one success, one final failure), is sent nothing again; edge-1, with a row of its own (a
 * success its agent could not verify, the other item in flight), only the item it had not
 * finished; edge-2, offline, that never reached it, all of it. Counters and the failure detail
 * carry over, and every result ends recorded once. */
static void a_task_read_back_at_a_restart_resumes_each_node_where_it_was(void **state) {
  (void)state;
  lab_open();
  struct fabric_node *away = lab_edge_1_away(8); /* edge-1 online again below, edge-2 away */
  away->link = &lab->links[1];
  fabric_node_online(lab->fabric, away, 8);
  struct fabric_node *never = lab_node(2, 8);
  lab_offline(never);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\",\"http://a.example/1\"]}");
  lab_answer(lab_sent_index(0, "http://a.example/0"), ITEM_SUCCEEDED, 200, "");
  lab_answer(lab_sent_index(0, "http://a.example/1"), ITEM_FAILED, 404, "http_404");
  struct item_result unverified = {.item_id =
                                       lab->sent[lab_sent_index(1, "http://a.example/0")].item_id,
                                   .state = ITEM_SUCCEEDED,
                                   .http_status = 200,
                                   .reason = ""};
  fabric_results_apply(lab->fabric, away, &unverified, 1);
  lab_until(lab_edge_0_passed_first_task); /* watermarks are saved each second */
  lab_check_invariants();
  lab_stop();
  lab_start();
  lab_check_invariants();
  struct fabric_task *task = lab_task(0);
  assert_non_null(task);
  assert_int_equal(task->task->counters.succeeded, 2);
  assert_int_equal(task->task->counters.verified, 1);
  assert_int_equal(task->task->counters.failed, 1);
  assert_int_equal(task->task->counters.pending, 3);
  assert_int_equal(task->unreached, 2); /* edge-1 (its row, read back) and edge-2 */
  size_t before = lab->sent_count;
  for (size_t i = 0; i < 3; i++)
    lab_node(i, 8);
  lab_check_invariants();
  assert_int_equal(lab_sent_to(0, before), 0);
  assert_int_equal(lab_sent_to(1, before), 1);
  assert_int_equal(lab_sent_to(2, before), 2);
  for (size_t n = before; n < lab->sent_count; n++) {
    if (lab->sent[n].node == lab->nodes[1])
      assert_string_equal(lab->sent[n].target, "http://a.example/1");
    lab_answer(n, ITEM_SUCCEEDED, 200, "");
  }
  lab_check_invariants();
  lab_until(lab_all_tasks_gone);
  struct task_counters counters;
  assert_int_equal(lab_stored_state(0, &counters), TASK_PARTIAL);
  assert_int_equal(counters.succeeded, 5);
  assert_int_equal(counters.failed, 1);
  assert_int_equal(counters.pending, 0);
  assert_int_equal(counters.verified, 4);
  lab_close();
}

/* Runs sql on the lab's store while the fabric is stopped: what a crash could have left. */
static void lab_store_rewrite(const char *sql) {
  char path[sizeof(lab->dir) + 32];
  snprintf(path, sizeof(path), "%s/cdnrefresh.db", lab->dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_close(db);
}

/* A save of a task's results can reach the store without the watermark that passed them (a
 * kill -9 between the two). Read back at the restart, the task's counters are what its rows and
 * the watermarks say — edge-0 owes it again — and they are saved before the task can be parked:
 * parked with the store's counters, it would be read back owing one result where its nodes owe
 * two, and finish when the first of them answered. */
static void a_task_read_back_at_a_restart_is_saved_as_it_is_before_it_is_parked(void **state) {
  (void)state;
  lab_open();
  lab_edge_1_away(8);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\"]}");
  lab_answer(0, ITEM_SUCCEEDED, 200, "");
  lab_stop();
  struct task_counters counters;
  assert_int_equal(lab_stored_state(0, &counters), TASK_RUNNING);
  assert_int_equal(counters.succeeded, 1);
  lab_store_rewrite("UPDATE nodes SET fast_below = 0 WHERE id = 'edge-0'");
  lab_start(); /* no node is online: both owe it */
  lab_parked_wanted = 1;
  lab_until(lab_parked_enough);
  lab_check_invariants();
  assert_int_equal(lab_stored_state(0, &counters), TASK_RUNNING);
  assert_int_equal(counters.succeeded, 0);
  assert_int_equal(counters.pending, 2);
  size_t before = lab->sent_count;
  lab_node(0, 8);
  lab_node(1, 8);
  lab_sent_wanted = before + 2;
  lab_until(lab_sent_enough);
  lab_answer(before, ITEM_SUCCEEDED, 200, "");
  lab_check_invariants();
  assert_non_null(lab_task(0)); /* the other node's result is still owed */
  lab_answer(before + 1, ITEM_SUCCEEDED, 200, "");
  lab_until(lab_all_tasks_gone);
  assert_int_equal(lab_stored_state(0, &counters), TASK_DONE);
  assert_int_equal(counters.succeeded, 2);
  assert_int_equal(counters.total, 2);
  lab_close();
}

static struct fabric_node *lab_late;
static bool lab_late_save_failed(void) { return lab_late->save_due; }
static bool lab_late_saved(void) {
  struct store *reader = lab_store_connect(true);
  struct arena reads;
  arena_init(&reads, 1 << 16);
  struct store_node *nodes;
  size_t count;
  assert_int_equal(store_nodes_load(reader, &reads, &nodes, &count), 0);
  bool saved = false;
  for (size_t i = 0; i < count; i++)
    saved |= strcmp(nodes[i].id, "edge-late") == 0 && nodes[i].number == lab_late->number;
  arena_release(&reads);
  store_close(reader);
  return saved;
}

/* A node whose registry entry could not be saved (the store locked past its busy timeout) has it
 * saved again: the number its tasks' plans name it by must outlive a restart. */
static void a_node_whose_registration_was_not_saved_is_saved_again(void **state) {
  (void)state;
  lab_open();
  lab_node(0, 4);
  lab_until(lab_jobs_back);
  struct store *locker = lab_store_connect(false);
  assert_int_equal(store_begin(locker), 0); /* holds the write lock */
  lab_late = lab_register("edge-late", 4);
  lab_until_within(lab_late_save_failed, 10000); /* after the store's 5 s busy timeout */
  store_rollback(locker);
  store_close(locker);
  lab_until(lab_late_saved); /* with the next watermarks, a second on */
  assert_false(lab_late->save_due);
  lab_close();
}

static bool lab_first_task_adopted(void) { return lab->task_count == 1 && lab_task(0) != NULL; }
static bool lab_first_plan_failed(void) {
  return lab_task(0) && timer_wheel_armed(&lab_task(0)->plan_retry);
}
static struct task lab_final;
static bool lab_first_task_final_in_store(void) {
  lab_final = lab_stored(0);
  return lab_final.state == TASK_DONE;
}

/* A task whose plan's save failed (the store locked past its busy timeout) is never final in the
 * store without its plan, though its result's save, queued behind the plan, runs before the
 * plan's retry: each save carries the plan until one is answered. A crash in between would
 * otherwise leave it done with no plan, its nodes' results unreadable. */
static void a_task_is_never_saved_final_without_its_plan(void **state) {
  (void)state;
  lab_open();
  lab_node(0, 4);
  lab_until(lab_jobs_back);
  lab_lock_before_plan = true;
  lab_post(TASK_PURGE, "{\"urls\":[\"http://a.example/0\"]}");
  lab_until(lab_first_task_adopted);
  lab_answer(lab_sent_index(0, "http://a.example/0"), ITEM_SUCCEEDED, 200, "");
  assert_true(lab_task(0)->finished);
  lab_until_within(lab_first_plan_failed, 10000); /* after the store's 5 s busy timeout */
  store_rollback(lab_locker);
  store_close(lab_locker);
  lab_until(lab_first_task_final_in_store);
  assert_true(lab_final.planned);
  assert_int_equal(lab_final.plan_seq, 1);
  lab_until(lab_all_tasks_gone);
  lab_check_invariants();
  lab_close();
}

/* A plan names its nodes by a bit per node number ever given, and numbers are never reused: on
 * a fleet whose nodes came and went by the tens of thousands it outgrows the 4 KiB its save once
 * had, and the plan was never saved (nor the task ever freed). */
static void a_plan_naming_node_numbers_in_the_tens_of_thousands_is_saved(void **state) {
  (void)state;
  lab_open();
  lab->fabric->node_numbers = 40000; /* as if 40,000 nodes had come and gone */
  lab_node(0, 4);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\"]}"); /* its plan saved */
  assert_int_equal(lab->nodes[0]->number, 40000);
  lab_answer(0, ITEM_SUCCEEDED, 200, "");
  lab_until(lab_all_tasks_gone);
  assert_int_equal(lab_stored_state(0, NULL), TASK_DONE);
  lab_check_invariants();
  lab_close();
}

/* A fabric that cannot open (its agent port taken) undoes what it did first — the nodes and the
 * task it read back, its timers, its loop — and frees it all: the ASan build's leak check holds
 * it to that. It used to return with all of it left behind. */
static void a_fabric_that_cannot_listen_undoes_its_opening(void **state) {
  (void)state;
  lab_open();
  lab_node(0, 4);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\"]}");
  lab_stop(); /* the store keeps the node and the unfinished task */
  int taken = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t length = sizeof(address);
  assert_int_equal(bind(taken, (struct sockaddr *)&address, sizeof(address)), 0);
  assert_int_equal(listen(taken, 1), 0);
  assert_int_equal(getsockname(taken, (struct sockaddr *)&address, &length), 0);
  snprintf(lab->config.agent_listen, sizeof(lab->config.agent_listen), "127.0.0.1:%d",
           ntohs(address.sin_port));
  char err[512];
  struct store_options options = {.read_only = false};
  assert_int_equal(store_open(lab->config.store_address, &options, &lab->store, err, sizeof(err)),
                   0);
  assert_int_equal(store_worker_start(lab->store, true, 64, &lab->writer), 0);
  struct fabric *fabric = NULL;
  assert_int_not_equal(fabric_open(&lab->config, lab->writer, &fabric), 0);
  assert_null(fabric);
  store_worker_stop(lab->writer);
  close(taken);
  snprintf(lab->config.agent_listen, sizeof(lab->config.agent_listen), "127.0.0.1:0");
  lab_start(); /* it opens on a free port, the task read back as before */
  assert_non_null(lab_task(0));
  lab_close();
}

static bool lab_first_result_saved(void) {
  return lab_jobs_back() && lab_stored_state(0, NULL) == TASK_RUNNING;
}

/* A progress save that fails (the store locked past its busy timeout) puts what it held back —
 * the final state, the failure detail — and the next save writes it: nothing of it is lost. */
static void a_failed_progress_save_is_saved_again_whole(void **state) {
  (void)state;
  lab_open();
  lab_node(0, 4);
  lab_submit(TASK_PURGE, "{\"urls\":[\"http://a.example/0\",\"http://a.example/1\"]}");
  lab_answer(lab_sent_index(0, "http://a.example/0"), ITEM_SUCCEEDED, 200, "");
  lab_until(lab_first_result_saved); /* the node's first result, the task running */
  struct store *locker = lab_store_connect(false);
  assert_int_equal(store_begin(locker), 0); /* holds the write lock */
  lab_answer(lab_sent_index(0, "http://a.example/1"), ITEM_FAILED, 404, "http_404");
  struct fabric_task *task = lab_task(0);
  assert_true(task->finished);
  /* The save takes the detail with it (none left in memory) and, failing after the store's 5 s
   * busy timeout, puts it back (and the final state is saved again at once). */
  bool went_out = false;
  int64_t until = clock_now_ms() + 10000;
  while (!went_out || task->failure_count == 0) {
    assert_true(clock_now_ms() < until);
    uv_run(&lab->fabric->loop, UV_RUN_ONCE);
    went_out |= task->saves_in_flight > 0 && task->failure_count == 0;
  }
  assert_int_equal(task->failure_count, 1);
  store_rollback(locker);
  store_close(locker);
  lab_until(lab_all_tasks_gone);
  struct task_counters counters;
  assert_int_equal(lab_stored_state(0, &counters), TASK_PARTIAL);
  assert_int_equal(counters.failed, 1);
  struct store *reader = lab_store_connect(true);
  lab_assert_one_failure(reader, 0, "edge-0", "http_404");
  store_close(reader);
  lab_close();
}

/* A slow disk: each of the writer's commits takes 80 ms more (SQLite's commit hook). */
static int lab_slow_commit(void *unused) {
  (void)unused;
  usleep(80 * 1000);
  return 0; /* commit */
}

/* Tasks finishing one after another every 30 ms while each of the writer's commits takes 80 ms,
 * longer than the 50 ms between saves, so a save is out at every moment: the watermarks (what a
 * restart resends from) are saved all the same, each second or so. They once waited for a moment
 * with no save out, which never came while the results kept coming. */
static void watermarks_keep_up_with_a_slow_writer(void **state) {
  (void)state;
  enum { TASKS = LAB_TASKS_MAX };
  lab_open();
  lab_node(0, TASKS);
  char url[TASKS][64];
  for (size_t n = 0; n < TASKS; n++) {
    char body[128];
    snprintf(url[n], sizeof(url[n]), "http://a.example/%zu", n);
    snprintf(body, sizeof(body), "{\"urls\":[\"http://a.example/%zu\"]}", n);
    lab_submit(TASK_PURGE, body);
  }
  lab_until(lab_jobs_back);
  sqlite3_commit_hook(sqlite_of(lab->store)->db, lab_slow_commit, NULL);
  int64_t oldest = 0;
  for (size_t n = 0; n < TASKS; n++) {
    lab_answer(lab_sent_index(0, url[n]), ITEM_SUCCEEDED, 200, "");
    for (int64_t until = clock_now_ms() + 30; clock_now_ms() < until;)
      uv_run(&lab->fabric->loop, UV_RUN_ONCE);
    int64_t age = clock_now_ms() - lab->fabric->marks_current_ms;
    oldest = age > oldest ? age : oldest;
  }
  sqlite3_commit_hook(sqlite_of(lab->store)->db, NULL, NULL);
  lab_until(lab_all_tasks_gone);
  /* A second between collections, plus the save out and the marks' own, 80 ms or more each. */
  assert_in_range(oldest, 1, 2000);
  lab_check_invariants();
  lab_close();
}

static struct fabric_query *lab_answered;
static void lab_on_answered(struct fabric_query *query) { lab_answered = query; }
static bool lab_has_answer(void) { return lab_answered != NULL; }

/* Asks the fabric a question as an API loop would (the answer comes back to its own mailbox). */
static struct fabric_query *lab_ask(enum fabric_question question) {
  static struct fabric_query query;
  query = (struct fabric_query){
      .question = question, .reply_to = &lab->fabric->inbox, .answered = lab_on_answered};
  lab_answered = NULL;
  fabric_ask(lab->fabric, &query);
  lab_until(lab_has_answer);
  return lab_answered;
}

/* The stats name the ten deepest queues, deepest first, out of every node. */
static void the_stats_name_the_ten_deepest_queues(void **state) {
  (void)state;
  lab_open();
  for (size_t i = 0; i < LAB_NODES; i++)
    lab_node(i, 1);
  char body[1024] = "{\"urls\":[";
  for (size_t u = 0; u < LAB_NODES; u++)
    snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s\"http://a.example/%zu\"",
             u ? "," : "", u);
  strcat(body, "]}");
  lab_submit(TASK_PURGE, body);
  /* Node n answers n items: n + 1 sent, so 11 - n still queued. */
  for (size_t n = 0; n < LAB_NODES; n++) {
    for (size_t answered = 0; answered < n; answered++) {
      size_t k = lab->sent_count;
      while (lab->sent[--k].node != lab->nodes[n]) /* the node's latest item: its one in flight */
        ;
      lab_answer(k, ITEM_SUCCEEDED, 200, "");
    }
  }
  lab_check_invariants();
  struct fabric_query *query = lab_ask(FABRIC_STATS);
  assert_int_equal(query->result, 0);
  json_t *top = json_object_get(query->answer, "top_queues");
  assert_int_equal(json_array_size(top), 10);
  for (size_t i = 0; i < 10; i++) {
    char id[16];
    snprintf(id, sizeof(id), "edge-%zu", i);
    json_t *entry = json_array_get(top, i);
    assert_string_equal(json_string_value(json_object_get(entry, "node")), id);
    assert_int_equal(json_integer_value(json_object_get(entry, "depth")), (json_int_t)(11 - i));
  }
  assert_int_equal(json_integer_value(json_object_get(query->answer, "nodes_online")), 12);
  json_decref(query->answer);
  lab_close();
}

/* The stats are one pass over the nodes: keeping the ten deepest queues takes steps that grow
 * with the fleet, not with its square — even when every node is deeper than all before it. */
static void the_stats_of_a_fleet_take_steps_in_proportion_to_its_nodes(void **state) {
  (void)state;
  lab_open();
  const size_t sizes[2] = {1000, 4000};
  size_t steps[2], made = 0;
  for (size_t round = 0; round < 2; round++) {
    for (; made < sizes[round]; made++) {
      char id[32];
      snprintf(id, sizeof(id), "fleet-%zu", made);
      /* a synthetic queue, deeper than all before */
      lab_register(id, 1)->lane_items[FABRIC_FAST] = made + 1;
    }
    struct fabric_query *query = lab_ask(FABRIC_STATS);
    assert_int_equal(query->result, 0);
    json_t *top = json_object_get(query->answer, "top_queues");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(top, 0), "depth")),
                     (json_int_t)made);
    json_decref(query->answer);
    steps[round] = lab->fabric->stats_steps;
  }
  assert_true(steps[0] >= sizes[0]);
  assert_true(steps[1] <= 25 * sizes[1]); /* a few steps per node */
  assert_true(steps[1] <= 5 * steps[0]);  /* four times the nodes: about four times the steps */
  for (size_t i = 0; i < made; i++)       /* the synthetic queues hold nothing to free */
    lab->fabric->nodes[i]->lane_items[FABRIC_FAST] = 0;
  lab_close();
}

/* Which waiting connection makes room for a new one: none under the caps; past the per-address
 * cap the oldest from that address, past the overall cap the oldest of all. */
static void the_oldest_waiting_connection_makes_room(void **state) {
  (void)state;
  struct list_head pending = {0};
  static const char *const addresses[] = {"10.0.0.1", "10.0.0.2", "10.0.0.1",
                                          "10.0.0.3", "10.0.0.2", "10.0.0.1"};
  struct fabric_link links[6];
  memset(links, 0, sizeof(links));
  for (size_t i = 0; i < 6; i++) { /* accepted in this order: the list is newest first */
    snprintf(links[i].address, sizeof(links[i].address), "%s", addresses[i]);
    list_push_front(&pending, &links[i].pending);
  }
  size_t from = 0;
  assert_null(fabric_pending_victim(&pending, "10.0.0.9", 7, 4, &from));
  assert_int_equal(from, 0);
  assert_null(fabric_pending_victim(&pending, "10.0.0.1", 7, 4, &from));
  assert_int_equal(from, 3);
  /* 10.0.0.1 is at its cap: its oldest goes, though 10.0.0.2's is older still... */
  assert_ptr_equal(fabric_pending_victim(&pending, "10.0.0.1", 7, 3, &from), &links[0]);
  assert_ptr_equal(fabric_pending_victim(&pending, "10.0.0.2", 7, 2, &from), &links[1]);
  /* ...and at the overall cap the oldest of all goes, whoever it came from. */
  assert_ptr_equal(fabric_pending_victim(&pending, "10.0.0.9", 6, 4, &from), &links[0]);
  list_remove(&pending, &links[0].pending);
  assert_ptr_equal(fabric_pending_victim(&pending, "10.0.0.3", 5, 4, &from), &links[1]);
  assert_ptr_equal(fabric_pending_victim(&pending, "10.0.0.1", 5, 2, &from), &links[2]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(work_goes_out_within_the_window_and_results_free_it),
      cmocka_unit_test(the_oldest_waiting_connection_makes_room),
      cmocka_unit_test(stale_and_repeated_results_are_ignored),
      cmocka_unit_test(purges_go_ahead_of_preloads),
      cmocka_unit_test(a_retryable_failure_is_sent_again_until_its_attempts_run_out),
      cmocka_unit_test(an_identical_purge_in_flight_is_joined_not_sent_again),
      cmocka_unit_test(a_purge_sent_before_a_task_was_accepted_does_not_stand_in_for_it),
      cmocka_unit_test(a_node_going_offline_gets_its_work_again_when_back),
      cmocka_unit_test(a_node_removed_before_a_restart_is_not_waited_for),
      cmocka_unit_test(a_task_is_kept_in_an_arena_of_its_size),
      cmocka_unit_test(a_canceled_task_keeps_what_each_node_did),
      cmocka_unit_test(tasks_owed_only_by_an_offline_node_are_parked_and_come_back_in_order),
      cmocka_unit_test(a_parked_task_ends_canceled_at_its_deadline_or_when_its_node_is_removed),
      cmocka_unit_test(a_parked_task_read_back_canceled_is_not_sent),
      cmocka_unit_test(a_node_whose_registration_was_not_saved_is_saved_again),
      cmocka_unit_test(a_task_read_back_at_a_restart_is_saved_as_it_is_before_it_is_parked),
      cmocka_unit_test(a_task_read_back_at_a_restart_resumes_each_node_where_it_was),
      cmocka_unit_test(a_failed_progress_save_is_saved_again_whole),
      cmocka_unit_test(a_task_is_never_saved_final_without_its_plan),
      cmocka_unit_test(watermarks_keep_up_with_a_slow_writer),
      cmocka_unit_test(a_plan_naming_node_numbers_in_the_tens_of_thousands_is_saved),
      cmocka_unit_test(a_fabric_that_cannot_listen_undoes_its_opening),
      cmocka_unit_test(the_stats_name_the_ten_deepest_queues),
      cmocka_unit_test(the_stats_of_a_fleet_take_steps_in_proportion_to_its_nodes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
