/* agent/ — the agent on each edge node: its link to the engine (agent_link.c), the executor that
 * runs cache requests through libcurl multi (executor.c), the cache drivers (this file, and
 * drivers/ for nginx, Varnish, Traffic Server, Squid), its settings, stats and metrics. May
 * include agent/, proto/ and common/ (scripts/check-layers); linked as cdr_agent.
 *
 * driver.h — what a cache driver does: turn one work item into an HTTP request to the local cache
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
  bool verify;        /* check the cache after the purge (the task did not ask otherwise) */
  const char *target; /* URL, prefix, regex or tag */
  const Cdr__Header *const *headers;
  size_t header_count;
};

struct exec_outcome {
  Cdr__Outcome outcome;
  unsigned http_status;
  bool verified;         /* succeeded, and the agent checked the cache no longer holds it */
  unsigned requests;     /* cache requests made for the item so far (the executor counts) */
  unsigned step;         /* the driver's own place in the item's requests (zero at the start) */
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
  char *header;           /* one more "Name: value" line the driver may fill; empty for none */
  size_t header_size;
  const char *fixed_header; /* and a constant line (a literal), NULL for none */
  char *connect_to; /* "HOST:PORT:CONNECT-HOST:CONNECT-PORT" (curl's CONNECT_TO); empty for none */
  size_t connect_to_size;
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
  /* Optional, after complete (or after offload, for items that made a request before it): plans
   * what the item needs next — another request (another variant of the URL, a probe of what the
   * cache holds now: DRIVER_REQUEST), blocking work (DRIVER_OFFLOAD) — or DRIVER_ANSWERED when
   * the outcome stands. NULL: one step an item. */
  enum driver_plan (*follow_up)(struct driver *driver, const struct exec_item *item,
                                struct exec_request *request, struct exec_outcome *outcome);
  /* Blocking work for DRIVER_OFFLOAD items; runs on a worker thread. NULL if never offloads. */
  void (*offload)(struct driver *driver, const struct exec_item *item,
                  struct exec_outcome *outcome);
  void (*destroy)(struct driver *driver);
  char cache_url[256]; /* where the cache listens, without a trailing slash */
  bool scheme_in_key;  /* the cache keeps http and https copies apart (nginx's $scheme) */
  char https_url[256]; /* the edge's HTTPS entry point, without a trailing slash; empty: none */
};

/* Creates the nginx driver (drivers/nginx.c): cache_url is where nginx listens, cache_dir its
 * proxy_cache_path (may be empty: then prefix, regex and tag purges are unsupported), purge_url
 * its loopback purge server for exact purges without cache_dir (may be empty), tag_header the
 * response header holding an object's tags. */
struct driver *driver_nginx_create(const char *cache_url, const char *cache_dir,
                                   const char *purge_url, const char *tag_header);

/* Creates the Varnish driver (drivers/varnish.c), speaking to deploy/varnish/edge.vcl. */
struct driver *driver_varnish_create(const char *cache_url);

/* Creates the Squid driver (drivers/squid.c), speaking to deploy/squid/squid.conf. */
struct driver *driver_squid_create(const char *cache_url);

/* Settings of the Apache Traffic Server driver (drivers/ats.c). */
struct ats_options {
  const char *rules_file;     /* regex_revalidate's rules file (-c); empty: no prefix/regex */
  const char *state_file;     /* regex_revalidate's state file (-f), read to confirm a reload */
  const char *reload_command; /* run through /bin/sh after the rules file changed */
  long rule_ttl_s;            /* how long a rule stays: the longest time ATS keeps an object */
  long reload_timeout_ms;     /* longest wait for the state file to show a new rule */
};

/* Creates the ATS driver, speaking to the configs in deploy/ats/. */
struct driver *driver_ats_create(const char *cache_url, const struct ats_options *options);

/* Checks a work item as the engine would have before anything of it reaches a cache request:
 * its target has no space, control byte or DEL (URLs, prefixes, armored regexes and tags never
 * do), and each header is a token name with a value free of control bytes (a tab aside). NULL
 * when it is fine, else the item's reason (bad_target, bad_header). A peer that is not the
 * engine, or a bug, then cannot put a CR/LF into a request line or a header. */
const char *driver_item_problem(const Cdr__WorkItem *item);

/* Helpers shared by drivers. */

/* Splits an absolute http(s) URL into host (with port) and path-with-query. False when malformed.
 */
bool driver_url_split(const char *url, const char **host, size_t *host_len, const char **path);

/* Allocates a driver of size bytes (a struct starting with struct driver), zeroed, with the name
 * and steps of ops and cache_url without trailing slashes, so paths can be appended. NULL when out
 * of memory. */
struct driver *driver_alloc(size_t size, const struct driver *ops, const char *cache_url);

/* Copies url into out (size bytes) without trailing slashes, so paths can be appended. */
void driver_copy_base_url(char *out, size_t size, const char *url);

/* Sets the edge's HTTPS entry point (https://HOST:PORT), where preloads of https:// URLs go. */
void driver_set_https_url(struct driver *driver, const char *https_url);

/* Plans a preload: a GET through the cache with the item's headers, filling the copy visitors of
 * the URL's scheme get. An https:// URL goes through the HTTPS entry point when there is one (the
 * TLS connection to it carries the URL's host as SNI and Host); else to cache_url with
 * X-Forwarded-Proto: https, as a TLS terminator in front of the cache sends — unless the cache
 * keys the schemes apart, where that would fill the http copy: then unsupported. */
enum driver_plan driver_plan_preload(const struct driver *driver, const struct exec_item *item,
                                     struct exec_request *request, struct exec_outcome *outcome);

/* Plans a look at what the cache holds for item's URL that cannot fill it: HEAD with
 * Cache-Control: only-if-cached, which ATS and Squid answer 504 when they hold no fresh copy the
 * request's headers select, and from the cache otherwise. with_item_headers: with the item's
 * headers (the variant a preload filled). */
enum driver_plan driver_plan_cached_probe(const struct driver *driver, const struct exec_item *item,
                                          bool with_item_headers, struct exec_request *request,
                                          struct exec_outcome *outcome);

/* Judges a probe's answer (driver_plan_cached_probe): 504 — nothing cached — leaves a purge
 * standing and fails a preload not_cached; a copy found fails a purge still_cached and leaves a
 * preload standing; a probe the cache could not answer fails the item as any request does. */
void driver_judge_probe(const struct exec_item *item, long status, CURLcode error,
                        struct exec_outcome *outcome);

/* The step after a preload's GET or its probe on a cache probed with driver_plan_cached_probe:
 * the probe; when it finds nothing, the GET once more and its probe (a cache under load may not
 * store an answer now and then: ATS did not, for about one preload in 10,000 here); then the end,
 * verified when a probe found the copy, else failed not_cached. outcome->step counts the
 * requests after the first (0 after the GET): judge an answer at an odd step as a probe. */
enum driver_plan driver_follow_preload(const struct driver *driver, const struct exec_item *item,
                                       struct exec_request *request, struct exec_outcome *outcome);

/* A complete step for caches checked with driver_plan_cached_probe whose drivers count their
 * requests in outcome->step so that every odd one is a probe: judges a probe's answer with
 * driver_judge_probe, any other with driver_complete_purge_200_404. */
void driver_complete_probed(struct driver *driver, const struct exec_item *item, long status,
                            CURLcode error, struct exec_outcome *outcome);

/* True when outcome is a purge's failure because the cache still held the object. */
bool driver_still_cached(const struct exec_outcome *outcome);

/* A destroy step for drivers that hold nothing but their allocation. */
void driver_free(struct driver *driver);

/* Plans a request with method to base_url (a cache listener, no trailing slash) + the path of
 * item's URL byte for byte, with the URL's host as Host; sends the item's headers when
 * with_item_headers. Returns DRIVER_REQUEST, or DRIVER_ANSWERED with a failed outcome when the URL
 * is malformed or too long. */
enum driver_plan driver_plan_url(const char *base_url, const struct exec_item *item,
                                 const char *method, bool with_item_headers,
                                 struct exec_request *request, struct exec_outcome *outcome);

/* Judges a cache's answer: success when ok (the driver's reading of status), else failed. A
 * preload succeeds on any 2xx or 3xx; drivers pass that through driver_preload_ok. */
void driver_judge(bool ok, long status, CURLcode error, struct exec_outcome *outcome);
bool driver_preload_ok(long status);

/* A complete step for caches whose one-URL purge answers 200 (removed) or 404 (was not cached):
 * both leave the URL uncached, so both succeed. Preloads succeed on 2xx and 3xx. */
void driver_complete_purge_200_404(struct driver *driver, const struct exec_item *item, long status,
                                   CURLcode error, struct exec_outcome *outcome);

/* Sets outcome to FAILED with a reason naming the transport error or the HTTP status. */
void driver_outcome_failed(struct exec_outcome *outcome, long status, CURLcode error);

/* The cache answered the purge or preload, but what it holds afterwards says otherwise: fails the
 * item with reason (still_cached, not_cached, ...), keeping the cache's own status. */
void driver_outcome_disproved(struct exec_outcome *outcome, const char *reason);

/* Sets outcome to UNSUPPORTED with reason. */
void driver_outcome_unsupported(struct exec_outcome *outcome, const char *reason);

#endif
