/* store_postgres_batch.c — the writer's task inserts, held until the transaction's next statement
 * or its commit, then sent as two statements (the tasks, their targets) whose rows come from
 * arrays (INSERT ... SELECT FROM unnest): a group commit of n tasks costs two statements and two
 * round trips instead of 2n. Each column is kept as the inside of a PostgreSQL array literal
 * ("a","b",NULL), so sending is wrapping it in braces. */
#include "common/error.h"
#include "store/postgres/store_postgres_internal.h"

#include <stdio.h>
#include <string.h>

/* A column of a batch may grow as large as one transaction's tasks need, and no larger. */
#define PG_BATCH_COLUMN_MAX ((size_t)1 << 30)

void pg_batch_init(struct pg_batch *batch) {
  memset(batch, 0, sizeof(*batch));
  for (int i = 0; i < PG_BATCH_TASK_COLUMNS; i++)
    buf_init(&batch->tasks[i], PG_BATCH_COLUMN_MAX);
  for (int i = 0; i < PG_BATCH_TARGET_COLUMNS; i++)
    buf_init(&batch->targets[i], PG_BATCH_COLUMN_MAX);
}

void pg_batch_reset(struct pg_batch *batch) {
  for (int i = 0; i < PG_BATCH_TASK_COLUMNS; i++)
    batch->tasks[i].len = 0;
  for (int i = 0; i < PG_BATCH_TARGET_COLUMNS; i++)
    batch->targets[i].len = 0;
  batch->task_count = batch->target_count = 0;
}

void pg_batch_free(struct pg_batch *batch) {
  for (int i = 0; i < PG_BATCH_TASK_COLUMNS; i++)
    buf_free(&batch->tasks[i]);
  for (int i = 0; i < PG_BATCH_TARGET_COLUMNS; i++)
    buf_free(&batch->targets[i]);
}

/* Appends text (NULL: SQL NULL) as an element of column: quoted, its " and \ escaped. */
static int pg_batch_text(struct buf *column, const char *text) {
  int err = column->len ? buf_append(column, ",", 1) : 0;
  if (err || !text)
    return err ? err : buf_append(column, "NULL", 4);
  err = buf_append(column, "\"", 1);
  for (const char *run = text; !err && *run;) {
    size_t plain = strcspn(run, "\"\\");
    err = buf_append(column, run, plain);
    run += plain;
    if (!err && *run) {
      const char escaped[2] = {'\\', *run++};
      err = buf_append(column, escaped, 2);
    }
  }
  return err ? err : buf_append(column, "\"", 1);
}

static int pg_batch_int(struct buf *column, int64_t value) {
  return buf_printf(column, column->len ? ",%lld" : "%lld", (long long)value);
}

/* Takes the columns back to lens (what they held before a row that could not be added whole). */
static void pg_batch_undo(struct pg_batch *batch, const size_t task_lens[PG_BATCH_TASK_COLUMNS],
                          const size_t target_lens[PG_BATCH_TARGET_COLUMNS]) {
  for (int i = 0; i < PG_BATCH_TASK_COLUMNS; i++)
    batch->tasks[i].len = task_lens[i];
  for (int i = 0; i < PG_BATCH_TARGET_COLUMNS; i++)
    batch->targets[i].len = target_lens[i];
}

int pg_batch_task(struct pg_batch *batch, const struct task *task) {
  size_t task_lens[PG_BATCH_TASK_COLUMNS], target_lens[PG_BATCH_TARGET_COLUMNS];
  for (int i = 0; i < PG_BATCH_TASK_COLUMNS; i++)
    task_lens[i] = batch->tasks[i].len;
  for (int i = 0; i < PG_BATCH_TARGET_COLUMNS; i++)
    target_lens[i] = batch->targets[i].len;
  const char *texts[] = {task->id,
                         task->tenant,
                         task_type_name(task->type),
                         task_mode_name(task->mode),
                         task_state_name(task->state),
                         task->node_groups_json,
                         task->headers_json,
                         task->callback};
  int64_t numbers[STORE_TASK_NUMBERS];
  store_task_numbers(task, numbers);
  int col = 0, err = 0;
  for (size_t i = 0; !err && i < sizeof(texts) / sizeof(texts[0]); i++)
    err = pg_batch_text(&batch->tasks[col++], texts[i]);
  for (size_t i = 0; !err && i < STORE_TASK_NUMBERS; i++)
    err = pg_batch_int(&batch->tasks[col++], numbers[i]);
  if (!err)
    err = pg_batch_text(&batch->tasks[col++], callback_state_name(task->callback_state));
  if (!err)
    err = pg_batch_int(&batch->tasks[col++], task->callback_attempt_count);
  if (!err)
    err = pg_batch_int(&batch->tasks[col++], task->verify);
  if (!err)
    err = pg_batch_int(&batch->tasks[col++], task->counters.verified);
  for (size_t i = 0; !err && i < task->target_count; i++) {
    err = pg_batch_text(&batch->targets[0], task->id);
    if (!err)
      err = pg_batch_int(&batch->targets[1], (int64_t)i);
    if (!err)
      err = pg_batch_text(&batch->targets[2], target_kind_name(task->targets[i].kind));
    if (!err)
      err = pg_batch_text(&batch->targets[3], task->targets[i].value);
  }
  if (err) {
    pg_batch_undo(batch, task_lens, target_lens);
    return err == CDR_EBUFFER_FULL ? CDR_ENOMEM : err;
  }
  batch->target_count += task->target_count;
  batch->task_count++;
  return 0;
}

/* The array literal of column: its elements in braces (the buffer keeps room for them). */
static int pg_batch_array(struct buf *column) {
  int err = buf_reserve(column, 3);
  if (err)
    return err;
  memmove(column->data + 1, column->data, column->len);
  column->data[0] = '{';
  column->data[column->len + 1] = '}';
  column->data[column->len + 2] = '\0';
  column->len += 2;
  return 0;
}

/* Runs the multi-row insert which with the columns of one table as its array parameters. */
static int pg_batch_send(struct pg_store *store, enum pg_statement which, struct buf *columns,
                         int count) {
  struct pg_params params = {0};
  int err = 0;
  for (int i = 0; !err && i < count; i++) {
    err = pg_batch_array(&columns[i]);
    pg_param_text(&params, buf_text(&columns[i]));
  }
  return err ? err : pg_run(store, which, &params, NULL, "task insert");
}

int pg_batch_flush(struct pg_store *store) {
  struct pg_batch *batch = &store->batch;
  if (!batch->task_count)
    return 0;
  bool targets = batch->target_count > 0;
  batch->task_count = 0; /* the sends below run through pg_exec, which flushes first */
  int err = pg_batch_send(store, PG_TASKS_INSERT, batch->tasks, PG_BATCH_TASK_COLUMNS);
  if (!err && targets)
    err = pg_batch_send(store, PG_TARGETS_INSERT, batch->targets, PG_BATCH_TARGET_COLUMNS);
  pg_batch_reset(batch);
  return err;
}
