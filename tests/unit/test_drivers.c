/* test_drivers.c — what the cache drivers share: regexes armored for headers, bans and rules
 * files, and the Traffic Server rules file (merge, expiry, restart, failures). */
#include "unit.h"
#include "unit_regex.h"

#include "agent/drivers/ats_rules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *armor(const char *regex, const char *prefix) {
  static char out[512];
  assert_true(driver_regex_armor(regex, prefix, out, sizeof(out)));
  return out;
}

static void test_armor_escapes_only_what_would_break_a_header_or_a_ban(void **state) {
  (void)state;
  assert_string_equal(armor("^http://a\\.com/x.*$", NULL), "^http://a\\.com/x.*$");
  assert_string_equal(armor("a b\"c&&d#e", NULL), "a\\x20b\\x22c\\x26\\x26d\\x23e");
  assert_string_equal(armor("a\\ b", NULL), "a\\x20b"); /* an escaped space is a space */
  assert_string_equal(armor("\\Qa b\\E c", NULL), "\\Qa\\E\\x20\\Qb\\E\\x20c");
  assert_string_equal(armor("x\r\ny", NULL), "x\\x0d\\x0ay");
  const char *cases[][2] = {{"a b\"c&d", "a b\"c&d"}, {"\\Qa b.\\E", "a b."}, {"a\\ b", "a b"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    assert_true(unit_regex_matches(armor(cases[i][0], NULL), cases[i][1]));
    assert_false(strpbrk(armor(cases[i][0], NULL), " \"&"));
  }
  char small[8];
  assert_false(driver_regex_armor("abcdefghij", NULL, small, sizeof(small)));
}

static void test_armor_turns_a_prefix_into_an_anchored_literal(void **state) {
  (void)state;
  const char *regex = armor(NULL, "https://www.example.com/a+b/(x)?q=1 2");
  assert_string_equal(regex, "^https?://www\\.example\\.com/a\\+b/\\(x\\)\\?q=1\\x202");
  assert_true(unit_regex_matches(regex, "http://www.example.com/a+b/(x)?q=1 2/more"));
  assert_true(unit_regex_matches(regex, "https://www.example.com/a+b/(x)?q=1 2"));
  assert_false(unit_regex_matches(regex, "http://www.example.com/aab/(x)?q=1 2"));
  assert_false(unit_regex_matches(regex, "http://evil.com/http://www.example.com/a+b/(x)?q=1 2"));
}

static char dir[64], rules_path[128], state_path[128];

static void write_file(const char *path, const char *text) {
  FILE *file = fopen(path, "w");
  assert_non_null(file);
  fputs(text, file);
  fclose(file);
}

static char *read_file(const char *path) {
  static char text[4096];
  FILE *file = fopen(path, "r");
  assert_non_null(file);
  size_t n = fread(text, 1, sizeof(text) - 1, file);
  text[n] = '\0';
  fclose(file);
  return text;
}

/* A reload command that plays the plugin: copies every rule into the state file. */
static struct ats_rules *rules_with_state(long ttl_s) {
  static char command[512];
  snprintf(command, sizeof(command),
           "awk '!/^#/ && NF {t = ($3 == \"MISS\") ? \"MISS\" : \"STALE\"; "
           "print $1, 1, $2, t}' %s > %s",
           rules_path, state_path);
  struct ats_options options = {rules_path, state_path, command, ttl_s, 1000};
  struct ats_rules *rules = ats_rules_create(&options);
  assert_non_null(rules);
  return rules;
}

static int setup_dir(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/cdr-test-drivers-XXXXXX");
  assert_non_null(mkdtemp(dir));
  snprintf(rules_path, sizeof(rules_path), "%s/rules.txt", dir);
  snprintf(state_path, sizeof(state_path), "%s/rules.state", dir);
  return 0;
}

static int teardown_dir(void **state) {
  (void)state;
  unlink(rules_path);
  unlink(state_path);
  rmdir(dir);
  return 0;
}

static void test_ats_rules_merge_by_regex_and_keep_miss(void **state) {
  (void)state;
  struct ats_rules *rules = rules_with_state(3600);
  struct exec_outcome outcome = {0};
  ats_rules_add(rules, "^https?://a\\.com/x/", true, &outcome);
  assert_int_equal(outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  ats_rules_add(rules, "^https?://a\\.com/y/", false, &outcome);
  assert_int_equal(outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  long long first_expiry;
  char regex[64];
  assert_int_equal(sscanf(strstr(read_file(rules_path), "^https?://a\\.com/x/"), "%63s %lld", regex,
                          &first_expiry),
                   2);
  ats_rules_add(rules, "^https?://a\\.com/x/", false, &outcome); /* again, as invalidate */
  assert_int_equal(outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_int_equal(ats_rules_count(rules), 2);
  const char *text = read_file(rules_path);
  long long expiry;
  char type[8] = "";
  assert_int_equal(
      sscanf(strstr(text, "^https?://a\\.com/x/"), "%63s %lld %7s", regex, &expiry, type), 3);
  assert_true(expiry > first_expiry); /* a new expiry: the plugin takes a new load time */
  assert_string_equal(type, "MISS");  /* a delete is not weakened to a revalidation */
  assert_non_null(strstr(text, "^https?://a\\.com/y/ "));
  assert_null(strstr(strstr(text, "^https?://a\\.com/y/ "), "MISS"));
  ats_rules_destroy(rules);
}

static void test_ats_rules_drop_expired_and_survive_a_restart(void **state) {
  (void)state;
  char old[256];
  snprintf(old, sizeof(old), "# old\n^gone %lld MISS\n^kept %lld\n", (long long)time(NULL) - 5,
           (long long)time(NULL) + 3600);
  write_file(rules_path, old);
  struct ats_rules *rules = rules_with_state(3600);
  assert_int_equal(ats_rules_count(rules), 2);
  struct exec_outcome outcome = {0};
  ats_rules_add(rules, "^new", true, &outcome);
  assert_int_equal(outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_int_equal(ats_rules_count(rules), 2);
  const char *text = read_file(rules_path);
  assert_null(strstr(text, "^gone"));
  assert_non_null(strstr(text, "^kept "));
  assert_non_null(strstr(text, "^new "));
  ats_rules_destroy(rules);
}

static void test_ats_rules_report_failed_reloads(void **state) {
  (void)state;
  struct ats_options failing = {rules_path, "", "exit 3", 3600, 1000};
  struct ats_rules *rules = ats_rules_create(&failing);
  struct exec_outcome outcome = {0};
  ats_rules_add(rules, "^a", true, &outcome);
  assert_int_equal(outcome.outcome, CDR__OUTCOME__FAILED);
  assert_string_equal(outcome.reason, "ats_reload_failed");
  ats_rules_destroy(rules);
  /* ATS never lists the rule (say its PCRE refused it): unconfirmed, and the rule is dropped so
   * the next write is not failed by it. */
  struct ats_options silent = {rules_path, state_path, "true", 3600, 100};
  write_file(state_path, "");
  rules = ats_rules_create(&silent);
  ats_rules_add(rules, "^refused", true, &outcome);
  assert_int_equal(outcome.outcome, CDR__OUTCOME__FAILED);
  assert_string_equal(outcome.reason, "ats_reload_unconfirmed");
  assert_int_equal(ats_rules_count(rules), 0);
  ats_rules_destroy(rules);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_armor_escapes_only_what_would_break_a_header_or_a_ban),
      cmocka_unit_test(test_armor_turns_a_prefix_into_an_anchored_literal),
      cmocka_unit_test_setup_teardown(test_ats_rules_merge_by_regex_and_keep_miss, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_ats_rules_drop_expired_and_survive_a_restart, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_ats_rules_report_failed_reloads, setup_dir,
                                      teardown_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
