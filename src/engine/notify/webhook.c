/* webhook.c — signing and setting up the engine's webhook POSTs. */
#include "engine/notify/webhook.h"

#include "common/clock.h"
#include "common/error.h"

#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void webhook_sign(const char *secret, int64_t t, const char *body, size_t body_len, char *out,
                  size_t out_size) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  char prefix[32];
  int prefix_len = snprintf(prefix, sizeof(prefix), "%lld.", (long long)t);
  unsigned char *signed_text = malloc((size_t)prefix_len + body_len);
  if (signed_text) {
    memcpy(signed_text, prefix, (size_t)prefix_len);
    memcpy(signed_text + prefix_len, body, body_len);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), signed_text, (size_t)prefix_len + body_len,
         digest, &digest_len);
    free(signed_text);
  }
  int n = snprintf(out, out_size, "t=%lld,v1=", (long long)t);
  for (unsigned i = 0; i < digest_len && (size_t)n + 2 < out_size; i++)
    n += snprintf(out + n, out_size - (size_t)n, "%02x", digest[i]);
}

/* Appends header to *list; false (the list kept whole) when curl is out of memory. */
static bool webhook_append(struct curl_slist **list, const char *header) {
  struct curl_slist *longer = curl_slist_append(*list, header);
  if (!longer)
    return false;
  *list = longer;
  return true;
}

int webhook_prepare(CURL *easy, struct curl_slist **headers, const struct webhook_post *post) {
  curl_easy_setopt(easy, CURLOPT_PRIVATE, post->owner); /* first: a failure is reported by it */
  char signature[128], header[160];
  webhook_sign(post->secret, clock_now_ms() / 1000, post->body, post->body_len, signature,
               sizeof(signature));
  snprintf(header, sizeof(header), "X-Cdnrefresh-Signature: %s", signature);
  curl_slist_free_all(*headers);
  *headers = NULL;
  if (!webhook_append(headers, "Content-Type: application/json") ||
      !webhook_append(headers, header) ||
      (post->extra_header && !webhook_append(headers, post->extra_header)))
    return CDR_ENOMEM;
  curl_easy_setopt(easy, CURLOPT_URL, post->url);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, post->body);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)post->body_len);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, *headers);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, post->timeout_ms);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  return 0;
}
