/* squid.c — the Squid cache driver, speaking to deploy/squid/squid.conf.
 *
 * Squid purges one URL at a time: PURGE /path with the URL's Host, allowed from localhost by the
 * config's acl; 200 means removed and 404 not cached, both leave the URL uncached. Squid keeps
 * each Vary variant under the URL plus the request's values of the varied headers, and a PURGE
 * removes only the variant its own headers select: when the plain PURGE finds no object (a URL
 * whose responses vary has none of its own), the driver purges again with each Accept-Encoding
 * that browsers and tools send. Squid keeps no index by prefix, pattern or tag and cannot mark an
 * object stale, so those are reported unsupported. A preload is a GET through the cache.
 *
 * Purges and preloads are checked with a probe that cannot fill the cache
 * (driver_plan_cached_probe) with the same Accept-Encoding: a variant whose PURGE answered 200 is
 * verified when the probe then finds nothing, and purged once more — then failed still_cached —
 * when it finds it; a PURGE answered 404 was itself a lookup that found nothing. A preload is
 * verified when the probe with its headers finds what it filled, else failed not_cached. */
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

/* The item's step (outcome->step): which variant — 0 the plain request, then one per
 * encoding — and which of its requests answered last; the probes are the odd steps, as
 * driver_complete_probed expects (SQUID_PHASES is even). */
enum { SQUID_PURGED, SQUID_PROBED, SQUID_PURGED_AGAIN, SQUID_PROBED_AGAIN, SQUID_PHASES };

static unsigned squid_variant(const struct exec_outcome *outcome) {
  return outcome->step / SQUID_PHASES;
}

static unsigned squid_phase(const struct exec_outcome *outcome) {
  return outcome->step % SQUID_PHASES;
}

/* Plans method (PURGE, or the probe) for variant of item's URL, at phase. */
static enum driver_plan squid_plan(struct driver *driver, const struct exec_item *item,
                                   unsigned variant, unsigned phase, struct exec_request *request,
                                   struct exec_outcome *outcome) {
  bool probe = phase == SQUID_PROBED || phase == SQUID_PROBED_AGAIN;
  enum driver_plan plan =
      probe ? driver_plan_cached_probe(driver, item, false, request, outcome)
            : driver_plan_url(driver->cache_url, item, "PURGE", false, request, outcome);
  if (plan == DRIVER_REQUEST && variant > 0)
    snprintf(request->header, request->header_size, "Accept-Encoding: %s",
             squid_encodings[variant - 1]);
  outcome->step = variant * SQUID_PHASES + phase;
  return plan;
}

/* After each request of a URL purge: a variant PURGE answered 200 is probed (404 was itself a
 * lookup that found nothing) and purged once more if the probe still finds it; then the next
 * encoding's variant — unless the plain PURGE removed an object of the URL's own, which means its
 * responses do not vary. */
static enum driver_plan squid_follow_up(struct driver *driver, const struct exec_item *item,
                                        struct exec_request *request,
                                        struct exec_outcome *outcome) {
  if (item->operation == CDR__OPERATION__PRELOAD)
    return driver_follow_preload(driver, item, request, outcome);
  if (item->operation != CDR__OPERATION__PURGE_URL)
    return DRIVER_ANSWERED;
  unsigned variant = squid_variant(outcome), phase = squid_phase(outcome);
  if (outcome->outcome != CDR__OUTCOME__SUCCEEDED)
    return driver_still_cached(outcome) && phase == SQUID_PROBED
               ? squid_plan(driver, item, variant, SQUID_PURGED_AGAIN, request, outcome)
               : DRIVER_ANSWERED;
  bool purged = phase == SQUID_PURGED || phase == SQUID_PURGED_AGAIN;
  if (purged && item->verify && outcome->http_status == 200)
    return squid_plan(driver, item, variant, phase + 1, request, outcome);
  bool removed_own = variant == 0 && outcome->http_status == 200;
  if (removed_own || variant >= SQUID_ENCODINGS) {
    outcome->verified = item->verify;
    return DRIVER_ANSWERED;
  }
  return squid_plan(driver, item, variant + 1, SQUID_PURGED, request, outcome);
}

struct driver *driver_squid_create(const char *cache_url) {
  static const struct driver ops = {.name = "squid",
                                    .prepare = squid_prepare,
                                    .complete = driver_complete_probed,
                                    .follow_up = squid_follow_up,
                                    .destroy = driver_free};
  return driver_alloc(sizeof(struct driver), &ops, cache_url);
}
