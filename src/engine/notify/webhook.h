/* webhook.h — one signed JSON POST, as callbacks and alerts send them.
 *
 * Signature (docs/API.md): X-Cdnrefresh-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 over
 * "<t>.<body>" keyed with callbacks.secret>. */
#ifndef CDR_WEBHOOK_H
#define CDR_WEBHOOK_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

/* Computes the signature header value for body sent at unix time t into out (out_size >= 96). */
void webhook_sign(const char *secret, int64_t t, const char *body, size_t body_len, char *out,
                  size_t out_size);

/* A POST to send: body is borrowed and must live until the transfer ends. */
struct webhook_post {
  const char *url;
  const char *body;
  size_t body_len;
  const char *secret; /* signs the body, at the time of this call */
  long timeout_ms;
  const char *extra_header; /* one more "Name: value", or NULL */
  void *owner;              /* CURLINFO_PRIVATE, set even when this fails */
};

/* Sets easy up for post: URL, body, the JSON and signature headers (replacing and freeing any in
 * *headers, which the caller frees after the transfer), timeout, http/https only, no redirects,
 * no signals. 0, or CDR_ENOMEM when the header list cannot be built. */
int webhook_prepare(CURL *easy, struct curl_slist **headers, const struct webhook_post *post);

#endif
