/* test_nginx_index.c — the nginx cache directory index: scan, inotify updates, purges. */
#include "unit.h"

#include "agent/drivers/nginx_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

/* Writes a file shaped like an nginx cache file: binary header, KEY line, stored headers, body. */
static void write_cache_file(const char *name, const char *key, const char *tags) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  for (char *slash = path + strlen(dir) + 1; (slash = strchr(slash, '/')); slash++) {
    *slash = '\0';
    mkdir(path, 0755); /* nginx's levels=1:2 directories */
    *slash = '/';
  }
  FILE *file = fopen(path, "wb");
  assert_non_null(file);
  unsigned char header[64] = {5, 0, 0, 0, 0xff, 0x10};
  fwrite(header, 1, sizeof(header), file);
  fprintf(file, "\nKEY: %s\nHTTP/1.1 200 OK\r\nContent-Type: text/css\r\n", key);
  if (tags)
    fprintf(file, "Surrogate-Key: %s\r\n", tags);
  fprintf(file, "\r\nbody{}");
  fclose(file);
}

static bool exists(const char *name) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  return access(path, F_OK) == 0;
}

static void purge(struct nginx_index *index, Cdr__Operation operation, const char *target) {
  struct exec_item item = {.item_id = 1, .operation = operation, .target = target};
  struct exec_outcome outcome;
  memset(&outcome, 0, sizeof(outcome));
  nginx_index_purge(index, &item, &outcome);
  assert_int_equal(outcome.outcome, CDR__OUTCOME__SUCCEEDED);
}

static int index_setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/cdr-test-index-XXXXXX");
  if (!mkdtemp(dir))
    return -1;
  write_cache_file("a/1f/aaa1", "http://example.com/img/1.png", NULL);
  write_cache_file("a/1f/aaa2", "http://example.com/img/2.png", "product-42 catalog");
  write_cache_file("b/2e/bbb1", "http://example.com/css/site.css", "catalog");
  write_cache_file("b/2e/bbb2", "http://other.com/img/1.png", NULL);
  return 0;
}

static int index_teardown(void **state) {
  (void)state;
  char command[128];
  snprintf(command, sizeof(command), "rm -rf %s", dir);
  return system(command);
}

static void index_prefix_purge_removes_only_matching_files(void **state) {
  (void)state;
  struct nginx_index *index = nginx_index_create(dir, "Surrogate-Key");
  assert_non_null(index);
  assert_int_equal(nginx_index_size(index), 4);
  purge(index, CDR__OPERATION__PURGE_PREFIX, "https://example.com/img/"); /* either scheme */
  assert_false(exists("a/1f/aaa1"));
  assert_false(exists("a/1f/aaa2"));
  assert_true(exists("b/2e/bbb1"));
  assert_true(exists("b/2e/bbb2"));
  assert_int_equal(nginx_index_size(index), 2);
  nginx_index_destroy(index);
}

static void index_tag_and_regex_purges(void **state) {
  (void)state;
  struct nginx_index *index = nginx_index_create(dir, "Surrogate-Key");
  purge(index, CDR__OPERATION__PURGE_TAG, "product-42");
  assert_false(exists("a/1f/aaa2"));
  assert_true(exists("b/2e/bbb1")); /* "catalog" only */
  purge(index, CDR__OPERATION__PURGE_REGEX, "^http://[a-z]+\\.com/img/1\\.png$");
  assert_false(exists("a/1f/aaa1"));
  assert_false(exists("b/2e/bbb2"));
  assert_true(exists("b/2e/bbb1"));
  nginx_index_destroy(index);
}

static void index_follows_files_created_and_deleted_later(void **state) {
  (void)state;
  struct nginx_index *index = nginx_index_create(dir, "Surrogate-Key");
  assert_int_equal(nginx_index_size(index), 4);                          /* scanned and watching */
  write_cache_file("c/3d/ccc1", "http://example.com/img/new.png", NULL); /* new directory */
  write_cache_file("a/1f/aaa3", "http://example.com/img/newer.png", "fresh"); /* known one */
  char path[256];
  snprintf(path, sizeof(path), "%s/b/2e/bbb2", dir);
  unlink(path);
  assert_int_equal(nginx_index_size(index), 5);
  purge(index, CDR__OPERATION__PURGE_TAG, "fresh");
  assert_false(exists("a/1f/aaa3"));
  purge(index, CDR__OPERATION__PURGE_PREFIX, "http://example.com/img/");
  assert_false(exists("c/3d/ccc1"));
  assert_true(exists("b/2e/bbb1"));
  assert_int_equal(nginx_index_size(index), 1);
  nginx_index_destroy(index);
}

/* Writes a cache file of key with the tags in two header lines, the second after a long header. */
static void write_file_with_long_headers(const char *name, const char *key, size_t filler) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *file = fopen(path, "wb");
  assert_non_null(file);
  unsigned char header[64] = {5};
  fwrite(header, 1, sizeof(header), file);
  fprintf(file, "\nKEY: %s\nHTTP/1.1 200 OK\r\nSurrogate-Key: first\r\nX-Filler: ", key);
  for (size_t i = 0; i < filler; i++)
    fputc('f', file);
  fprintf(file, "\r\nSurrogate-Key: second last\r\n\r\nbody");
  fclose(file);
}

static void index_exact_purge_removes_every_variant_and_scheme(void **state) {
  (void)state;
  /* nginx keeps a file per Vary variant, each with the URL's key, and an https:// key apart. */
  write_cache_file("a/1f/var1", "http://example.com/a%20b.css?x=1", NULL);
  write_cache_file("a/1f/var2", "http://example.com/a%20b.css?x=1", NULL);
  write_cache_file("b/2e/var3", "https://example.com/a%20b.css?x=1", NULL);
  write_cache_file("b/2e/dec1", "http://example.com/a b.css?x=1", NULL);    /* decoded: other */
  write_cache_file("b/2e/dec2", "http://example.com/a%20b.css?x=12", NULL); /* longer: other */
  struct nginx_index *index = nginx_index_create(dir, "Surrogate-Key");
  struct exec_item item = {.operation = CDR__OPERATION__PURGE_URL,
                           .verify = true,
                           .target = "https://example.com/a%20b.css?x=1"};
  struct exec_outcome outcome;
  memset(&outcome, 0, sizeof(outcome));
  nginx_index_purge(index, &item, &outcome);
  assert_int_equal(outcome.outcome, CDR__OUTCOME__SUCCEEDED);
  assert_true(outcome.verified);
  assert_false(exists("a/1f/var1"));
  assert_false(exists("a/1f/var2"));
  assert_false(exists("b/2e/var3"));
  assert_true(exists("b/2e/dec1"));
  assert_true(exists("b/2e/dec2"));
  assert_true(exists("a/1f/aaa1"));
  nginx_index_destroy(index);
}

static void index_reads_every_tag_line_of_long_headers(void **state) {
  (void)state;
  write_file_with_long_headers("a/1f/long", "http://example.com/long.css", 40 * 1024);
  struct nginx_index *index = nginx_index_create(dir, "Surrogate-Key");
  purge(index, CDR__OPERATION__PURGE_TAG, "last"); /* in the second line, past 40 KB */
  assert_false(exists("a/1f/long"));
  write_file_with_long_headers("a/1f/long", "http://example.com/long.css", 10);
  purge(index, CDR__OPERATION__PURGE_TAG, "first");
  assert_false(exists("a/1f/long"));
  assert_true(exists("a/1f/aaa2")); /* product-42 catalog */
  nginx_index_destroy(index);
}

static void index_gives_up_on_catastrophic_regexes(void **state) {
  (void)state;
  /* Keys that make nested quantifiers backtrack exponentially when the match finally fails. */
  char key[128], name[32];
  for (int i = 0; i < 8; i++) {
    snprintf(name, sizeof(name), "c/0%d/slow%d", i, i);
    snprintf(key, sizeof(key), "http://example.com/%.*s!", 28 + i,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    write_cache_file(name, key, NULL);
  }
  struct nginx_index *index = nginx_index_create(dir, "Surrogate-Key");
  const char *regexes[] = {"^http://example\\.com/(a+)+$", "^http://example\\.com/(a|aa)+$",
                           "^http://example\\.com/(\\w+\\w*)+$"};
  for (size_t i = 0; i < sizeof(regexes) / sizeof(regexes[0]); i++) {
    struct exec_item item = {.operation = CDR__OPERATION__PURGE_REGEX, .target = regexes[i]};
    struct exec_outcome outcome;
    memset(&outcome, 0, sizeof(outcome));
    nginx_index_purge(index, &item, &outcome);
    assert_int_equal(outcome.outcome, CDR__OUTCOME__FAILED);
    assert_string_equal(outcome.reason, "regex_too_complex");
  }
  /* The index is not held: an exact purge still goes through. */
  purge(index, CDR__OPERATION__PURGE_URL, "http://example.com/img/1.png");
  assert_false(exists("a/1f/aaa1"));
  nginx_index_destroy(index);
}

static void index_reports_a_bad_regex(void **state) {
  (void)state;
  struct nginx_index *index = nginx_index_create(dir, "Surrogate-Key");
  struct exec_item item = {.operation = CDR__OPERATION__PURGE_REGEX, .target = "(unclosed"};
  struct exec_outcome outcome;
  memset(&outcome, 0, sizeof(outcome));
  nginx_index_purge(index, &item, &outcome);
  assert_int_equal(outcome.outcome, CDR__OUTCOME__FAILED);
  assert_string_equal(outcome.reason, "bad_regex");
  nginx_index_destroy(index);
}

#define INDEX_TEST(name) cmocka_unit_test_setup_teardown(name, index_setup, index_teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      INDEX_TEST(index_prefix_purge_removes_only_matching_files),
      INDEX_TEST(index_tag_and_regex_purges),
      INDEX_TEST(index_follows_files_created_and_deleted_later),
      INDEX_TEST(index_exact_purge_removes_every_variant_and_scheme),
      INDEX_TEST(index_reads_every_tag_line_of_long_headers),
      INDEX_TEST(index_gives_up_on_catastrophic_regexes),
      INDEX_TEST(index_reports_a_bad_regex),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
