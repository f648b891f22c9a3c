/* fabric_dispatch.c — sending work: a node's window of slots (an item id is a slot and its
 * generation), its two cursors walking the lanes' logs (purges in a fast lane ahead of preloads),
 * the items taken back when its link dies and sent first when it returns, and Work frames of up to
 * FABRIC_WORK_BATCH items through fabric->send_work, one per node at the end of each loop iteration
 * that freed room. */
#include "common/array.h"
#include "common/clock.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/notify/alerts.h"

#include <stdlib.h>
#include <string.h>

enum { FABRIC_WORK_BATCH = 1024 }; /* most items in one Work frame */

/* ---- nodes: window, cursors, dispatch ---- */

void fabric_node_online(struct fabric *fabric, struct fabric_node *node, uint32_t window) {
  node->window = window;
  node->in_flight = 0;
  node->last_heartbeat_ms = clock_now_ms();
  log_info("node.online", "node %s online with a window of %u items, %zu queued", node->id, window,
           fabric_node_queue_depth(node));
  fabric_node_dispatch(fabric, node);
}

/* Frees node's slots (none may be in flight: their followers go too) and its dedup table. */
static void fabric_node_slots_free(struct fabric_node *node) {
  for (uint32_t i = 0; i < node->slot_count; i++)
    free(node->slots[i].followers);
  fabric_dedup_close(node);
  free(node->slots);
  node->slots = NULL;
  node->slot_count = node->free_slot = 0;
}

void fabric_node_trim(struct fabric_node *node) {
  if (node->in_flight == 0)
    fabric_node_slots_free(node);
}

/* Grows node's slots (doubling, at most to its window) so that wanted items can be in flight.
 * The new ones chain up after the free list's end, which holds the old count as its "none": the
 * first new slot. False when memory ran out: what is there keeps working. */
static bool fabric_node_slots_reserve(struct fabric_node *node, uint32_t wanted) {
  if (wanted <= node->slot_count)
    return true;
  uint32_t count = node->slot_count ? node->slot_count : 16;
  while (count < wanted)
    count *= 2;
  if (count > node->window)
    count = node->window;
  struct fabric_slot *slots = realloc(node->slots, count * sizeof(*slots));
  if (!slots)
    return false;
  memset(slots + node->slot_count, 0, (count - node->slot_count) * sizeof(*slots));
  for (uint32_t i = node->slot_count; i < count; i++)
    slots[i].next_free = i + 1;
  node->slots = slots;
  node->slot_count = count;
  fabric_dedup_open(node); /* without it (no memory) identical purges are simply all sent */
  return true;
}

void fabric_redeliver_push(struct fabric_node *node, struct fabric_task_node *task_node,
                           size_t index) {
  if (!array_reserve((void **)&node->redeliver, &node->redeliver_cap, node->redeliver_count,
                     sizeof(*node->redeliver), 64)) {
    node->marks_pinned = true; /* the item stays pending, and is sent again after a restart */
    return;
  }
  task_node->refs++;
  node->redeliver[node->redeliver_count++] = (struct fabric_item_ref){task_node, index};
}

void fabric_node_offline(struct fabric *fabric, struct fabric_node *node) {
  /* Work that was in flight is sent again when the node returns: purges are idempotent and a
   * result is recorded only while its item is still pending. */
  for (uint32_t i = 0; i < node->slot_count; i++) {
    struct fabric_slot *slot = &node->slots[i];
    if (!slot->used)
      continue;
    for (uint32_t f = 0; f <= slot->follower_count; f++) {
      struct fabric_item_ref item =
          f == 0 ? (struct fabric_item_ref){slot->task_node, slot->index} : slot->followers[f - 1];
      item.task_node->task->in_flight--;
      fabric_redeliver_push(node, item.task_node, item.index);
      item.task_node->refs--; /* the slot's hold passed to the redeliver list */
    }
  }
  fabric_node_slots_free(node);
  node->in_flight = 0;
  log_info("node.offline", "node %s offline, %zu items wait for it", node->id,
           fabric_node_queue_depth(node));
  if (!fabric->stopping && !node->removed) {
    char message[160];
    snprintf(message, sizeof(message), "node %s lost its agent link; %zu items wait for it",
             node->id, fabric_node_queue_depth(node));
    alerts_raise(fabric->alerts, "node_offline", node->id, message);
  }
}

size_t fabric_node_queue_depth(const struct fabric_node *node) {
  return node->redeliver_count + node->lane_items[FABRIC_FAST] + node->lane_items[FABRIC_SLOW];
}

static bool fabric_task_active(const struct fabric_task *task) {
  return !task->finished && task->task->state != TASK_CANCELED;
}

static Cdr__Operation fabric_operation(const struct task *task, enum target_kind kind) {
  if (task->type == TASK_PRELOAD)
    return CDR__OPERATION__PRELOAD;
  static const Cdr__Operation purges[] = {CDR__OPERATION__PURGE_URL, CDR__OPERATION__PURGE_PREFIX,
                                          CDR__OPERATION__PURGE_REGEX, CDR__OPERATION__PURGE_TAG};
  return purges[kind];
}

/* Takes a free slot for (task_node, index) and adds it to the Work frame being built: as a
 * packed exact-URL purge when the node's agent reads those and nothing else about it differs
 * from the defaults, else as a WorkItem. */
static void fabric_work_add(struct fabric *fabric, struct fabric_node *node,
                            struct fabric_task_node *task_node, size_t index, int64_t now_ms) {
  uint32_t slot_index = node->free_slot;
  struct fabric_slot *slot = &node->slots[slot_index];
  node->free_slot = slot->next_free;
  slot->task_node = task_node;
  slot->index = index;
  slot->generation++;
  slot->used = true;
  slot->sent_ms = now_ms;
  slot->follower_count = 0;
  node->in_flight++;
  task_node->task->in_flight++;
  task_node->refs++;
  fabric_dedup_lead(node, slot_index);

  const struct task *task = task_node->task->task;
  uint64_t item_id = (uint64_t)slot->generation << 32 | slot_index;
  Cdr__Operation operation = fabric_operation(task, task->targets[index].kind);
  if (node->packed_work && operation == CDR__OPERATION__PURGE_URL &&
      task->mode != TASK_MODE_INVALIDATE && task->verify && task_node->task->header_count == 0) {
    fabric->work_url_ids[fabric->work_packed] = item_id;
    fabric->work_url_targets[fabric->work_packed++] = (char *)(uintptr_t)task->targets[index].value;
    return;
  }
  Cdr__WorkItem *item = &fabric->work_items[fabric->work_full];
  cdr__work_item__init(item);
  item->item_id = item_id;
  item->operation = operation;
  item->invalidate = task->mode == TASK_MODE_INVALIDATE;
  item->skip_verify = !task->verify;
  item->target = (char *)(uintptr_t)task->targets[index].value;
  item->n_headers = task_node->task->header_count;
  item->headers = task_node->task->headers;
  fabric->work_pointers[fabric->work_full++] = item;
}

/* The record node sends task from, reaching it: the one read back for it at a restart, or a
 * new one. NULL when out of memory. */
static struct fabric_task_node *fabric_record_reach(struct fabric_task *task,
                                                    struct fabric_node *node) {
  if (task->preset_count > 0) {
    struct fabric_task_node *record = fabric_record_find(task, node);
    if (record) {
      record->preset = false;
      task->preset_count--;
      return record;
    }
  }
  return fabric_record_new(task, node);
}

/* Whether node's cursor in lane waits at a parked task it owes, read back (or to be). */
static bool fabric_lane_waits(const struct fabric *fabric, const struct fabric_node *node,
                              enum fabric_lane lane) {
  const struct fabric_log *log = &fabric->log[lane];
  const struct fabric_cursor *cursor = &node->cursor[lane];
  if (cursor->current || cursor->pos < log->base || cursor->pos >= log->end ||
      node->lane_items[lane] == 0)
    return false;
  const struct fabric_parked *parked = fabric_log_parked(log, cursor->pos);
  return parked && fabric_parked_waits_for(parked, node->number);
}

/* Fills up to room items from a lane: the cursor sends its current task's pending items, then
 * walks on through the log to the next task planned onto the node, skipping those that ended. */
static size_t fabric_lane_take(struct fabric *fabric, struct fabric_node *node,
                               enum fabric_lane lane, size_t n, size_t room, int64_t now_ms) {
  const struct fabric_log *log = &fabric->log[lane];
  struct fabric_cursor *cursor = &node->cursor[lane];
  size_t *items = &node->lane_items[lane];
  while (*items > 0 && n < room) {
    struct fabric_task_node *record = cursor->current;
    if (!record) {
      if (cursor->pos < log->base)
        cursor->pos = log->base;
      if (cursor->pos >= log->end)
        break; /* not reached while items are counted: a guard, not a path */
      if (fabric_lane_waits(fabric, node, lane)) {
        fabric_unpark(fabric, lane, cursor->pos);
        break; /* the lane goes on once it is read back */
      }
      struct fabric_task *task = fabric_log_at(log, cursor->pos);
      if (!task ||
          !plan_nodes_has(task->task->plan_nodes, task->task->plan_nodes_len, node->number)) {
        cursor->pos++;
        continue;
      }
      if (fabric_task_active(task)) {
        record = fabric_record_reach(task, node);
        if (!record)
          break; /* out of memory: tried again with the next dispatch */
        cursor->current = record;
      } else {
        *items -= task->task->target_count; /* what an ended task leaves unsent */
        cursor->pos++;
      }
      task->unreached--;
      if (!record)
        continue;
    }
    size_t count = record->task->task->target_count;
    bool active = fabric_task_active(record->task);
    while (active && n < room && record->next < count) {
      size_t index = record->next++;
      (*items)--;
      if (item_states_get(record->states, index) == ITEM_PENDING &&
          !fabric_dedup_join(node, record, index)) {
        fabric_work_add(fabric, node, record, index, now_ms);
        n++;
      }
    }
    if (active && record->next < count)
      break;
    *items -= count - record->next; /* what an ended task leaves unsent */
    cursor->current = NULL;
    cursor->pos++;
    fabric_record_settle(record);
  }
  if (*items == 0 && !cursor->current)
    cursor->pos = log->end; /* nothing planned onto it lies ahead */
  return n;
}

static void fabric_node_send(struct fabric *fabric, struct fabric_node *node) {
  if (!node->link || node->link->conn.closing || fabric->stopping)
    return;
  if (!fabric->work_items) {
    fabric->work_items = calloc(FABRIC_WORK_BATCH, sizeof(*fabric->work_items));
    fabric->work_pointers = calloc(FABRIC_WORK_BATCH, sizeof(*fabric->work_pointers));
    fabric->work_url_ids = calloc(FABRIC_WORK_BATCH, sizeof(*fabric->work_url_ids));
    fabric->work_url_targets = calloc(FABRIC_WORK_BATCH, sizeof(*fabric->work_url_targets));
    if (!fabric->work_items || !fabric->work_pointers || !fabric->work_url_ids ||
        !fabric->work_url_targets)
      return;
  }
  int64_t now_ms = clock_now_ms(); /* one reading for the whole dispatch */
  while (node->in_flight < node->window && fabric_node_queue_depth(node) > 0) {
    size_t room = node->window - node->in_flight;
    if (room > FABRIC_WORK_BATCH)
      room = FABRIC_WORK_BATCH;
    if (!fabric_node_slots_reserve(node, node->in_flight + (uint32_t)room))
      room = node->slot_count - node->in_flight;
    if (room == 0)
      return;
    size_t n = 0;
    fabric->work_full = fabric->work_packed = 0;
    while (n < room && node->redeliver_count > 0) {
      struct fabric_item_ref ref = node->redeliver[--node->redeliver_count];
      ref.task_node->refs--;
      if (fabric_task_active(ref.task_node->task) &&
          item_states_get(ref.task_node->states, ref.index) == ITEM_PENDING &&
          !fabric_dedup_join(node, ref.task_node, ref.index)) {
        fabric_work_add(fabric, node, ref.task_node, ref.index, now_ms);
        n++;
      } else {
        fabric_record_settle(ref.task_node);
      }
    }
    n = fabric_lane_take(fabric, node, FABRIC_FAST, n, room, now_ms);
    if (!fabric_lane_waits(fabric, node, FABRIC_FAST)) /* preloads never ahead of a purge */
      n = fabric_lane_take(fabric, node, FABRIC_SLOW, n, room, now_ms);
    if (n == 0)
      return;
    Cdr__Work work;
    cdr__work__init(&work);
    work.n_items = fabric->work_full;
    work.items = fabric->work_pointers;
    work.n_url_purge_ids = work.n_url_purge_targets = fabric->work_packed;
    work.url_purge_ids = fabric->work_url_ids;
    work.url_purge_targets = fabric->work_url_targets;
    if (fabric->send_work(node, &work))
      return;
  }
}

void fabric_node_dispatch(struct fabric *fabric, struct fabric_node *node) {
  if (node->dispatch_due)
    return;
  if (!array_reserve((void **)&fabric->dispatch_due, &fabric->dispatch_due_cap,
                     fabric->dispatch_due_count, sizeof(*fabric->dispatch_due), 64)) {
    fabric_node_send(fabric, node); /* at once, then */
    return;
  }
  node->dispatch_due = true;
  fabric->dispatch_due[fabric->dispatch_due_count++] = node;
}

static void fabric_on_dispatch(uv_check_t *check) {
  struct fabric *fabric = check->data;
  /* A send may close a link, whose nodes may ask again: the list can grow meanwhile. */
  for (size_t i = 0; i < fabric->dispatch_due_count; i++) {
    struct fabric_node *node = fabric->dispatch_due[i];
    node->dispatch_due = false;
    fabric_node_send(fabric, node);
  }
  fabric->dispatch_due_count = 0;
}

void fabric_dispatch_start(struct fabric *fabric) {
  uv_check_init(&fabric->loop, &fabric->dispatch);
  fabric->dispatch.data = fabric;
  uv_check_start(&fabric->dispatch, fabric_on_dispatch);
}
