/* mailbox.c — messages from any thread to one libuv loop. */
#include "common/mailbox.h"

static void mailbox_on_wake(uv_async_t *async) {
  struct mailbox *mailbox = async->data;
  pthread_mutex_lock(&mailbox->lock);
  struct fifo posted = mailbox->queue;
  mailbox->queue = (struct fifo){0};
  pthread_mutex_unlock(&mailbox->lock);
  for (struct fifo_node *at; (at = fifo_pop(&posted));) {
    struct mail *mail = FIFO_ENTRY(at, struct mail, link);
    mail->arrived(mail);
  }
}

int mailbox_init(struct mailbox *mailbox, uv_loop_t *loop) {
  mailbox->queue = (struct fifo){0};
  pthread_mutex_init(&mailbox->lock, NULL);
  mailbox->async.data = mailbox;
  return uv_async_init(loop, &mailbox->async, mailbox_on_wake);
}

void mailbox_post(struct mailbox *mailbox, struct mail *mail) {
  pthread_mutex_lock(&mailbox->lock);
  fifo_push(&mailbox->queue, &mail->link);
  pthread_mutex_unlock(&mailbox->lock);
  uv_async_send(&mailbox->async);
}
