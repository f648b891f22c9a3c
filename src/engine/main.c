/* main.c — cdnrefresh-engine: reads its settings and runs the server. */
#include "common/log.h"
#include "engine/engine_config.h"
#include "engine/server.h"
#include "version.h"

#include <stdio.h>

int main(int argc, char **argv) {
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
  return server_run(&config);
}
