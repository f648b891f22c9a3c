/* store_fixture.c — the store tests' fixture (store_fixture.h). */
#include "unit.h"

#include "store_fixture.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char fixture_postgres_address[256];
static char postgres_dir[64];

const char *const ids[3] = {"01M87BCTXNBXVP8BSWWYX7577A", "01M87BCTXNBXVP8BSWWYX7577B",
                            "01M87BCTXNBXVP8BSWWYX7577C"};

const char *fixture_postgres_dir(void) { return postgres_dir; }

int fixture_postgres_start(void) {
  if (fixture_postgres_address[0])
    return 0;
  snprintf(postgres_dir, sizeof(postgres_dir), "/tmp/cdr-test-pg-XXXXXX");
  if (!mkdtemp(postgres_dir))
    return -1;
  char command[256];
  snprintf(command, sizeof(command), "%s/tests/pg-server start %s", CDR_SOURCE_DIR, postgres_dir);
  FILE *server = popen(command, "r");
  if (!server)
    return -1;
  char *line = fgets(fixture_postgres_address, sizeof(fixture_postgres_address), server);
  if (pclose(server) != 0 || !line) {
    fixture_postgres_address[0] = '\0';
    return -1;
  }
  fixture_postgres_address[strcspn(fixture_postgres_address, "\n")] = '\0';
  return 0;
}

void fixture_postgres_stop(void) {
  if (!postgres_dir[0])
    return;
  char command[256];
  snprintf(command, sizeof(command), "%s/tests/pg-server stop %s", CDR_SOURCE_DIR, postgres_dir);
  if (system(command) != 0)
    fprintf(stderr, "could not stop the PostgreSQL server in %s\n", postgres_dir);
  fixture_postgres_address[0] = postgres_dir[0] = '\0';
}

static int fixture_open(struct fixture *f, void **state) {
  char err[512];
  struct store_options options = {.synchronous_full = false};
  if (store_open(f->address, &options, &f->writer, err, sizeof(err))) {
    fprintf(stderr, "store_open: %s\n", err);
    return -1;
  }
  options.read_only = true;
  if (store_open(f->address, &options, &f->reader, err, sizeof(err))) {
    fprintf(stderr, "store_open: %s\n", err);
    return -1;
  }
  arena_init(&f->arena, 1 << 20);
  *state = f;
  return 0;
}

int fixture_setup_sqlite(void **state) {
  struct fixture *f = calloc(1, sizeof(*f));
  snprintf(f->dir, sizeof(f->dir), "/tmp/cdr-test-store-XXXXXX");
  if (!mkdtemp(f->dir))
    return -1;
  snprintf(f->address, sizeof(f->address), "sqlite:%s", f->dir);
  return fixture_open(f, state);
}

int fixture_setup_postgres(void **state) {
  if (fixture_postgres_start())
    return -1;
  /* Every case starts from an empty database, as a SQLite case from an empty directory. */
  PGconn *conn = PQconnectdb(fixture_postgres_address);
  PGresult *res = PQexec(
      conn, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public");
  bool emptied = PQresultStatus(res) == PGRES_COMMAND_OK;
  if (!emptied)
    fprintf(stderr, "cannot empty the test database: %s\n", PQerrorMessage(conn));
  PQclear(res);
  PQfinish(conn);
  if (!emptied)
    return -1;
  struct fixture *f = calloc(1, sizeof(*f));
  snprintf(f->address, sizeof(f->address), "%s", fixture_postgres_address);
  return fixture_open(f, state);
}

int fixture_teardown(void **state) {
  struct fixture *f = *state;
  store_close(f->writer);
  store_close(f->reader);
  arena_release(&f->arena);
  int rc = 0;
  if (f->dir[0]) {
    char command[128];
    snprintf(command, sizeof(command), "rm -rf %s", f->dir);
    rc = system(command);
  }
  free(f);
  return rc;
}

void reopen(struct fixture *f) {
  char err[512];
  struct store_options options = {.read_only = false};
  assert_int_equal(store_open(f->address, &options, &f->writer, err, sizeof(err)), 0);
  options.read_only = true;
  assert_int_equal(store_open(f->address, &options, &f->reader, err, sizeof(err)), 0);
}

struct task *make_task(struct arena *arena, const char *id, size_t n) {
  struct task *task = arena_alloc(arena, sizeof(*task));
  memset(task, 0, sizeof(*task));
  snprintf(task->id, sizeof(task->id), "%s", id);
  task->tenant = "dev";
  task->type = TASK_PURGE;
  task->state = TASK_QUEUED;
  task->deadline_s = 60;
  task->verify = true;
  task->created_ms = 1795000000000;
  task->node_groups_json = "[\"eu\"]";
  task->targets = arena_alloc(arena, n * sizeof(*task->targets));
  for (size_t i = 0; i < n; i++) {
    char url[64];
    snprintf(url, sizeof(url), "https://a.com/%zu", i);
    task->targets[i] = (struct task_target){TARGET_URL, ITEM_PENDING, arena_strdup(arena, url)};
  }
  task->target_count = n;
  task->target_counts[TARGET_URL] = n;
  return task;
}

void plan(struct task *task, int64_t plan_seq, uint8_t nodes, uint8_t plan[1]) {
  plan[0] = 0;
  for (size_t number = 0; number < 8; number++) {
    if (nodes >> number & 1)
      plan_nodes_set(plan, number);
  }
  task->plan_seq = plan_seq;
  task->plan_nodes = plan;
  task->plan_nodes_len = 1;
}

void insert(struct fixture *f, struct task *task) {
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_task_insert(f->writer, task), 0);
  assert_int_equal(store_commit(f->writer), 0);
}
