/* test_fifo.c — the intrusive FIFO (common/fifo.h) and the mailbox that carries one across
 * threads (common/mailbox.c). */
#include "unit.h"

#include "common/fifo.h"
#include "common/mailbox.h"

#include <pthread.h>

struct entry {
  int value;
  struct fifo_node link;
};

/* The values on queue, in order, written into out; returns how many. */
static int values(const struct fifo *queue, int *out) {
  int n = 0;
  for (struct fifo_node *at = queue->head; at; at = at->next)
    out[n++] = FIFO_ENTRY(at, struct entry, link)->value;
  return n;
}

static void push_pop_keep_order_and_the_tail(void **state) {
  (void)state;
  struct entry e[4] = {{.value = 0}, {.value = 1}, {.value = 2}, {.value = 3}};
  struct fifo queue = {0};
  assert_true(fifo_empty(&queue));
  assert_null(fifo_pop(&queue));
  for (int i = 0; i < 3; i++)
    fifo_push(&queue, &e[i].link);
  assert_ptr_equal(fifo_pop(&queue), &e[0].link);
  fifo_push(&queue, &e[3].link); /* after a pop the tail is still the last */
  int got[4] = {0}, n = values(&queue, got);
  assert_int_equal(n, 3);
  assert_int_equal(got[0], 1);
  assert_int_equal(got[2], 3);
  assert_ptr_equal(fifo_pop(&queue), &e[1].link);
  assert_ptr_equal(fifo_pop(&queue), &e[2].link);
  assert_ptr_equal(fifo_pop(&queue), &e[3].link);
  assert_true(fifo_empty(&queue));
  assert_null(queue.tail);
}

static void remove_takes_any_entry_and_mends_the_tail(void **state) {
  (void)state;
  struct entry e[3] = {{.value = 0}, {.value = 1}, {.value = 2}};
  struct entry stranger = {.value = 9};
  struct fifo queue = {0};
  for (int i = 0; i < 3; i++)
    fifo_push(&queue, &e[i].link);
  assert_false(fifo_remove(&queue, &stranger.link));
  assert_true(fifo_remove(&queue, &e[2].link)); /* the tail */
  assert_ptr_equal(queue.tail, &e[1].link);
  fifo_push(&queue, &e[2].link);
  assert_true(fifo_remove(&queue, &e[1].link)); /* the middle */
  assert_true(fifo_remove(&queue, &e[0].link)); /* the head */
  int got[3] = {0};
  assert_int_equal(values(&queue, got), 1);
  assert_int_equal(got[0], 2);
  assert_true(fifo_remove(&queue, &e[2].link));
  assert_true(fifo_empty(&queue));
  assert_null(queue.tail);
}

static bool keep_even(struct fifo_node *node, void *context) {
  (*(int *)context)++;
  return FIFO_ENTRY(node, struct entry, link)->value % 2 == 0;
}

static void filter_and_append_keep_order(void **state) {
  (void)state;
  struct entry e[6];
  struct fifo queue = {0}, more = {0};
  for (int i = 0; i < 6; i++) {
    e[i].value = i;
    fifo_push(i < 4 ? &queue : &more, &e[i].link);
  }
  fifo_append(&queue, &more);
  assert_true(fifo_empty(&more));
  int seen = 0;
  fifo_filter(&queue, keep_even, &seen);
  assert_int_equal(seen, 6);
  int got[6] = {0}, n = values(&queue, got);
  assert_int_equal(n, 3);
  assert_int_equal(got[0], 0);
  assert_int_equal(got[1], 2);
  assert_int_equal(got[2], 4);
  assert_ptr_equal(queue.tail, &e[4].link);
}

enum { POSTS = 10000 };

struct letter {
  struct mail mail;
  int value;
};

struct inbox_test {
  struct mailbox mailbox;
  struct letter letters[POSTS];
  int delivered;
  bool in_order;
};

static struct inbox_test inbox_test = {.in_order = true};

static void on_arrived(struct mail *mail) {
  struct letter *letter = CONTAINER_OF(mail, struct letter, mail);
  inbox_test.in_order &= letter->value == inbox_test.delivered;
  inbox_test.delivered++;
}

static void *poster(void *arg) {
  struct inbox_test *test = arg;
  for (int i = 0; i < POSTS; i++) {
    test->letters[i] = (struct letter){.mail.arrived = on_arrived, .value = i};
    mailbox_post(&test->mailbox, &test->letters[i].mail);
  }
  return NULL;
}

static void a_mailbox_delivers_every_post_of_another_thread_in_order(void **state) {
  (void)state;
  struct inbox_test *test = &inbox_test;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(mailbox_init(&test->mailbox, &loop), 0);
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, poster, test), 0);
  while (test->delivered < POSTS)
    uv_run(&loop, UV_RUN_ONCE);
  pthread_join(thread, NULL); /* its last wake-up is sent before the handle closes */
  uv_close((uv_handle_t *)&test->mailbox.async, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(test->delivered, POSTS);
  assert_true(test->in_order);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(push_pop_keep_order_and_the_tail),
      cmocka_unit_test(remove_takes_any_entry_and_mends_the_tail),
      cmocka_unit_test(filter_and_append_keep_order),
      cmocka_unit_test(a_mailbox_delivers_every_post_of_another_thread_in_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
