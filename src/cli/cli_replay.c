/* cli_replay.c — `cdnrefresh replay FILE`: the requests of an engine access log submitted again,
 * paced to a rate, for load tests and for moving tasks to another engine. */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct replay_counts {
  long sent, accepted, refused, failed, skipped;
};

static double replay_now(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Sleeps until the monotonic clock reads at. */
static void replay_wait_until(double at) {
  double left = at - replay_now();
  if (left <= 0)
    return;
  struct timespec pause = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
  while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
    ;
}

/* The path and body of a log line worth replaying, or false. */
static bool replay_pick(const json_t *line, bool all, const char **path, const char **body) {
  const char *method = json_string_value(json_object_get(line, "method"));
  *path = json_string_value(json_object_get(line, "path"));
  *body = json_string_value(json_object_get(line, "body"));
  json_int_t status = json_integer_value(json_object_get(line, "status"));
  return method && strcmp(method, "POST") == 0 && *path && *body &&
         (strncmp(*path, "/v1/purge", 9) == 0 || strncmp(*path, "/v1/preload", 11) == 0) &&
         (all || status == 202);
}

static void replay_print(const struct replay_counts *counts, double seconds, bool json) {
  double per_s = seconds > 0 ? (double)counts->sent / seconds : 0;
  if (json) {
    json_t *summary =
        json_pack("{s:I,s:I,s:I,s:I,s:I,s:f,s:f}", "sent", (json_int_t)counts->sent, "accepted",
                  (json_int_t)counts->accepted, "refused", (json_int_t)counts->refused, "failed",
                  (json_int_t)counts->failed, "skipped", (json_int_t)counts->skipped, "seconds",
                  seconds, "per_s", per_s);
    json_dumpf(summary, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(summary);
    return;
  }
  printf("replayed %ld requests in %.2f s (%.0f/s): %ld accepted, %ld refused (4xx), %ld failed "
         "(5xx or unreachable); %ld log lines skipped\n",
         counts->sent, seconds, per_s, counts->accepted, counts->refused, counts->failed,
         counts->skipped);
}

int cli_replay(const char *engine, const char *file, double rate, bool all, bool json) {
  FILE *log = fopen(file, "r");
  if (!log) {
    fprintf(stderr, "cdnrefresh: cannot read %s: %s\n", file, strerror(errno));
    return CLI_EXIT_USAGE;
  }
  struct replay_counts counts = {0};
  char *text = NULL;
  size_t text_cap = 0;
  double start = replay_now();
  int rc = CLI_EXIT_OK;
  while (getline(&text, &text_cap, log) > 0) {
    json_t *line = json_loads(text, 0, NULL);
    const char *path, *body;
    if (!line || !replay_pick(line, all, &path, &body)) {
      counts.skipped++;
      json_decref(line);
      continue;
    }
    if (rate > 0)
      replay_wait_until(start + (double)counts.sent / rate);
    struct cli_response response = {0};
    counts.sent++;
    if (cli_http_request(engine, "POST", path, body, &response) != CLI_EXIT_OK ||
        response.status >= 500) {
      counts.failed++;
      rc = CLI_EXIT_ENGINE;
    } else if (response.status >= 400) {
      counts.refused++;
      if (rc == CLI_EXIT_OK)
        rc = CLI_EXIT_REJECTED;
    } else {
      counts.accepted++;
    }
    json_decref(response.body);
    json_decref(line);
  }
  free(text);
  fclose(log);
  replay_print(&counts, replay_now() - start, json);
  return rc;
}
