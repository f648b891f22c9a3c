/* api.h — the HTTP JSON API of the engine (docs/API.md): routing, validation of paths and query
 * parameters, and the hand-off of each request to the store workers. */
#ifndef CDR_API_H
#define CDR_API_H

#include <h2o.h>
#include <stdbool.h>

/* Registers the API as the handler of every path of hostconf: the tenants' endpoints (signed
 * unless --dev), or with admin the operators' (nodes, stats, metrics, status page, tenants). */
void api_register(h2o_hostconf_t *hostconf, bool admin);

#endif
