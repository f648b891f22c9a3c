/* test_store_postgres.c — what only the PostgreSQL backend does, on a server the test starts
 * itself (tests/pg-server): errors that never show a password, schema versions, one engine per
 * database (across a restart too), the read budget, and reconnecting after the server went
 * away. */
#include "unit.h"

#include "common/clock.h"
#include "common/error.h"
#include "store/postgres/store_postgres_internal.h" /* PG_SCHEMA_VERSION */
#include "store/store.h"
#include "store_fixture.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Runs sql on the test database, outside any store. */
static void sql(const char *text) {
  PGconn *conn = PQconnectdb(fixture_postgres_address);
  PGresult *res = PQexec(conn, text);
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);
  PQfinish(conn);
}

/* Runs tests/pg-server's command (pause, resume) on the test program's server. */
static void server(const char *command) {
  char line[512];
  snprintf(line, sizeof(line), "%s/tests/pg-server %s %s", CDR_SOURCE_DIR, command,
           fixture_postgres_dir());
  assert_int_equal(system(line), 0);
}

static void postgres_names_a_server_it_cannot_reach_and_never_its_password(void **state) {
  (void)state;
  const char *const unreachable[] = {
      "postgresql://cdr:s3cret-word@127.0.0.1:1/cdnrefresh",
      "postgresql://cdr@127.0.0.1:1/cdnrefresh?password=s3cret-word"};
  for (size_t i = 0; i < 2; i++) {
    struct store *store = NULL;
    char err[512] = "";
    struct store_options options = {.engine = true};
    assert_int_equal(store_open(unreachable[i], &options, &store, err, sizeof(err)),
                     CDR_ESTORE_UNAVAILABLE);
    assert_null(store);
    assert_non_null(strstr(err, "cannot connect to postgresql://cdr"));
    assert_non_null(strstr(err, "@127.0.0.1:1/cdnrefresh"));
    assert_null(strstr(err, "s3cret-word"));
  }
}

static void postgres_refuses_a_database_of_a_newer_schema_naming_both_versions(void **state) {
  struct fixture *f = *state;
  store_close(f->writer);
  store_close(f->reader);
  f->writer = f->reader = NULL;
  sql("UPDATE meta SET value = 99 WHERE key = 'schema_version'");
  for (int read_only = 0; read_only < 2; read_only++) {
    struct store *store = NULL;
    char err[512] = "";
    struct store_options options = {.read_only = read_only};
    assert_int_equal(store_open(f->address, &options, &store, err, sizeof(err)),
                     CDR_ESTORE_UNAVAILABLE);
    assert_null(store);
    assert_non_null(strstr(err, "schema version 99"));
    char ours[64];
    snprintf(ours, sizeof(ours), read_only ? "this build knows %d" : "this engine's %d",
             PG_SCHEMA_VERSION);
    assert_non_null(strstr(err, ours));
  }
}

static void postgres_lets_one_engine_write_a_database(void **state) {
  struct fixture *f = *state;
  struct store_options options = {.engine = true};
  struct store *first = NULL, *second = NULL;
  char err[512] = "";
  assert_int_equal(store_open(f->address, &options, &first, err, sizeof(err)), 0);
  assert_int_equal(store_open(f->address, &options, &second, err, sizeof(err)),
                   CDR_ESTORE_UNAVAILABLE);
  assert_non_null(strstr(err, "in use by another engine"));
  store_close(first); /* and once it has gone, another may */
  assert_int_equal(store_open(f->address, &options, &second, err, sizeof(err)), 0);
  store_close(second);
}

/* A request's reads stop at its budget, whether one statement runs long (here: it waits for a
 * table another connection has locked) or several add up to it. */
static void postgres_stops_a_read_past_its_budget(void **state) {
  struct fixture *f = *state;
  insert(f, make_task(&f->arena, ids[0], 1));
  struct store *reader = NULL;
  char err[512];
  struct store_options options = {.read_only = true, .read_budget_ms = 100};
  assert_int_equal(store_open(f->address, &options, &reader, err, sizeof(err)), 0);
  PGconn *locker = PQconnectdb(fixture_postgres_address);
  PGresult *res = PQexec(locker, "BEGIN; LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE");
  assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
  PQclear(res);
  struct task *got;
  int64_t start = clock_now_ms();
  store_read_budget_start(reader);
  assert_int_equal(store_task_get(reader, "dev", ids[0], &f->arena, &got), CDR_EREAD_TOO_LONG);
  int64_t took = clock_now_ms() - start;
  assert_true(took >= 100 && took < 5000);
  PQclear(PQexec(locker, "ROLLBACK"));
  PQfinish(locker);
  /* The next request's reads get a budget of their own, on the same connection. */
  store_read_budget_start(reader);
  assert_int_equal(store_task_get(reader, "dev", ids[0], &f->arena, &got), 0);
  usleep(110 * 1000);
  assert_int_equal(store_task_get(reader, "dev", ids[0], &f->arena, &got), CDR_EREAD_TOO_LONG);
  store_close(reader);
}

/* A server that repeats what it was given (here a database named like the password) has the
 * password replaced in what the store reports. */
static void postgres_never_repeats_a_password_the_server_echoes(void **state) {
  (void)state;
  assert_int_equal(fixture_postgres_start(), 0);
  char address[512];
  const char *port = strrchr(fixture_postgres_address, ':') + 1;
  snprintf(address, sizeof(address), "postgresql://postgres:s3cret-word@127.0.0.1:%.*s/s3cret-word",
           (int)strcspn(port, "/"), port);
  struct store *store = NULL;
  char err[512] = "";
  struct store_options options = {.read_only = true};
  assert_int_equal(store_open(address, &options, &store, err, sizeof(err)), CDR_ESTORE_UNAVAILABLE);
  assert_non_null(strstr(err, "database \"***\" does not exist"));
  assert_null(strstr(err, "database \"s3cret-word\""));
  /* A password shorter than its stars, repeated many times, still fits what is reported. */
  snprintf(address, sizeof(address),
           "postgresql://postgres:ab@127.0.0.1:%.*s/ababababababababababababababababababab",
           (int)strcspn(port, "/"), port);
  assert_int_equal(store_open(address, &options, &store, err, sizeof(err)), CDR_ESTORE_UNAVAILABLE);
  /* Every "ab" is written *** (even inside other words: a password that short is everywhere). */
  assert_non_null(
      strstr(err, "\"*********************************************************\" does"));
  char small[96] = "";
  assert_int_equal(store_open(address, &options, &store, small, sizeof(small)),
                   CDR_ESTORE_UNAVAILABLE);
  assert_int_equal(strlen(small), sizeof(small) - 1); /* cut at its size, never past it */
}

/* The engine's lock goes with its connection: the writer takes it again when it reconnects, so a
 * second engine is still refused after the server came back. */
static void postgres_keeps_one_engine_per_database_across_a_restart(void **state) {
  struct fixture *f = *state;
  struct store_options options = {.engine = true};
  struct store *engine = NULL, *second = NULL;
  char err[512] = "";
  assert_int_equal(store_open(f->address, &options, &engine, err, sizeof(err)), 0);
  server("pause");
  server("resume");
  assert_int_equal(store_begin(engine), 0);
  assert_int_equal(store_task_insert(engine, make_task(&f->arena, ids[0], 1)), 0);
  assert_int_equal(store_commit(engine), 0);
  assert_int_equal(store_open(f->address, &options, &second, err, sizeof(err)),
                   CDR_ESTORE_UNAVAILABLE);
  assert_non_null(strstr(err, "in use by another engine"));
  store_close(engine);
}

static void postgres_reconnects_after_the_server_went_away(void **state) {
  struct fixture *f = *state;
  insert(f, make_task(&f->arena, ids[0], 1));
  /* The server goes away in the middle of a transaction: its commit fails, nothing is kept. */
  assert_int_equal(store_begin(f->writer), 0);
  assert_int_equal(store_task_insert(f->writer, make_task(&f->arena, ids[1], 1)), 0);
  server("pause");
  assert_int_equal(store_commit(f->writer), CDR_ESTORE_UNAVAILABLE);
  store_rollback(f->writer);
  /* While it is down, every call says the store is unavailable. */
  struct task *got;
  assert_int_equal(store_task_get(f->reader, "dev", ids[0], &f->arena, &got),
                   CDR_ESTORE_UNAVAILABLE);
  assert_int_equal(store_begin(f->writer), CDR_ESTORE_UNAVAILABLE);
  server("resume");
  /* Back: both connections are opened again by their next call. */
  assert_int_equal(store_task_get(f->reader, "dev", ids[0], &f->arena, &got), 0);
  assert_int_equal(store_task_get(f->reader, "dev", ids[1], &f->arena, &got), CDR_ETASK_NOT_FOUND);
  insert(f, make_task(&f->arena, ids[2], 1));
  assert_int_equal(store_task_get(f->reader, "dev", ids[2], &f->arena, &got), 0);
}

/* A connection open since before a restart finds it lost at its next call, which opens it again
 * and runs the read once more, so a reader idle across a restart does not fail a request. */
static void postgres_reads_again_on_a_connection_lost_while_idle(void **state) {
  struct fixture *f = *state;
  insert(f, make_task(&f->arena, ids[0], 1));
  server("pause");
  server("resume");
  struct task *got;
  assert_int_equal(store_task_get(f->reader, "dev", ids[0], &f->arena, &got), 0);
  insert(f, make_task(&f->arena, ids[1], 1));
}

#define PG_TEST(name)                                                                              \
  cmocka_unit_test_setup_teardown(name, fixture_setup_postgres, fixture_teardown)

static int stop_postgres(void **state) {
  (void)state;
  fixture_postgres_stop();
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(postgres_names_a_server_it_cannot_reach_and_never_its_password),
      PG_TEST(postgres_refuses_a_database_of_a_newer_schema_naming_both_versions),
      PG_TEST(postgres_lets_one_engine_write_a_database),
      PG_TEST(postgres_stops_a_read_past_its_budget),
      PG_TEST(postgres_reconnects_after_the_server_went_away),
      PG_TEST(postgres_reads_again_on_a_connection_lost_while_idle),
      cmocka_unit_test(postgres_never_repeats_a_password_the_server_echoes),
      PG_TEST(postgres_keeps_one_engine_per_database_across_a_restart),
  };
  return cmocka_run_group_tests_name("postgresql", tests, NULL, stop_postgres);
}
