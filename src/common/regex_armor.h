/* regex_armor.h — the one form of a regex that every cache takes as it is. A regex passes through
 * an HTTP header (Varnish's X-Ban-Url), a Varnish ban argument (split at spaces, no quotes) and a
 * line of a rules file (ATS's regex_revalidate); the armored form has none of the bytes that end or
 * split those, written instead as PCRE escapes that match the same byte. The engine armors a
 * tenant's regex before it validates and confines it, so what it checked is byte for byte what
 * each cache interprets; armoring armored text changes nothing, so drivers may armor again. */
#ifndef CDR_REGEX_ARMOR_H
#define CDR_REGEX_ARMOR_H

#include <stdbool.h>
#include <stddef.h>

/* Writes regex to out (size bytes) so that it survives as one HTTP header value, one Varnish ban
 * argument and one line of a rules file: every byte that is a control character, a space, '"',
 * '&' or '#' becomes the PCRE escape \xHH, which matches the same byte (outside \Q...\E too).
 * prefix_of, when not NULL, is a URL prefix to turn into an anchored regex instead (its scheme
 * matches http and https, the rest literally). False when out is too small. */
bool regex_armor(const char *regex, const char *prefix_of, char *out, size_t size);

#endif
