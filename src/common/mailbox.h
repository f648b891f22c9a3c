/* mailbox.h — how other threads hand messages to one libuv loop: a FIFO under a mutex and a
 * uv_async that wakes the loop, which then delivers every message posted so far, in order, to the
 * mailbox's deliver function. Messages are intrusive (struct fifo_node inside them): posting
 * allocates nothing. The store workers answer jobs this way; the fabric also takes requests from
 * the API loops through its mailbox. */
#ifndef CDR_MAILBOX_H
#define CDR_MAILBOX_H

#include "common/fifo.h"

#include <pthread.h>
#include <uv.h>

typedef void (*mailbox_deliver_cb)(struct fifo_node *message, void *context);

struct mailbox {
  uv_async_t async; /* closed with the loop's other handles, once nothing more is posted */
  pthread_mutex_t lock;
  struct fifo queue; /* guarded by lock */
  mailbox_deliver_cb deliver;
  void *context;
};

/* Prepares mailbox on loop (loop thread); deliver(message, context) runs there for each message.
 * Returns 0 or a negative libuv code. */
int mailbox_init(struct mailbox *mailbox, uv_loop_t *loop, mailbox_deliver_cb deliver,
                 void *context);

/* Hands message to the mailbox's loop (any thread). */
void mailbox_post(struct mailbox *mailbox, struct fifo_node *message);

#endif
