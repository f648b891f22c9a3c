/* http1_framing.c — ambiguous HTTP/1 request framing, read from the head as sent
 * (http1_framing.h). */
#include "engine/api/http1_framing.h"

#include <string.h>

/* libh2o 2.2's HTTP/1 connection begins with these two members (lib/http1.c); its input
 * buffer starts at the head of the request being handled until the response is written. */
struct http1_conn_start {
  h2o_conn_t super;
  h2o_socket_t *sock;
};
#if H2O_LIBRARY_VERSION_MAJOR != 0 || H2O_LIBRARY_VERSION_MINOR != 13
#error "http1_framing.c reads libh2o 0.13's (h2o 2.2's) HTTP/1 connection layout: check it again"
#endif

static bool http1_name_is(const char *name, size_t len, const char *want) {
  size_t want_len = strlen(want);
  return len == want_len && h2o_lcstris(name, len, want, want_len);
}

static bool http1_space(char c) { return c == ' ' || c == '\t'; }

/* The check on a request head head[0..len) (start line, header lines, blank line). */
static const char *http1_framing_problem_of(const char *head, size_t len) {
  const char *end = head + len;
  const char *line = memchr(head, '\n', len); /* past the start line */
  const char *length = NULL;
  size_t length_len = 0;
  bool chunked_or_other = false;
  while (line && ++line < end) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol)
      eol = end;
    size_t line_len = (size_t)(eol - line);
    if (line_len && line[line_len - 1] == '\r')
      line_len--;
    if (line_len == 0)
      break; /* the blank line: the head ends */
    const char *colon = memchr(line, ':', line_len);
    if (colon) {
      size_t name_len = (size_t)(colon - line);
      const char *value = colon + 1, *value_end = line + line_len;
      while (value < value_end && http1_space(*value))
        value++;
      while (value_end > value && http1_space(value_end[-1]))
        value_end--;
      if (http1_name_is(line, name_len, "transfer-encoding")) {
        chunked_or_other = true;
      } else if (http1_name_is(line, name_len, "content-length")) {
        size_t value_len = (size_t)(value_end - value);
        if (length && (value_len != length_len || memcmp(value, length, value_len) != 0))
          return "Content-Length headers with different values";
        length = value;
        length_len = value_len;
      }
    }
    line = eol < end ? eol : NULL;
  }
  if (length && chunked_or_other)
    return "both Content-Length and Transfer-Encoding";
  return NULL;
}

const char *http1_framing_problem(h2o_req_t *req) {
  if (req->version >= 0x200)
    return NULL;
  h2o_socket_t *sock = ((struct http1_conn_start *)(void *)req->conn)->sock;
  h2o_buffer_t *input = sock ? sock->input : NULL;
  if (!input || !input->bytes)
    return NULL;
  /* Only when the buffer holds this request's head, start line first; else there is nothing
   * to look at (never the case with libh2o 2.2). */
  size_t method_len = req->input.method.len;
  if (input->size <= method_len || memcmp(input->bytes, req->input.method.base, method_len) != 0 ||
      input->bytes[method_len] != ' ')
    return NULL;
  const char *blank = NULL;
  for (size_t i = 0; i + 1 < input->size; i++) {
    if (input->bytes[i] == '\n' &&
        (input->bytes[i + 1] == '\n' ||
         (input->bytes[i + 1] == '\r' && i + 2 < input->size && input->bytes[i + 2] == '\n'))) {
      blank = input->bytes + i + 1;
      break;
    }
  }
  return http1_framing_problem_of(input->bytes,
                                  blank ? (size_t)(blank - input->bytes) + 2 : input->size);
}
