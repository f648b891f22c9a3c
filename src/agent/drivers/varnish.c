/* varnish.c — the Varnish cache driver, speaking to deploy/varnish/edge.vcl (vmods purge, xkey).
 *
 * One URL: PURGE /path with the URL's Host (X-Purge-Mode: soft keeps the object for grace, so the
 * next request is answered stale while Varnish revalidates it). Prefix and regex: a BAN whose
 * X-Ban-Url regex is matched against each object's stored URL, by the ban lurker in the background
 * and at lookup. Tags: PURGE with xkey-purge or xkey-softpurge. The VCL answers 200 when done.
 * Bans cannot be soft, so invalidating by prefix or regex is reported unsupported.
 *
 * A one-URL purge is verified in the same request: after purging, the VCL looks the URL up again
 * and answers what it found in X-Cache-Status (MISS, STALE or HIT). Gone — or stale, for a soft
 * purge — is a verified success; a copy still found is purged once more, then the item fails
 * still_cached. A VCL without that lookup (no X-Cache-Status) gives an unverified success.
 * A preload is checked the same way after its GET: the VCL's probe (GET with X-Cdr-Probe, the
 * preload's headers selecting the variant) answers 200 when the URL is cached, 299 when only a
 * stale copy is and 404 when nothing is; anything but 200 fails the preload not_cached. */
#include "agent/driver.h"

#include "common/regex_armor.h"

#include <stdio.h>
#include <string.h>

/* Plans method on the cache's root path; request->header already holds its one header. */
static enum driver_plan varnish_plan_root(const struct driver *driver, const char *method,
                                          struct exec_request *request,
                                          struct exec_outcome *outcome) {
  int n = snprintf(request->url, request->url_size, "%s/", driver->cache_url);
  if (n < 0 || (size_t)n >= request->url_size) {
    driver_outcome_failed(outcome, 0, CURLE_URL_MALFORMAT);
    return DRIVER_ANSWERED;
  }
  request->method = method;
  return DRIVER_REQUEST;
}

/* An xkey purge: PURGE / with the tag in the header name names. */
static enum driver_plan varnish_plan_xkey(const struct driver *driver, const char *name,
                                          const char *tag, struct exec_request *request,
                                          struct exec_outcome *outcome) {
  int n = snprintf(request->header, request->header_size, "%s: %s", name, tag);
  if (n < 0 || (size_t)n >= request->header_size) {
    driver_outcome_failed(outcome, 0, CURLE_URL_MALFORMAT);
    return DRIVER_ANSWERED;
  }
  return varnish_plan_root(driver, "PURGE", request, outcome);
}

/* A BAN for a prefix or a regex: the regex goes in X-Ban-Url, armored for the ban parser. */
static enum driver_plan varnish_plan_ban(const struct driver *driver, const struct exec_item *item,
                                         struct exec_request *request,
                                         struct exec_outcome *outcome) {
  static const char name[] = "X-Ban-Url: ";
  const char *prefix = item->operation == CDR__OPERATION__PURGE_PREFIX ? item->target : NULL;
  if (request->header_size <= sizeof(name) ||
      !regex_armor(item->target, prefix, request->header + sizeof(name) - 1,
                   request->header_size - (sizeof(name) - 1))) {
    driver_outcome_failed(outcome, 0, CURLE_URL_MALFORMAT);
    return DRIVER_ANSWERED;
  }
  memcpy(request->header, name, sizeof(name) - 1);
  return varnish_plan_root(driver, "BAN", request, outcome);
}

/* Plans the PURGE of item's URL, soft when it invalidates. */
static enum driver_plan varnish_plan_purge(const struct driver *driver,
                                           const struct exec_item *item,
                                           struct exec_request *request,
                                           struct exec_outcome *outcome) {
  enum driver_plan plan =
      driver_plan_url(driver->cache_url, item, "PURGE", false, request, outcome);
  if (plan == DRIVER_REQUEST && item->invalidate)
    snprintf(request->header, request->header_size, "X-Purge-Mode: soft");
  return plan;
}

static enum driver_plan varnish_prepare(struct driver *driver, const struct exec_item *item,
                                        struct exec_request *request,
                                        struct exec_outcome *outcome) {
  switch (item->operation) {
  case CDR__OPERATION__PURGE_URL: return varnish_plan_purge(driver, item, request, outcome);
  case CDR__OPERATION__PURGE_PREFIX:
  case CDR__OPERATION__PURGE_REGEX:
    if (item->invalidate) {
      driver_outcome_unsupported(outcome, "varnish_bans_cannot_invalidate");
      return DRIVER_ANSWERED;
    }
    return varnish_plan_ban(driver, item, request, outcome);
  case CDR__OPERATION__PURGE_TAG:
    return varnish_plan_xkey(driver, item->invalidate ? "xkey-softpurge" : "xkey-purge",
                             item->target, request, outcome);
  default: return driver_plan_preload(driver, item, request, outcome);
  }
}

/* Judges a URL purge by what the VCL's lookup after it found (the answer's X-Cache-Status). */
static void varnish_judge_purge(const struct exec_item *item, long status, CURLcode error,
                                struct exec_outcome *outcome) {
  const char *found = outcome->cache_status;
  bool left = strcmp(found, "HIT") == 0 || (!item->invalidate && strcmp(found, "STALE") == 0);
  if (status != 200 || !item->verify || !found[0]) {
    driver_judge(status == 200, status, error, outcome);
  } else if (left) {
    driver_outcome_failed(outcome, status, error);
    snprintf(outcome->reason, sizeof(outcome->reason), "still_cached");
  } else {
    driver_judge(true, status, error, outcome);
    outcome->verified = true;
  }
}

/* Judges the VCL probe's answer after a preload: 200 cached, 299 stale, 404 not cached. */
static void varnish_judge_preload_probe(long status, CURLcode error, struct exec_outcome *outcome) {
  if (status == 200) {
    outcome->verified = true;
  } else if (status == 299 || status == 404) {
    driver_outcome_disproved(outcome, "not_cached");
  } else {
    driver_outcome_failed(outcome, status, error);
  }
}

/* A URL purge whose lookup still found the copy is purged once more; a preload that went well is
 * probed. */
static enum driver_plan varnish_follow_up(struct driver *driver, const struct exec_item *item,
                                          struct exec_request *request,
                                          struct exec_outcome *outcome) {
  if (item->operation == CDR__OPERATION__PURGE_URL)
    return driver_still_cached(outcome) && outcome->requests < 2
               ? varnish_plan_purge(driver, item, request, outcome)
               : DRIVER_ANSWERED;
  if (item->operation != CDR__OPERATION__PRELOAD || !item->verify || outcome->requests != 1 ||
      outcome->outcome != CDR__OUTCOME__SUCCEEDED)
    return DRIVER_ANSWERED;
  enum driver_plan plan = driver_plan_url(driver->cache_url, item, "GET", true, request, outcome);
  if (plan == DRIVER_REQUEST)
    request->fixed_header = "X-Cdr-Probe: 1";
  return plan;
}

static void varnish_complete(struct driver *base, const struct exec_item *item, long status,
                             CURLcode error, struct exec_outcome *outcome) {
  (void)base;
  if (item->operation == CDR__OPERATION__PURGE_URL) {
    varnish_judge_purge(item, status, error, outcome);
    return;
  }
  bool preload = item->operation == CDR__OPERATION__PRELOAD;
  if (preload && outcome->requests == 2) {
    varnish_judge_preload_probe(status, error, outcome);
    return;
  }
  driver_judge(preload ? driver_preload_ok(status) : status == 200, status, error, outcome);
}

struct driver *driver_varnish_create(const char *cache_url) {
  static const struct driver ops = {.name = "varnish",
                                    .prepare = varnish_prepare,
                                    .complete = varnish_complete,
                                    .follow_up = varnish_follow_up,
                                    .destroy = driver_free};
  return driver_alloc(sizeof(struct driver), &ops, cache_url);
}
