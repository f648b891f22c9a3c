/* fuzz_confinement.c — libFuzzer target for tenant confinement itself: for any regex the engine
 * accepts from a tenant that owns example.com and *.example.org, the form every cache is sent
 * (the stored value, which armoring leaves as it is: nginx's index, Varnish's ban and ATS's rule
 * all take it byte for byte) matches no URL of a host the tenant does not own. The input is the
 * regex, raw; checked with PCRE2 (ATS's PCRE is older: docs/SECURITY.md). */
#include "common/regex_armor.h"
#include "engine/api/task_request.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <assert.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* URLs of hosts the tenant does not own, each a way a pattern could reach past its host. */
static const char *const foreign_urls[] = {
    "https://evil.com/",
    "http://evil.com/x.css",
    "https://example.net/",
    "https://example.com.evil.net/",
    "http://exampleXcom/",
    "https://evil.example.net/a",
    "https://evil.com/https://example.com/",
    "https://evil.com/?u=https://a.example.org/",
    "http://evil.com/\n",
    "https://example.org.evil.com/",
};

static void check_confined(const char *value) {
  size_t len = strlen(value);
  char *again = malloc(8 * len + 1);
  assert(again && regex_armor(value, NULL, again, 8 * len + 1));
  assert(strcmp(again, value) == 0); /* what the drivers send is what was stored */
  free(again);
  int error;
  PCRE2_SIZE offset;
  pcre2_code *code = pcre2_compile((PCRE2_SPTR)value, len, 0, &error, &offset, NULL);
  assert(code);
  pcre2_match_data *match = pcre2_match_data_create_from_pattern(code, NULL);
  pcre2_match_context *context = pcre2_match_context_create(NULL);
  pcre2_set_match_limit(context, 100000);
  for (size_t i = 0; i < sizeof(foreign_urls) / sizeof(foreign_urls[0]); i++) {
    int rc = pcre2_match(code, (PCRE2_SPTR)foreign_urls[i], strlen(foreign_urls[i]), 0, 0, match,
                         context);
    if (rc >= 0) {
      fprintf(stderr, "confinement broken: %s matches %s\n", value, foreign_urls[i]);
      abort();
    }
  }
  pcre2_match_context_free(context);
  pcre2_match_data_free(match);
  pcre2_code_free(code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const struct request_limits limits = {
      .max_items = 4, .max_url_length = 2048, .default_deadline_s = 60, .max_deadline_s = 60};
  static const struct tenant tenant = {
      .name = "fuzz", .hosts = "example.com,*.example.org", .tag_prefix = "t-"};
  json_t *body = json_pack("{s:[s%]}", "regexes", (const char *)data, size);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!text)
    return 0; /* not UTF-8: JSON cannot carry it */
  struct arena arena;
  arena_init(&arena, 1 << 20);
  struct task *task = NULL;
  struct request_error error;
  if (task_request_parse(TASK_PURGE, text, strlen(text), &limits, &tenant, &arena, &task, &error) ==
      0)
    check_confined(task->targets[0].value);
  arena_release(&arena);
  free(text);
  return 0;
}
