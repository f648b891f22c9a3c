/* fabric_log.c — what a node is sent, without a record per (task, node): each lane's log of
 * tasks in plan order, each node's cursor into it, and the records a node holds only while it
 * works on a task (or while they tell what the plan and watermarks cannot). A task planned onto
 * a thousand nodes costs its plan bitmap and, at any moment, the records of the nodes sending it
 * — not a thousand records that live as long as the task. */
#include "engine/fabric/fabric_internal.h"

#include <stdlib.h>
#include <string.h>

enum {
  FABRIC_LOG_MIN = 64,
  FABRIC_RECORD_SMALL = 16,     /* bitmap bytes of a record kept for reuse: up to 40 targets */
  FABRIC_SPARE_RECORDS = 131072 /* small records kept for reuse at most */
};

/* Doubles the ring of log, keeping every position where it is. */
static bool fabric_log_grow(struct fabric_log *log) {
  uint64_t capacity = log->entries ? (log->mask + 1) * 2 : FABRIC_LOG_MIN;
  struct fabric_task **entries = calloc(capacity, sizeof(*entries));
  if (!entries)
    return false;
  for (uint64_t pos = log->base; pos < log->end; pos++)
    entries[pos & (capacity - 1)] = log->entries[pos & log->mask]; /* tasks and parked ones */
  free(log->entries);
  log->entries = entries;
  log->mask = capacity - 1;
  return true;
}

bool fabric_log_append(struct fabric *fabric, struct fabric_task *task) {
  struct fabric_log *log = &fabric->log[fabric_task_lane(task->task)];
  if ((!log->entries || log->end - log->base > log->mask) && !fabric_log_grow(log))
    return false;
  task->log_pos = log->end++;
  task->logged = true;
  log->entries[task->log_pos & log->mask] = task;
  return true;
}

void fabric_log_erase(struct fabric *fabric, struct fabric_task *task) {
  if (!task->logged)
    return;
  struct fabric_log *log = &fabric->log[fabric_task_lane(task->task)];
  log->entries[task->log_pos & log->mask] = NULL;
  while (log->base < log->end && !fabric_log_held(log, log->base))
    log->base++;
  task->logged = false;
}

/* The plan_seq at pos, or of the first task after it that is still there (one that could not be
 * read back leaves a hole); INT64_MAX past the last. */
static int64_t fabric_log_seq_from(const struct fabric_log *log, uint64_t pos) {
  for (; pos < log->end; pos++) {
    if (fabric_log_held(log, pos))
      return fabric_log_seq(log, pos);
  }
  return INT64_MAX;
}

uint64_t fabric_log_find(const struct fabric *fabric, enum fabric_lane lane, int64_t plan_seq) {
  const struct fabric_log *log = &fabric->log[lane];
  uint64_t low = log->base, high = log->end;
  while (low < high) { /* the first position whose task (or the next one there) is not older */
    uint64_t mid = low + (high - low) / 2;
    if (fabric_log_seq_from(log, mid) < plan_seq)
      low = mid + 1;
    else
      high = mid;
  }
  for (; low < log->end; low++) {
    if (fabric_log_held(log, low))
      return fabric_log_seq(log, low) == plan_seq ? low : UINT64_MAX;
  }
  return UINT64_MAX;
}

void fabric_log_place_cursors(struct fabric *fabric) {
  for (int lane = 0; lane < FABRIC_LANES; lane++) {
    const struct fabric_log *log = &fabric->log[lane];
    for (size_t i = 0; i < fabric->node_count; i++) {
      /* Read back in plan order: a binary search finds the first task the node's watermark has
       * not passed. */
      int64_t below = fabric->nodes[i]->saved_below[lane];
      uint64_t low = log->base, high = log->end;
      while (low < high) {
        uint64_t mid = low + (high - low) / 2;
        if (fabric_log_seq_from(log, mid) < below)
          low = mid + 1;
        else
          high = mid;
      }
      fabric->nodes[i]->cursor[lane] = (struct fabric_cursor){.pos = low};
    }
  }
}

bool fabric_cursor_before(const struct fabric_node *node, const struct fabric_task *task) {
  const struct fabric_cursor *cursor = &node->cursor[fabric_task_lane(task->task)];
  return cursor->pos < task->log_pos || (cursor->pos == task->log_pos && !cursor->current);
}

/* The bitmap bytes a record of a task of targets needs: a small record's when they fit in one,
 * so that every small record can be reused for any small task. */
static size_t fabric_record_bytes(size_t targets) {
  size_t bytes = item_states_bytes(targets) + item_verified_bytes(targets);
  return bytes <= FABRIC_RECORD_SMALL ? FABRIC_RECORD_SMALL : bytes;
}

struct fabric_task_node *fabric_record_new(struct fabric_task *task, struct fabric_node *node) {
  size_t targets = task->task->target_count;
  size_t bytes = fabric_record_bytes(targets);
  struct fabric *fabric = task->fabric;
  struct fabric_task_node *record;
  /* Most tasks are one URL, and a node's record of one lives from Work to Result: reusing the
   * freed ones spares malloc a round trip per (task, node). */
  if (bytes == FABRIC_RECORD_SMALL && fabric->spare_records.first) {
    record = LIST_ENTRY(fabric->spare_records.first, struct fabric_task_node, link);
    list_remove(&fabric->spare_records, &record->link);
    memset(record, 0, sizeof(*record) + bytes);
  } else if (!(record = calloc(1, sizeof(*record) + bytes))) {
    return NULL;
  }
  record->task = task;
  record->node = node;
  record->states = (uint8_t *)(record + 1);
  record->verified = record->states + item_states_bytes(targets);
  list_push_front(&task->records, &record->link);
  return record;
}

struct fabric_task_node *fabric_record_find(const struct fabric_task *task,
                                            const struct fabric_node *node) {
  for (struct list_node *at = task->records.first; at; at = at->next) {
    struct fabric_task_node *record = LIST_ENTRY(at, struct fabric_task_node, link);
    if (record->node == node)
      return record;
  }
  return NULL;
}

void fabric_record_free(struct fabric_task_node *record) {
  struct fabric_task *task = record->task;
  list_remove(&task->records, &record->link);
  free(record->attempts);
  struct fabric *fabric = task->fabric;
  if (fabric_record_bytes(task->task->target_count) == FABRIC_RECORD_SMALL &&
      fabric->spare_records.count < FABRIC_SPARE_RECORDS) {
    list_push_front(&fabric->spare_records, &record->link);
    return;
  }
  free(record);
}

void fabric_records_spare_free(struct fabric *fabric) {
  while (fabric->spare_records.first) {
    struct fabric_task_node *record =
        LIST_ENTRY(fabric->spare_records.first, struct fabric_task_node, link);
    list_remove(&fabric->spare_records, &record->link);
    free(record);
  }
}

void fabric_record_settle(struct fabric_task_node *record) {
  /* Its results live on in the task's counters and failure details, and the node's watermark
   * passes the task once nothing else holds it back. */
  if (!record->kept && !record->preset && record->refs == 0 &&
      record->node->cursor[fabric_task_lane(record->task->task)].current != record &&
      fabric_record_pending(record) == 0)
    fabric_record_free(record);
}

void fabric_records_mark(const struct fabric_task *task, bool mark) {
  for (struct list_node *at = task->records.first; at; at = at->next) {
    struct fabric_task_node *record = LIST_ENTRY(at, struct fabric_task_node, link);
    record->node->scratch = mark ? record : NULL;
  }
}

void fabric_records_for_unreached(struct fabric *fabric, struct fabric_task *task,
                                  const struct fabric_node *only) {
  if (task->unreached == 0)
    return;
  fabric_records_mark(task, true);
  const struct task *t = task->task;
  for (size_t i = 0; i < fabric->node_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    if ((only && node != only) || node->scratch ||
        !plan_nodes_has(t->plan_nodes, t->plan_nodes_len, node->number) ||
        !fabric_cursor_before(node, task))
      continue;
    struct fabric_task_node *record = fabric_record_new(task, node);
    if (!record) {
      node->marks_pinned = true; /* its items stay pending until a restart sends them */
      continue;
    }
    record->preset = true;
    task->preset_count++;
  }
  fabric_records_mark(task, false);
}

void fabric_records_for_finished(struct fabric *fabric, struct fabric_task *task) {
  fabric_records_mark(task, true);
  const struct task *t = task->task;
  for (size_t i = 0; i < fabric->node_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    /* A node whose items were lost to a failed allocation (marks_pinned) may lack a record
     * without having finished: it keeps the store's pending row. */
    if (node->scratch || node->marks_pinned ||
        !plan_nodes_has(t->plan_nodes, t->plan_nodes_len, node->number) ||
        fabric_cursor_before(node, task))
      continue;
    struct fabric_task_node *record = fabric_record_new(task, node);
    if (!record)
      continue; /* it keeps the store's pending row: read as canceled, never as purged */
    /* What its watermark would have said: every item succeeded, verified when the task asked
     * (a result that was not is a failure detail, which overrides, or kept its record) — but
     * the details not saved yet are written as they are. The counters serve a restart, which a
     * canceled task never has. */
    for (size_t index = 0; index < t->target_count; index++)
      item_states_set(record->states, index, ITEM_SUCCEEDED);
    for (size_t f = 0; f < task->failure_count; f++) {
      if (task->failures[f].node_id == node->id)
        item_states_set(record->states, (size_t)task->failures[f].index, task->failures[f].state);
    }
    for (size_t index = 0; index < t->target_count; index++) {
      if (item_states_get(record->states, index) != ITEM_SUCCEEDED)
        continue;
      record->succeeded++;
      if (t->verify) {
        item_verified_set(record->verified, index);
        record->verified_count++;
      }
    }
    fabric_record_dirty(record);
  }
  fabric_records_mark(task, false);
}
