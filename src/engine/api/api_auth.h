/* api_auth.h — who sent an API request, and whether their rate limits let it through.
 *
 * A signed request (docs/API.md, "Signing") names its tenant's access key and carries a timestamp
 * and an HMAC-SHA256 signature; it is refused with 401 when a header is missing, the key unknown,
 * the timestamp outside the replay window or the signature wrong. In --dev mode a request without
 * any signature header is the dev tenant's (every host, no limits); a signed one is still checked.
 * Loop threads only; the tenant found lives in table. */
#ifndef CDR_API_AUTH_H
#define CDR_API_AUTH_H

#include "engine/tenant_table.h"

#include <h2o.h>
#include <stdbool.h>

/* Finds the tenant of req in table. Returns 0 with *out set, or CDR_EMISSING_SIGNATURE,
 * CDR_EUNKNOWN_KEY, CDR_ESTALE_TIMESTAMP or CDR_EBAD_SIGNATURE with a message for the client in
 * message. window_s: largest difference accepted between the timestamp and the engine's clock. */
int api_auth_tenant(h2o_req_t *req, const struct tenant_table *table, bool dev, int64_t window_s,
                    const struct tenant **out, char *message, size_t message_size);

enum api_rate { API_RATE_REQUESTS, API_RATE_URLS };

/* Draws cost from tenant's requests or URLs bucket. Returns 0 when it passed (or the tenant has
 * no such limit), else the whole seconds to wait (>= 1) for the Retry-After header. */
int64_t api_auth_rate(const struct tenant *tenant, enum api_rate which, int64_t cost);

#endif
