/* test_buf.c — growing byte buffers with a maximum (common/buf.c). */
#include "unit.h"

#include "common/buf.h"
#include "common/error.h"

#include <string.h>

static void a_buffer_never_grows_past_its_maximum(void **state) {
  (void)state;
  struct buf small;
  buf_init(&small, 64);
  assert_null(small.data);
  assert_int_equal(buf_reserve(&small, 64), 0);
  assert_int_equal(small.cap, 64); /* the first 256 bytes are cut to the maximum */
  small.len = 60;
  assert_int_equal(buf_reserve(&small, 5), CDR_EBUFFER_FULL);
  assert_int_equal(buf_reserve(&small, SIZE_MAX), CDR_EBUFFER_FULL); /* no overflow */
  assert_int_equal(small.len, 60);
  buf_consume(&small, 50);
  assert_int_equal(small.len, 10);
  assert_int_equal(buf_reserve(&small, 54), 0);
  buf_consume(&small, 100);
  assert_int_equal(small.len, 0);
  buf_free(&small);
  assert_null(small.data);
  assert_int_equal(small.max, 64);
}

static void appended_and_printed_text_stays_a_string(void **state) {
  (void)state;
  struct buf text;
  buf_init(&text, 1 << 20);
  assert_int_equal(buf_append(&text, "abc", 3), 0);
  assert_int_equal(buf_printf(&text, "-%d-%s", 42, "x"), 0);
  assert_int_equal(text.len, 8);
  assert_string_equal(buf_text(&text), "abc-42-x");
  char big[1000];
  memset(big, 'y', sizeof(big));
  for (int i = 0; i < 100; i++) /* doubling: far fewer reallocations than appends */
    assert_int_equal(buf_append(&text, big, sizeof(big)), 0);
  assert_int_equal(text.len, 8 + 100 * sizeof(big));
  assert_true(text.cap >= text.len + 1 && text.cap <= 2 * (text.len + 1));
  assert_int_equal(buf_text(&text)[text.len], '\0');
  buf_free(&text);
}

static void printing_past_the_maximum_changes_nothing(void **state) {
  (void)state;
  struct buf text;
  buf_init(&text, 8);
  assert_int_equal(buf_printf(&text, "%s", "1234567"), 0); /* 7 bytes and the NUL */
  assert_int_equal(buf_printf(&text, "%s", "8"), CDR_EBUFFER_FULL);
  assert_int_equal(buf_append(&text, "8", 1), CDR_EBUFFER_FULL);
  assert_string_equal(buf_text(&text), "1234567");
  buf_free(&text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_buffer_never_grows_past_its_maximum),
      cmocka_unit_test(appended_and_printed_text_stays_a_string),
      cmocka_unit_test(printing_past_the_maximum_changes_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
