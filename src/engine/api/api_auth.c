/* api_auth.c — request signatures and per-tenant token buckets for the API. */
#include "engine/api/api_auth.h"

#include "common/error.h"
#include "common/request_signature.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The value of header name in req, or NULL. */
static const h2o_iovec_t *api_auth_header(h2o_req_t *req, const char *name) {
  ssize_t at = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
  return at < 0 ? NULL : &req->headers.entries[at].value;
}

int api_auth_tenant(h2o_req_t *req, const struct tenant_table *table, bool dev, int64_t window_s,
                    const struct tenant **out, char *message, size_t message_size) {
  const h2o_iovec_t *key = api_auth_header(req, REQUEST_HEADER_KEY);
  const h2o_iovec_t *timestamp = api_auth_header(req, REQUEST_HEADER_TIMESTAMP);
  const h2o_iovec_t *signature = api_auth_header(req, REQUEST_HEADER_SIGNATURE);
  if (!key && !timestamp && !signature && dev) {
    *out = &tenant_dev;
    return 0;
  }
  if (!key || !timestamp || !signature) {
    snprintf(message, message_size, "the request lacks the %s header; see docs/API.md, Signing",
             !key         ? "X-Cdnrefresh-Key"
             : !timestamp ? "X-Cdnrefresh-Timestamp"
                          : "X-Cdnrefresh-Signature");
    return CDR_EMISSING_SIGNATURE;
  }
  const struct tenant *tenant = tenant_table_find_key(table, key->base, key->len);
  if (!tenant) {
    snprintf(message, message_size, "no tenant has the access key '%.*s'",
             (int)(key->len < 64 ? key->len : 64), key->base);
    return CDR_EUNKNOWN_KEY;
  }
  int64_t t = 0;
  int64_t now = (int64_t)time(NULL);
  if (!request_signature_parse_timestamp(timestamp->base, timestamp->len, &t) ||
      t < now - window_s || t > now + window_s) {
    snprintf(message, message_size,
             "X-Cdnrefresh-Timestamp must be the Unix time in seconds (digits only, no leading "
             "zero) within %lld s of the engine's clock (now %lld)",
             (long long)window_s, (long long)now);
    return CDR_ESTALE_TIMESTAMP;
  }
  char expected[REQUEST_SIGNATURE_HEX_LENGTH + 1];
  if (request_signature_compute(tenant->secret, strlen(tenant->secret), req->method.base,
                                req->method.len, req->path.base, req->path.len, timestamp->base,
                                timestamp->len, req->entity.base,
                                req->entity.base ? req->entity.len : 0, expected))
    return CDR_ENOMEM;
  if (!request_signature_matches(expected, signature->base, signature->len)) {
    snprintf(message, message_size,
             "the signature does not match: sign METHOD\\nPATH\\nTIMESTAMP\\nhex(SHA-256(body)) "
             "with the tenant's secret (docs/API.md, Signing)");
    return CDR_EBAD_SIGNATURE;
  }
  *out = tenant;
  return 0;
}

int64_t api_auth_rate(const struct tenant *tenant, enum api_rate which, int64_t cost) {
  int64_t rate = which == API_RATE_REQUESTS ? tenant->rate_requests : tenant->rate_urls;
  if (rate <= 0 || !tenant->limits)
    return 0;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  struct rate_limit *bucket =
      which == API_RATE_REQUESTS ? &tenant->limits->requests : &tenant->limits->urls;
  int64_t wait_ns =
      rate_limit_take(bucket, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec, rate, cost);
  return wait_ns ? (wait_ns + 999999999) / 1000000000 : 0;
}
