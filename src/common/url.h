/* url.h — validation and normalisation of the http/https URLs customers purge and preload.
 *
 * Normalisation makes equal URLs compare equal as strings, which is what the cache key is
 * (DESIGN §5: the nginx cache key is the URL): the scheme and host are lower-cased, a default port
 * (80 for http, 443 for https) and the trailing dots of an absolute host name (`h.`) are dropped,
 * and an empty path becomes "/". Path and query are kept
 * byte for byte, since caches key on them exactly. */
#ifndef CDR_URL_H
#define CDR_URL_H

#include "common/arena.h"

#include <stdbool.h>
#include <stddef.h>

enum { URL_HOST_MAX = 253 }; /* the longest DNS name */

struct url_normalized {
  char *text;         /* NUL-terminated normalised URL, in the caller's arena */
  size_t length;      /* strlen(text) */
  size_t host_offset; /* host (or [v6] literal) within text */
  size_t host_length; /* bytes of host, without any port */
  size_t path_offset; /* first byte of the path ('/') within text */
  bool path_given;    /* the input had a path after the authority */
  bool has_query;     /* the input had a '?' */
};

/* Validates in[0..len) as an absolute http or https URL of at most max_length bytes and writes its
 * normalised form into *out, allocated in arena.
 * Returns 0; CDR_EURL_TOO_LONG; CDR_EINVALID_URL with *why set to a static phrase naming the
 * problem ("has a fragment", …); or CDR_ENOMEM when the arena is full. */
int url_normalize(const char *in, size_t len, size_t max_length, struct arena *arena,
                  struct url_normalized *out, const char **why);

#endif
