/* test_tenant.c — host ownership, tag namespaces, the token bucket, request signatures, and the
 * regex confinement of task_request for tenants. */
#include "unit.h"
#include "unit_regex.h"

#include "common/regex_armor.h"

#include "common/error.h"
#include "common/rate_limit.h"
#include "common/request_signature.h"
#include "engine/api/task_request.h"
#include "model/tenant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct tenant acme = {
    .name = "acme", .hosts = "example.com,*.example.org", .tag_prefix = "acme-"};

static bool owns(const struct tenant *tenant, const char *host) {
  return tenant_owns_host(tenant, host, strlen(host));
}

static void tenant_owns_exact_hosts_and_subdomains_of_wildcards(void **state) {
  (void)state;
  assert_true(owns(&acme, "example.com"));
  assert_false(owns(&acme, "www.example.com"));
  assert_false(owns(&acme, "notexample.com"));
  assert_true(owns(&acme, "cdn.example.org"));
  assert_true(owns(&acme, "a.b.example.org"));
  assert_false(owns(&acme, "example.org")); /* the wildcard's domain itself is not included */
  assert_false(owns(&acme, "badexample.org"));
  assert_false(owns(&acme, ""));
  assert_true(owns(&tenant_dev, "anything.test"));
  assert_true(tenant_owns_every_host(&tenant_dev));
  assert_false(tenant_owns_every_host(&acme));
}

static void tenant_hosts_are_normalised_and_checked(void **state) {
  (void)state;
  char hosts[] = " Example.COM, *.Example.org ";
  const char *bad = NULL;
  assert_true(tenant_hosts_normalize(hosts, &bad));
  assert_string_equal(hosts, "example.com,*.example.org");
  const char *refused[] = {"",       "a..b",   "*.",     "a,,b", "ex ample",
                           "*x.com", ".a.com", "a.com.", "a_b"};
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    char copy[32];
    snprintf(copy, sizeof(copy), "%s", refused[i]);
    assert_false(tenant_hosts_normalize(copy, &bad));
  }
  char star[] = "*";
  assert_true(tenant_hosts_normalize(star, &bad));
}

static void tenant_tags_stay_in_the_namespace(void **state) {
  (void)state;
  assert_true(tenant_may_purge_tag(&acme, "acme-home", 9));
  assert_false(tenant_may_purge_tag(&acme, "home", 4));
  assert_false(tenant_may_purge_tag(&acme, "acme", 4));
  const struct tenant none = {.name = "none", .hosts = "a.com"};
  assert_false(tenant_may_purge_tag(&none, "x", 1));
  assert_true(tenant_may_purge_tag(&tenant_dev, "x", 1));
}

static void rate_limit_allows_a_burst_then_the_rate(void **state) {
  (void)state;
  struct rate_limit bucket = {0};
  const int64_t second = 1000000000, start = 50 * second;
  for (int i = 0; i < 10; i++)
    assert_int_equal(rate_limit_take(&bucket, start, 10, 1), 0);
  int64_t wait = rate_limit_take(&bucket, start, 10, 1);
  assert_int_equal(wait, second / 10); /* the next unit is due a tenth of a second later */
  assert_int_equal(rate_limit_take(&bucket, start + wait, 10, 1), 0);
  assert_true(rate_limit_take(&bucket, start + wait, 10, 1) > 0);
  assert_int_equal(rate_limit_take(&bucket, start + 3 * second, 10, 10), 0); /* refilled */
}

static void rate_limit_lets_a_big_draw_through_a_full_bucket_into_debt(void **state) {
  (void)state;
  struct rate_limit bucket = {0};
  const int64_t second = 1000000000, start = 50 * second;
  assert_int_equal(rate_limit_take(&bucket, start, 10, 30), 0); /* 3 s worth at once */
  int64_t wait = rate_limit_take(&bucket, start, 10, 30);
  assert_int_equal(wait, 3 * second); /* a second one waits for the debt to be paid */
  assert_true(rate_limit_take(&bucket, start + 2 * second, 10, 1) > 0);
  assert_int_equal(rate_limit_take(&bucket, start + 2 * second + second / 10, 10, 1), 0);
}

static void request_signature_takes_only_the_canonical_timestamp(void **state) {
  (void)state;
  int64_t t = 0;
  assert_true(request_signature_parse_timestamp("1700000000", 10, &t));
  assert_int_equal(t, 1700000000);
  /* Each of these names the same number to a lenient parser but signs different bytes. */
  static const char *const refused[] = {
      "01700000000",   "+1700000000", " 1700000000", "1700000000 ", "1700000000.0", "0", "",
      "1700000000000", "1.7e9"};
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
    assert_false(request_signature_parse_timestamp(refused[i], strlen(refused[i]), &t));
}

static void request_signature_matches_the_documented_recipe(void **state) {
  (void)state;
  /* printf 'POST\n/v1/purge\n1700000000\n%s' "$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)"
   *   | openssl dgst -sha256 -hmac secret-1 -hex */
  const char body[] = "{\"urls\":[\"https://example.com/a\"]}";
  char out[REQUEST_SIGNATURE_HEX_LENGTH + 1];
  assert_int_equal(request_signature_compute("secret-1", 8, "POST", 4, "/v1/purge", 9, "1700000000",
                                             10, body, strlen(body), out),
                   0);
  static const char expected[] = "dde967dde4c9b3e388d7e24405e824d18e598e001d35d952382e4f95aef4f5fd";
  assert_string_equal(out, expected);
  assert_true(request_signature_matches(out, expected, 64));
  assert_true(request_signature_matches(
      out, "DDE967DDE4C9B3E388D7E24405E824D18E598E001D35D952382E4F95AEF4F5FD", 64));
  assert_false(request_signature_matches(out, expected, 63));
  char wrong[65];
  memcpy(wrong, expected, sizeof(wrong));
  wrong[10] = '0';
  assert_false(request_signature_matches(out, wrong, 64));
}

/* Parses a purge for acme; returns the code and, on success, the first target's value. */
static int parse_for_acme(const char *body, char *first, size_t size, char *field) {
  static const struct request_limits limits = {
      .max_items = 10, .max_url_length = 2048, .default_deadline_s = 60, .max_deadline_s = 60};
  struct arena arena;
  arena_init(&arena, 1 << 20);
  struct task *task = NULL;
  struct request_error error;
  int rc =
      task_request_parse(TASK_PURGE, body, strlen(body), &limits, &acme, &arena, &task, &error);
  if (!rc)
    snprintf(first, size, "%s", task->targets[0].value);
  else
    snprintf(field, 96, "%s", error.field);
  arena_release(&arena);
  return rc;
}

static void confined_regexes_never_match_other_hosts(void **state) {
  (void)state;
  char value[256], field[96];
  /* An alternation after the host stays inside the group. */
  assert_int_equal(parse_for_acme("{\"regexes\":[\"^https://example\\\\.com/x|.*\"]}", value,
                                  sizeof(value), field),
                   0);
  assert_string_equal(value, "^https://example\\.com/(?:x|.*)");
  assert_true(unit_regex_matches(value, "https://example.com/x"));
  assert_true(unit_regex_matches(value, "https://example.com/anything"));
  assert_false(unit_regex_matches(value, "https://evil.com/x"));
  assert_false(unit_regex_matches(value, "https://evil.com/https://example.com/x"));
  assert_int_equal(parse_for_acme("{\"regexes\":[\"^https?://cdn\\\\.example\\\\.org/a\\\\d+\"]}",
                                  value, sizeof(value), field),
                   0);
  assert_true(unit_regex_matches(value, "http://cdn.example.org/a12"));
  assert_false(unit_regex_matches(value, "http://cdn.example.org.evil.com/a12"));

  /* Closing the group early does not compile on its own, so it is refused. */
  const char *invalid[] = {"{\"regexes\":[\"^https://example\\\\.com/x)|(.*\"]}",
                           "{\"regexes\":[\"^https://example.com/\"]}",
                           "{\"regexes\":[\"https://example\\\\.com/\"]}",
                           "{\"regexes\":[\"^https://example\\\\.com\"]}",
                           "{\"regexes\":[\"^https://[a-z]+\\\\.example\\\\.org/\"]}",
                           "{\"regexes\":[\"^https://example\\\\.com/\\\\Q\"]}"};
  for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
    int rc = parse_for_acme(invalid[i], value, sizeof(value), field);
    assert_true(rc == CDR_EINVALID_REGEX || rc == CDR_EHOST_NOT_OWNED);
    assert_string_equal(field, "regexes[0]");
  }
  assert_int_equal(
      parse_for_acme("{\"regexes\":[\"^https://example\\\\.org/\"]}", value, sizeof(value), field),
      CDR_EHOST_NOT_OWNED);
  assert_int_equal(parse_for_acme("{\"urls\":[\"https://EXAMPLE.com/a\",\"https://x.org/\"]}",
                                  value, sizeof(value), field),
                   CDR_EHOST_NOT_OWNED);
  assert_string_equal(field, "urls[1]");
  assert_int_equal(parse_for_acme("{\"tags\":[\"other\"]}", value, sizeof(value), field),
                   CDR_ETAG_NOT_ALLOWED);
}

/* URLs of hosts acme does not own, which no regex of acme's may match in any cache's form. */
static const char *const foreign_urls[] = {
    "https://evil.com/",          "http://evil.com/x",
    "https://example.net/a.css",  "https://evil.com/x\n",
    "http://a.example.com.evil/", "https://exampleXorg/",
    "http://evil.example.net/",   "https://evil.com/https://example.com/x"};

/* body's regex is refused, or accepted in a form that every cache takes as it is (armoring it
 * again changes nothing) and that matches none of the foreign URLs. */
static void assert_confined(const char *body) {
  char value[8192], field[96];
  int rc = parse_for_acme(body, value, sizeof(value), field);
  if (rc) /* refused: as a regex, for its host, or (a NUL byte) as JSON */
    return;
  char again[sizeof(value) * 8];
  assert_true(regex_armor(value, NULL, again, sizeof(again)));
  assert_string_equal(again, value);
  for (size_t i = 0; i < sizeof(foreign_urls) / sizeof(foreign_urls[0]); i++) {
    if (unit_regex_matches(value, foreign_urls[i]))
      fail_msg("%s: stored as %s, matches %s", body, value, foreign_urls[i]);
  }
}

static void confined_hosts_are_read_whole_at_any_length(void **state) {
  (void)state;
  /* Hosts of *.example.org around the longest DNS name, then an alternation with no '/' (the
   * host's end), or a path: never a host cut short with the rest read as pattern. */
  for (size_t letters = 230; letters <= 260; letters++) {
    const char *tails[] = {"|.*", "/|.*", "/x", ")|(.*", "|(?:.*)/"};
    for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
      char body[1024];
      int n = snprintf(body, sizeof(body), "{\"regexes\":[\"^https?://");
      for (size_t i = 0; i < letters; i++)
        body[n++] = 'a';
      snprintf(body + n, sizeof(body) - (size_t)n, "\\\\.example\\\\.org%s\"]}", tails[t]);
      assert_confined(body);
    }
  }
  char value[512], field[96];
  char body[512];
  int n = snprintf(body, sizeof(body), "{\"regexes\":[\"^https://");
  for (size_t i = 0; i < 241; i++) /* 241 + ".example.org": 253 */
    body[n++] = 'a';
  snprintf(body + n, sizeof(body) - (size_t)n, "\\\\.example\\\\.org/x\"]}");
  assert_int_equal(parse_for_acme(body, value, sizeof(value), field), 0);
  body[n] = 'a'; /* one more: 254 */
  snprintf(body + n + 1, sizeof(body) - (size_t)n - 1, "\\\\.example\\\\.org/x\"]}");
  assert_int_equal(parse_for_acme(body, value, sizeof(value), field), CDR_EINVALID_REGEX);
}

static void confined_regexes_mean_to_every_cache_what_was_checked(void **state) {
  (void)state;
  /* Text a comment or a quote hid from the check must stay hidden after the bytes caches cannot
   * take are escaped (extended mode's '#' and whitespace, \Q...\E, raw controls). */
  const char *bodies[] = {
      "{\"regexes\":[\"^https?://example\\\\.com/(?x)#)|(?:.*[\\n]?\"]}",
      "{\"regexes\":[\"^https?://example\\\\.com/(?x) #)|.*\\n\"]}",
      "{\"regexes\":[\"^https?://example\\\\.com/(?xx)#)|(.*\\n)\"]}",
      "{\"regexes\":[\"^https?://example\\\\.com/(?x:#)|.*\\n)\"]}",
      "{\"regexes\":[\"^https?://example\\\\.com/(?-i:(?x)#\\t)|(?:.*[\\n]?)\"]}",
      "{\"regexes\":[\"^https?://example\\\\.com/\\\\Q#)|.*\\\\E\"]}",
      "{\"regexes\":[\"^https?://example\\\\.com/(?x)\\\\Q \\\\E#)|.*\\n\"]}",
      "{\"regexes\":[\"^https?://example\\\\.com/a b\\\"c&d#e\"]}",
      "{\"regexes\":[\"^https?://example\\\\.com/(?#)|.*\\n\"]}",
      "{\"regexes\":[\"^https?://example\\\\.com/x\\u0000|.*\"]}",
  };
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
    assert_confined(bodies[i]);
  char value[256], field[96];
  assert_int_equal(parse_for_acme("{\"regexes\":[\"^https?://example\\\\.com/a b\"]}", value,
                                  sizeof(value), field),
                   0);
  assert_string_equal(value, "^https?://example\\.com/(?:a\\x20b)"); /* as caches get it */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tenant_owns_exact_hosts_and_subdomains_of_wildcards),
      cmocka_unit_test(tenant_hosts_are_normalised_and_checked),
      cmocka_unit_test(tenant_tags_stay_in_the_namespace),
      cmocka_unit_test(rate_limit_allows_a_burst_then_the_rate),
      cmocka_unit_test(rate_limit_lets_a_big_draw_through_a_full_bucket_into_debt),
      cmocka_unit_test(request_signature_matches_the_documented_recipe),
      cmocka_unit_test(request_signature_takes_only_the_canonical_timestamp),
      cmocka_unit_test(confined_regexes_never_match_other_hosts),
      cmocka_unit_test(confined_hosts_are_read_whole_at_any_length),
      cmocka_unit_test(confined_regexes_mean_to_every_cache_what_was_checked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
