/* nginx_index.c — benchmark of the agent's nginx cache index: writes N files shaped like nginx
 * cache files (levels=1:2), times building the index (one scan) and a prefix purge through the
 * built index, next to a purge that has to scan the directory again (a fresh index: what a purge
 * costs without one). Not a test: prints figures.
 *
 * Usage: cdr-bench-nginx-index [FILES] [DIR] */
#include "agent/drivers/nginx_index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double seconds_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void write_files(const char *dir, int count) {
  char path[512];
  for (int i = 0; i < count; i++) {
    unsigned a = (unsigned)i % 16, b = (unsigned)(i / 16) % 256;
    snprintf(path, sizeof(path), "%s/%x", dir, a);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%x/%02x", dir, a, b);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%x/%02x/%08x%024x", dir, a, b, (unsigned)i, 0u);
    FILE *file = fopen(path, "wb");
    if (!file) {
      perror(path);
      exit(1);
    }
    unsigned char header[64] = {5};
    fwrite(header, 1, sizeof(header), file);
    /* 1 file in 100 is under /promo/, the prefix the benchmark purges */
    fprintf(file,
            "\nKEY: http://www.example.com/%s/%d.jpg\nHTTP/1.1 200 OK\r\n"
            "Content-Type: image/jpeg\r\nSurrogate-Key: item-%d\r\n\r\n",
            i % 100 == 0 ? "promo" : "static", i, i);
    fwrite(path, 1, 200, file); /* some body bytes */
    fclose(file);
  }
}

static void purge_prefix(struct nginx_index *index, const char *prefix) {
  struct exec_item item = {.operation = CDR__OPERATION__PURGE_PREFIX, .target = prefix};
  struct exec_outcome outcome;
  memset(&outcome, 0, sizeof(outcome));
  nginx_index_purge(index, &item, &outcome);
  if (outcome.outcome != CDR__OUTCOME__SUCCEEDED) {
    fprintf(stderr, "purge failed: %s\n", outcome.reason);
    exit(1);
  }
}

int main(int argc, char **argv) {
  int count = argc > 1 ? atoi(argv[1]) : 100000;
  char dir[256] = "/tmp/cdr-bench-index-XXXXXX";
  if (argc > 2)
    snprintf(dir, sizeof(dir), "%s", argv[2]);
  else if (!mkdtemp(dir))
    return 1;
  write_files(dir, count);

  struct timespec start;
  struct nginx_index *index = nginx_index_create(dir, "Surrogate-Key");
  clock_gettime(CLOCK_MONOTONIC, &start);
  size_t indexed = nginx_index_size(index);
  double build = seconds_since(&start);

  clock_gettime(CLOCK_MONOTONIC, &start);
  purge_prefix(index, "http://www.example.com/promo/");
  double indexed_purge = seconds_since(&start);
  size_t left = nginx_index_size(index);
  nginx_index_destroy(index);

  /* Without an index every purge reads the whole directory again. */
  clock_gettime(CLOCK_MONOTONIC, &start);
  struct nginx_index *fresh = nginx_index_create(dir, "Surrogate-Key");
  purge_prefix(fresh, "http://www.example.com/static/1");
  double scan_purge = seconds_since(&start);
  nginx_index_destroy(fresh);

  printf("nginx cache index: %zu files indexed in %.3f s (%.0f files/s)\n", indexed, build,
         (double)indexed / build);
  printf("prefix purge of %zu files through the index: %.1f ms; a purge that rescans the "
         "directory: %.1f ms (%.0fx slower)\n",
         indexed - left, indexed_purge * 1000, scan_purge * 1000, scan_purge / indexed_purge);
  char command[300];
  snprintf(command, sizeof(command), "rm -rf %s", dir);
  return system(command);
}
