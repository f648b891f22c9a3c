/* mailbox.h — how other threads hand messages to one libuv loop: a FIFO under a mutex and a
 * uv_async that wakes the loop, which then runs every message posted so far, in order. A message
 * is a struct mail inside whatever it carries, with the function its arrival runs on the loop, so
 * one mailbox takes messages of several kinds (a loop gets store jobs back and, on the fabric's,
 * calls from the API loops) and posting allocates nothing. */
#ifndef CDR_MAILBOX_H
#define CDR_MAILBOX_H

#include "common/fifo.h"

#include <pthread.h>
#include <uv.h>

struct mail;
typedef void (*mail_arrived_cb)(struct mail *mail);

struct mail {
  struct fifo_node link;   /* on a mailbox, or on any other queue while not posted */
  mail_arrived_cb arrived; /* runs on the mailbox's loop; the message is its own again */
};

struct mailbox {
  uv_async_t async; /* closed with the loop's other handles, once nothing more is posted */
  pthread_mutex_t lock;
  struct fifo queue; /* of mail.link, guarded by lock */
};

/* Prepares mailbox on loop (loop thread). Returns 0 or a negative libuv code. */
int mailbox_init(struct mailbox *mailbox, uv_loop_t *loop);

/* Hands mail to the mailbox's loop (any thread), where mail->arrived(mail) runs. */
void mailbox_post(struct mailbox *mailbox, struct mail *mail);

#endif
