/* test_store_contract.c — what every store backend does alike (store.h's contract): each case
 * runs on SQLite in a temporary directory and on a PostgreSQL server the test starts itself
 * (tests/pg-server), emptied before each case. What only one backend has (SQLite's migrations of
 * old files, PostgreSQL's reconnects) is tested in test_store_sqlite and test_store_postgres. */
#include "unit.h"

#include "common/error.h"
#include "common/task_id.h"
#include "store/store.h"
#include "store/task_items.h"
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void store_round_trips_a_task(void **state) {
  struct fixture *f = *state;
  insert(f, make_task(&f->arena, ids[0], 3));
  struct task *got;
  assert_int_equal(store_task_get(f->reader, "dev", ids[0], &f->arena, &got), 0);
  assert_string_equal(got->id, ids[0]);
  assert_string_equal(got->tenant, "dev");
  assert_int_equal(got->type, TASK_PURGE);
  assert_int_equal(got->state, TASK_QUEUED);
  assert_int_equal(got->deadline_s, 60);
  assert_int_equal(got->created_ms, 1795000000000);
  assert_string_equal(got->node_groups_json, "[\"eu\"]");
  assert_null(got->callback);
  assert_int_equal(got->target_count, 3);
  assert_int_equal(got->target_counts[TARGET_URL], 3);
}

static void store_hides_other_tenants_tasks(void **state) {
  struct fixture *f = *state;
  insert(f, make_task(&f->arena, ids[0], 1));
  struct task *got;
  assert_int_equal(store_task_get(f->reader, "other", ids[0], &f->arena, &got),
                   CDR_ETASK_NOT_FOUND);
  assert_int_equal(store_task_get(f->reader, "dev", ids[1], &f->arena, &got), CDR_ETASK_NOT_FOUND);
}

static void store_lists_newest_first_in_pages(void **state) {
  struct fixture *f = *state;
  for (int i = 0; i < 3; i++)
    insert(f, make_task(&f->arena, ids[i], 1));
  struct store_task_page page;
  assert_int_equal(store_tasks_list(f->reader, "dev", NULL, NULL, 2, &f->arena, &page), 0);
  assert_int_equal(page.count, 2);
  assert_true(page.more);
  assert_string_equal(page.tasks[0]->id, ids[2]);
  assert_string_equal(page.tasks[1]->id, ids[1]);
  assert_int_equal(store_tasks_list(f->reader, "dev", NULL, ids[1], 2, &f->arena, &page), 0);
  assert_int_equal(page.count, 1);
  assert_false(page.more);
  assert_string_equal(page.tasks[0]->id, ids[0]);
}

static void store_cancels_and_filters_by_state(void **state) {
  struct fixture *f = *state;
  for (int i = 0; i < 2; i++)
    insert(f, make_task(&f->arena, ids[i], 2));
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_task_cancel(f->writer, "dev", ids[0], 1795000001000), 0);
  assert_int_equal(store_commit(f->writer), 0);

  enum task_state canceled = TASK_CANCELED;
  struct store_task_page page;
  assert_int_equal(store_tasks_list(f->reader, "dev", &canceled, NULL, 10, &f->arena, &page), 0);
  assert_int_equal(page.count, 1);
  assert_string_equal(page.tasks[0]->id, ids[0]);
  assert_int_equal(page.tasks[0]->finished_ms, 1795000001000);

  enum item_state item = ITEM_CANCELED;
  struct item_page items;
  assert_int_equal(task_items_page(f->reader, page.tasks[0], &item, -1, 10, &f->arena, &items), 0);
  assert_int_equal(items.count, 2);

  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_task_cancel(f->writer, "dev", ids[0], 1), CDR_ETASK_FINAL);
  assert_int_equal(store_task_cancel(f->writer, "dev", ids[2], 1), CDR_ETASK_NOT_FOUND);
  assert_int_equal(store_commit(f->writer), 0);

  /* The counts by state follow every write. */
  int64_t counts[6];
  assert_int_equal(store_task_counts(f->reader, counts), 0);
  assert_int_equal(counts[TASK_QUEUED], 1);
  assert_int_equal(counts[TASK_CANCELED], 1);
  assert_int_equal(counts[TASK_DONE], 0);
}

static void store_prunes_old_finished_tasks_in_bounded_pieces(void **state) {
  struct fixture *f = *state;
  static const char *const more_ids[] = {"01M87BCTXNBXVP8BSWWYX7577D", "01M87BCTXNBXVP8BSWWYX7577E",
                                         "01M87BCTXNBXVP8BSWWYX7577F"};
  for (int i = 0; i < 3; i++)
    insert(f, make_task(&f->arena, ids[i], 3));
  struct task *due = make_task(&f->arena, more_ids[0], 1);
  due->callback = "https://hooks.example.com/x";
  due->callback_state = CALLBACK_PENDING;
  insert(f, due);
  insert(f, make_task(&f->arena, more_ids[1], 1));
  assert_int_equal(store_begin(f->writer), 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal(store_task_cancel(f->writer, "dev", ids[i], 1795000001000), 0);
  assert_int_equal(store_task_cancel(f->writer, "dev", more_ids[0], 1795000001000), 0);
  assert_int_equal(store_commit(f->writer), 0);

  int64_t created = task_id_time_ms(ids[0]);
  size_t pruned = 0;
  bool more = false;
  /* Nothing was created before its own creation time, nor before the epoch (a retention of
   * more days than have passed since). */
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_tasks_prune(f->writer, -1795000000000, 1000, &pruned, &more), 0);
  assert_int_equal(pruned, 0);
  assert_int_equal(store_tasks_prune(f->writer, created, 1000, &pruned, &more), 0);
  assert_int_equal(pruned, 0);
  assert_false(more);
  /* A row budget smaller than one task's rows still takes that task, then stops. */
  assert_int_equal(store_tasks_prune(f->writer, created + 1, 1, &pruned, &more), 0);
  assert_int_equal(pruned, 1);
  assert_true(more);
  assert_int_equal(store_tasks_prune(f->writer, created + 1, 1000, &pruned, &more), 0);
  assert_int_equal(pruned, 1);
  assert_false(more);
  assert_int_equal(store_commit(f->writer), 0);

  struct task *got;
  for (int i = 0; i < 2; i++)
    assert_int_equal(store_task_get(f->reader, "dev", ids[i], &f->arena, &got),
                     CDR_ETASK_NOT_FOUND);
  /* Unfinished, or with a callback still due: kept. */
  assert_int_equal(store_task_get(f->reader, "dev", ids[2], &f->arena, &got), 0);
  assert_int_equal(got->target_count, 3);
  assert_int_equal(store_task_get(f->reader, "dev", more_ids[0], &f->arena, &got), 0);
  assert_int_equal(store_task_get(f->reader, "dev", more_ids[1], &f->arena, &got), 0);
  struct store_target_page targets;
  assert_int_equal(store_targets_list(f->reader, ids[0], -1, 10, &f->arena, &targets), 0);
  assert_int_equal(targets.count, 0); /* its targets went with it */
  int64_t counts[6];
  assert_int_equal(store_task_counts(f->reader, counts), 0);
  assert_int_equal(counts[TASK_QUEUED], 2);
  assert_int_equal(counts[TASK_CANCELED], 1);
}

static void store_pages_targets_in_order(void **state) {
  struct fixture *f = *state;
  insert(f, make_task(&f->arena, ids[0], 5));
  struct store_target_page page;
  assert_int_equal(store_targets_list(f->reader, ids[0], -1, 2, &f->arena, &page), 0);
  assert_int_equal(page.count, 2);
  assert_true(page.more);
  assert_string_equal(page.targets[1].value, "https://a.com/1");
  assert_int_equal(store_targets_list(f->reader, ids[0], page.indexes[1], 10, &f->arena, &page), 0);
  assert_int_equal(page.count, 3);
  assert_false(page.more);
  assert_int_equal(page.indexes[0], 2);
  assert_string_equal(page.targets[2].value, "https://a.com/4");
}

static void store_rollback_forgets_writes(void **state) {
  struct fixture *f = *state;
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_task_insert(f->writer, make_task(&f->arena, ids[0], 1)), 0);
  store_rollback(f->writer);
  struct task *got;
  assert_int_equal(store_task_get(f->reader, "dev", ids[0], &f->arena, &got), CDR_ETASK_NOT_FOUND);
}

static void store_refuses_duplicate_ids(void **state) {
  struct fixture *f = *state;
  insert(f, make_task(&f->arena, ids[0], 1));
  assert_int_equal(store_begin(f->writer), 0);
  /* A backend may send its inserts with the commit: the insert or the commit fails. */
  int inserted = store_task_insert(f->writer, make_task(&f->arena, ids[0], 1));
  assert_int_equal(inserted ? inserted : store_commit(f->writer), CDR_ESTORE_UNAVAILABLE);
  store_rollback(f->writer);
  int64_t counts[6];
  assert_int_equal(store_task_counts(f->reader, counts), 0);
  assert_int_equal(counts[TASK_QUEUED], 1);
}

/* Opens the fixture's writer and reader again on its directory. */
static void store_keeps_tasks_across_reopen(void **state) {
  struct fixture *f = *state;
  insert(f, make_task(&f->arena, ids[0], 2));
  store_close(f->writer);
  store_close(f->reader);
  reopen(f);
  struct task *got;
  assert_int_equal(store_task_get(f->reader, "dev", ids[0], &f->arena, &got), 0);
  assert_int_equal(got->target_count, 2);
}

static void store_resumes_plans_and_results(void **state) {
  struct fixture *f = *state;
  struct task *task = make_task(&f->arena, ids[0], 5);
  insert(f, task);
  struct store_node node = {"edge-1", "[\"eu\"]", "nginx", "0.1.0", 1, 1, 0, .number = 0};
  struct store_node other = {"edge-2", "[\"eu\"]", "nginx", "0.1.0", 1, 1, 0, .number = 1};
  uint8_t plan_nodes[1];
  plan(task, 7, 0x3, plan_nodes); /* edge-1 and edge-2 */
  task->counters.total = task->counters.pending = 10;
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_node_upsert(f->writer, &node), 0);
  assert_int_equal(store_node_upsert(f->writer, &other), 0);
  assert_int_equal(store_task_plan(f->writer, task), 0);
  assert_int_equal(store_commit(f->writer), 0);

  /* edge-1 finishes the task (its watermark passes it) with item 4 failed; edge-2 has a record
   * of its own (a success at item 0 its agent could not verify) and item 4 unsupported. */
  uint8_t states_b[2] = {0}, verified_b[1] = {0};
  item_states_set(states_b, 0, ITEM_SUCCEEDED);
  item_states_set(states_b, 4, ITEM_UNSUPPORTED);
  struct store_task_node kept = {.node_id = "edge-2",
                                 .states = states_b,
                                 .states_len = 2,
                                 .verified = verified_b,
                                 .verified_len = 1,
                                 .succeeded = 1,
                                 .unsupported = 1};
  struct store_failure failures[2] = {{4, "edge-1", ITEM_FAILED, 503, "http_503"},
                                      {4, "edge-2", ITEM_UNSUPPORTED, 0, "no_soft_purge"}};
  struct store_node_mark marks[2] = {{"edge-1", 8, 3}, {"edge-2", 7, 3}};
  task->state = TASK_RUNNING;
  task->started_ms = 1795000000500;
  task->counters.succeeded = 5;
  task->counters.failed = task->counters.unsupported = 1;
  task->counters.verified = 4;
  task->counters.pending = 3;
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_task_progress(f->writer, task, &kept, 1, failures, 2), 0);
  assert_int_equal(store_node_marks_save(f->writer, marks, 2), 0);
  assert_int_equal(store_commit(f->writer), 0);

  struct task **tasks;
  size_t count;
  assert_int_equal(store_tasks_unfinished(f->reader, &f->arena, &tasks, &count), 0);
  assert_int_equal(count, 1);
  assert_true(tasks[0]->planned);
  assert_int_equal(tasks[0]->state, TASK_RUNNING);
  assert_int_equal(tasks[0]->counters.pending, 3);
  assert_int_equal(tasks[0]->counters.verified, 4);
  assert_int_equal(tasks[0]->plan_seq, 7);
  assert_int_equal(tasks[0]->plan_nodes_len, 1);
  assert_true(plan_nodes_has(tasks[0]->plan_nodes, 1, 0));
  assert_true(plan_nodes_has(tasks[0]->plan_nodes, 1, 1));
  assert_false(plan_nodes_has(tasks[0]->plan_nodes, 1, 2));
  assert_true(tasks[0]->verify);
  assert_string_equal(tasks[0]->targets[4].value, "https://a.com/4");

  struct store_task_node *nodes;
  assert_int_equal(store_task_nodes_load(f->reader, ids[0], &f->arena, &nodes, &count), 0);
  assert_int_equal(count, 1); /* only the record kept */
  assert_string_equal(nodes[0].node_id, "edge-2");
  assert_int_equal(item_states_get(nodes[0].states, 0), ITEM_SUCCEEDED);
  assert_int_equal(item_states_get(nodes[0].states, 1), ITEM_PENDING);
  assert_false(item_verified_get(nodes[0].verified, 0));

  /* Item 0: succeeded and verified on edge-1 (its watermark), succeeded unverified on edge-2 (its
   * record); item 1: succeeded on edge-1, pending on edge-2. */
  struct item_page first;
  assert_int_equal(task_items_page(f->reader, tasks[0], NULL, -1, 2, &f->arena, &first), 0);
  assert_int_equal(first.count, 2);
  assert_int_equal(first.rows[0].nodes[0].state, ITEM_SUCCEEDED);
  assert_true(first.rows[0].nodes[0].verified);
  assert_int_equal(first.rows[0].nodes[1].state, ITEM_SUCCEEDED);
  assert_false(first.rows[0].nodes[1].verified);
  assert_int_equal(first.rows[0].target.state, ITEM_SUCCEEDED);
  assert_int_equal(first.rows[1].nodes[0].state, ITEM_SUCCEEDED);
  assert_int_equal(first.rows[1].nodes[1].state, ITEM_PENDING);
  assert_int_equal(first.rows[1].target.state, ITEM_PENDING);

  enum item_state failed = ITEM_FAILED;
  struct item_page items;
  assert_int_equal(task_items_page(f->reader, tasks[0], &failed, -1, 10, &f->arena, &items), 0);
  assert_int_equal(items.count, 1);
  assert_int_equal(items.rows[0].index, 4);
  assert_int_equal(items.rows[0].nodes[0].state, ITEM_FAILED);
  assert_int_equal(items.rows[0].nodes[0].http_status, 503);
  assert_int_equal(items.rows[0].nodes[1].state, ITEM_UNSUPPORTED);
  assert_string_equal(items.rows[0].nodes[1].reason, "no_soft_purge");
  assert_int_equal(items.next_cursor, -1);

  struct store_node *registered;
  assert_int_equal(store_nodes_load(f->reader, &f->arena, &registered, &count), 0);
  assert_int_equal(count, 2);
  assert_string_equal(registered[0].cache_kind, "nginx");
  assert_int_equal(registered[0].first_result_ms, 0);
  assert_int_equal(registered[1].number, 1);
  assert_int_equal(registered[0].fast_below, 8);
  assert_int_equal(registered[1].fast_below, 7);
  assert_int_equal(registered[1].slow_below, 3);
  assert_false(registered[1].removed);
  /* A first result is kept, and a later Hello that does not know it leaves it. */
  node.first_result_ms = 1795000000700;
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_node_upsert(f->writer, &node), 0);
  node.first_result_ms = 0;
  node.last_seen_ms = 2;
  assert_int_equal(store_node_upsert(f->writer, &node), 0);
  assert_int_equal(store_commit(f->writer), 0);
  assert_int_equal(store_nodes_load(f->reader, &f->arena, &registered, &count), 0);
  assert_int_equal(registered[0].first_result_ms, 1795000000700);
  assert_int_equal(registered[0].last_seen_ms, 2);
  /* A removed node stays, flagged, so its number and results stay known; a Hello revives it. */
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_node_delete(f->writer, "edge-2"), 0);
  assert_int_equal(store_commit(f->writer), 0);
  assert_int_equal(store_nodes_load(f->reader, &f->arena, &registered, &count), 0);
  assert_int_equal(count, 2);
  assert_true(registered[1].removed);
  assert_int_equal(registered[1].number, 1);
  assert_int_equal(task_items_page(f->reader, tasks[0], NULL, -1, 1, &f->arena, &first), 0);
  assert_int_equal(first.rows[0].node_count, 2);
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_node_upsert(f->writer, &other), 0);
  assert_int_equal(store_commit(f->writer), 0);
  assert_int_equal(store_nodes_load(f->reader, &f->arena, &registered, &count), 0);
  assert_false(registered[1].removed);
}

/* A page holds at most 10,000 (item, node) results, whatever its limit of items, and a filtered
 * page looks at no more than 100,000 results before it answers: a page costs what it returns. */
/* A page holds at most 10,000 (item, node) results, whatever its limit of items, and a filtered
 * page looks at no more than 100,000 results before it answers: a page costs what it returns. */
static void store_item_pages_are_bounded_by_results(void **state) {
  struct fixture *f = *state;
  enum { NODES = 200, TARGETS = 1000 };
  struct task *task = make_task(&f->arena, ids[0], TARGETS);
  insert(f, task);
  uint8_t plan_nodes[NODES / 8] = {0};
  assert_int_equal(store_begin(f->writer), 0);
  for (int i = 0; i < NODES; i++) {
    char id[16];
    snprintf(id, sizeof(id), "n-%03d", i);
    struct store_node node = {id, "[]", "nginx", "0.1.0", 1, 1, 0, .number = i};
    assert_int_equal(store_node_upsert(f->writer, &node), 0);
    plan_nodes_set(plan_nodes, (size_t)i);
  }
  assert_int_equal(store_commit(f->writer), 0);
  task->plan_nodes = plan_nodes;
  task->plan_nodes_len = sizeof(plan_nodes);
  task->state = TASK_DONE; /* every node's results derived: all succeeded */
  struct arena reads;      /* as much as the API gives a read: 16 MiB */
  arena_init(&reads, 16 << 20);
  struct item_page page;
  assert_int_equal(task_items_page(f->reader, task, NULL, -1, 1000, &reads, &page), 0);
  assert_int_equal(page.count, 10000 / NODES);
  assert_int_equal(page.rows[0].node_count, NODES);
  assert_int_equal(page.next_cursor, 10000 / NODES - 1);
  enum item_state failed = ITEM_FAILED;
  assert_int_equal(task_items_page(f->reader, task, &failed, -1, 1000, &reads, &page), 0);
  assert_int_equal(page.count, 0);
  assert_int_equal(page.next_cursor, 100000 / NODES - 1);
  /* On one node a page is bounded by its limit. */
  task->plan_nodes_len = 1;
  memset(plan_nodes, 0, sizeof(plan_nodes));
  plan_nodes_set(plan_nodes, 0);
  assert_int_equal(task_items_page(f->reader, task, NULL, -1, 1000, &reads, &page), 0);
  assert_int_equal(page.count, 1000);
  assert_int_equal(page.next_cursor, -1);
  arena_release(&reads);
}

static void store_progress_never_undoes_a_cancel(void **state) {
  struct fixture *f = *state;
  struct task *task = make_task(&f->arena, ids[0], 1);
  insert(f, task);
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_task_cancel(f->writer, "dev", ids[0], 77), 0);
  task->state = TASK_DONE;
  task->finished_ms = 99;
  assert_int_equal(store_task_progress(f->writer, task, NULL, 0, NULL, 0), 0);
  assert_int_equal(store_commit(f->writer), 0);
  struct task *got;
  assert_int_equal(store_task_get(f->reader, "dev", ids[0], &f->arena, &got), 0);
  assert_int_equal(got->state, TASK_CANCELED);
  assert_int_equal(got->finished_ms, 77);
}

/* A task finished on every node whose final save reaches the store after a cancel (the task
 * stays canceled): the rows the cancel held for its nodes read what each node did, not canceled
 * — the counters the save brings say so too. */
/* A task finished on every node whose final save reaches the store after a cancel (the task
 * stays canceled): the rows the cancel held for its nodes read what each node did, not canceled
 * — the counters the save brings say so too. */
static void store_a_finish_saved_after_a_cancel_reads_what_each_node_did(void **state) {
  struct fixture *f = *state;
  struct task *task = make_task(&f->arena, ids[0], 2);
  insert(f, task);
  struct store_node one = {"edge-1", "[\"eu\"]", "nginx", "0.1.0", 1, 1, 0, .number = 0};
  struct store_node two = {"edge-2", "[\"eu\"]", "nginx", "0.1.0", 1, 1, 0, .number = 1};
  uint8_t plan_nodes[1];
  plan(task, 7, 0x3, plan_nodes);
  task->state = TASK_RUNNING;
  task->counters.total = task->counters.pending = 4;
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_node_upsert(f->writer, &one), 0);
  assert_int_equal(store_node_upsert(f->writer, &two), 0);
  assert_int_equal(store_task_plan(f->writer, task), 0);
  assert_int_equal(store_task_cancel(f->writer, "dev", ids[0], 77), 0); /* holds both */
  task->state = TASK_PARTIAL; /* as the fabric had it, finished just before the cancel */
  task->counters = (struct task_counters){.total = 4, .succeeded = 3, .failed = 1, .verified = 3};
  struct store_failure failure = {0, "edge-2", ITEM_FAILED, 503, "http_503"};
  assert_int_equal(store_task_progress(f->writer, task, NULL, 0, &failure, 1), 0);
  assert_int_equal(store_commit(f->writer), 0);
  struct task *got;
  assert_int_equal(store_task_get(f->reader, "dev", ids[0], &f->arena, &got), 0);
  assert_int_equal(got->state, TASK_CANCELED);
  assert_int_equal(got->counters.succeeded, 3);
  struct item_page page;
  assert_int_equal(task_items_page(f->reader, got, NULL, -1, 10, &f->arena, &page), 0);
  assert_int_equal(page.count, 2);
  assert_int_equal(page.rows[0].nodes[0].state, ITEM_SUCCEEDED);
  assert_true(page.rows[0].nodes[0].verified);
  assert_int_equal(page.rows[0].nodes[1].state, ITEM_FAILED);
  assert_string_equal(page.rows[0].nodes[1].reason, "http_503");
  assert_int_equal(page.rows[1].nodes[0].state, ITEM_SUCCEEDED);
  assert_int_equal(page.rows[1].nodes[1].state, ITEM_SUCCEEDED);
  assert_true(page.rows[1].nodes[1].verified);
}

/* A cancel holds what the nodes that had not finished the task owe in rows of their own, in its
 * own transaction: should the engine die before the fabric saves anything more, the watermarks
 * that pass the canceled task later must not make those nodes read as having purged. */
/* A cancel holds what the nodes that had not finished the task owe in rows of their own, in its
 * own transaction: should the engine die before the fabric saves anything more, the watermarks
 * that pass the canceled task later must not make those nodes read as having purged. */
static void store_cancel_keeps_unfinished_nodes_canceled_whatever_their_watermarks(void **state) {
  struct fixture *f = *state;
  struct task *task = make_task(&f->arena, ids[0], 2);
  insert(f, task);
  struct store_node done = {"edge-1", "[\"eu\"]", "nginx", "0.1.0", 1, 1, 0, .number = 0};
  struct store_node behind = {"edge-2", "[\"eu\"]", "nginx", "0.1.0", 1, 1, 0, .number = 1};
  struct store_node elsewhere = {"edge-3", "[\"us\"]", "nginx", "0.1.0", 1, 1, 0, .number = 2};
  uint8_t plan_nodes[1];
  plan(task, 7, 0x3, plan_nodes); /* edge-1 and edge-2 */
  task->state = TASK_RUNNING;
  task->counters.total = task->counters.pending = 4;
  struct store_node_mark marks[] = {{"edge-1", 8, 1}, {"edge-2", 7, 1}, {"edge-3", 1, 1}};
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_node_upsert(f->writer, &done), 0);
  assert_int_equal(store_node_upsert(f->writer, &behind), 0);
  assert_int_equal(store_node_upsert(f->writer, &elsewhere), 0);
  assert_int_equal(store_task_plan(f->writer, task), 0);
  assert_int_equal(store_node_marks_save(f->writer, marks, 3), 0);
  assert_int_equal(store_task_cancel(f->writer, "dev", ids[0], 77), 0);
  assert_int_equal(store_commit(f->writer), 0);

  struct store_task_node *rows;
  size_t count;
  assert_int_equal(store_task_nodes_load(f->reader, ids[0], &f->arena, &rows, &count), 0);
  assert_int_equal(count, 1); /* edge-2 only: edge-1 finished, edge-3 was never planned */
  assert_string_equal(rows[0].node_id, "edge-2");

  /* The engine dies here; after the restart edge-2's watermark passes the task, owed nothing. */
  marks[1].fast_below = 9;
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_node_marks_save(f->writer, marks, 3), 0);
  assert_int_equal(store_commit(f->writer), 0);
  struct task *got;
  assert_int_equal(store_task_get(f->reader, "dev", ids[0], &f->arena, &got), 0);
  struct item_page page;
  assert_int_equal(task_items_page(f->reader, got, NULL, -1, 10, &f->arena, &page), 0);
  assert_int_equal(page.count, 2);
  for (size_t i = 0; i < page.count; i++) {
    assert_int_equal(page.rows[i].node_count, 2);
    assert_string_equal(page.rows[i].nodes[0].node_id, "edge-1");
    assert_int_equal(page.rows[i].nodes[0].state, ITEM_SUCCEEDED);
    assert_string_equal(page.rows[i].nodes[1].node_id, "edge-2");
    assert_int_equal(page.rows[i].nodes[1].state, ITEM_CANCELED);
    assert_false(page.rows[i].nodes[1].verified);
    assert_int_equal(page.rows[i].target.state, ITEM_CANCELED);
  }
}

/* A cancel that comes before the task's plan is saved has no plan to hold rows by: the plan's
 * save holds them then, for the same reason. */
/* A cancel that comes before the task's plan is saved has no plan to hold rows by: the plan's
 * save holds them then, for the same reason. */
static void store_plan_of_a_canceled_task_holds_its_nodes(void **state) {
  struct fixture *f = *state;
  struct task *task = make_task(&f->arena, ids[0], 1);
  insert(f, task);
  struct store_node node = {"edge-1", "[\"eu\"]", "nginx", "0.1.0", 1, 1, 0, .number = 0};
  struct store_node other = {"edge-2", "[\"eu\"]", "nginx", "0.1.0", 1, 1, 0, .number = 1};
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_node_upsert(f->writer, &node), 0);
  assert_int_equal(store_node_upsert(f->writer, &other), 0);
  assert_int_equal(store_task_cancel(f->writer, "dev", ids[0], 77), 0);
  uint8_t plan_nodes[1];
  plan(task, 3, 0x2, plan_nodes); /* edge-2 */
  assert_int_equal(store_task_plan(f->writer, task), 0);
  assert_int_equal(store_commit(f->writer), 0);
  struct store_task_node *rows;
  size_t count;
  assert_int_equal(store_task_nodes_load(f->reader, ids[0], &f->arena, &rows, &count), 0);
  assert_int_equal(count, 1); /* the planned node only */
  assert_string_equal(rows[0].node_id, "edge-2");
  assert_int_equal(rows[0].states_len, 0);
  /* A task that is not canceled gets no row from its plan. */
  struct task *running = make_task(&f->arena, ids[1], 1);
  insert(f, running);
  plan(running, 4, 0x2, plan_nodes);
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_task_plan(f->writer, running), 0);
  assert_int_equal(store_commit(f->writer), 0);
  assert_int_equal(store_task_nodes_load(f->reader, ids[1], &f->arena, &rows, &count), 0);
  assert_int_equal(count, 0);
}

/* A cancel on a fleet holds a row for every node of the plan however many nodes and targets it
 * has, both ways round (planned then canceled, canceled then planned): it once read the node
 * registry into 64 KiB, so a cancel on ~200 nodes or more failed, out of memory, and with it
 * every write batched with it. */
static void store_cancel_holds_the_nodes_of_a_large_fleet(void **state) {
  struct fixture *f = *state;
  enum { NODES = 2000, TARGETS = 1000 };
  static uint8_t plan_nodes[NODES / 8];
  struct task *first = make_task(&f->arena, ids[0], TARGETS);
  struct task *second = make_task(&f->arena, ids[1], TARGETS);
  insert(f, first);
  insert(f, second);
  assert_int_equal(store_begin(f->writer), 0);
  for (int64_t number = 0; number < NODES; number++) {
    char id[32];
    snprintf(id, sizeof(id), "edge-%05lld", (long long)number);
    struct store_node node = {id, "[\"eu\"]", "nginx", "0.1.0", 1, 1, 0, .number = number};
    assert_int_equal(store_node_upsert(f->writer, &node), 0);
    plan_nodes_set(plan_nodes, number);
  }
  first->plan_seq = 1;
  second->plan_seq = 2;
  first->plan_nodes = second->plan_nodes = plan_nodes;
  first->plan_nodes_len = second->plan_nodes_len = sizeof(plan_nodes);
  assert_int_equal(store_task_plan(f->writer, first), 0);
  assert_int_equal(store_task_cancel(f->writer, "dev", ids[0], 77), 0);
  assert_int_equal(store_task_cancel(f->writer, "dev", ids[1], 77), 0);
  assert_int_equal(store_task_plan(f->writer, second), 0);
  assert_int_equal(store_commit(f->writer), 0);
  struct arena reads;
  arena_init(&reads, 64 << 20);
  for (size_t i = 0; i < 2; i++) {
    struct store_task_node *rows;
    size_t count;
    assert_int_equal(store_task_nodes_load(f->reader, ids[i], &reads, &rows, &count), 0);
    assert_int_equal(count, NODES);
  }
  arena_release(&reads);
}

static void store_keeps_tenants_and_moves_their_generation_on(void **state) {
  struct fixture *f = *state;
  int64_t generation = -1, after = -1;
  assert_int_equal(store_tenants_generation(f->reader, &generation), 0);
  struct tenant acme = {.name = "acme",
                        .access_key = "AKB",
                        .secret = "s1",
                        .hosts = "a.com",
                        .quota = {5, 0, 2},
                        .rate_requests = 7,
                        .created_ms = 1};
  struct tenant beta = {.name = "beta", .access_key = "AKA", .secret = "s2", .hosts = "*"};
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_tenant_insert(f->writer, &acme), 0);
  assert_int_equal(store_tenant_insert(f->writer, &beta), 0);
  struct tenant clash = {.name = "gamma", .access_key = "AKA", .secret = "s", .hosts = "b.com"};
  assert_int_equal(store_tenant_insert(f->writer, &clash), CDR_ETENANT_EXISTS);
  clash.name = "nobody";
  clash.access_key = "AKZ";
  assert_int_equal(store_tenant_update(f->writer, &clash), CDR_ETENANT_NOT_FOUND);
  assert_int_equal(store_commit(f->writer), 0);
  assert_int_equal(store_tenants_generation(f->reader, &after), 0);
  assert_true(after > generation);

  struct tenant *tenants;
  size_t count;
  assert_int_equal(store_tenants_load(f->reader, &f->arena, &tenants, &count), 0);
  assert_int_equal(count, 2);
  assert_string_equal(tenants[0].name, "beta"); /* ordered by access key */
  assert_string_equal(tenants[1].hosts, "a.com");
  assert_null(tenants[1].tag_prefix);
  assert_int_equal(tenants[1].quota[2], 2);
  assert_int_equal(tenants[1].rate_requests, 7);

  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_tenant_delete(f->writer, "beta"), 0);
  assert_int_equal(store_tenant_delete(f->writer, "beta"), CDR_ETENANT_NOT_FOUND);
  assert_int_equal(store_commit(f->writer), 0);
  assert_int_equal(store_tenants_load(f->reader, &f->arena, &tenants, &count), 0);
  assert_int_equal(count, 1);
}

static void store_charges_quotas_up_to_their_limits(void **state) {
  struct fixture *f = *state;
  const int64_t limit[QUOTA_COUNT] = {5, 0, 2};
  int64_t used[QUOTA_COUNT];
  const int64_t three[QUOTA_COUNT] = {3, 100, 0}, two[QUOTA_COUNT] = {2, 0, 0};
  const int64_t over[QUOTA_COUNT] = {0, 0, 3};
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_quota_charge(f->writer, "acme", 10, over, limit, used),
                   CDR_EQUOTA_EXCEEDED); /* a day's first charge is checked too */
  assert_int_equal(store_quota_charge(f->writer, "acme", 10, three, limit, used), 0);
  assert_int_equal(store_quota_charge(f->writer, "acme", 10, three, limit, used),
                   CDR_EQUOTA_EXCEEDED);
  assert_int_equal(used[0], 3);
  assert_int_equal(store_quota_charge(f->writer, "acme", 10, two, limit, used), 0); /* exactly 5 */
  assert_int_equal(store_quota_charge(f->writer, "acme", 11, three, limit, used), 0); /* new day */
  assert_int_equal(store_commit(f->writer), 0);
  assert_int_equal(store_quota_usage(f->reader, "acme", 10, used), 0);
  assert_int_equal(used[0], 5);
  assert_int_equal(used[1], 100);
  assert_int_equal(store_quota_usage(f->reader, "other", 10, used), 0);
  assert_int_equal(used[0], 0);
}

/* One call admits a task: id, creation time, quota charge and insert; a transaction's charges are
 * counted together and written at its commit, and a rollback leaves no charge behind. */
/* One call admits a task: id, creation time, quota charge and insert; a transaction's charges are
 * counted together and written at its commit, and a rollback leaves no charge behind. */
static void store_admits_tasks_with_ids_and_quota_charges_in_one_call(void **state) {
  struct fixture *f = *state;
  const int64_t limit[QUOTA_COUNT] = {5, 0, 0};
  int64_t used[QUOTA_COUNT];
  const int64_t now = 1795000000000, day = now / 86400000;
  struct task *first = make_task(&f->arena, "", 3), *second = make_task(&f->arena, "", 2);
  struct task *over = make_task(&f->arena, "", 1), *rolled = make_task(&f->arena, "", 4);
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_task_admit(f->writer, first, now, limit, used), 0);
  assert_int_equal(store_task_admit(f->writer, second, now, limit, used), 0);
  assert_int_equal(used[0], 3); /* the first task's charge, not yet written */
  assert_int_equal(store_task_admit(f->writer, over, now, limit, used), CDR_EQUOTA_EXCEEDED);
  assert_int_equal(used[0], 5);
  assert_int_equal(store_commit(f->writer), 0);
  assert_true(strcmp(first->id, second->id) < 0); /* in the order admitted */
  assert_int_equal(first->created_ms, now);
  assert_int_equal(store_quota_usage(f->reader, "dev", day, used), 0);
  assert_int_equal(used[0], 5);
  struct task *read = NULL;
  assert_int_equal(store_task_get(f->reader, "dev", second->id, &f->arena, &read), 0);
  assert_int_equal(read->target_count, 2);
  assert_int_equal(store_task_get(f->reader, "dev", over->id, &f->arena, &read),
                   CDR_ETASK_NOT_FOUND);
  const int64_t more[QUOTA_COUNT] = {100, 0, 0};
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_task_admit(f->writer, rolled, now, more, used), 0);
  store_rollback(f->writer);
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_commit(f->writer), 0); /* the rolled-back charge is not written here */
  assert_int_equal(store_quota_usage(f->reader, "dev", day, used), 0);
  assert_int_equal(used[0], 5);
}

/* A cancel on a fleet holds a row for every node of the plan however many nodes and targets it
 * has, both ways round (planned then canceled, canceled then planned): it once read the node
 * registry into 64 KiB, so a cancel on ~200 nodes or more failed, out of memory, and with it
 * every write batched with it. */
/* An address no backend takes is refused before anything is opened, saying what is taken and
 * not repeating the address, which may hold a password. */
static void store_open_refuses_what_is_not_a_store_address(void **state) {
  (void)state;
  const char *const wrong[] = {"/var/lib/cdnrefresh",
                               "sqlite:",
                               "sqlite",
                               "SQLite:/tmp/x",
                               "mysql://u:secret@h/db",
                               "",
                               "postgresql:cdr:secret@db/cdr",
                               "postgres://cdr@db/cdr",
                               "postgresql://"};
  for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
    struct store *store = NULL;
    char err[256] = "";
    struct store_options options = {.read_only = true};
    assert_int_equal(store_open(wrong[i], &options, &store, err, sizeof(err)), CDR_ECONFIG);
    assert_null(store);
    assert_string_equal(err, "a store address is " STORE_ADDRESSES);
    assert_int_equal(store_address_check(wrong[i], err, sizeof(err)), CDR_ECONFIG);
  }
  char err[256];
  assert_int_equal(store_address_check("sqlite:/tmp/x", err, sizeof(err)), 0);
  assert_int_equal(store_address_check("postgresql://cdr@db:5432/cdr", err, sizeof(err)), 0);
}

/* Logs and errors show where a store is, and never a password, however the address holds it. */
static void store_addresses_are_described_without_their_password(void **state) {
  (void)state;
  static const struct {
    const char *address, *shown;
  } cases[] = {
      {"sqlite:/var/lib/cdnrefresh", "sqlite:/var/lib/cdnrefresh"},
      {"postgresql://cdr:s3cret@db.example:5432/cdr", "postgresql://cdr@db.example:5432/cdr"},
      /* An @ or a / in a password must be percent-encoded: libpq would read part of the password
       * as the host or the port, so such an address is shown as nothing of it. */
      {"postgresql://cdr:s3cr@t@db.example/cdr", "postgresql://(an address libpq cannot read)"},
      {"postgresql://cdr:s3cret/word@db.example/cdr",
       "postgresql://(an address libpq cannot read)"},
      {"postgresql://cdr:s3cr%2Fet@db1:5432,db2:5433/cdr?sslmode=require",
       "postgresql://cdr@db1,db2:5432,5433/cdr"},
      {"postgresql://cdr@db.example/cdr?password=s3cret&connect_timeout=3",
       "postgresql://cdr@db.example/cdr"},
      {"postgresql://cdr@db.example/cdr?pass%77ord=s3cret", "postgresql://cdr@db.example/cdr"},
      {"postgresql://db.example/cdr?password=", "postgresql://db.example/cdr"},
      {"postgresql://cdr:s3cret@db.example/cdr?no_such_option=1",
       "postgresql://(an address libpq cannot read)"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char shown[256];
    store_address_describe(cases[i].address, shown, sizeof(shown));
    assert_string_equal(shown, cases[i].shown);
    assert_null(strstr(shown, "s3cr"));
  }
}

#define ON_SQLITE(name)                                                                            \
  cmocka_unit_test_setup_teardown(name, fixture_setup_sqlite, fixture_teardown)
#define ON_POSTGRES(name)                                                                          \
  cmocka_unit_test_setup_teardown(name, fixture_setup_postgres, fixture_teardown)
#define CONTRACT(each)                                                                             \
  each(store_round_trips_a_task), each(store_hides_other_tenants_tasks),                           \
      each(store_lists_newest_first_in_pages), each(store_cancels_and_filters_by_state),           \
      each(store_prunes_old_finished_tasks_in_bounded_pieces), each(store_pages_targets_in_order), \
      each(store_rollback_forgets_writes), each(store_refuses_duplicate_ids),                      \
      each(store_keeps_tasks_across_reopen), each(store_resumes_plans_and_results),                \
      each(store_item_pages_are_bounded_by_results), each(store_progress_never_undoes_a_cancel),   \
      each(store_a_finish_saved_after_a_cancel_reads_what_each_node_did),                          \
      each(store_cancel_keeps_unfinished_nodes_canceled_whatever_their_watermarks),                \
      each(store_plan_of_a_canceled_task_holds_its_nodes),                                         \
      each(store_cancel_holds_the_nodes_of_a_large_fleet),                                         \
      each(store_keeps_tenants_and_moves_their_generation_on),                                     \
      each(store_charges_quotas_up_to_their_limits),                                               \
      each(store_admits_tasks_with_ids_and_quota_charges_in_one_call),

static int stop_postgres(void **state) {
  (void)state;
  fixture_postgres_stop();
  return 0;
}

int main(void) {
  const struct CMUnitTest sqlite[] = {
      CONTRACT(ON_SQLITE) cmocka_unit_test(store_open_refuses_what_is_not_a_store_address),
      cmocka_unit_test(store_addresses_are_described_without_their_password)};
  const struct CMUnitTest postgres[] = {CONTRACT(ON_POSTGRES)};
  int failed = cmocka_run_group_tests_name("sqlite", sqlite, NULL, NULL);
  return failed + cmocka_run_group_tests_name("postgresql", postgres, NULL, stop_postgres);
}
