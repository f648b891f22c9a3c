/* squid.c — the Squid cache driver, speaking to deploy/squid/squid.conf.
 *
 * Squid purges one URL at a time: PURGE /path with the URL's Host, allowed from localhost by the
 * config's acl; 200 means removed and 404 not cached, both leave the URL uncached. Squid keeps
 * each Vary variant under the URL plus the request's values of the varied headers, and a PURGE
 * removes only the variant its own headers select: when the plain PURGE finds no object (a URL
 * whose responses vary has none of its own), the driver purges again with each Accept-Encoding
 * that browsers and tools send. Squid keeps no index by prefix, pattern or tag and cannot mark an
 * object stale, so those are reported unsupported. A preload is a GET through the cache. */
#include "agent/driver.h"

#include <stdio.h>

/* The Accept-Encoding values whose variants a purge removes, after the request without one. */
static const char *const squid_encodings[] = {"identity",
                                              "gzip",
                                              "deflate",
                                              "br",
                                              "gzip, deflate",
                                              "gzip, deflate, br",
                                              "gzip, deflate, br, zstd"};
enum { SQUID_ENCODINGS = sizeof(squid_encodings) / sizeof(squid_encodings[0]) };

static enum driver_plan squid_prepare(struct driver *driver, const struct exec_item *item,
                                      struct exec_request *request, struct exec_outcome *outcome) {
  if (item->invalidate) {
    driver_outcome_unsupported(outcome, "squid_cannot_invalidate");
    return DRIVER_ANSWERED;
  }
  switch (item->operation) {
  case CDR__OPERATION__PURGE_URL:
    return driver_plan_url(driver->cache_url, item, "PURGE", false, request, outcome);
  case CDR__OPERATION__PRELOAD: return driver_plan_preload(driver, item, request, outcome);
  case CDR__OPERATION__PURGE_TAG:
    driver_outcome_unsupported(outcome, "squid_has_no_tags");
    return DRIVER_ANSWERED;
  default: driver_outcome_unsupported(outcome, "squid_purges_one_url_only"); return DRIVER_ANSWERED;
  }
}

/* After a PURGE that went well, the next encoding's variant — unless the plain PURGE removed an
 * object of the URL's own, which means its responses do not vary. */
static bool squid_follow_up(struct driver *driver, const struct exec_item *item,
                            struct exec_request *request, struct exec_outcome *outcome) {
  unsigned done = outcome->requests; /* the plain PURGE, then one per encoding */
  if (item->operation != CDR__OPERATION__PURGE_URL || outcome->outcome != CDR__OUTCOME__SUCCEEDED ||
      done > SQUID_ENCODINGS || (done == 1 && outcome->http_status == 200))
    return false;
  if (driver_plan_url(driver->cache_url, item, "PURGE", false, request, outcome) != DRIVER_REQUEST)
    return false;
  snprintf(request->header, request->header_size, "Accept-Encoding: %s", squid_encodings[done - 1]);
  return true;
}

struct driver *driver_squid_create(const char *cache_url) {
  static const struct driver ops = {.name = "squid",
                                    .prepare = squid_prepare,
                                    .complete = driver_complete_purge_200_404,
                                    .follow_up = squid_follow_up,
                                    .destroy = driver_free};
  return driver_alloc(sizeof(struct driver), &ops, cache_url);
}
