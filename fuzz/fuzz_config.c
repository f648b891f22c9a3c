/* fuzz_config.c — libFuzzer target: the engine's configuration, as an INI file given with
 * --config (inih, then the settings table's parsing, bounds and cross-checks). Any file must load
 * or be refused with a message, never crash. */
#include "engine/engine_config.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int fd = memfd_create("config.ini", MFD_CLOEXEC);
  if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
    if (fd >= 0)
      close(fd);
    return 0;
  }
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  char program[] = "cdnrefresh-engine", flag[] = "--config";
  char *argv[] = {program, flag, path, NULL};
  struct engine_config config;
  struct settings_cli cli;
  char err[512] = "";
  int rc = engine_config_load(&config, 3, argv, &cli, err, sizeof(err));
  assert(rc == 0 || err[0] != '\0');
  close(fd);
  return 0;
}
