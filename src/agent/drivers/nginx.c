/* nginx.c — the nginx cache driver (DESIGN §5, nginx conventions are a contract).
 *
 * The cache key is the URL itself. An exact purge is `GET /purge/PATH` with the URL's Host on the
 * separate purge location of the cache-purge module: 200 means removed, 404 means it was not
 * cached — both leave the URL uncached, so both succeed. A preload is a GET through the cache with
 * the body discarded. Prefix, regex and tag purges work on the cache directory: every cache file
 * holds a `KEY: <url>` line and the stored response headers (with Surrogate-Key); matching files
 * are deleted on a worker thread. nginx cannot mark an object stale, so invalidation is reported
 * unsupported. */
#include "agent/driver.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { NGINX_HEADER_READ = 16 * 1024 }; /* bytes of each cache file read to find key and tags */

struct nginx_driver {
  struct driver base;
  char cache_url[256];
  char cache_dir[256];
};

static enum driver_plan nginx_prepare(struct driver *base, const struct exec_item *item,
                                      struct exec_request *request, struct exec_outcome *outcome) {
  struct nginx_driver *driver = (struct nginx_driver *)base;
  if (item->invalidate) {
    driver_outcome_unsupported(outcome, "nginx_cannot_invalidate");
    return DRIVER_ANSWERED;
  }
  if (item->operation == CDR__OPERATION__PURGE_PREFIX ||
      item->operation == CDR__OPERATION__PURGE_REGEX ||
      item->operation == CDR__OPERATION__PURGE_TAG) {
    if (!driver->cache_dir[0]) {
      driver_outcome_unsupported(outcome, "needs_nginx_cache_dir");
      return DRIVER_ANSWERED;
    }
    return DRIVER_OFFLOAD;
  }
  const char *host, *path;
  size_t host_len;
  if (!driver_url_split(item->target, &host, &host_len, &path) || host_len >= request->host_size) {
    driver_outcome_failed(outcome, 0, CURLE_URL_MALFORMAT);
    return DRIVER_ANSWERED;
  }
  bool purge = item->operation == CDR__OPERATION__PURGE_URL;
  int n = snprintf(request->url, request->url_size, "%s%s%s", driver->cache_url,
                   purge ? "/purge" : "", path);
  if (n < 0 || (size_t)n >= request->url_size) {
    driver_outcome_failed(outcome, 0, CURLE_URL_MALFORMAT);
    return DRIVER_ANSWERED;
  }
  memcpy(request->host, host, host_len);
  request->host[host_len] = '\0';
  request->method = "GET";
  request->send_item_headers = !purge;
  return DRIVER_REQUEST;
}

static void nginx_complete(struct driver *base, const struct exec_item *item, long status,
                           CURLcode error, struct exec_outcome *outcome) {
  (void)base;
  bool purge = item->operation == CDR__OPERATION__PURGE_URL;
  bool ok = purge ? status == 200 || status == 404 : status >= 200 && status < 400;
  if (!ok) {
    driver_outcome_failed(outcome, status, error);
    return;
  }
  outcome->outcome = CDR__OUTCOME__SUCCEEDED;
  outcome->http_status = (unsigned)status;
}

/* The match being applied by the directory walk (nftw has no user pointer). */
struct nginx_match {
  const struct exec_item *item;
  pcre2_code *regex;
  pcre2_match_data *match;
  size_t removed;
  int error; /* errno of the first failure */
};
static __thread struct nginx_match *nginx_walk;

/* Finds line "name: value" (name compared without case) in text; returns value and its length. */
static const char *nginx_header(const char *text, size_t len, const char *name, size_t *value_len) {
  size_t name_len = strlen(name);
  for (const char *line = text; line && line < text + len;) {
    const char *end = memchr(line, '\n', (size_t)(text + len - line));
    size_t line_len = end ? (size_t)(end - line) : (size_t)(text + len - line);
    if (line_len > name_len && strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
      const char *value = line + name_len + 1;
      while (*value == ' ')
        value++;
      *value_len = (size_t)(line + line_len - value);
      while (*value_len && (value[*value_len - 1] == '\r' || value[*value_len - 1] == ' '))
        (*value_len)--;
      return value;
    }
    line = end ? end + 1 : NULL;
  }
  return NULL;
}

/* True when space-separated list holds token. */
static bool nginx_list_has(const char *list, size_t len, const char *token) {
  size_t token_len = strlen(token);
  for (size_t i = 0; i < len;) {
    while (i < len && list[i] == ' ')
      i++;
    size_t start = i;
    while (i < len && list[i] != ' ')
      i++;
    if (i - start == token_len && memcmp(list + start, token, token_len) == 0)
      return true;
  }
  return false;
}

static bool nginx_file_matches(const struct nginx_match *match, const char *text, size_t len) {
  const char *key_line = memmem(text, len, "\nKEY: ", 6);
  if (!key_line)
    return false;
  const char *key = key_line + 6;
  const char *key_end = memchr(key, '\n', (size_t)(text + len - key));
  if (!key_end)
    return false;
  size_t key_len = (size_t)(key_end - key);
  const char *target = match->item->target;
  switch (match->item->operation) {
  case CDR__OPERATION__PURGE_PREFIX:
    return key_len >= strlen(target) && memcmp(key, target, strlen(target)) == 0;
  case CDR__OPERATION__PURGE_REGEX:
    return pcre2_match(match->regex, (PCRE2_SPTR)key, key_len, 0, 0, match->match, NULL) >= 0;
  case CDR__OPERATION__PURGE_TAG: {
    const char *headers = key_end + 1;
    size_t value_len;
    const char *tags =
        nginx_header(headers, (size_t)(text + len - headers), "Surrogate-Key", &value_len);
    return tags && nginx_list_has(tags, value_len, target);
  }
  default: return false;
  }
}

static int nginx_visit(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (type != FTW_F)
    return 0;
  static __thread char text[NGINX_HEADER_READ];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0; /* nginx may have removed it meanwhile */
  ssize_t len = read(fd, text, sizeof(text));
  close(fd);
  if (len <= 0 || !nginx_file_matches(nginx_walk, text, (size_t)len))
    return 0;
  if (unlink(path) == 0)
    nginx_walk->removed++;
  else if (errno != ENOENT && !nginx_walk->error)
    nginx_walk->error = errno;
  return 0;
}

static void nginx_offload(struct driver *base, const struct exec_item *item,
                          struct exec_outcome *outcome) {
  struct nginx_driver *driver = (struct nginx_driver *)base;
  struct nginx_match match = {.item = item};
  if (item->operation == CDR__OPERATION__PURGE_REGEX) {
    int code;
    PCRE2_SIZE offset;
    match.regex =
        pcre2_compile((PCRE2_SPTR)item->target, PCRE2_ZERO_TERMINATED, 0, &code, &offset, NULL);
    match.match = match.regex ? pcre2_match_data_create_from_pattern(match.regex, NULL) : NULL;
    if (!match.match) {
      pcre2_code_free(match.regex);
      outcome->outcome = CDR__OUTCOME__FAILED;
      snprintf(outcome->reason, sizeof(outcome->reason), "bad_regex");
      return;
    }
  }
  nginx_walk = &match;
  int rc = nftw(driver->cache_dir, nginx_visit, 32, FTW_PHYS);
  nginx_walk = NULL;
  pcre2_match_data_free(match.match);
  pcre2_code_free(match.regex);
  if (rc != 0 || match.error) {
    outcome->outcome = CDR__OUTCOME__FAILED;
    snprintf(outcome->reason, sizeof(outcome->reason), "cache_dir_%s",
             rc != 0 ? "unreadable" : "not_writable");
    return;
  }
  outcome->outcome = CDR__OUTCOME__SUCCEEDED;
}

static void nginx_destroy(struct driver *base) { free(base); }

struct driver *driver_nginx_create(const char *cache_url, const char *cache_dir) {
  struct nginx_driver *driver = calloc(1, sizeof(*driver));
  if (!driver)
    return NULL;
  driver->base =
      (struct driver){"nginx", nginx_prepare, nginx_complete, nginx_offload, nginx_destroy};
  snprintf(driver->cache_url, sizeof(driver->cache_url), "%s", cache_url);
  size_t len = strlen(driver->cache_url);
  while (len > 0 && driver->cache_url[len - 1] == '/')
    driver->cache_url[--len] = '\0';
  snprintf(driver->cache_dir, sizeof(driver->cache_dir), "%s", cache_dir);
  return &driver->base;
}
