/* test_url.c — URL validation and normalisation. */
#include "unit.h"

#include "common/error.h"
#include "common/url.h"

#include <string.h>

static struct arena arena;

static int url_setup(void **state) {
  (void)state;
  arena_init(&arena, 1 << 20);
  return 0;
}

static int url_teardown(void **state) {
  (void)state;
  arena_release(&arena);
  return 0;
}

/* Normalises in and checks the result text. */
static void expect_normal(const char *in, const char *want) {
  struct url_normalized url;
  const char *why = NULL;
  assert_int_equal(url_normalize(in, strlen(in), 2048, &arena, &url, &why), 0);
  assert_string_equal(url.text, want);
  assert_int_equal(url.length, strlen(want));
}

static void expect_invalid(const char *in, int code) {
  struct url_normalized url;
  const char *why = NULL;
  assert_int_equal(url_normalize(in, strlen(in), 64, &arena, &url, &why), code);
  assert_non_null(why);
}

static void url_lowercases_scheme_and_host(void **state) {
  (void)state;
  expect_normal("HTTPS://Example.COM/Path/A.png?Q=1", "https://example.com/Path/A.png?Q=1");
}

static void url_drops_default_ports_only(void **state) {
  (void)state;
  expect_normal("http://example.com:80/a", "http://example.com/a");
  expect_normal("https://example.com:443/a", "https://example.com/a");
  expect_normal("http://example.com:8080/a", "http://example.com:8080/a");
  expect_normal("https://example.com:80/a", "https://example.com:80/a");
}

static void url_drops_trailing_dots_of_the_host(void **state) {
  (void)state;
  expect_normal("http://Example.COM./a", "http://example.com/a");
  expect_normal("https://example.com..:443/a.", "https://example.com/a.");
  expect_normal("http://example.com.:8080/", "http://example.com:8080/");
}

static void url_adds_root_path(void **state) {
  (void)state;
  struct url_normalized url;
  const char *why;
  assert_int_equal(url_normalize("http://a.b?x=1", 14, 2048, &arena, &url, &why), 0);
  assert_string_equal(url.text, "http://a.b/?x=1");
  assert_false(url.path_given);
  assert_true(url.has_query);
  assert_int_equal(url.path_offset, strlen("http://a.b"));
}

static void url_keeps_ipv6_literal(void **state) {
  (void)state;
  expect_normal("http://[::1]:8080/x", "http://[::1]:8080/x");
}

static void url_reports_host_position(void **state) {
  (void)state;
  struct url_normalized url;
  const char *why;
  assert_int_equal(url_normalize("https://CDN.example:8443/p", 26, 2048, &arena, &url, &why), 0);
  assert_int_equal(url.host_length, strlen("cdn.example"));
  assert_memory_equal(url.text + url.host_offset, "cdn.example", url.host_length);
  assert_true(url.path_given);
}

static void url_rejects_bad_input(void **state) {
  (void)state;
  expect_invalid("ftp://example.com/a", CDR_EINVALID_URL);
  expect_invalid("/relative/path", CDR_EINVALID_URL);
  expect_invalid("https://example.com/a#frag", CDR_EINVALID_URL);
  expect_invalid("https:///nohost", CDR_EINVALID_URL);
  expect_invalid("https://user@example.com/", CDR_EINVALID_URL);
  expect_invalid("https://example.com:0/", CDR_EINVALID_URL);
  expect_invalid("https://example.com:99999/", CDR_EINVALID_URL);
  expect_invalid("https://exa mple.com/", CDR_EINVALID_URL);
  expect_invalid("https://example.com/caf\xc3\xa9", CDR_EINVALID_URL);
  expect_invalid("https://ex!ample.com/", CDR_EINVALID_URL);
  expect_invalid("https://[::1/", CDR_EINVALID_URL);
}

static void url_enforces_length_limit(void **state) {
  (void)state;
  char long_url[128];
  memset(long_url, 'a', sizeof(long_url) - 1);
  memcpy(long_url, "https://example.com/", 20);
  long_url[sizeof(long_url) - 1] = '\0';
  expect_invalid(long_url, CDR_EURL_TOO_LONG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(url_lowercases_scheme_and_host),
      cmocka_unit_test(url_drops_default_ports_only),
      cmocka_unit_test(url_drops_trailing_dots_of_the_host),
      cmocka_unit_test(url_adds_root_path),
      cmocka_unit_test(url_keeps_ipv6_literal),
      cmocka_unit_test(url_reports_host_position),
      cmocka_unit_test(url_rejects_bad_input),
      cmocka_unit_test(url_enforces_length_limit),
  };
  return cmocka_run_group_tests(tests, url_setup, url_teardown);
}
