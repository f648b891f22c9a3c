/* api_reply.c — JSON and error responses for the API. */
#include "engine/api/api_reply.h"

#include "common/error.h"
#include "engine/api/access_log.h"
#include "engine/stats.h"

#include <sys/time.h>

#include <string.h>

static const char *api_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 202: return "Accepted";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 503: return "Service Unavailable";
  default: return status >= 500 ? "Internal Server Error" : "Error";
  }
}

void api_reply_json(h2o_req_t *req, int status, json_t *body) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  api_reply_json_text(req, status, text, text ? strlen(text) : 0);
  free(text);
}

void api_reply_json_text(h2o_req_t *req, int status, const char *text, size_t len) {
  if (!text) {
    static const char fallback[] =
        "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"the engine is out of memory\"}}";
    status = 503;
    text = fallback;
    len = sizeof(fallback) - 1;
  }
  req->res.status = status;
  req->res.reason = api_reason(status);
  req->res.content_length = len; /* without it HTTP/1.1 would answer Connection: close */
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                 H2O_STRLIT("application/json"));
  /* One Retry-After: the one a refusal computed (api_reply_error_retry), else a second. */
  if (status == 503 && h2o_find_header(&req->res.headers, H2O_TOKEN_RETRY_AFTER, -1) == -1)
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
  struct timeval now;
  gettimeofday(&now, NULL);
  const struct timeval *begin = &req->timestamps.request_begin_at;
  int64_t us = (int64_t)(now.tv_sec - begin->tv_sec) * 1000000 + (now.tv_usec - begin->tv_usec);
  stats_api_response(status, now.tv_sec, us > 0 ? (uint64_t)us : 0);
  access_log_write(req, status, us);
  h2o_send_inline(req, text, len); /* copies text into the request's pool */
}

void api_reply_text(h2o_req_t *req, int status, const char *content_type, const char *text) {
  size_t len = strlen(text);
  req->res.status = status;
  req->res.reason = api_reason(status);
  req->res.content_length = len;
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                 strlen(content_type));
  h2o_send_inline(req, text, len);
}

void api_reply_error(h2o_req_t *req, int err, const char *field, const char *message) {
  json_t *error = json_pack("{s:s,s:s}", "code", cdr_error_code(err), "message",
                            message ? message : cdr_error_message(err));
  if (error && field && field[0])
    json_object_set_new(error, "field", json_string(field));
  api_reply_json(req, cdr_error_http_status(err),
                 error ? json_pack("{s:o}", "error", error) : NULL);
}

void api_reply_error_retry(h2o_req_t *req, int err, const char *field, const char *message,
                           int64_t retry_after_s) {
  char *value = h2o_mem_alloc_pool(&req->pool, 24);
  int len = snprintf(value, 24, "%lld", (long long)(retry_after_s > 0 ? retry_after_s : 1));
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, value, (size_t)len);
  api_reply_error(req, err, field, message);
}

void api_reply_method_not_allowed(h2o_req_t *req, const char *allowed) {
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allowed, strlen(allowed));
  char message[96];
  snprintf(message, sizeof(message), "this endpoint takes %s", allowed);
  api_reply_error(req, CDR_EMETHOD_NOT_ALLOWED, NULL, message);
}
