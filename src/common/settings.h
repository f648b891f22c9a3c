/* settings.h — one table per binary describes every setting; defaults, the INI config file, the
 * command-line flags and --help are all driven from it, so a setting is declared exactly once.
 *
 * Precedence: built-in default < config file (--config FILE) < command-line flag. Every value is
 * validated when it is set, with a message that names the setting, the allowed range and the value
 * given ("config: limits.max_items_per_request must be 1..100000, got 0"). */
#ifndef CDR_SETTINGS_H
#define CDR_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { SETTING_STRING_MAX = 256 };

enum setting_type {
  SETTING_STRING, /* char[SETTING_STRING_MAX] */
  SETTING_INT,    /* int64_t within [min, max] */
  SETTING_BOOL,   /* bool; a flag without value sets it true */
  SETTING_CHOICE, /* char[SETTING_STRING_MAX] holding one of `choices` ("a|b|c") */
};

struct setting {
  const char *section; /* INI section */
  const char *key;     /* INI key */
  const char *flag;    /* command-line flag without the leading dashes */
  enum setting_type type;
  size_t offset;             /* of the field within the config struct */
  const char *default_value; /* as text, parsed like any other value */
  int64_t min, max;          /* SETTING_INT bounds */
  const char *choices;       /* SETTING_CHOICE alternatives, separated by '|' */
  const char *help;          /* one line for --help and docs/CONFIG.md */
};

/* What the command line asked for besides settings. */
struct settings_cli {
  const char *config_path; /* --config FILE, or NULL; points into argv */
  bool help;               /* --help or -h */
  bool version;            /* --version */
};

/* Fills config from defaults, then the config file named by --config, then the flags in argv
 * (argv[0] is the program). Positional arguments are refused. On error returns CDR_ECONFIG with a
 * message in err that names the setting or the flag; config may then be partly filled. */
int settings_load(const struct setting *table, size_t count, void *config, int argc, char **argv,
                  struct settings_cli *cli, char *err, size_t err_size);

/* Prints every flag with its INI name, default and help line. */
void settings_print_help(FILE *out, const struct setting *table, size_t count);

#endif
