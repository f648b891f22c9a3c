/* url.c — absolute http/https URL checks and normalisation. */
#include "common/url.h"

#include "common/error.h"

#include <ctype.h>
#include <string.h>

struct url_scan {
  bool https;
  size_t host_start, host_end; /* in the input */
  long port;                   /* -1 when absent */
  size_t rest_start;           /* path and query in the input */
};

static bool url_host_char(char c) {
  return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* Checks the authority in[start..end): host, optional port, no user info. */
static int url_scan_authority(const char *in, size_t start, size_t end, struct url_scan *scan,
                              const char **why) {
  if (memchr(in + start, '@', end - start)) {
    *why = "must not carry user info (user@host)";
    return CDR_EINVALID_URL;
  }
  size_t i = start;
  if (i < end && in[i] == '[') {
    while (i < end && in[i] != ']') {
      if (i > start && !isxdigit((unsigned char)in[i]) && in[i] != ':' && in[i] != '.') {
        *why = "has a malformed IPv6 host";
        return CDR_EINVALID_URL;
      }
      i++;
    }
    if (i == end || i == start + 1) {
      *why = "has a malformed IPv6 host";
      return CDR_EINVALID_URL;
    }
    i++; /* past ']' */
  } else {
    while (i < end && url_host_char(in[i]))
      i++;
  }
  scan->host_start = start;
  scan->host_end = i;
  if (scan->host_end == start) {
    *why = "has no host";
    return CDR_EINVALID_URL;
  }
  if (scan->host_end - start > URL_HOST_MAX) {
    *why = "has a host longer than 253 characters";
    return CDR_EINVALID_URL;
  }
  scan->port = -1;
  if (i < end && in[i] == ':') {
    long port = 0;
    size_t digits = 0;
    for (i++; i < end && isdigit((unsigned char)in[i]) && digits < 6; i++, digits++)
      port = port * 10 + (in[i] - '0');
    if (digits == 0 || i != end || port < 1 || port > 65535) {
      *why = "has a port that is not 1..65535";
      return CDR_EINVALID_URL;
    }
    scan->port = port;
  }
  if (i != end) {
    *why = "has a character not allowed in a host name";
    return CDR_EINVALID_URL;
  }
  return 0;
}

static int url_scan(const char *in, size_t len, struct url_scan *scan, const char **why) {
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)in[i];
    if (c <= 0x20 || c >= 0x7f) {
      *why = "contains a space, control or non-ASCII byte (percent-encode it)";
      return CDR_EINVALID_URL;
    }
  }
  if (memchr(in, '#', len)) {
    *why = "has a fragment (#…), which never reaches a cache";
    return CDR_EINVALID_URL;
  }
  size_t scheme_end;
  if (len >= 7 && strncasecmp(in, "http://", 7) == 0) {
    scan->https = false;
    scheme_end = 7;
  } else if (len >= 8 && strncasecmp(in, "https://", 8) == 0) {
    scan->https = true;
    scheme_end = 8;
  } else {
    *why = "is not an absolute URL starting with http:// or https://";
    return CDR_EINVALID_URL;
  }
  size_t authority_end = scheme_end;
  while (authority_end < len && in[authority_end] != '/' && in[authority_end] != '?')
    authority_end++;
  scan->rest_start = authority_end;
  return url_scan_authority(in, scheme_end, authority_end, scan, why);
}

int url_normalize(const char *in, size_t len, size_t max_length, struct arena *arena,
                  struct url_normalized *out, const char **why) {
  if (len > max_length) {
    *why = "is longer than limits.max_url_length";
    return CDR_EURL_TOO_LONG;
  }
  struct url_scan scan;
  int err = url_scan(in, len, &scan, why);
  if (err)
    return err;

  bool default_port = scan.port == (scan.https ? 443 : 80);
  const char *rest = in + scan.rest_start;
  size_t rest_len = len - scan.rest_start;
  bool path_given = rest_len > 0 && rest[0] == '/';
  /* scheme + host + ":65535" + "/" + rest */
  char *text = arena_alloc(arena, 8 + (scan.host_end - scan.host_start) + 6 + 1 + rest_len + 1);
  if (!text)
    return CDR_ENOMEM;

  size_t n = 0;
  const char *scheme = scan.https ? "https://" : "http://";
  memcpy(text, scheme, strlen(scheme));
  n += strlen(scheme);
  out->host_offset = n;
  /* "h." is the DNS name h written absolutely: every cache that normalises Host (nginx's $host,
   * the shipped VCL) stores it as h, and h is the name ownership is checked against. */
  size_t host_end = scan.host_end;
  while (host_end > scan.host_start + 1 && in[host_end - 1] == '.')
    host_end--;
  for (size_t i = scan.host_start; i < host_end; i++)
    text[n++] = (char)tolower((unsigned char)in[i]);
  out->host_length = host_end - scan.host_start;
  if (scan.port >= 0 && !default_port) {
    static const char digits[] = "0123456789";
    char port[6];
    int p = 0;
    for (long v = scan.port; v > 0; v /= 10)
      port[p++] = digits[v % 10];
    text[n++] = ':';
    while (p > 0)
      text[n++] = port[--p];
  }
  out->path_offset = n;
  if (!path_given)
    text[n++] = '/';
  memcpy(text + n, rest, rest_len);
  n += rest_len;
  text[n] = '\0';

  out->text = text;
  out->length = n;
  out->path_given = path_given;
  out->has_query = memchr(rest, '?', rest_len) != NULL;
  return 0;
}
