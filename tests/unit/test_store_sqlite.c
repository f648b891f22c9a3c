/* test_store_sqlite.c — what only the SQLite backend does: migrating the files of older
 * versions, its read budget, a data directory it cannot use. */
#include "unit.h"

#include "common/error.h"
#include "store/sqlite/store_sqlite_internal.h" /* the reading connection's own database handle */
#include "store/store.h"
#include "store/task_items.h"
#include "store_fixture.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static void store_adds_the_verification_columns_to_an_older_store(void **state) {
  struct fixture *f = *state;
  insert(f, make_task(&f->arena, ids[0], 1));
  store_close(f->writer);
  store_close(f->reader);
  /* The tables as schema 6 made them: without the columns of schema 7. */
  char path[128];
  snprintf(path, sizeof(path), "%s/cdnrefresh.db", f->dir);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "ALTER TABLE tasks DROP COLUMN verify;"
                                "ALTER TABLE tasks DROP COLUMN verified;"
                                "ALTER TABLE task_nodes DROP COLUMN verified;"
                                "ALTER TABLE task_nodes DROP COLUMN verified_count;"
                                "ALTER TABLE nodes DROP COLUMN first_result_ms;"
                                "DROP TRIGGER task_state_count_insert;"
                                "DROP TRIGGER task_state_count_update;"
                                "DROP TRIGGER task_state_count_delete;"
                                "DROP TABLE task_state_counts;"
                                "PRAGMA user_version = 6;",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  reopen(f);
  struct task *got;
  assert_int_equal(store_task_get(f->reader, "dev", ids[0], &f->arena, &got), 0);
  assert_true(got->verify); /* tasks from before verification: the default */
  assert_int_equal(got->counters.verified, 0);
  int64_t counts[6];
  assert_int_equal(store_task_counts(f->reader, counts), 0);
  assert_int_equal(counts[TASK_QUEUED], 1); /* counted from the tasks once, at open */
  insert(f, make_task(&f->arena, ids[1], 1));
  assert_int_equal(store_task_counts(f->reader, counts), 0);
  assert_int_equal(counts[TASK_QUEUED], 2); /* and kept from then on */
}

static void store_plans_again_the_unfinished_tasks_of_an_older_store(void **state) {
  struct fixture *f = *state;
  insert(f, make_task(&f->arena, ids[0], 1));
  insert(f, make_task(&f->arena, ids[1], 1));
  struct store_node node = {"edge-1", "[]", "nginx", "0.1.0", 1, 1, 0, .number = 0};
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_node_upsert(f->writer, &node), 0);
  assert_int_equal(store_commit(f->writer), 0);
  store_close(f->writer);
  store_close(f->reader);
  /* As schema 9 left them: a running task and a finished one, each with a row per node. */
  char path[128], sql[1536];
  snprintf(path, sizeof(path), "%s/cdnrefresh.db", f->dir);
  snprintf(sql, sizeof(sql),
           "UPDATE tasks SET planned = 1, state = 'running', total = 1, pending = 0, "
           "succeeded = 1 WHERE id = '%s';"
           "UPDATE tasks SET planned = 1, state = 'done', total = 1, succeeded = 1 WHERE id = '%s';"
           "INSERT INTO task_nodes VALUES ('%s', 'edge-1', x'01', 1, 0, 0, x'01', 1);"
           "INSERT INTO task_nodes VALUES ('%s', 'edge-1', x'01', 1, 0, 0, x'01', 1);"
           "INSERT INTO item_failures VALUES ('%s', 0, 'edge-1', 'failed', 503, 'http_503');"
           "ALTER TABLE tasks DROP COLUMN plan_seq; ALTER TABLE tasks DROP COLUMN plan_nodes;"
           "ALTER TABLE nodes DROP COLUMN number; ALTER TABLE nodes DROP COLUMN fast_below;"
           "ALTER TABLE nodes DROP COLUMN slow_below; ALTER TABLE nodes DROP COLUMN removed;"
           "PRAGMA user_version = 9;",
           ids[0], ids[1], ids[0], ids[1], ids[0]);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  reopen(f);
  /* The unfinished one is planned again from the start, its old rows and details gone. */
  struct task **tasks;
  size_t count;
  assert_int_equal(store_tasks_unfinished(f->reader, &f->arena, &tasks, &count), 0);
  assert_int_equal(count, 1);
  assert_string_equal(tasks[0]->id, ids[0]);
  assert_false(tasks[0]->planned);
  assert_int_equal(tasks[0]->state, TASK_QUEUED);
  assert_int_equal(tasks[0]->counters.succeeded, 0);
  struct store_task_node *rows;
  assert_int_equal(store_task_nodes_load(f->reader, ids[0], &f->arena, &rows, &count), 0);
  assert_int_equal(count, 0);
  struct store_failure *failures;
  assert_int_equal(store_failures_list(f->reader, ids[0], 0, 10, &f->arena, &failures, &count), 0);
  assert_int_equal(count, 0);
  /* The finished one keeps its row, which its item pages read; the node got a number. */
  struct task *done;
  assert_int_equal(store_task_get(f->reader, "dev", ids[1], &f->arena, &done), 0);
  assert_null(done->plan_nodes);
  struct item_page page;
  assert_int_equal(task_items_page(f->reader, done, NULL, -1, 10, &f->arena, &page), 0);
  assert_int_equal(page.count, 1);
  assert_int_equal(page.rows[0].node_count, 1);
  assert_int_equal(page.rows[0].nodes[0].state, ITEM_SUCCEEDED);
  struct store_node *nodes;
  assert_int_equal(store_nodes_load(f->reader, &f->arena, &nodes, &count), 0);
  assert_int_equal(count, 1);
  assert_int_equal(nodes[0].number, 0);
}

static void store_stops_a_read_past_its_budget(void **state) {
  struct fixture *f = *state;
  char err[256];
  struct store *reader = NULL;
  struct store_options options = {.read_only = true, .read_budget_ms = 50};
  assert_int_equal(store_open(f->address, &options, &reader, err, sizeof(err)), 0);
  /* A statement that would run for minutes, on the reading connection itself. */
  sqlite3_stmt *slow;
  assert_int_equal(sqlite3_prepare_v2(sqlite_of(reader)->db,
                                      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                                      "FROM n WHERE i < 10000000000) SELECT count(*) FROM n",
                                      -1, &slow, NULL),
                   SQLITE_OK);
  store_read_budget_start(reader);
  int rc = sqlite3_step(slow);
  assert_int_equal(rc, SQLITE_INTERRUPT);
  assert_int_equal(sqlite_error(sqlite_of(reader), rc, "a slow read"), CDR_EREAD_TOO_LONG);
  sqlite3_finalize(slow);
  /* The next request's reads get a budget of their own. */
  insert(f, make_task(&f->arena, ids[0], 1));
  store_read_budget_start(reader);
  struct task *got;
  assert_int_equal(store_task_get(reader, "dev", ids[0], &f->arena, &got), 0);
  store_close(reader);
}

static void store_open_reports_unusable_dir(void **state) {
  (void)state;
  struct store *store = NULL;
  char err[256] = "";
  struct store_options options = {.read_only = false};
  assert_int_equal(
      store_open("sqlite:/proc/cdr-cannot-exist/x", &options, &store, err, sizeof(err)),
      CDR_ESTORE_UNAVAILABLE);
  assert_null(store);
  assert_non_null(strstr(err, "/proc/cdr-cannot-exist"));
}

/* An address no backend takes is refused before anything is opened, saying what is taken and
 * not repeating the address, which may hold a password. */

#define STORE_TEST(name)                                                                           \
  cmocka_unit_test_setup_teardown(name, fixture_setup_sqlite, fixture_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      STORE_TEST(store_adds_the_verification_columns_to_an_older_store),
      STORE_TEST(store_plans_again_the_unfinished_tasks_of_an_older_store),
      STORE_TEST(store_stops_a_read_past_its_budget),
      cmocka_unit_test(store_open_reports_unusable_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
