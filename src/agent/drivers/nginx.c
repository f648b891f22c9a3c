/* nginx.c — the nginx cache driver (DESIGN §5, nginx conventions are a contract).
 *
 * The cache key is the URL itself. An exact purge is `GET /purge/PATH` with the URL's Host on the
 * separate purge location of the cache-purge module: 200 means removed, 404 means it was not
 * cached — both leave the URL uncached, so both succeed. A preload is a GET through the cache with
 * the body discarded. Prefix, regex and tag purges go through the cache directory's index
 * (nginx_index.h) on a worker thread. nginx cannot mark an object stale, so invalidation is
 * reported unsupported. */
#include "agent/driver.h"

#include "agent/drivers/nginx_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nginx_driver {
  struct driver base;
  char cache_url[256];
  struct nginx_index *index; /* NULL without --nginx-cache-dir */
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
    if (!driver->index) {
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

static void nginx_offload(struct driver *base, const struct exec_item *item,
                          struct exec_outcome *outcome) {
  nginx_index_purge(((struct nginx_driver *)base)->index, item, outcome);
}

static void nginx_destroy(struct driver *base) {
  nginx_index_destroy(((struct nginx_driver *)base)->index);
  free(base);
}

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
  if (cache_dir[0] && !(driver->index = nginx_index_create(cache_dir))) {
    free(driver);
    return NULL;
  }
  return &driver->base;
}
