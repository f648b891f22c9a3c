/* tenant.h — tenants: who may sign API requests, which hosts' content they may purge or preload,
 * and their daily quotas and rate limits (docs/SECURITY.md, "Tenants"); the rules, without I/O.
 *
 * Tenants live in the store (store_tenant_*), are managed with `cdnrefresh-engine tenant` and are
 * read by each API loop into a table (engine/tenant_table.h). */
#ifndef CDR_TENANT_H
#define CDR_TENANT_H

#include "common/rate_limit.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The daily quotas, in the order of struct tenant's quota[] and the store's usage columns. */
enum tenant_quota { QUOTA_PURGE_URLS, QUOTA_PURGE_PATTERNS, QUOTA_PRELOAD_URLS, QUOTA_COUNT };

enum {
  TENANT_NAME_MAX = 64,
  TENANT_HOSTS_MAX = 4096, /* bytes of the comma-separated host list */
  TENANT_TAG_PREFIX_MAX = 64,
  TENANT_KEY_LENGTH = 24,    /* access keys the engine makes: "AK" + 22 base32 characters */
  TENANT_SECRET_LENGTH = 48, /* secrets the engine makes: 48 hex characters (192 bits) */
};

/* The rate-limit buckets of one tenant, shared by every API loop. */
struct tenant_limits {
  struct rate_limit requests; /* every signed request */
  struct rate_limit urls;     /* targets of purges and preloads */
  _Atomic int64_t reads;      /* its item pages and task lists out now (limits.tenant_reads_max) */
  /* Its part of the fabric's backlog (limits.max_unfinished_results), for a fair share of it: */
  _Atomic int64_t backlog; /* (URL, node) results its planned tasks wait for, as of a tick */
  _Atomic int64_t charged; /* estimates for its accepted tasks not planned yet */
  _Atomic int64_t drained; /* results its tasks got over the fabric's latest 10 s */
  /* Its part of the tasks waiting in the store for offline nodes (limits.max_parked_targets): */
  _Atomic int64_t parked;         /* the targets of its tasks parked, as of a tick */
  _Atomic int64_t parked_next_ms; /* the earliest deadline among them, as of the latest sweep */
  /* The fabric's running counts behind backlog, drained and parked, touched only on its loop. */
  int64_t fabric_pending, fabric_drained, fabric_parked, fabric_parked_next_ms;
  bool fabric_listed; /* on the fabric's list of tenants it publishes */
};

struct tenant {
  const char *name;
  const char *access_key;
  const char *secret;
  const char *hosts;          /* "example.com,*.example.com"; "*" owns every host */
  const char *tag_prefix;     /* tags must start with it; "*": any tag; NULL: no tag purges */
  int64_t quota[QUOTA_COUNT]; /* per UTC day; 0: unlimited */
  int64_t rate_requests;      /* requests per second; 0: unlimited */
  int64_t rate_urls;          /* targets per second; 0: unlimited */
  int64_t created_ms;
  struct tenant_limits *limits; /* set by tenant_table_load; NULL otherwise */
};

/* The tenant of --dev requests that carry no signature: every host, every tag, no limits. */
extern const struct tenant tenant_dev;

struct task;

/* What task counts against each daily quota: URLs purged, patterns (prefixes, regexes, tags)
 * purged, URLs preloaded. */
void tenant_quota_amount(const struct task *task, int64_t amount[QUOTA_COUNT]);

/* API names of the quotas ("purge_urls", "purge_patterns", "preload_urls"). */
const char *tenant_quota_name(enum tenant_quota quota);

/* Checks a name: 1..TENANT_NAME_MAX of A-Z a-z 0-9 . _ -. */
bool tenant_name_valid(const char *name);

/* Normalises a comma-separated host list in place (lower case, no spaces) and checks each entry is
 * a host name, "*.domain" or "*". Returns true when valid; *bad points to the first bad entry
 * otherwise. */
bool tenant_hosts_normalize(char *hosts, const char **bad);

/* True when tenant owns host[0..len) (a normalised, lower-case URL host): an exact entry, a
 * "*.domain" entry it is a subdomain of (at any depth, not the domain itself), or "*". */
bool tenant_owns_host(const struct tenant *tenant, const char *host, size_t len);

/* True when tenant's host list is "*" (or has a "*" entry): it owns every host. */
bool tenant_owns_every_host(const struct tenant *tenant);

/* True when tenant may purge tag[0..len): its tag prefix is "*" or starts the tag. */
bool tenant_may_purge_tag(const struct tenant *tenant, const char *tag, size_t len);

#endif
