/* main.c — cdnrefresh-engine: reads its settings and runs the server, or runs the tenant command.
 */
#include "common/log.h"
#include "engine/engine_config.h"
#include "engine/server.h"
#include "engine/tenant_admin.h"
#include "version.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* Lets the engine hold as many connections (API clients, agents) as the hard limit allows: the
 * soft limit is often 1024, which tens of thousands of agents or idle clients would exhaust. */
static void main_raise_fd_limit(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
      log_warn("engine.fd_limit", "cannot raise the open file limit to %llu",
               (unsigned long long)limit.rlim_max);
  }
}

/* Tasks in the fabric come and go by the thousand per second, each with a few hundred KiB of
 * per-node records at a large fleet: glibc's defaults hand freed memory back to the kernel (heap
 * trim, mmap of blocks past 128 KiB), so every new task faulted in fresh zeroed pages (a sixth
 * of the fabric's time at 1,000 nodes, bench/fleet.py). Keep freed memory for reuse instead. */
static void engine_tune_malloc(void) {
  mallopt(M_MMAP_THRESHOLD, 32 << 20); /* glibc's largest */
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

int main(int argc, char **argv) {
  engine_tune_malloc();
  if (argc > 1 && strcmp(argv[1], "tenant") == 0)
    return tenant_admin_main(argc - 1, argv + 1);
  struct engine_config config;
  struct settings_cli cli;
  char err[512];
  if (engine_config_load(&config, argc, argv, &cli, err, sizeof(err))) {
    fprintf(stderr, "cdnrefresh-engine: %s\n", err);
    return 2;
  }
  if (cli.help) {
    engine_config_print_help(stdout);
    return 0;
  }
  if (cli.version) {
    printf("cdnrefresh-engine %s (commit %s, built %s)\n", CDR_VERSION, CDR_COMMIT, CDR_BUILD_DATE);
    return 0;
  }
  main_raise_fd_limit();
  return server_run(&config);
}
