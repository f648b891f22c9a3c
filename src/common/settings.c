/* settings.c — table-driven defaults, INI config file and command-line flags. */
#include "common/settings.h"

#include "common/error.h"
#include "common/text_list.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

/* Parses value into the field s describes; origin ("config", "flag") prefixes the message. */
static int settings_set(const struct setting *s, void *config, const char *value,
                        const char *origin, char *err, size_t err_size) {
  char *field = (char *)config + s->offset;
  switch (s->type) {
  case SETTING_STRING:
  case SETTING_CHOICE:
    if (strlen(value) >= SETTING_STRING_MAX) {
      snprintf(err, err_size, "%s: %s.%s is longer than %d bytes", origin, s->section, s->key,
               SETTING_STRING_MAX - 1);
      return CDR_ECONFIG;
    }
    if (s->type == SETTING_CHOICE && !text_list_contains(s->choices, '|', value, strlen(value))) {
      snprintf(err, err_size, "%s: %s.%s must be one of %s, got '%s'", origin, s->section, s->key,
               s->choices, value);
      return CDR_ECONFIG;
    }
    strcpy(field, value);
    return 0;
  case SETTING_INT: {
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end || v < s->min || v > s->max) {
      snprintf(err, err_size, "%s: %s.%s must be %lld..%lld, got '%s'", origin, s->section, s->key,
               (long long)s->min, (long long)s->max, value);
      return CDR_ECONFIG;
    }
    *(int64_t *)(void *)field = v;
    return 0;
  }
  case SETTING_BOOL:
    if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcmp(value, "yes") == 0) {
      *(bool *)(void *)field = true;
    } else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0) {
      *(bool *)(void *)field = false;
    } else {
      snprintf(err, err_size, "%s: %s.%s must be true or false, got '%s'", origin, s->section,
               s->key, value);
      return CDR_ECONFIG;
    }
    return 0;
  }
  return CDR_EINTERNAL;
}

struct settings_file_state {
  const struct setting *table;
  size_t count;
  void *config;
  char *err;
  size_t err_size;
  bool failed;
};

static int settings_file_entry(void *user, const char *section, const char *key,
                               const char *value) {
  struct settings_file_state *state = user;
  for (size_t i = 0; i < state->count; i++) {
    const struct setting *s = &state->table[i];
    if (strcmp(s->section, section) == 0 && strcmp(s->key, key) == 0) {
      if (settings_set(s, state->config, value, "config", state->err, state->err_size)) {
        state->failed = true;
        return 0;
      }
      return 1;
    }
  }
  snprintf(state->err, state->err_size, "config: unknown setting [%s] %s", section, key);
  state->failed = true;
  return 0;
}

static int settings_load_file(const struct setting *table, size_t count, void *config,
                              const char *path, char *err, size_t err_size) {
  struct settings_file_state state = {table, count, config, err, err_size, false};
  int line = ini_parse(path, settings_file_entry, &state);
  if (line < 0) {
    snprintf(err, err_size, "config: cannot read %s: %s", path, strerror(errno));
    return CDR_ECONFIG;
  }
  if (line > 0) {
    if (!state.failed)
      snprintf(err, err_size, "config: %s line %d is not 'key = value' or '[section]'", path, line);
    else {
      char detail[512];
      snprintf(detail, sizeof(detail), "%s", err);
      snprintf(err, err_size, "%s (%s line %d)", detail, path, line);
    }
    return CDR_ECONFIG;
  }
  return 0;
}

static const struct setting *settings_find_flag(const struct setting *table, size_t count,
                                                const char *name, size_t len) {
  for (size_t i = 0; i < count; i++) {
    if (strlen(table[i].flag) == len && strncmp(table[i].flag, name, len) == 0)
      return &table[i];
  }
  return NULL;
}

/* Walks argv once. With apply == false it only finds --config/--help/--version and checks that
 * every flag is known; with apply == true it sets each flag's value. */
static int settings_walk_args(const struct setting *table, size_t count, void *config, int argc,
                              char **argv, struct settings_cli *cli, bool apply, char *err,
                              size_t err_size) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      cli->help = true;
      continue;
    }
    if (strcmp(arg, "--version") == 0) {
      cli->version = true;
      continue;
    }
    if (strncmp(arg, "--", 2) != 0) {
      snprintf(err, err_size, "unexpected argument '%s' (see --help)", arg);
      return CDR_ECONFIG;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    const char *value = eq ? eq + 1 : NULL;
    bool is_config = name_len == 6 && strncmp(name, "config", 6) == 0;
    const struct setting *s = is_config ? NULL : settings_find_flag(table, count, name, name_len);
    if (!is_config && !s) {
      snprintf(err, err_size, "unknown flag '--%.*s' (see --help)", (int)name_len, name);
      return CDR_ECONFIG;
    }
    if (!value && (is_config || s->type != SETTING_BOOL)) {
      if (i + 1 >= argc) {
        snprintf(err, err_size, "flag '--%.*s' needs a value", (int)name_len, name);
        return CDR_ECONFIG;
      }
      value = argv[++i];
    }
    if (is_config) {
      cli->config_path = value;
    } else if (apply) {
      int rc = settings_set(s, config, value ? value : "true", "flag", err, err_size);
      if (rc)
        return rc;
    }
  }
  return 0;
}

int settings_load(const struct setting *table, size_t count, void *config, int argc, char **argv,
                  struct settings_cli *cli, char *err, size_t err_size) {
  memset(cli, 0, sizeof(*cli));
  for (size_t i = 0; i < count; i++) {
    int rc = settings_set(&table[i], config, table[i].default_value, "default", err, err_size);
    if (rc)
      return rc;
  }
  int rc = settings_walk_args(table, count, config, argc, argv, cli, false, err, err_size);
  if (rc || cli->help || cli->version)
    return rc;
  if (cli->config_path) {
    rc = settings_load_file(table, count, config, cli->config_path, err, err_size);
    if (rc)
      return rc;
  }
  return settings_walk_args(table, count, config, argc, argv, cli, true, err, err_size);
}

void settings_print_help(FILE *out, const struct setting *table, size_t count) {
  fprintf(out,
          "  --config FILE\n      INI file with [section] key = value lines; flags override it\n");
  for (size_t i = 0; i < count; i++) {
    const struct setting *s = &table[i];
    const char *arg = s->type == SETTING_BOOL ? "" : s->type == SETTING_INT ? " N" : " VALUE";
    fprintf(out, "  --%s%s\n      %s\n      [%s] %s", s->flag, arg, s->help, s->section, s->key);
    if (s->type == SETTING_INT)
      fprintf(out, ", %lld..%lld", (long long)s->min, (long long)s->max);
    if (s->type == SETTING_CHOICE)
      fprintf(out, ", one of %s", s->choices);
    fprintf(out, ", default: %s\n", s->default_value[0] ? s->default_value : "(empty)");
  }
  fprintf(out,
          "  --help      this text\n  --version   print the version and the commit, then exit\n");
}
