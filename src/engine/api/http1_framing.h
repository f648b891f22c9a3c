/* http1_framing.h — the request-smuggling checks libh2o 2.2 leaves out (RFC 9112 §5.1, §6.3).
 *
 * A request whose Content-Length headers disagree, or that has both Content-Length and
 * Transfer-Encoding, cannot be framed the same way by every HTTP hop: a proxy in front of the
 * engine may read a body where the engine reads a second request. libh2o takes the first
 * Content-Length (or the Transfer-Encoding) and drops both headers before a handler runs (its
 * parser already refuses whitespace before a colon); so the head is read again here from the
 * connection's input buffer, where libh2o keeps it until the response is written. Such a request
 * must be answered 400 with the connection closed. */
#ifndef CDR_HTTP1_FRAMING_H
#define CDR_HTTP1_FRAMING_H

#include <h2o.h>
#include <stdbool.h>
#include <stddef.h>

/* Why the framing of req's head is ambiguous ("content-length values differ", ...), or NULL
 * when it is not (or req is not HTTP/1, whose head this cannot see). Loop thread. */
const char *http1_framing_problem(h2o_req_t *req);

#endif
