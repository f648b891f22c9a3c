/* test_settings.c — defaults, config file and flags from one settings table. */
#include "unit.h"

#include "common/error.h"
#include "common/settings.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sample_config {
  char listen[SETTING_STRING_MAX];
  int64_t window;
  bool verbose;
  char mode[SETTING_STRING_MAX];
};

static const struct setting sample_settings[] = {
    {"net", "listen", "listen", SETTING_STRING, offsetof(struct sample_config, listen),
     "127.0.0.1:1", 0, 0, NULL, "where"},
    {"net", "window", "window", SETTING_INT, offsetof(struct sample_config, window), "8", 1, 100,
     NULL, "how many"},
    {"log", "verbose", "verbose", SETTING_BOOL, offsetof(struct sample_config, verbose), "false", 0,
     0, NULL, "chatty"},
    {"log", "mode", "mode", SETTING_CHOICE, offsetof(struct sample_config, mode), "a", 0, 0, "a|b",
     "which"},
};
enum { SAMPLE_COUNT = sizeof(sample_settings) / sizeof(sample_settings[0]) };

/* Loads config from a command line given as string literals (copied: argv is mutable). */
static int load(struct sample_config *config, char *err, int argc, const char *const *args) {
  static char storage[8][128];
  char *argv[8];
  for (int i = 0; i < argc; i++) {
    snprintf(storage[i], sizeof(storage[i]), "%s", args[i]);
    argv[i] = storage[i];
  }
  struct settings_cli cli;
  memset(config, 0, sizeof(*config));
  return settings_load(sample_settings, SAMPLE_COUNT, config, argc, argv, &cli, err, 256);
}

static void settings_apply_defaults(void **state) {
  (void)state;
  struct sample_config config;
  char err[256];
  const char *argv[] = {"prog"};
  assert_int_equal(load(&config, err, 1, argv), 0);
  assert_string_equal(config.listen, "127.0.0.1:1");
  assert_int_equal(config.window, 8);
  assert_false(config.verbose);
  assert_string_equal(config.mode, "a");
}

static void settings_flags_override_config_file(void **state) {
  (void)state;
  char path[] = "/tmp/cdr-test-settings-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *file = fdopen(fd, "w");
  fprintf(file, "[net]\nlisten = 10.0.0.1:9\nwindow = 50\n[log]\nmode = b\n");
  fclose(file);
  struct sample_config config;
  char err[256];
  const char *argv[] = {"prog", "--config", path, "--window=70", "--verbose"};
  assert_int_equal(load(&config, err, 5, argv), 0);
  assert_string_equal(config.listen, "10.0.0.1:9");
  assert_int_equal(config.window, 70);
  assert_true(config.verbose);
  assert_string_equal(config.mode, "b");
  unlink(path);
}

static void settings_name_the_setting_in_errors(void **state) {
  (void)state;
  struct sample_config config;
  char err[256];
  const char *out_of_range[] = {"prog", "--window", "0"};
  assert_int_equal(load(&config, err, 3, out_of_range), CDR_ECONFIG);
  assert_non_null(strstr(err, "net.window must be 1..100, got '0'"));
  const char *bad_choice[] = {"prog", "--mode", "c"};
  assert_int_equal(load(&config, err, 3, bad_choice), CDR_ECONFIG);
  assert_non_null(strstr(err, "log.mode must be one of a|b"));
  const char *unknown[] = {"prog", "--windw", "3"};
  assert_int_equal(load(&config, err, 3, unknown), CDR_ECONFIG);
  assert_non_null(strstr(err, "--windw"));
  const char *missing[] = {"prog", "--listen"};
  assert_int_equal(load(&config, err, 2, missing), CDR_ECONFIG);
  const char *positional[] = {"prog", "stray"};
  assert_int_equal(load(&config, err, 2, positional), CDR_ECONFIG);
}

static void settings_report_unknown_config_keys(void **state) {
  (void)state;
  char path[] = "/tmp/cdr-test-settings-XXXXXX";
  int fd = mkstemp(path);
  FILE *file = fdopen(fd, "w");
  fprintf(file, "[net]\nlisten = x\nspeed = 3\n");
  fclose(file);
  struct sample_config config;
  char err[256];
  const char *argv[] = {"prog", "--config", path};
  assert_int_equal(load(&config, err, 3, argv), CDR_ECONFIG);
  assert_non_null(strstr(err, "unknown setting [net] speed"));
  assert_non_null(strstr(err, "line 3"));
  unlink(path);
  const char *gone[] = {"prog", "--config", "/nonexistent/cdr.ini"};
  assert_int_equal(load(&config, err, 3, gone), CDR_ECONFIG);
  assert_non_null(strstr(err, "/nonexistent/cdr.ini"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(settings_apply_defaults),
      cmocka_unit_test(settings_flags_override_config_file),
      cmocka_unit_test(settings_name_the_setting_in_errors),
      cmocka_unit_test(settings_report_unknown_config_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
