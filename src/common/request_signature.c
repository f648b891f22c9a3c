/* request_signature.c — HMAC-SHA256 request signatures shared by the engine and the CLI. */
#include "common/request_signature.h"

#include "common/error.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIGNATURE_STACK_TEXT = 2048 }; /* bytes of text to sign held without malloc */

static void signature_hex(const unsigned char *digest, size_t len, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[digest[i] >> 4];
    out[2 * i + 1] = digits[digest[i] & 15];
  }
  out[2 * len] = '\0';
}

int request_signature_compute(const char *secret, size_t secret_len, const char *method,
                              size_t method_len, const char *path, size_t path_len,
                              const char *timestamp, size_t timestamp_len, const char *body,
                              size_t body_len, char out[REQUEST_SIGNATURE_HEX_LENGTH + 1]) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  char body_hash[2 * SHA256_DIGEST_LENGTH + 1];
  SHA256((const unsigned char *)(body ? body : ""), body_len, digest);
  signature_hex(digest, sizeof(digest), body_hash);

  char stack_text[SIGNATURE_STACK_TEXT];
  size_t need = method_len + path_len + timestamp_len + sizeof(body_hash) + 4;
  char *text = need <= sizeof(stack_text) ? stack_text : malloc(need);
  if (!text)
    return CDR_ENOMEM;
  int len = snprintf(text, need, "%.*s\n%.*s\n%.*s\n%s", (int)method_len, method, (int)path_len,
                     path, (int)timestamp_len, timestamp, body_hash);
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)text, (size_t)len, digest,
       &mac_len);
  if (text != stack_text)
    free(text);
  signature_hex(digest, mac_len, out);
  return 0;
}

bool request_signature_parse_timestamp(const char *value, size_t len, int64_t *out) {
  if (len == 0 || len > 12 || value[0] == '0')
    return false;
  int64_t t = 0;
  for (size_t i = 0; i < len; i++) {
    if (value[i] < '0' || value[i] > '9')
      return false;
    t = t * 10 + (value[i] - '0');
  }
  *out = t;
  return true;
}

bool request_signature_matches(const char expected[REQUEST_SIGNATURE_HEX_LENGTH + 1],
                               const char *given, size_t given_len) {
  if (given_len != REQUEST_SIGNATURE_HEX_LENGTH)
    return false;
  char lowered[REQUEST_SIGNATURE_HEX_LENGTH];
  for (size_t i = 0; i < given_len; i++)
    lowered[i] = (char)tolower((unsigned char)given[i]);
  return CRYPTO_memcmp(expected, lowered, REQUEST_SIGNATURE_HEX_LENGTH) == 0;
}
