/* task_request.h — turns a POST /v1/purge or /v1/preload body into a validated task.
 *
 * Validation is all-or-nothing: either every field is valid and a complete struct task comes back,
 * or the first problem comes back as an error naming the field ("urls[3]") and nothing else
 * happened. Unknown fields are refused so that a typo ("url" for "urls") cannot silently purge
 * nothing. Targets are normalised (see url.h) and exact duplicates within a list are dropped. */
#ifndef CDR_TASK_REQUEST_H
#define CDR_TASK_REQUEST_H

#include "common/arena.h"
#include "model/task.h"
#include "model/tenant.h"

struct request_limits {
  size_t max_items;           /* targets per request, all lists together */
  size_t max_url_length;      /* bytes per URL, prefix or regex */
  int64_t default_deadline_s; /* used when the body has no deadline_s */
  int64_t max_deadline_s;     /* largest deadline_s accepted */
  const char *callback_allow; /* internal addresses a callback may still use (comma list) */
};

struct request_error {
  int code;          /* negative cdr error code */
  char field[96];    /* JSON path of the offending field ("urls[3]", "nodes.groups"), or "" */
  char message[512]; /* what is wrong, for people */
};

/* Parses body[0..len) as a request for a task of the given type on behalf of tenant, who must own
 * the host of every URL and prefix (else CDR_EHOST_NOT_OWNED), may purge tags only in its tag
 * namespace (else CDR_ETAG_NOT_ALLOWED), and whose regexes must start with ^https?:// (or
 * ^https://, ^http://), a host it owns written literally (dots as \.) and a slash: the rest is
 * kept inside a group, "^https://example\.com/(?:REST)", so no alternation can leave the host.
 * A tenant owning every host ("*") is not confined.
 * On success returns 0 and *out points to a task allocated in arena, with state queued, no id and
 * no creation time yet (the store assigns those). On failure returns the error code, fills *error
 * and leaves *out untouched. */
int task_request_parse(enum task_type type, const char *body, size_t len,
                       const struct request_limits *limits, const struct tenant *tenant,
                       struct arena *arena, struct task **out, struct request_error *error);

#endif
