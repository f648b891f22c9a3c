/* curl_uv.h — libcurl's multi interface driven by a libuv loop (socket and timer callbacks), the
 * shape of curl's multi-uv example: one multi handle per loop, so connections are reused across
 * requests. Used by the agent's executor and the engine's callbacks. Loop thread only. */
#ifndef CDR_CURL_UV_H
#define CDR_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

struct curl_uv;

/* Called on the loop when a transfer added with curl_uv_add has finished (result is curl's code);
 * the easy handle has been removed from the multi handle and is the caller's again. */
typedef void (*curl_uv_done_cb)(void *context, CURL *easy, CURLcode result);

/* Creates a multi handle on loop keeping at most max_connections per host. Returns 0 or
 * CDR_ENOMEM. */
int curl_uv_create(uv_loop_t *loop, long max_connections, curl_uv_done_cb done, void *context,
                   struct curl_uv **out);

/* Starts easy (configured by the caller). Returns 0 or CDR_EINTERNAL. */
int curl_uv_add(struct curl_uv *curl_uv, CURL *easy);

/* Stops a transfer without calling done. */
void curl_uv_remove(struct curl_uv *curl_uv, CURL *easy);

/* Closes everything; calls closed(closed_context) when libuv has let go of the handles. The
 * caller removes its easy handles first (curl_uv_remove). */
void curl_uv_destroy(struct curl_uv *curl_uv, void (*closed)(void *context), void *closed_context);

#endif
