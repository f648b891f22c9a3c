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
  bool purge = item->operation == CDR__OPERATION__PURGE_URL;
  return driver_plan_url(base, purge ? "/purge" : "", item, "GET", !purge, request, outcome);
}

static void nginx_offload(struct driver *base, const struct exec_item *item,
                          struct exec_outcome *outcome) {
  nginx_index_purge(((struct nginx_driver *)base)->index, item, outcome);
}

static void nginx_destroy(struct driver *base) {
  nginx_index_destroy(((struct nginx_driver *)base)->index);
  free(base);
}

struct driver *driver_nginx_create(const char *cache_url, const char *cache_dir,
                                   const char *tag_header) {
  static const struct driver ops = {"nginx",       nginx_prepare, driver_complete_purge_200_404,
                                    nginx_offload, nginx_destroy, ""};
  struct nginx_driver *driver =
      (struct nginx_driver *)driver_alloc(sizeof(*driver), &ops, cache_url);
  if (driver && cache_dir[0] && !(driver->index = nginx_index_create(cache_dir, tag_header))) {
    free(driver);
    return NULL;
  }
  return &driver->base;
}
