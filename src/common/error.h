/* common/ — what every layer uses and nothing of the product's own: errors (this table), arenas,
 * logs, settings, clocks, task ids, URLs, rates, intrusive lists and FIFOs, mailboxes, capped
 * buffers, backoff, the timer wheel, Prometheus text, request signatures. May include only
 * common/ (scripts/check-layers); linked as cdr_common.
 *
 * error.h — every error code of the project in one table.
 *
 * Functions return 0 on success or a negative cdr error code. CDR_ERROR_MAP lists each code once
 * with the HTTP status it maps to when it reaches an API client, the stable machine-readable code
 * string that API clients see, and a default message for people. */
#ifndef CDR_ERROR_H
#define CDR_ERROR_H

#define CDR_ERROR_MAP(XX)                                                                          \
  XX(NOMEM, 503, "out_of_memory", "the engine is out of memory")                                   \
  XX(INTERNAL, 500, "internal_error", "internal error")                                            \
  XX(MALFORMED_JSON, 400, "malformed_json", "the request body is not valid JSON")                  \
  XX(INVALID_TYPE, 400, "invalid_type", "a field has the wrong JSON type")                         \
  XX(UNKNOWN_FIELD, 400, "unknown_field", "the request has a field the API does not know")         \
  XX(EMPTY_TARGETS, 400, "empty_targets", "the request names nothing to purge or preload")         \
  XX(INVALID_URL, 400, "invalid_url", "not an absolute http or https URL")                         \
  XX(URL_TOO_LONG, 400, "url_too_long", "the URL is longer than limits.max_url_length")            \
  XX(INVALID_PREFIX, 400, "invalid_prefix", "not a valid prefix URL")                              \
  XX(INVALID_REGEX, 400, "invalid_regex", "the regex does not compile")                            \
  XX(INVALID_TAG, 400, "invalid_tag", "not a valid tag")                                           \
  XX(INVALID_VALUE, 400, "invalid_value", "a field has a value out of range")                      \
  XX(TOO_MANY_ITEMS, 400, "too_many_items", "more items than limits.max_items_per_request")        \
  XX(INVALID_QUERY, 400, "invalid_query", "a query parameter is not valid")                        \
  XX(AMBIGUOUS_FRAMING, 400, "ambiguous_framing",                                                  \
     "the request's length is ambiguous (RFC 9112 6.3): the connection is closed")                 \
  XX(BODY_TOO_LARGE, 413, "body_too_large", "the body is larger than limits.max_body_bytes")       \
  XX(HEADERS_TOO_LARGE, 431, "headers_too_large",                                                  \
     "the request headers are larger than limits.max_header_bytes")                                \
  XX(MISSING_SIGNATURE, 401, "missing_signature",                                                  \
     "the request is not signed: send X-Cdnrefresh-Key, X-Cdnrefresh-Timestamp and "               \
     "X-Cdnrefresh-Signature")                                                                     \
  XX(UNKNOWN_KEY, 401, "unknown_key", "no tenant has this access key")                             \
  XX(STALE_TIMESTAMP, 401, "stale_timestamp",                                                      \
     "the request's timestamp is outside the replay window")                                       \
  XX(BAD_SIGNATURE, 401, "bad_signature", "the signature does not match the request")              \
  XX(HOST_NOT_OWNED, 403, "host_not_owned", "the tenant does not own this host")                   \
  XX(TAG_NOT_ALLOWED, 403, "tag_not_allowed", "the tag is outside the tenant's tag namespace")     \
  XX(FORBIDDEN, 403, "forbidden", "this endpoint is not served to tenants")                        \
  XX(RATE_LIMITED, 429, "rate_limited", "the tenant's rate limit is exceeded")                     \
  XX(QUOTA_EXCEEDED, 429, "quota_exceeded", "the tenant's daily quota is used up")                 \
  XX(NOT_FOUND, 404, "not_found", "no such endpoint")                                              \
  XX(TASK_NOT_FOUND, 404, "task_not_found", "no task with this id")                                \
  XX(NODE_NOT_FOUND, 404, "node_not_found", "no node with this id")                                \
  XX(TENANT_NOT_FOUND, 404, "tenant_not_found", "no tenant with this name")                        \
  XX(TENANT_EXISTS, 409, "tenant_exists", "a tenant with this name or access key exists")          \
  XX(TENANT_NAME_TAKEN, 409, "tenant_name_taken",                                                  \
     "tasks of a removed tenant still carry this name: a new tenant would read them")              \
  XX(METHOD_NOT_ALLOWED, 405, "method_not_allowed", "this endpoint does not take that method")     \
  XX(TASK_FINAL, 409, "task_final", "the task has already finished")                               \
  XX(STORE_UNAVAILABLE, 503, "store_unavailable", "the task store could not be written")           \
  XX(SHUTTING_DOWN, 503, "shutting_down", "the engine is shutting down")                           \
  XX(BACKLOG_FULL, 503, "backlog_full", "the engine has more unfinished work than it takes")       \
  XX(OFFLINE_BACKLOG_FULL, 503, "offline_backlog_full",                                            \
     "the engine holds as many tasks for offline nodes as it takes")                               \
  XX(READ_TOO_LONG, 503, "read_too_long",                                                          \
     "the read took longer than store.read_budget_ms: ask for less (a smaller limit)")             \
  XX(IO, 500, "io_error", "an I/O operation failed")                                               \
  XX(CONFIG, 500, "config_error", "the configuration is not valid")                                \
  XX(AGAIN, 500, "incomplete", "more bytes are needed")                                            \
  XX(FRAME_TOO_LARGE, 500, "frame_too_large", "a frame is larger than the link allows")            \
  XX(FRAME_VERSION, 500, "frame_version", "a frame has an unsupported protocol version")           \
  XX(FRAME_TYPE, 500, "frame_type", "a frame has an unknown type")                                 \
  XX(FRAME_FLAGS, 500, "frame_flags", "a frame has unknown flag bits")                             \
  XX(FRAME_BODY, 500, "frame_body", "a frame body does not decode")                                \
  XX(BUFFER_FULL, 500, "buffer_full", "a buffer reached the maximum it was created with")

enum cdr_error {
  CDR_OK = 0,
#define CDR_ERROR_ENUM(name, status, code, message) CDR_E##name,
  CDR_ERROR_FIRST_ = -1000,
  CDR_ERROR_MAP(CDR_ERROR_ENUM)
#undef CDR_ERROR_ENUM
      CDR_ERROR_LAST_
};

/* Returns the stable code string of err ("invalid_url"), or "unknown_error" for a value outside the
 * table. The string is static. */
const char *cdr_error_code(int err);

/* Returns the default human message of err. The string is static. */
const char *cdr_error_message(int err);

/* Returns the HTTP status an API client sees for err (500 for a value outside the table). */
int cdr_error_http_status(int err);

#endif
