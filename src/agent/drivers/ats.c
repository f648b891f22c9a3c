/* ats.c — the Apache Traffic Server cache driver, speaking to the configs in deploy/ats/.
 *
 * One URL: PURGE /path with the URL's Host (allowed from localhost by ip_allow.yaml); 200 means
 * removed and 404 not cached. Prefixes, regexes and soft invalidation go through the
 * regex_revalidate plugin: a rule in its rules file (ats_rules.h), MISS to delete, STALE to have
 * the next request revalidate with the origin. ATS has no tags: tag purges are unsupported.
 *
 * A one-URL purge and a preload are checked with a probe that cannot fill the cache
 * (driver_plan_cached_probe): a purge answered 404 was itself a lookup that found nothing; one
 * answered 200 is verified when the probe then finds nothing, and purged once more — then failed
 * still_cached — when it finds the object (all its Vary alternates go with one PURGE, and the
 * probe sees any). A preload is verified when the probe finds what it filled, else failed
 * not_cached (the origin's answer was not stored). */
#include "agent/driver.h"

#include "agent/drivers/ats_rules.h"
#include "common/regex_armor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ats_driver {
  struct driver base;
  struct ats_rules *rules; /* NULL without a rules file */
};

static enum driver_plan ats_prepare(struct driver *base, const struct exec_item *item,
                                    struct exec_request *request, struct exec_outcome *outcome) {
  struct ats_driver *driver = (struct ats_driver *)base;
  bool by_rule = item->operation == CDR__OPERATION__PURGE_PREFIX ||
                 item->operation == CDR__OPERATION__PURGE_REGEX ||
                 (item->operation == CDR__OPERATION__PURGE_URL && item->invalidate);
  if (by_rule) { /* invalidating one URL is a rule matching exactly it */
    if (!driver->rules) {
      driver_outcome_unsupported(outcome, "needs_ats_rules_file");
      return DRIVER_ANSWERED;
    }
    return DRIVER_OFFLOAD;
  }
  switch (item->operation) {
  case CDR__OPERATION__PRELOAD: return driver_plan_preload(base, item, request, outcome);
  case CDR__OPERATION__PURGE_TAG:
    driver_outcome_unsupported(outcome, "ats_has_no_tags");
    return DRIVER_ANSWERED;
  default: return driver_plan_url(base->cache_url, item, "PURGE", false, request, outcome);
  }
}

/* A purge's steps (outcome->step): the PURGE, its probe, the PURGE again, its probe. */
enum { ATS_PURGED, ATS_PROBED, ATS_PURGED_AGAIN, ATS_PROBED_AGAIN };

static enum driver_plan ats_follow_up(struct driver *base, const struct exec_item *item,
                                      struct exec_request *request, struct exec_outcome *outcome) {
  if (item->operation == CDR__OPERATION__PRELOAD)
    return driver_follow_preload(base, item, request, outcome);
  if (item->operation != CDR__OPERATION__PURGE_URL || item->invalidate || !item->verify)
    return DRIVER_ANSWERED; /* rules are confirmed by the plugin's state file instead */
  bool purged = outcome->step == ATS_PURGED || outcome->step == ATS_PURGED_AGAIN;
  if (purged && outcome->outcome == CDR__OUTCOME__SUCCEEDED && outcome->http_status == 200) {
    outcome->step++;
    return driver_plan_cached_probe(base, item, false, request, outcome);
  }
  if (outcome->step == ATS_PROBED && driver_still_cached(outcome)) {
    outcome->step = ATS_PURGED_AGAIN;
    return driver_plan_url(base->cache_url, item, "PURGE", false, request, outcome);
  }
  outcome->verified = outcome->outcome == CDR__OUTCOME__SUCCEEDED;
  return DRIVER_ANSWERED;
}

/* Turns the item into a rule: prefixes and URLs become anchored literal regexes. */
static void ats_offload(struct driver *base, const struct exec_item *item,
                        struct exec_outcome *outcome) {
  struct ats_driver *driver = (struct ats_driver *)base;
  size_t size = 4 * strlen(item->target) + 32;
  char *regex = malloc(size);
  bool literal = item->operation != CDR__OPERATION__PURGE_REGEX;
  if (!regex || !regex_armor(item->target, literal ? item->target : NULL, regex, size - 1)) {
    free(regex);
    driver_outcome_failed(outcome, 0, CURLE_OUT_OF_MEMORY);
    return;
  }
  if (item->operation == CDR__OPERATION__PURGE_URL)
    strcat(regex, "$");
  ats_rules_add(driver->rules, regex, !item->invalidate, outcome);
  free(regex);
}

static void ats_destroy(struct driver *base) {
  ats_rules_destroy(((struct ats_driver *)base)->rules);
  free(base);
}

struct driver *driver_ats_create(const char *cache_url, const struct ats_options *options) {
  static const struct driver ops = {.name = "ats",
                                    .prepare = ats_prepare,
                                    .complete = driver_complete_probed,
                                    .follow_up = ats_follow_up,
                                    .offload = ats_offload,
                                    .destroy = ats_destroy};
  struct ats_driver *driver = (struct ats_driver *)driver_alloc(sizeof(*driver), &ops, cache_url);
  if (driver && options->rules_file[0] && !(driver->rules = ats_rules_create(options))) {
    free(driver);
    return NULL;
  }
  return &driver->base;
}
