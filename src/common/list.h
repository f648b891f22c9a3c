/* list.h — CONTAINER_OF, and an intrusive doubly linked list: the links live inside the listed
 * structs, so putting one on a list or taking it off allocates nothing and costs O(1). A list is a
 * struct list_head; an entry embeds a struct list_node per list it may be on and is found again
 * from that node with LIST_ENTRY. Not thread-safe: a list belongs to one thread. */
#ifndef CDR_LIST_H
#define CDR_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list_node {
  struct list_node *prev, *next; /* both NULL while not on a list */
};

struct list_head {
  struct list_node *first;
  size_t count;
};

/* The struct of type that holds ptr as its member (ptr points at that member): how a callback
 * given an embedded timer, list node or handle finds its owner. */
#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* The struct of type holding node as its member. */
#define LIST_ENTRY(node, type, member) CONTAINER_OF(node, type, member)

static inline bool list_linked(const struct list_head *list, const struct list_node *node) {
  return node->prev || list->first == node;
}

static inline void list_push_front(struct list_head *list, struct list_node *node) {
  node->prev = NULL;
  node->next = list->first;
  if (list->first)
    list->first->prev = node;
  list->first = node;
  list->count++;
}

/* Takes node off list; nothing happens when it is not on it. */
static inline void list_remove(struct list_head *list, struct list_node *node) {
  if (!list_linked(list, node))
    return;
  if (node->prev)
    node->prev->next = node->next;
  else
    list->first = node->next;
  if (node->next)
    node->next->prev = node->prev;
  node->prev = node->next = NULL;
  list->count--;
}

#endif
