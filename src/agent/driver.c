/* driver.c — helpers every cache driver uses. */
#include "agent/driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 9110 token characters, which a header name consists of. */
static bool driver_token_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

const char *driver_item_problem(const Cdr__WorkItem *item) {
  const unsigned char *target = (const unsigned char *)item->target;
  if (!target || !*target)
    return "bad_target";
  for (; *target; target++) {
    if (*target <= ' ' || *target == 0x7f)
      return "bad_target";
  }
  for (size_t i = 0; i < item->n_headers; i++) {
    const unsigned char *name = (const unsigned char *)item->headers[i]->name;
    const unsigned char *value = (const unsigned char *)item->headers[i]->value;
    if (!name || !*name || !value)
      return "bad_header";
    for (; *name; name++) {
      if (!driver_token_char(*name))
        return "bad_header";
    }
    for (; *value; value++) {
      if ((*value < ' ' && *value != '\t') || *value == 0x7f)
        return "bad_header";
    }
  }
  return NULL;
}

bool driver_url_split(const char *url, const char **host, size_t *host_len, const char **path) {
  const char *start = strstr(url, "://");
  if (!start)
    return false;
  start += 3;
  const char *slash = strchr(start, '/');
  if (!slash || slash == start)
    return false;
  *host = start;
  *host_len = (size_t)(slash - start);
  *path = slash;
  return true;
}

void driver_outcome_failed(struct exec_outcome *outcome, long status, CURLcode error) {
  outcome->outcome = CDR__OUTCOME__FAILED;
  outcome->verified = false;
  outcome->http_status = status > 0 ? (unsigned)status : 0;
  if (status > 0)
    snprintf(outcome->reason, sizeof(outcome->reason), "http_%ld", status);
  else if (error == CURLE_COULDNT_CONNECT)
    snprintf(outcome->reason, sizeof(outcome->reason), "connection_refused");
  else if (error == CURLE_OPERATION_TIMEDOUT)
    snprintf(outcome->reason, sizeof(outcome->reason), "timeout");
  else
    snprintf(outcome->reason, sizeof(outcome->reason), "transport_error_%d", (int)error);
}

void driver_outcome_disproved(struct exec_outcome *outcome, const char *reason) {
  unsigned answered = outcome->http_status;
  driver_outcome_failed(outcome, 0, CURLE_OK);
  outcome->http_status = answered;
  snprintf(outcome->reason, sizeof(outcome->reason), "%s", reason);
}

void driver_outcome_unsupported(struct exec_outcome *outcome, const char *reason) {
  outcome->outcome = CDR__OUTCOME__UNSUPPORTED;
  outcome->http_status = 0;
  snprintf(outcome->reason, sizeof(outcome->reason), "%s", reason);
}

enum driver_plan driver_plan_url(const char *base_url, const struct exec_item *item,
                                 const char *method, bool with_item_headers,
                                 struct exec_request *request, struct exec_outcome *outcome) {
  const char *host, *path;
  size_t host_len;
  if (!driver_url_split(item->target, &host, &host_len, &path) || host_len >= request->host_size) {
    driver_outcome_failed(outcome, 0, CURLE_URL_MALFORMAT);
    return DRIVER_ANSWERED;
  }
  int n = snprintf(request->url, request->url_size, "%s%s", base_url, path);
  if (n < 0 || (size_t)n >= request->url_size) {
    driver_outcome_failed(outcome, 0, CURLE_URL_MALFORMAT);
    return DRIVER_ANSWERED;
  }
  memcpy(request->host, host, host_len);
  request->host[host_len] = '\0';
  request->method = method;
  request->send_item_headers = with_item_headers;
  return DRIVER_REQUEST;
}

/* Whether host (host_len bytes: a name or a [v6] literal) ends with ":PORT". */
static bool driver_host_has_port(const char *host, size_t host_len) {
  const char *after = host;
  if (host[0] == '[') {
    const char *close = memchr(host, ']', host_len);
    after = close ? close : host + host_len;
  }
  return memchr(after, ':', (size_t)(host + host_len - after)) != NULL;
}

void driver_copy_base_url(char *out, size_t size, const char *url) {
  snprintf(out, size, "%s", url);
  size_t len = strlen(out);
  while (len > 0 && out[len - 1] == '/')
    out[--len] = '\0';
}

void driver_set_https_url(struct driver *driver, const char *https_url) {
  driver_copy_base_url(driver->https_url, sizeof(driver->https_url), https_url);
}

/* Plans an https:// preload through the HTTPS entry point: curl connects there for the URL's
 * host and port, so the TLS handshake and the Host header name the customer's host. */
static enum driver_plan driver_plan_https(const struct driver *driver, const struct exec_item *item,
                                          struct exec_request *request,
                                          struct exec_outcome *outcome) {
  const char *host, *path;
  size_t host_len;
  const char *entry = driver->https_url + strlen("https://");
  bool ok =
      driver_url_split(item->target, &host, &host_len, &path) && host_len < request->host_size;
  int n = ok ? snprintf(request->connect_to, request->connect_to_size, "%.*s%s:%s", (int)host_len,
                        host, driver_host_has_port(host, host_len) ? "" : ":443", entry)
             : -1;
  int m = ok ? snprintf(request->url, request->url_size, "%s", item->target) : -1;
  if (n < 0 || (size_t)n >= request->connect_to_size || m < 0 || (size_t)m >= request->url_size) {
    driver_outcome_failed(outcome, 0, CURLE_URL_MALFORMAT);
    return DRIVER_ANSWERED;
  }
  memcpy(request->host, host, host_len);
  request->host[host_len] = '\0';
  request->method = "GET";
  request->send_item_headers = true;
  return DRIVER_REQUEST;
}

enum driver_plan driver_plan_preload(const struct driver *driver, const struct exec_item *item,
                                     struct exec_request *request, struct exec_outcome *outcome) {
  if (strncmp(item->target, "https://", 8) != 0)
    return driver_plan_url(driver->cache_url, item, "GET", true, request, outcome);
  if (driver->https_url[0])
    return driver_plan_https(driver, item, request, outcome);
  if (driver->scheme_in_key) {
    driver_outcome_unsupported(outcome, "needs_cache_https_url");
    return DRIVER_ANSWERED;
  }
  enum driver_plan plan = driver_plan_url(driver->cache_url, item, "GET", true, request, outcome);
  if (plan == DRIVER_REQUEST)
    snprintf(request->header, request->header_size, "X-Forwarded-Proto: https");
  return plan;
}

void driver_judge(bool ok, long status, CURLcode error, struct exec_outcome *outcome) {
  if (!ok) {
    driver_outcome_failed(outcome, status, error);
    return;
  }
  outcome->outcome = CDR__OUTCOME__SUCCEEDED;
  outcome->http_status = (unsigned)status;
}

bool driver_preload_ok(long status) { return status >= 200 && status < 400; }

enum driver_plan driver_plan_cached_probe(const struct driver *driver, const struct exec_item *item,
                                          bool with_item_headers, struct exec_request *request,
                                          struct exec_outcome *outcome) {
  enum driver_plan plan =
      driver_plan_url(driver->cache_url, item, "HEAD", with_item_headers, request, outcome);
  if (plan == DRIVER_REQUEST)
    request->fixed_header = "Cache-Control: only-if-cached";
  return plan;
}

void driver_judge_probe(const struct exec_item *item, long status, CURLcode error,
                        struct exec_outcome *outcome) {
  bool preload = item->operation == CDR__OPERATION__PRELOAD;
  bool absent = status == 504, present = driver_preload_ok(status);
  if (!absent && !present) {
    driver_outcome_failed(outcome, status, error);
    return;
  }
  if (present == preload)
    return; /* as it should be: the outcome of the purge or preload stands */
  driver_outcome_disproved(outcome, preload ? "not_cached" : "still_cached");
}

void driver_complete_probed(struct driver *driver, const struct exec_item *item, long status,
                            CURLcode error, struct exec_outcome *outcome) {
  if (outcome->step % 2)
    driver_judge_probe(item, status, error, outcome);
  else
    driver_complete_purge_200_404(driver, item, status, error, outcome);
}

enum { DRIVER_PRELOADED, DRIVER_PROBED, DRIVER_PRELOADED_AGAIN, DRIVER_PROBED_AGAIN };

enum driver_plan driver_follow_preload(const struct driver *driver, const struct exec_item *item,
                                       struct exec_request *request, struct exec_outcome *outcome) {
  bool fetched = outcome->step == DRIVER_PRELOADED || outcome->step == DRIVER_PRELOADED_AGAIN;
  bool missing = outcome->step == DRIVER_PROBED && outcome->outcome == CDR__OUTCOME__FAILED &&
                 strcmp(outcome->reason, "not_cached") == 0;
  if (item->verify && fetched && outcome->outcome == CDR__OUTCOME__SUCCEEDED) {
    outcome->step++;
    return driver_plan_cached_probe(driver, item, true, request, outcome);
  }
  if (item->verify && missing) {
    outcome->step = DRIVER_PRELOADED_AGAIN;
    return driver_plan_preload(driver, item, request, outcome);
  }
  outcome->verified = item->verify && outcome->outcome == CDR__OUTCOME__SUCCEEDED;
  return DRIVER_ANSWERED;
}

bool driver_still_cached(const struct exec_outcome *outcome) {
  return outcome->outcome == CDR__OUTCOME__FAILED && strcmp(outcome->reason, "still_cached") == 0;
}

struct driver *driver_alloc(size_t size, const struct driver *ops, const char *cache_url) {
  struct driver *driver = calloc(1, size);
  if (!driver)
    return NULL;
  *driver = *ops;
  driver_copy_base_url(driver->cache_url, sizeof(driver->cache_url), cache_url);
  return driver;
}

void driver_free(struct driver *driver) { free(driver); }

void driver_complete_purge_200_404(struct driver *driver, const struct exec_item *item, long status,
                                   CURLcode error, struct exec_outcome *outcome) {
  (void)driver;
  bool ok = item->operation == CDR__OPERATION__PURGE_URL ? status == 200 || status == 404
                                                         : driver_preload_ok(status);
  driver_judge(ok, status, error, outcome);
}
