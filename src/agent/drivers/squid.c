/* squid.c — the Squid cache driver, speaking to deploy/squid/squid.conf.
 *
 * Squid purges one URL at a time: PURGE /path with the URL's Host, allowed from localhost by the
 * config's acl; 200 means removed and 404 not cached, both leave the URL uncached. Squid keeps no
 * index by prefix, pattern or tag and cannot mark an object stale, so those are reported
 * unsupported. A preload is a GET through the cache. */
#include "agent/driver.h"

#include <stdlib.h>

struct squid_driver {
  struct driver base;
  char cache_url[256];
};

static enum driver_plan squid_prepare(struct driver *base, const struct exec_item *item,
                                      struct exec_request *request, struct exec_outcome *outcome) {
  struct squid_driver *driver = (struct squid_driver *)base;
  if (item->invalidate) {
    driver_outcome_unsupported(outcome, "squid_cannot_invalidate");
    return DRIVER_ANSWERED;
  }
  switch (item->operation) {
  case CDR__OPERATION__PURGE_URL:
    return driver_plan_url(driver->cache_url, "", item, "PURGE", false, request, outcome);
  case CDR__OPERATION__PRELOAD:
    return driver_plan_url(driver->cache_url, "", item, "GET", true, request, outcome);
  case CDR__OPERATION__PURGE_TAG:
    driver_outcome_unsupported(outcome, "squid_has_no_tags");
    return DRIVER_ANSWERED;
  default: driver_outcome_unsupported(outcome, "squid_purges_one_url_only"); return DRIVER_ANSWERED;
  }
}

static void squid_destroy(struct driver *base) { free(base); }

struct driver *driver_squid_create(const char *cache_url) {
  struct squid_driver *driver = calloc(1, sizeof(*driver));
  if (!driver)
    return NULL;
  driver->base =
      (struct driver){"squid", squid_prepare, driver_complete_purge_200_404, NULL, squid_destroy};
  driver_copy_cache_url(driver->cache_url, sizeof(driver->cache_url), cache_url);
  return &driver->base;
}
