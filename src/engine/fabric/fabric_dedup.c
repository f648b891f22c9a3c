/* fabric_dedup.c — merging of identical purges on a node. When an exact-URL purge is about to be
 * sent to a node that already has the same purge (same URL, same mode) in flight, and that one
 * was sent after this item's task was accepted, it does everything this item asks: the item
 * waits as a follower and gets the same result. A purge sent before the task was accepted never
 * stands in for it (the object may have been cached again in between). A burst of tasks purging
 * the same URLs thus costs the cache one request per URL at a time, not one per task. */
#include "engine/fabric/fabric_internal.h"

#include <stdlib.h>
#include <string.h>

enum { DEDUP_EMPTY = 0, DEDUP_DELETED = UINT32_MAX };

static const struct task_target *dedup_target(const struct fabric_task_node *task_node,
                                              size_t index) {
  return &task_node->task->task->targets[index];
}

static bool dedup_eligible(const struct fabric_task_node *task_node, size_t index) {
  return task_node->task->dedup_hashes && dedup_target(task_node, index)->kind == TARGET_URL;
}

static uint32_t dedup_hash(const char *url, enum task_mode mode) {
  uint32_t h = 2166136261u ^ (uint32_t)mode;
  for (; *url; url++)
    h = (h ^ (unsigned char)*url) * 16777619u;
  return h;
}

void fabric_dedup_prepare(struct fabric_task *task) {
  const struct task *t = task->task;
  task->dedup_hashes = NULL;
  if (t->type != TASK_PURGE)
    return;
  uint32_t *hashes = arena_alloc(&task->arena, t->target_count * sizeof(*hashes));
  if (!hashes)
    return; /* without them (no memory) the task's purges are simply all sent */
  for (size_t i = 0; i < t->target_count; i++)
    hashes[i] = t->targets[i].kind == TARGET_URL ? dedup_hash(t->targets[i].value, t->mode) : 0;
  task->dedup_hashes = hashes;
}

static bool dedup_same(const struct fabric_slot *slot, const struct fabric_task_node *task_node,
                       size_t index) {
  const struct fabric_task_node *leader = slot->task_node;
  return leader->task->task->mode == task_node->task->task->mode &&
         strcmp(dedup_target(leader, slot->index)->value, dedup_target(task_node, index)->value) ==
             0;
}

void fabric_dedup_lead(struct fabric_node *node, uint32_t slot_index);

/* Rebuilds the table from the slots in flight, but for the one being forgotten, when deleted
 * entries pile up. */
static void dedup_rebuild(struct fabric_node *node, uint32_t forgotten) {
  memset(node->dedup, 0, ((size_t)node->dedup_mask + 1) * sizeof(*node->dedup));
  node->dedup_deleted = 0;
  for (uint32_t i = 0; i < node->slot_count; i++) {
    if (node->slots[i].used && i != forgotten)
      fabric_dedup_lead(node, i);
  }
}

/* (Re)sizes the table for node's slots and fills it with the slots in flight. */
bool fabric_dedup_open(struct fabric_node *node) {
  uint32_t size = 16;
  while (size < node->slot_count * 2)
    size *= 2;
  free(node->dedup);
  node->dedup = calloc(size, sizeof(*node->dedup));
  node->dedup_mask = node->dedup ? size - 1 : 0;
  if (node->dedup)
    dedup_rebuild(node, UINT32_MAX);
  return node->dedup != NULL;
}

void fabric_dedup_close(struct fabric_node *node) {
  free(node->dedup);
  node->dedup = NULL;
  node->dedup_mask = 0;
}

bool fabric_dedup_join(struct fabric_node *node, struct fabric_task_node *task_node, size_t index) {
  if (!node->dedup || !dedup_eligible(task_node, index))
    return false;
  const struct task *task = task_node->task->task;
  uint32_t at = task_node->task->dedup_hashes[index] & node->dedup_mask;
  for (;; at = (at + 1) & node->dedup_mask) {
    uint32_t entry = node->dedup[at];
    if (entry == DEDUP_EMPTY)
      return false;
    if (entry == DEDUP_DELETED)
      continue;
    struct fabric_slot *slot = &node->slots[entry - 1];
    if (!slot->used || slot->dedup_hash != task_node->task->dedup_hashes[index] ||
        !dedup_same(slot, task_node, index))
      continue;
    if (slot->sent_ms < task->created_ms)
      return false; /* sent before this task was accepted: it cannot stand in for it */
    if (slot->follower_count == slot->follower_cap) {
      uint32_t cap = slot->follower_cap ? slot->follower_cap * 2 : 4;
      struct fabric_item_ref *grown = realloc(slot->followers, cap * sizeof(*grown));
      if (!grown)
        return false;
      slot->followers = grown;
      slot->follower_cap = cap;
    }
    slot->followers[slot->follower_count++] = (struct fabric_item_ref){task_node, index};
    task_node->task->in_flight++;
    task_node->refs++;
    node->merged++;
    return true;
  }
}

void fabric_dedup_lead(struct fabric_node *node, uint32_t slot_index) {
  struct fabric_slot *slot = &node->slots[slot_index];
  slot->deduped = node->dedup && dedup_eligible(slot->task_node, slot->index);
  if (!slot->deduped)
    return;
  /* Kept in the slot: forgetting it, at its result, then touches neither record nor task. */
  slot->dedup_hash = slot->task_node->task->dedup_hashes[slot->index];
  uint32_t at = slot->dedup_hash & node->dedup_mask;
  while (node->dedup[at] != DEDUP_EMPTY && node->dedup[at] != DEDUP_DELETED)
    at = (at + 1) & node->dedup_mask;
  node->dedup[at] = slot_index + 1;
}

void fabric_dedup_forget(struct fabric_node *node, uint32_t slot_index) {
  struct fabric_slot *slot = &node->slots[slot_index];
  if (!node->dedup || !slot->deduped)
    return;
  slot->deduped = false;
  uint32_t at = slot->dedup_hash & node->dedup_mask;
  for (; node->dedup[at] != DEDUP_EMPTY; at = (at + 1) & node->dedup_mask) {
    if (node->dedup[at] == slot_index + 1) {
      node->dedup[at] = DEDUP_DELETED;
      if (++node->dedup_deleted > node->dedup_mask / 4)
        dedup_rebuild(node, slot_index);
      return;
    }
  }
}
