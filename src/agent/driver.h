/* driver.h — what a cache driver does: turn one work item into an HTTP request to the local cache
 * (or answer it directly), and turn the cache's answer into an outcome. The executor runs the
 * requests; drivers hold no sockets. */
#ifndef CDR_DRIVER_H
#define CDR_DRIVER_H

#include "proto/link.pb-c.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* One work item as the executor keeps it (copied out of the frame). */
struct exec_item {
  uint64_t item_id;
  Cdr__Operation operation;
  bool invalidate;
  const char *target; /* URL, prefix, regex or tag */
  const Cdr__Header *const *headers;
  size_t header_count;
};

struct exec_outcome {
  Cdr__Outcome outcome;
  unsigned http_status;
  char reason[48];       /* why, for failed and unsupported items */
  char cache_status[16]; /* preload: the cache's status header */
};

/* The request a driver asks the executor to make. Strings are owned by the executor's slot. */
struct exec_request {
  char *url; /* buffer of url_size bytes to fill */
  size_t url_size;
  char *host; /* Host header value buffer of host_size bytes */
  size_t host_size;
  const char *method;
  bool send_item_headers; /* add the item's headers (preloads) */
};

/* The result of a driver's prepare step. */
enum driver_plan {
  DRIVER_REQUEST,  /* make the request in exec_request, then call complete */
  DRIVER_ANSWERED, /* the outcome is already known (unsupported, bad target, ...) */
  DRIVER_OFFLOAD,  /* run offload on a worker thread (blocking file work), then use its outcome */
};

struct driver {
  const char *name;
  /* Plans item. Fills request for DRIVER_REQUEST, outcome for DRIVER_ANSWERED. */
  enum driver_plan (*prepare)(struct driver *driver, const struct exec_item *item,
                              struct exec_request *request, struct exec_outcome *outcome);
  /* Turns the cache's answer (status 0 and curl error when there was none) into an outcome. */
  void (*complete)(struct driver *driver, const struct exec_item *item, long status, CURLcode error,
                   struct exec_outcome *outcome);
  /* Blocking work for DRIVER_OFFLOAD items; runs on a worker thread. NULL if never offloads. */
  void (*offload)(struct driver *driver, const struct exec_item *item,
                  struct exec_outcome *outcome);
  void (*destroy)(struct driver *driver);
};

/* Creates the nginx driver (drivers/nginx.c): cache_url is where nginx listens, cache_dir its
 * proxy_cache_path (may be empty: then prefix, regex and tag purges are unsupported). */
struct driver *driver_nginx_create(const char *cache_url, const char *cache_dir);

/* Helpers shared by drivers. */

/* Splits an absolute http(s) URL into host (with port) and path-with-query. False when malformed.
 */
bool driver_url_split(const char *url, const char **host, size_t *host_len, const char **path);

/* Sets outcome to FAILED with a reason naming the transport error or the HTTP status. */
void driver_outcome_failed(struct exec_outcome *outcome, long status, CURLcode error);

/* Sets outcome to UNSUPPORTED with reason. */
void driver_outcome_unsupported(struct exec_outcome *outcome, const char *reason);

#endif
