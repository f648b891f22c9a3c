/* test_tenant.c — host ownership, tag namespaces, the token bucket, request signatures, and the
 * regex confinement of task_request for tenants. */
#include "unit.h"
#include "unit_regex.h"

#include "common/error.h"
#include "common/rate_limit.h"
#include "common/request_signature.h"
#include "engine/task_request.h"
#include "engine/tenant.h"

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

static void request_signature_matches_the_documented_recipe(void **state) {
  (void)state;
  /* printf 'POST\n/v1/purge\n1700000000\n%s' "$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)"
   *   | openssl dgst -sha256 -hmac secret-1 -hex */
  const char body[] = "{\"urls\":[\"https://example.com/a\"]}";
  char out[REQUEST_SIGNATURE_HEX_LENGTH + 1];
  assert_int_equal(request_signature_compute("secret-1", 8, "POST", 4, "/v1/purge", 9, 1700000000,
                                             body, strlen(body), out),
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
      .max_items = 10, .max_url_length = 200, .default_deadline_s = 60, .max_deadline_s = 60};
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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tenant_owns_exact_hosts_and_subdomains_of_wildcards),
      cmocka_unit_test(tenant_hosts_are_normalised_and_checked),
      cmocka_unit_test(tenant_tags_stay_in_the_namespace),
      cmocka_unit_test(rate_limit_allows_a_burst_then_the_rate),
      cmocka_unit_test(rate_limit_lets_a_big_draw_through_a_full_bucket_into_debt),
      cmocka_unit_test(request_signature_matches_the_documented_recipe),
      cmocka_unit_test(confined_regexes_never_match_other_hosts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
