/* request_signature.h — the signature a tenant puts on each API request (docs/API.md, "Signing").
 *
 * signature = lowercase hex of HMAC-SHA256(secret, METHOD "\n" PATH "\n" TIMESTAMP "\n" BODYHASH)
 * where PATH is the request target as sent (with its query string), TIMESTAMP the bytes of the
 * X-Cdnrefresh-Timestamp header as sent (decimal Unix seconds), and BODYHASH the lowercase hex
 * SHA-256 of the body (of the empty string when there is none). The engine and the CLI both sign
 * through this. */
#ifndef CDR_REQUEST_SIGNATURE_H
#define CDR_REQUEST_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { REQUEST_SIGNATURE_HEX_LENGTH = 64 };

/* Request headers carrying the access key, the timestamp and the signature. */
#define REQUEST_HEADER_KEY "x-cdnrefresh-key"
#define REQUEST_HEADER_TIMESTAMP "x-cdnrefresh-timestamp"
#define REQUEST_HEADER_SIGNATURE "x-cdnrefresh-signature"

/* Computes the signature of one request into out (REQUEST_SIGNATURE_HEX_LENGTH hex digits and a
 * NUL). Returns 0, or CDR_ENOMEM when the text to sign could not be held. */
int request_signature_compute(const char *secret, size_t secret_len, const char *method,
                              size_t method_len, const char *path, size_t path_len,
                              const char *timestamp, size_t timestamp_len, const char *body,
                              size_t body_len, char out[REQUEST_SIGNATURE_HEX_LENGTH + 1]);

/* Parses a timestamp header in its one canonical form — 1 to 12 decimal digits, no sign, no
 * leading zero, no space — so the bytes signed and the number checked cannot differ. False when
 * value[0..len) is anything else. */
bool request_signature_parse_timestamp(const char *value, size_t len, int64_t *out);

/* True when given[0..given_len) is the signature expected (compared in constant time, lowercase
 * or uppercase hex). */
bool request_signature_matches(const char expected[REQUEST_SIGNATURE_HEX_LENGTH + 1],
                               const char *given, size_t given_len);

#endif
