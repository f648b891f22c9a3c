/* squid.c — the Squid cache driver, speaking to deploy/squid/squid.conf.
 *
 * Squid purges one URL at a time: PURGE /path with the URL's Host, allowed from localhost by the
 * config's acl; 200 means removed and 404 not cached, both leave the URL uncached. Squid keeps no
 * index by prefix, pattern or tag and cannot mark an object stale, so those are reported
 * unsupported. A preload is a GET through the cache. */
#include "agent/driver.h"

static enum driver_plan squid_prepare(struct driver *driver, const struct exec_item *item,
                                      struct exec_request *request, struct exec_outcome *outcome) {
  if (item->invalidate) {
    driver_outcome_unsupported(outcome, "squid_cannot_invalidate");
    return DRIVER_ANSWERED;
  }
  switch (item->operation) {
  case CDR__OPERATION__PURGE_URL:
    return driver_plan_url(driver, "", item, "PURGE", false, request, outcome);
  case CDR__OPERATION__PRELOAD:
    return driver_plan_url(driver, "", item, "GET", true, request, outcome);
  case CDR__OPERATION__PURGE_TAG:
    driver_outcome_unsupported(outcome, "squid_has_no_tags");
    return DRIVER_ANSWERED;
  default: driver_outcome_unsupported(outcome, "squid_purges_one_url_only"); return DRIVER_ANSWERED;
  }
}

struct driver *driver_squid_create(const char *cache_url) {
  static const struct driver ops = {"squid", squid_prepare, driver_complete_purge_200_404,
                                    NULL,    driver_free,   ""};
  return driver_alloc(sizeof(struct driver), &ops, cache_url);
}
