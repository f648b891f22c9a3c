/* api_reply.h — writing API responses: JSON bodies with their length, and the error shape
 * {"error":{"code":"…","message":"…","field":"…"}} every 4xx and 5xx carries. */
#ifndef CDR_API_REPLY_H
#define CDR_API_REPLY_H

#include <h2o.h>
#include <jansson.h>

/* Sends status with body as compact JSON; takes the reference to body. */
void api_reply_json(h2o_req_t *req, int status, json_t *body);

/* Sends status with len bytes of JSON text (copied); NULL text: 503 out of memory. */
void api_reply_json_text(h2o_req_t *req, int status, const char *text, size_t len);

/* Sends status with a text body of content_type (copied). */
void api_reply_text(h2o_req_t *req, int status, const char *content_type, const char *text);

/* Sends the error response for cdr error code err (its HTTP status and code string), with message
 * (or the code's default message when NULL) and field (omitted when NULL or ""). */
void api_reply_error(h2o_req_t *req, int err, const char *field, const char *message);

/* api_reply_error with a Retry-After header of retry_after_s seconds (at least 1), for 429 and
 * 503 backlog_full. */
void api_reply_error_retry(h2o_req_t *req, int err, const char *field, const char *message,
                           int64_t retry_after_s);

/* api_reply_error for 405, with an Allow header listing allowed (e.g. "GET, DELETE"). */
void api_reply_method_not_allowed(h2o_req_t *req, const char *allowed);

#endif
