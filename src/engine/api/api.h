/* api/ — the engine's HTTP JSON API (docs/API.md): routing and the hand-off of each request to
 * the store workers or the fabric (api.c), tenant authentication and rate buckets (api_auth.c),
 * replies and the access log (api_reply.c, access_log.c), HTTP/1 framing checks
 * (http1_framing.c), and the parsing and validation of task requests (task_request.c). It is
 * given what it uses in an api_env and one api_loop per event loop (api_env.h), never the server.
 * May include its own headers, engine/fabric/fabric.h, engine/store_worker.h, engine/stats.h,
 * engine/task_json.h, engine/tenant_table.h, engine/engine_config.h, store/, model/ and common/
 * (scripts/check-layers).
 *
 * api.h: registering the API on an h2o host. */
#ifndef CDR_API_H
#define CDR_API_H

#include <h2o.h>
#include <stdbool.h>

/* Registers the API as the handler of every path of hostconf (whose contexts must be the h2o of
 * an api_loop, api_env.h): the tenants' endpoints (signed
 * unless --dev), or with admin the operators' (nodes, stats, metrics, status page, tenants). */
void api_register(h2o_hostconf_t *hostconf, bool admin);

#endif
