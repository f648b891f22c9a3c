/* test_frame.c — link frames: round trips, compression, and every malformed input. */
#include "unit.h"

#include "common/error.h"
#include "proto/frame.h"

#include <stdio.h>
#include <string.h>

enum { MAX_PAYLOAD = 1 << 20 };

static struct buf out, scratch;
static struct arena arena;

static int frame_setup(void **state) {
  (void)state;
  buf_init(&out, 4 * MAX_PAYLOAD);
  buf_init(&scratch, MAX_PAYLOAD);
  arena_init(&arena, 16 * MAX_PAYLOAD);
  return 0;
}

static int frame_teardown(void **state) {
  (void)state;
  buf_free(&out);
  buf_free(&scratch);
  arena_release(&arena);
  return 0;
}

static void frame_round_trips_a_hello(void **state) {
  (void)state;
  char eu[] = "eu", edge[] = "edge", node[] = "edge-1", token[] = "secret";
  char *groups[] = {eu, edge};
  Cdr__Hello hello;
  cdr__hello__init(&hello);
  hello.node_id = node;
  hello.token = token;
  hello.protocol_version = FRAME_VERSION;
  hello.n_groups = 2;
  hello.groups = groups;
  hello.window = 256;
  out.len = 0;
  assert_int_equal(frame_append(&out, FRAME_HELLO, &hello.base, NULL, &scratch), 0);
  struct frame_view view;
  assert_int_equal(frame_peek(out.data, out.len, MAX_PAYLOAD, &view), 0);
  assert_int_equal(view.type, FRAME_HELLO);
  assert_int_equal(view.frame_len, out.len);
  ProtobufCMessage *message;
  assert_int_equal(frame_unpack(&view, NULL, &scratch, MAX_PAYLOAD, &arena, &message), 0);
  Cdr__Hello *got = (Cdr__Hello *)message;
  assert_string_equal(got->node_id, "edge-1");
  assert_int_equal(got->n_groups, 2);
  assert_string_equal(got->groups[1], "edge");
  assert_int_equal(got->window, 256);
}

/* Packed exact-URL purges and packed successes keep every id and target, next to messages. */
static void frame_round_trips_packed_work_and_results(void **state) {
  (void)state;
  char a[] = "https://a.example/x", b[] = "https://b.example/y?q=1", regex[] = "^/doc/";
  uint64_t ids[] = {(uint64_t)7 << 32 | 3, UINT64_MAX};
  char *targets[] = {a, b};
  Cdr__WorkItem item;
  cdr__work_item__init(&item);
  item.item_id = 9;
  item.operation = CDR__OPERATION__PURGE_REGEX;
  item.target = regex;
  Cdr__WorkItem *items[] = {&item};
  Cdr__Work work;
  cdr__work__init(&work);
  work.n_items = 1;
  work.items = items;
  work.n_url_purge_ids = work.n_url_purge_targets = 2;
  work.url_purge_ids = ids;
  work.url_purge_targets = targets;
  out.len = 0;
  assert_int_equal(frame_append(&out, FRAME_WORK, &work.base, NULL, &scratch), 0);
  struct frame_view view;
  assert_int_equal(frame_peek(out.data, out.len, MAX_PAYLOAD, &view), 0);
  ProtobufCMessage *message;
  assert_int_equal(frame_unpack(&view, NULL, &scratch, MAX_PAYLOAD, &arena, &message), 0);
  const Cdr__Work *got = (const Cdr__Work *)message;
  assert_int_equal(got->n_items, 1);
  assert_string_equal(got->items[0]->target, regex);
  assert_int_equal(got->n_url_purge_ids, 2);
  assert_int_equal(got->n_url_purge_targets, 2);
  assert_true(got->url_purge_ids[0] == ids[0] && got->url_purge_ids[1] == ids[1]);
  assert_string_equal(got->url_purge_targets[1], b);

  uint64_t verified[] = {1, 2, 3}, unverified[] = {(uint64_t)1 << 40};
  Cdr__ItemResult failed;
  cdr__item_result__init(&failed);
  failed.item_id = 9;
  failed.outcome = CDR__OUTCOME__FAILED;
  failed.http_status = 503;
  Cdr__ItemResult *results[] = {&failed};
  Cdr__Results frame;
  cdr__results__init(&frame);
  frame.n_results = 1;
  frame.results = results;
  frame.n_verified_ok = 3;
  frame.verified_ok = verified;
  frame.n_unverified_ok = 1;
  frame.unverified_ok = unverified;
  out.len = 0;
  assert_int_equal(frame_append(&out, FRAME_RESULTS, &frame.base, NULL, &scratch), 0);
  assert_int_equal(frame_peek(out.data, out.len, MAX_PAYLOAD, &view), 0);
  assert_int_equal(frame_unpack(&view, NULL, &scratch, MAX_PAYLOAD, &arena, &message), 0);
  const Cdr__Results *back = (const Cdr__Results *)message;
  assert_int_equal(back->n_results, 1);
  assert_int_equal(back->results[0]->http_status, 503);
  assert_int_equal(back->n_verified_ok, 3);
  assert_true(back->verified_ok[2] == 3);
  assert_int_equal(back->n_unverified_ok, 1);
  assert_true(back->unverified_ok[0] == (uint64_t)1 << 40);
}

/* Builds a Work frame of n items into out; compressed when zstd is given. */
static void append_work(size_t n, ZSTD_CCtx *zstd) {
  static Cdr__WorkItem items[2000];
  static Cdr__WorkItem *pointers[2000];
  static char urls[2000][64];
  for (size_t i = 0; i < n; i++) {
    cdr__work_item__init(&items[i]);
    items[i].item_id = i;
    snprintf(urls[i], sizeof(urls[i]), "https://www.example.com/static/%zu.css", i);
    items[i].target = urls[i];
    pointers[i] = &items[i];
  }
  Cdr__Work work;
  cdr__work__init(&work);
  work.n_items = n;
  work.items = pointers;
  assert_int_equal(frame_append(&out, FRAME_WORK, &work.base, zstd, &scratch), 0);
}

static void frame_compresses_large_batches(void **state) {
  (void)state;
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  ZSTD_DCtx *dctx = ZSTD_createDCtx();
  out.len = 0;
  append_work(2000, cctx);
  struct frame_view view;
  assert_int_equal(frame_peek(out.data, out.len, MAX_PAYLOAD, &view), 0);
  assert_true(view.flags & FRAME_FLAG_ZSTD);
  assert_true(view.payload_len < 2000 * 40 / 4); /* repetitive URLs compress well */
  ProtobufCMessage *message;
  assert_int_equal(frame_unpack(&view, dctx, &scratch, MAX_PAYLOAD, &arena, &message), 0);
  Cdr__Work *work = (Cdr__Work *)message;
  assert_int_equal(work->n_items, 2000);
  assert_string_equal(work->items[1999]->target, "https://www.example.com/static/1999.css");
  ZSTD_freeCCtx(cctx);
  ZSTD_freeDCtx(dctx);
}

static void frame_leaves_small_batches_plain(void **state) {
  (void)state;
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  out.len = 0;
  append_work(3, cctx);
  struct frame_view view;
  assert_int_equal(frame_peek(out.data, out.len, MAX_PAYLOAD, &view), 0);
  assert_int_equal(view.flags, 0);
  ZSTD_freeCCtx(cctx);
}

static void frame_waits_for_truncated_input(void **state) {
  (void)state;
  out.len = 0;
  append_work(10, NULL);
  struct frame_view view;
  for (size_t len = 0; len < out.len; len++)
    assert_int_equal(frame_peek(out.data, len, MAX_PAYLOAD, &view), CDR_EAGAIN);
  assert_int_equal(frame_peek(out.data, out.len, MAX_PAYLOAD, &view), 0);
}

static void frame_refuses_bad_headers(void **state) {
  (void)state;
  struct frame_view view;
  uint8_t oversized[8] = {0x01, 0x00, 0x00, 0x01, FRAME_WORK, 0, 0, FRAME_VERSION};
  assert_int_equal(frame_peek(oversized, 8, MAX_PAYLOAD, &view), CDR_EFRAME_TOO_LARGE);
  uint8_t version[8] = {0, 0, 0, 0, FRAME_WORK, 0, 0, 9};
  assert_int_equal(frame_peek(version, 8, MAX_PAYLOAD, &view), CDR_EFRAME_VERSION);
  uint8_t type[8] = {0, 0, 0, 0, 77, 0, 0, FRAME_VERSION};
  assert_int_equal(frame_peek(type, 8, MAX_PAYLOAD, &view), CDR_EFRAME_TYPE);
  uint8_t zero_type[8] = {0, 0, 0, 0, 0, 0, 0, FRAME_VERSION};
  assert_int_equal(frame_peek(zero_type, 8, MAX_PAYLOAD, &view), CDR_EFRAME_TYPE);
  uint8_t flags[8] = {0, 0, 0, 0, FRAME_WORK, 0x80, 0, FRAME_VERSION};
  assert_int_equal(frame_peek(flags, 8, MAX_PAYLOAD, &view), CDR_EFRAME_FLAGS);
}

static void frame_refuses_garbage_bodies(void **state) {
  (void)state;
  uint8_t frame[8 + 6] = {0,    0,    0,    6,    FRAME_WORK, 0,   0, FRAME_VERSION,
                          0x0a, 0x7f, 0xff, 0xff, 0xff,       0x0f};
  struct frame_view view;
  assert_int_equal(frame_peek(frame, sizeof(frame), MAX_PAYLOAD, &view), 0);
  ProtobufCMessage *message;
  assert_int_equal(frame_unpack(&view, NULL, &scratch, MAX_PAYLOAD, &arena, &message),
                   CDR_EFRAME_BODY);
  uint8_t fake_zstd[8 + 4] = {0, 0, 0, 4, FRAME_WORK, FRAME_FLAG_ZSTD, 0, FRAME_VERSION,
                              1, 2, 3, 4};
  ZSTD_DCtx *dctx = ZSTD_createDCtx();
  assert_int_equal(frame_peek(fake_zstd, sizeof(fake_zstd), MAX_PAYLOAD, &view), 0);
  assert_int_equal(frame_unpack(&view, dctx, &scratch, MAX_PAYLOAD, &arena, &message),
                   CDR_EFRAME_BODY);
  ZSTD_freeDCtx(dctx);
}

static void frame_refuses_compressed_bombs(void **state) {
  (void)state;
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  ZSTD_DCtx *dctx = ZSTD_createDCtx();
  out.len = 0;
  append_work(2000, cctx); /* ~100 KB uncompressed */
  struct frame_view view;
  assert_int_equal(frame_peek(out.data, out.len, MAX_PAYLOAD, &view), 0);
  ProtobufCMessage *message;
  assert_int_equal(frame_unpack(&view, dctx, &scratch, 1000, &arena, &message),
                   CDR_EFRAME_TOO_LARGE);
  ZSTD_freeCCtx(cctx);
  ZSTD_freeDCtx(dctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(frame_round_trips_a_hello),
      cmocka_unit_test(frame_round_trips_packed_work_and_results),
      cmocka_unit_test(frame_compresses_large_batches),
      cmocka_unit_test(frame_leaves_small_batches_plain),
      cmocka_unit_test(frame_waits_for_truncated_input),
      cmocka_unit_test(frame_refuses_bad_headers),
      cmocka_unit_test(frame_refuses_garbage_bodies),
      cmocka_unit_test(frame_refuses_compressed_bombs),
  };
  return cmocka_run_group_tests(tests, frame_setup, frame_teardown);
}
