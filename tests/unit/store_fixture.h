/* store_fixture.h — what the store's unit tests share: a writer and a reader on a fresh store of
 * the backend under test (SQLite in a temporary directory, or a PostgreSQL server the tests start
 * themselves with tests/pg-server, emptied before each case), and tasks to put in it. */
#ifndef CDR_STORE_FIXTURE_H
#define CDR_STORE_FIXTURE_H

#include "store/store.h"

struct fixture {
  char dir[64];      /* the SQLite store's directory ("" on PostgreSQL) */
  char address[256]; /* the store's address */
  struct store *writer;
  struct store *reader;
  struct arena arena;
};

/* The PostgreSQL server of the running test program: its address once started, else "". */
extern char fixture_postgres_address[256];

/* Starts (once per program) the PostgreSQL server the cases run on: 0, or -1 when it cannot. */
int fixture_postgres_start(void);
/* The directory of that server (for tests/pg-server's commands). */
const char *fixture_postgres_dir(void);
/* Stops it and removes its directory. */
void fixture_postgres_stop(void);

/* cmocka setups and teardown: a fresh store, SQLite's or PostgreSQL's. */
int fixture_setup_sqlite(void **state);
int fixture_setup_postgres(void **state);
int fixture_teardown(void **state);

/* Opens the fixture's writer and reader again on its store. */
void reopen(struct fixture *f);

/* Task ids in increasing order. */
extern const char *const ids[3];

/* Builds a purge task of tenant "dev" with n URL targets and the given id. */
struct task *make_task(struct arena *arena, const char *id, size_t n);

/* Plans task at plan_seq onto the nodes numbered by the bits of nodes (0..7), in plan, a one-byte
 * bitmap that must outlive the task's use. */
void plan(struct task *task, int64_t plan_seq, uint8_t nodes, uint8_t plan[1]);

/* Inserts task in a transaction of its own. */
void insert(struct fixture *f, struct task *task);

#endif
