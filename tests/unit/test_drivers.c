/* test_drivers.c — what the cache drivers share: regexes armored for headers, bans and rules
 * files, the Traffic Server rules file (merge, expiry, restart, failures), and the request
 * sequences of drivers that make more than one request an item (Varnish's verified purge,
 * Squid's Vary variants), driven as the executor drives them. */
#include "unit.h"
#include "unit_regex.h"

#include "agent/drivers/ats_rules.h"
#include "common/regex_armor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *armor(const char *regex, const char *prefix) {
  static char out[512];
  assert_true(regex_armor(regex, prefix, out, sizeof(out)));
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
  assert_false(regex_armor("abcdefghij", NULL, small, sizeof(small)));
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

/* A cache's answer to one request: its status and X-Cache-Status ("" for none). */
struct answer {
  long status;
  const char *found;
};

/* One item through a driver the way the executor runs it: prepare, then for each request the
 * cache's answer (in order) to complete and follow_up. Returns the requests made and leaves the
 * last request's method in seq->method. */
struct sequence {
  struct exec_outcome outcome;
  char url[512], host[128], header[256], connect_to[256];
  const char *method;
  char methods[160]; /* every request's method and headers, e.g. "PURGE HEAD+cc+ae " */
};

/* Notes a request's method and its driver headers in seq->methods. */
static void note_request(struct sequence *seq, const struct exec_request *request) {
  size_t used = strlen(seq->methods);
  snprintf(seq->methods + used, sizeof(seq->methods) - used, "%s%s%s%s ", request->method,
           request->fixed_header && strstr(request->fixed_header, "only-if-cached") ? "+cc" : "",
           request->fixed_header && strstr(request->fixed_header, "X-Cdr-Probe") ? "+probe" : "",
           strncmp(request->header, "Accept-Encoding", 15) == 0 ? "+ae" : "");
}

static unsigned run_sequence(struct driver *driver, const struct exec_item *item,
                             const struct answer *answers, size_t count, struct sequence *seq) {
  memset(seq, 0, sizeof(*seq));
  struct exec_request request = {.url = seq->url,
                                 .url_size = sizeof(seq->url),
                                 .host = seq->host,
                                 .host_size = sizeof(seq->host),
                                 .method = "GET",
                                 .header = seq->header,
                                 .header_size = sizeof(seq->header),
                                 .connect_to = seq->connect_to,
                                 .connect_to_size = sizeof(seq->connect_to)};
  assert_int_equal(driver->prepare(driver, item, &request, &seq->outcome), DRIVER_REQUEST);
  for (size_t i = 0;; i++) {
    assert_true(i < count); /* the driver asked for more requests than the test answers */
    seq->method = request.method;
    note_request(seq, &request);
    seq->outcome.requests++;
    snprintf(seq->outcome.cache_status, sizeof(seq->outcome.cache_status), "%s", answers[i].found);
    driver->complete(driver, item, answers[i].status, CURLE_OK, &seq->outcome);
    seq->header[0] = '\0';
    request.fixed_header = NULL;
    if (!driver->follow_up ||
        driver->follow_up(driver, item, &request, &seq->outcome) != DRIVER_REQUEST)
      return seq->outcome.requests;
  }
}

static void test_varnish_purges_are_checked_and_retried_once(void **state) {
  (void)state;
  struct driver *varnish = driver_varnish_create("http://127.0.0.1:6081");
  struct exec_item item = {.operation = CDR__OPERATION__PURGE_URL,
                           .verify = true,
                           .target = "http://www.example.com/a%20b.css"};
  struct sequence seq;
  const struct answer gone[] = {{200, "MISS"}}; /* the lookup after the purge found nothing */
  assert_int_equal(run_sequence(varnish, &item, gone, 1, &seq), 1);
  assert_int_equal(seq.outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_true(seq.outcome.verified);
  assert_string_equal(seq.url, "http://127.0.0.1:6081/a%20b.css");
  assert_string_equal(seq.method, "PURGE");
  const struct answer second_time[] = {{200, "HIT"}, {200, "MISS"}};
  assert_int_equal(run_sequence(varnish, &item, second_time, 2, &seq), 2);
  assert_int_equal(seq.outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_true(seq.outcome.verified);
  const struct answer stays[] = {{200, "HIT"}, {200, "STALE"}}; /* hard: stale is still there */
  assert_int_equal(run_sequence(varnish, &item, stays, 2, &seq), 2);
  assert_int_equal(seq.outcome.outcome, CDR__OUTCOME__FAILED);
  assert_string_equal(seq.outcome.reason, "still_cached");
  assert_false(seq.outcome.verified);
  const struct answer unknown[] = {{200, ""}}; /* a VCL that does not look again */
  assert_int_equal(run_sequence(varnish, &item, unknown, 1, &seq), 1);
  assert_int_equal(seq.outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_false(seq.outcome.verified);
  const struct answer refused[] = {{403, ""}};
  assert_int_equal(run_sequence(varnish, &item, refused, 1, &seq), 1);
  assert_string_equal(seq.outcome.reason, "http_403");
  item.invalidate = true; /* soft: stale is what was asked for, a fresh copy is not */
  const struct answer stale[] = {{200, "STALE"}};
  assert_int_equal(run_sequence(varnish, &item, stale, 1, &seq), 1);
  assert_true(seq.outcome.verified);
  const struct answer fresh[] = {{200, "HIT"}, {200, "HIT"}};
  assert_int_equal(run_sequence(varnish, &item, fresh, 2, &seq), 2);
  assert_string_equal(seq.outcome.reason, "still_cached");
  item.verify = false; /* the task asked for no check: no verdict, no retry */
  assert_int_equal(run_sequence(varnish, &item, fresh, 2, &seq), 1);
  assert_int_equal(seq.outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_false(seq.outcome.verified);
  /* A preload is probed through the VCL: 200 cached, 299 stale, 404 not cached. */
  item = (struct exec_item){.operation = CDR__OPERATION__PRELOAD,
                            .verify = true,
                            .target = "http://www.example.com/a.css"};
  const struct answer filled[] = {{200, ""}, {200, ""}};
  assert_int_equal(run_sequence(varnish, &item, filled, 2, &seq), 2);
  assert_true(seq.outcome.verified);
  assert_string_equal(seq.methods, "GET GET+probe ");
  for (long found = 299; found <= 404; found += 105) {
    const struct answer missing[] = {{200, ""}, {found, ""}};
    assert_int_equal(run_sequence(varnish, &item, missing, 2, &seq), 2);
    assert_string_equal(seq.outcome.reason, "not_cached");
  }
  varnish->destroy(varnish);
}

static void test_squid_purges_each_encoding_when_the_url_varies(void **state) {
  (void)state;
  struct driver *squid = driver_squid_create("http://127.0.0.1:3128");
  struct exec_item item = {.operation = CDR__OPERATION__PURGE_URL,
                           .verify = true,
                           .target = "http://www.example.com/v.css"};
  struct sequence seq;
  /* An object of the URL's own (it does not vary): purged, then probed without filling. */
  const struct answer plain[] = {{200, ""}, {504, ""}};
  assert_int_equal(run_sequence(squid, &item, plain, 2, &seq), 2);
  assert_int_equal(seq.outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_true(seq.outcome.verified);
  assert_string_equal(seq.methods, "PURGE HEAD+cc ");
  /* A URL that varies: each encoding's variant, and a probe of each one a PURGE removed. */
  const struct answer varies[] = {{404, ""}, {200, ""}, {504, ""}, {200, ""}, {504, ""},
                                  {404, ""}, {404, ""}, {404, ""}, {404, ""}, {404, ""}};
  assert_int_equal(run_sequence(squid, &item, varies, 10, &seq), 10);
  assert_int_equal(seq.outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_true(seq.outcome.verified);
  assert_string_equal(seq.methods, "PURGE PURGE+ae HEAD+cc+ae PURGE+ae HEAD+cc+ae PURGE+ae "
                                   "PURGE+ae PURGE+ae PURGE+ae PURGE+ae ");
  /* A variant still found is purged once more, then the item fails. */
  const struct answer stays[] = {{404, ""}, {200, ""}, {200, ""}, {200, ""}, {200, ""}};
  assert_int_equal(run_sequence(squid, &item, stays, 5, &seq), 5);
  assert_string_equal(seq.outcome.reason, "still_cached");
  assert_false(seq.outcome.verified);
  const struct answer second_time[] = {{200, ""}, {200, ""}, {200, ""}, {504, ""}};
  assert_int_equal(run_sequence(squid, &item, second_time, 4, &seq), 4);
  assert_true(seq.outcome.verified);
  const struct answer broken[] = {{404, ""}, {500, ""}};
  assert_int_equal(run_sequence(squid, &item, broken, 2, &seq), 2);
  assert_string_equal(seq.outcome.reason, "http_500");
  const struct answer probe_broken[] = {{200, ""}, {503, ""}}; /* a probe the cache could not
                                                                  answer: the item fails */
  assert_int_equal(run_sequence(squid, &item, probe_broken, 2, &seq), 2);
  assert_string_equal(seq.outcome.reason, "http_503");
  item.verify = false; /* no check asked for: the purges alone, unverified */
  assert_int_equal(run_sequence(squid, &item, plain, 2, &seq), 1);
  assert_int_equal(seq.outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_false(seq.outcome.verified);
  /* A preload is probed with its own headers (the variant it filled). */
  item = (struct exec_item){.operation = CDR__OPERATION__PRELOAD,
                            .verify = true,
                            .target = "http://www.example.com/v.css"};
  const struct answer filled[] = {{200, ""}, {200, ""}};
  assert_int_equal(run_sequence(squid, &item, filled, 2, &seq), 2);
  assert_true(seq.outcome.verified);
  assert_string_equal(seq.methods, "GET HEAD+cc ");
  /* An answer the cache did not store is fetched once more, and probed again. */
  const struct answer stored_late[] = {{200, ""}, {504, ""}, {200, ""}, {200, ""}};
  assert_int_equal(run_sequence(squid, &item, stored_late, 4, &seq), 4);
  assert_int_equal(seq.outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_true(seq.outcome.verified);
  assert_string_equal(seq.methods, "GET HEAD+cc GET HEAD+cc ");
  const struct answer not_stored[] = {{200, ""}, {504, ""}, {200, ""}, {504, ""}};
  assert_int_equal(run_sequence(squid, &item, not_stored, 4, &seq), 4);
  assert_string_equal(seq.outcome.reason, "not_cached");
  assert_int_equal(seq.outcome.http_status, 200);
  squid->destroy(squid);
}

static void test_ats_checks_purges_and_preloads_with_a_probe(void **state) {
  (void)state;
  struct ats_options options = {.rules_file = ""};
  struct driver *ats = driver_ats_create("http://127.0.0.1:8080", &options);
  struct exec_item item = {.operation = CDR__OPERATION__PURGE_URL,
                           .verify = true,
                           .target = "https://www.example.com/a.css?v=1"};
  struct sequence seq;
  const struct answer gone[] = {{200, ""}, {504, ""}};
  assert_int_equal(run_sequence(ats, &item, gone, 2, &seq), 2);
  assert_true(seq.outcome.verified);
  assert_int_equal(seq.outcome.http_status, 200);
  assert_string_equal(seq.methods, "PURGE HEAD+cc ");
  assert_string_equal(seq.url, "http://127.0.0.1:8080/a.css?v=1");
  const struct answer absent[] = {{404, ""}}; /* the PURGE's own lookup found nothing */
  assert_int_equal(run_sequence(ats, &item, absent, 1, &seq), 1);
  assert_true(seq.outcome.verified);
  const struct answer second_time[] = {{200, ""}, {200, ""}, {200, ""}, {504, ""}};
  assert_int_equal(run_sequence(ats, &item, second_time, 4, &seq), 4);
  assert_true(seq.outcome.verified);
  assert_string_equal(seq.methods, "PURGE HEAD+cc PURGE HEAD+cc ");
  const struct answer stays[] = {{200, ""}, {200, ""}, {200, ""}, {200, ""}};
  assert_int_equal(run_sequence(ats, &item, stays, 4, &seq), 4);
  assert_string_equal(seq.outcome.reason, "still_cached");
  assert_false(seq.outcome.verified);
  item.verify = false;
  assert_int_equal(run_sequence(ats, &item, stays, 4, &seq), 1);
  assert_false(seq.outcome.verified);
  item = (struct exec_item){.operation = CDR__OPERATION__PRELOAD,
                            .verify = true,
                            .target = "http://www.example.com/a.css"};
  const struct answer filled[] = {{200, ""}, {200, ""}};
  assert_int_equal(run_sequence(ats, &item, filled, 2, &seq), 2);
  assert_true(seq.outcome.verified);
  const struct answer not_stored[] = {{200, ""}, {504, ""}, {200, ""}, {504, ""}};
  assert_int_equal(run_sequence(ats, &item, not_stored, 4, &seq), 4);
  assert_string_equal(seq.outcome.reason, "not_cached");
  assert_false(seq.outcome.verified);
  const struct answer origin_down[] = {{502, ""}};
  assert_int_equal(run_sequence(ats, &item, origin_down, 1, &seq), 1);
  assert_string_equal(seq.outcome.reason, "http_502");
  ats->destroy(ats);
}

static void test_items_unfit_for_a_cache_request_are_refused(void **state) {
  (void)state;
  char names[][32] = {"Accept-Encoding", "X-A", "X A"};
  char values[][32] = {"gzip, br\t\xc3\xa9", "a\r\nX-Injected: 1", "b"};
  Cdr__Header headers[3];
  Cdr__Header *pointers[3];
  for (size_t i = 0; i < 3; i++) {
    cdr__header__init(&headers[i]);
    headers[i].name = names[i];
    headers[i].value = values[i];
    pointers[i] = &headers[i];
  }
  char targets[][40] = {"https://a.com/x?y=%0D%0A",
                        "https://a.com/x\r\nHost: evil",
                        "https://a.com/ x",
                        "tag\x7f",
                        "",
                        "https://a.com/\x01"};
  Cdr__WorkItem item;
  cdr__work_item__init(&item);
  item.target = targets[0];
  item.n_headers = 1;
  item.headers = pointers;
  assert_null(driver_item_problem(&item));
  for (size_t i = 1; i < sizeof(targets) / sizeof(targets[0]); i++) {
    item.target = targets[i];
    assert_string_equal(driver_item_problem(&item), "bad_target");
  }
  item.target = targets[0];
  for (size_t bad = 1; bad < 3; bad++) {
    item.headers = &pointers[bad];
    assert_string_equal(driver_item_problem(&item), "bad_header");
  }
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

static void test_ats_rules_never_write_a_line_the_plugin_would_cut(void **state) {
  (void)state;
  struct ats_rules *rules = rules_with_state(3600);
  size_t accepted = 0;
  for (size_t len = 1990; len <= 2100; len += 3) {
    char regex[2200] = "^https?://a\\.com/";
    size_t used = strlen(regex);
    memset(regex + used, 'x', len - used);
    regex[len] = '\0';
    struct exec_outcome outcome = {0};
    ats_rules_add(rules, regex, len % 2 == 0, &outcome);
    if (outcome.outcome == CDR__OUTCOME__SUCCEEDED) {
      accepted++;
    } else {
      assert_string_equal(outcome.reason, "ats_rule_too_long");
      assert_true(len + 1 + 20 + 5 + 1 > 2047);
    }
  }
  assert_true(accepted > 0);
  assert_int_equal(ats_rules_count(rules), accepted);
  /* Every line of the file, its newline included, fits the plugin's 2,048-byte fgets buffer. */
  FILE *file = fopen(rules_path, "r");
  assert_non_null(file);
  char line[8192];
  while (fgets(line, sizeof(line), file))
    assert_true(strlen(line) <= 2047 && line[strlen(line) - 1] == '\n');
  fclose(file);
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
      cmocka_unit_test(test_varnish_purges_are_checked_and_retried_once),
      cmocka_unit_test(test_items_unfit_for_a_cache_request_are_refused),
      cmocka_unit_test(test_squid_purges_each_encoding_when_the_url_varies),
      cmocka_unit_test(test_ats_checks_purges_and_preloads_with_a_probe),
      cmocka_unit_test_setup_teardown(test_ats_rules_merge_by_regex_and_keep_miss, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_ats_rules_drop_expired_and_survive_a_restart, setup_dir,
                                      teardown_dir),
      cmocka_unit_test_setup_teardown(test_ats_rules_never_write_a_line_the_plugin_would_cut,
                                      setup_dir, teardown_dir),
      cmocka_unit_test_setup_teardown(test_ats_rules_report_failed_reloads, setup_dir,
                                      teardown_dir),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
