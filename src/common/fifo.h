/* fifo.h — an intrusive singly linked FIFO: an entry embeds a struct fifo_node and is found again
 * from it with FIFO_ENTRY (list.h's CONTAINER_OF), so queueing allocates nothing; push and pop
 * are O(1), taking one entry out of the middle O(n). Not thread-safe: whoever owns a queue guards
 * it (mailbox.h wraps one in a mutex). */
#ifndef CDR_FIFO_H
#define CDR_FIFO_H

#include "common/list.h"

#include <stdbool.h>
#include <stddef.h>

struct fifo_node {
  struct fifo_node *next;
};

struct fifo {
  struct fifo_node *head, *tail; /* both NULL when empty */
};

#define FIFO_ENTRY(node, type, member) CONTAINER_OF(node, type, member)

static inline bool fifo_empty(const struct fifo *queue) { return queue->head == NULL; }

static inline void fifo_push(struct fifo *queue, struct fifo_node *node) {
  node->next = NULL;
  if (queue->tail)
    queue->tail->next = node;
  else
    queue->head = node;
  queue->tail = node;
}

/* Takes the first entry off queue; NULL when it is empty. */
static inline struct fifo_node *fifo_pop(struct fifo *queue) {
  struct fifo_node *node = queue->head;
  if (node) {
    queue->head = node->next;
    if (!queue->head)
      queue->tail = NULL;
    node->next = NULL;
  }
  return node;
}

/* Moves every entry of from to the end of to, in order; from is left empty. */
static inline void fifo_append(struct fifo *to, struct fifo *from) {
  if (!from->head)
    return;
  if (to->tail)
    to->tail->next = from->head;
  else
    to->head = from->head;
  to->tail = from->tail;
  from->head = from->tail = NULL;
}

/* Takes node out of queue wherever it is (O(n)); false when it is not on it. */
static inline bool fifo_remove(struct fifo *queue, struct fifo_node *node) {
  struct fifo_node *previous = NULL;
  for (struct fifo_node *at = queue->head; at; previous = at, at = at->next) {
    if (at != node)
      continue;
    if (previous)
      previous->next = node->next;
    else
      queue->head = node->next;
    if (queue->tail == node)
      queue->tail = previous;
    node->next = NULL;
    return true;
  }
  return false;
}

/* Keeps, in order, the entries for which keep(node, context) is true; keep may free an entry it
 * does not keep (its link is not read again). */
static inline void fifo_filter(struct fifo *queue,
                               bool (*keep)(struct fifo_node *node, void *context), void *context) {
  struct fifo_node *node = queue->head;
  queue->head = queue->tail = NULL;
  while (node) {
    struct fifo_node *next = node->next;
    if (keep(node, context))
      fifo_push(queue, node);
    node = next;
  }
}

#endif
