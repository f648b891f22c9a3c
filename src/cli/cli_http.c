/* cli_http.c — the client's blocking HTTP exchanges with the engine, through one libcurl handle
 * kept for the whole run, so a series of requests (waiting, replaying) reuses its connection. */
#include "cli/cli.h"

#include "common/buf.h"
#include "common/error.h"
#include "common/request_signature.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { CLI_RESPONSE_MAX = 64 * 1024 * 1024 }; /* bytes; a bigger answer is refused */

static CURL *cli_curl;
static const struct cli_credentials *cli_signer;

void cli_http_sign_with(const struct cli_credentials *credentials) { cli_signer = credentials; }

/* The path part of the engine's base URL ("" for http://host:port), which the engine sees in
 * front of every request path and so is signed with it. */
static const char *cli_http_base_path(const char *engine, size_t base_len, size_t *len) {
  const char *scheme_end = strstr(engine, "://");
  const char *slash =
      scheme_end ? memchr(scheme_end + 3, '/', base_len - (size_t)(scheme_end + 3 - engine)) : NULL;
  *len = slash ? base_len - (size_t)(slash - engine) : 0;
  return slash ? slash : "";
}

/* Adds the signature headers for method path body to headers. */
static struct curl_slist *cli_http_sign(struct curl_slist *headers, const char *engine,
                                        size_t base_len, const char *method, const char *path,
                                        const char *body) {
  size_t prefix_len;
  const char *prefix = cli_http_base_path(engine, base_len, &prefix_len);
  char full_path[4096];
  int path_len = snprintf(full_path, sizeof(full_path), "%.*s%s", (int)prefix_len, prefix, path);
  char now[24];
  int now_len = snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
  char signature[REQUEST_SIGNATURE_HEX_LENGTH + 1];
  if (request_signature_compute(cli_signer->secret, strlen(cli_signer->secret), method,
                                strlen(method), full_path, (size_t)path_len, now, (size_t)now_len,
                                body, body ? strlen(body) : 0, signature))
    return headers;
  char line[512];
  snprintf(line, sizeof(line), "X-Cdnrefresh-Key: %.200s", cli_signer->key);
  headers = curl_slist_append(headers, line);
  snprintf(line, sizeof(line), "X-Cdnrefresh-Timestamp: %s", now);
  headers = curl_slist_append(headers, line);
  snprintf(line, sizeof(line), "X-Cdnrefresh-Signature: %s", signature);
  return curl_slist_append(headers, line);
}

void cli_http_cleanup(void) {
  if (cli_curl)
    curl_easy_cleanup(cli_curl);
  cli_curl = NULL;
}

/* The engine's answer as it arrives. */
struct cli_answer {
  struct buf bytes; /* at most CLI_RESPONSE_MAX, and a NUL */
  bool too_big;
};

static size_t cli_http_on_data(char *data, size_t size, size_t count, void *user) {
  struct cli_answer *answer = user;
  size_t n = size * count;
  int rc = buf_append(&answer->bytes, data, n);
  answer->too_big = rc == CDR_EBUFFER_FULL;
  return rc ? 0 : n;
}

int cli_http_request(const char *engine, const char *method, const char *path, const char *body,
                     struct cli_response *out) {
  char url[4096];
  size_t base_len = strlen(engine);
  while (base_len > 0 && engine[base_len - 1] == '/')
    base_len--;
  snprintf(url, sizeof(url), "%.*s%s", (int)base_len, engine, path);

  if (cli_curl)
    curl_easy_reset(cli_curl); /* options go, the connection stays */
  else if (!(cli_curl = curl_easy_init())) {
    fprintf(stderr, "cdnrefresh: cannot initialise libcurl\n");
    return CLI_EXIT_ENGINE;
  }
  CURL *curl = cli_curl;
  struct cli_answer answer = {.too_big = false};
  buf_init(&answer.bytes, CLI_RESPONSE_MAX + 1);
  struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
  if (cli_signer && cli_signer->key)
    headers = cli_http_sign(headers, engine, base_len, method, path, body);
  char curl_error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, cli_http_on_data);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
  if (body) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  CURLcode rc = curl_easy_perform(curl);
  int result = CLI_EXIT_OK;
  if (rc != CURLE_OK) {
    fprintf(stderr, "cdnrefresh: cannot reach the engine at %s: %s\n", url,
            answer.too_big  ? "the answer is too large"
            : curl_error[0] ? curl_error
                            : curl_easy_strerror(rc));
    result = CLI_EXIT_ENGINE;
  } else {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    out->body =
        answer.bytes.data ? json_loadb(buf_text(&answer.bytes), answer.bytes.len, 0, NULL) : NULL;
  }
  buf_free(&answer.bytes);
  curl_slist_free_all(headers);
  return result;
}
