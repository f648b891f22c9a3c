/* nginx.c — the nginx cache driver (DESIGN §5, nginx conventions are a contract).
 *
 * The cache key is the URL itself, as visitors asked for it: `$scheme://$host$request_uri`, so
 * every Vary variant of a URL is a file of its own and an HTTPS copy has an `https://` key. With
 * the cache directory's index (nginx_index.h, --nginx-cache-dir: the recommended deployment) every
 * purge, exact ones included, deletes each file whose stored key is a target — every variant, both
 * schemes, raw keys compared byte for byte — on a worker thread, and then checks that no copy from
 * before the purge is left (the result is verified). Without the index an exact purge asks the
 * cache-purge module on the edge's loopback purge server (--nginx-purge-url), which computes the
 * same key from the raw request URI and the scheme the agent names in X-Cdr-Scheme; it removes
 * only the variant-less key, so its result is not verified, and prefix, regex and tag purges are
 * unsupported. A preload is a GET through the cache with the body discarded; with the index it is
 * then verified: a cache file must hold the URL's key as visitors of its scheme ask for it (nginx
 * renames the file into place as the response ends, so the index is asked again for a little
 * while), else the preload fails not_cached. nginx cannot mark an object stale, so invalidation
 * is reported unsupported. */
#include "agent/driver.h"

#include "agent/drivers/nginx_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NGINX_PRELOAD_WAIT_MS = 200 }; /* longest wait for a preload's file to appear */

struct nginx_driver {
  struct driver base;
  struct nginx_index *index; /* NULL without --nginx-cache-dir */
  char purge_url[256];       /* the loopback purge server; empty without --nginx-purge-url */
};

/* An exact purge through the cache-purge module: the raw path, and the scheme the key holds. */
static enum driver_plan nginx_plan_module_purge(struct nginx_driver *driver,
                                                const struct exec_item *item,
                                                struct exec_request *request,
                                                struct exec_outcome *outcome) {
  enum driver_plan plan = driver_plan_url(driver->purge_url, item, "GET", false, request, outcome);
  if (plan == DRIVER_REQUEST)
    snprintf(request->header, request->header_size, "X-Cdr-Scheme: %s",
             strncmp(item->target, "https://", 8) == 0 ? "https" : "http");
  return plan;
}

static enum driver_plan nginx_prepare(struct driver *base, const struct exec_item *item,
                                      struct exec_request *request, struct exec_outcome *outcome) {
  struct nginx_driver *driver = (struct nginx_driver *)base;
  if (item->operation == CDR__OPERATION__PRELOAD)
    return driver_plan_preload(base, item, request, outcome);
  if (item->invalidate) {
    driver_outcome_unsupported(outcome, "nginx_cannot_invalidate");
    return DRIVER_ANSWERED;
  }
  if (driver->index)
    return DRIVER_OFFLOAD;
  if (item->operation == CDR__OPERATION__PURGE_URL && driver->purge_url[0])
    return nginx_plan_module_purge(driver, item, request, outcome);
  driver_outcome_unsupported(outcome, "needs_nginx_cache_dir");
  return DRIVER_ANSWERED;
}

/* Looks for the file a preload filled; on a worker thread, after the preload's GET. */
static void nginx_check_preload(struct nginx_index *index, const struct exec_item *item,
                                struct exec_outcome *outcome) {
  bool readable = true;
  if (nginx_index_holds(index, item->target, NGINX_PRELOAD_WAIT_MS, &readable)) {
    outcome->verified = true;
    return;
  }
  driver_outcome_disproved(outcome, readable ? "not_cached" : "cache_dir_unreadable");
}

static void nginx_offload(struct driver *base, const struct exec_item *item,
                          struct exec_outcome *outcome) {
  struct nginx_index *index = ((struct nginx_driver *)base)->index;
  if (item->operation == CDR__OPERATION__PRELOAD)
    nginx_check_preload(index, item, outcome);
  else
    nginx_index_purge(index, item, outcome);
}

/* A preload that went well is checked in the index, once. */
static enum driver_plan nginx_follow_up(struct driver *base, const struct exec_item *item,
                                        struct exec_request *request,
                                        struct exec_outcome *outcome) {
  (void)request;
  bool check = ((struct nginx_driver *)base)->index && item->operation == CDR__OPERATION__PRELOAD &&
               item->verify && outcome->outcome == CDR__OUTCOME__SUCCEEDED && outcome->step == 0;
  outcome->step = 1;
  return check ? DRIVER_OFFLOAD : DRIVER_ANSWERED;
}

static void nginx_destroy(struct driver *base) {
  nginx_index_destroy(((struct nginx_driver *)base)->index);
  free(base);
}

struct driver *driver_nginx_create(const char *cache_url, const char *cache_dir,
                                   const char *purge_url, const char *tag_header) {
  static const struct driver ops = {.name = "nginx",
                                    .prepare = nginx_prepare,
                                    .complete = driver_complete_purge_200_404,
                                    .follow_up = nginx_follow_up,
                                    .offload = nginx_offload,
                                    .destroy = nginx_destroy,
                                    .scheme_in_key = true};
  struct nginx_driver *driver =
      (struct nginx_driver *)driver_alloc(sizeof(*driver), &ops, cache_url);
  if (!driver)
    return NULL;
  driver_copy_base_url(driver->purge_url, sizeof(driver->purge_url), purge_url);
  if (cache_dir[0] && !(driver->index = nginx_index_create(cache_dir, tag_header))) {
    free(driver);
    return NULL;
  }
  return &driver->base;
}
