/* cli_credentials.c — where the client finds its tenant's access key and secret: --key/--secret,
 * then $CDNREFRESH_KEY/$CDNREFRESH_SECRET, then a credentials file (--credentials FILE,
 * $CDNREFRESH_CREDENTIALS, or ~/.config/cdnrefresh/credentials when it exists) of "key = ..." and
 * "secret = ..." lines, which should be readable by its owner only. */
#include "cli/cli.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int cli_credentials_entry(void *user, const char *section, const char *name,
                                 const char *value) {
  struct cli_credentials *out = user;
  (void)section;
  char *copy = strdup(value);
  if (!copy)
    return 0;
  char **slot = strcmp(name, "key") == 0      ? &out->file_key
                : strcmp(name, "secret") == 0 ? &out->file_secret
                                              : NULL;
  if (!slot) {
    free(copy);
    fprintf(stderr, "cdnrefresh: unknown entry '%s' in the credentials file (key, secret)\n", name);
    return 0;
  }
  free(*slot);
  *slot = copy;
  return 1;
}

/* Reads path into out; a missing default file is no error. */
static int cli_credentials_read(const char *path, bool required, struct cli_credentials *out) {
  struct stat info;
  if (stat(path, &info) != 0) {
    if (!required && errno == ENOENT)
      return CLI_EXIT_OK;
    fprintf(stderr, "cdnrefresh: cannot read the credentials file %s: %s\n", path, strerror(errno));
    return CLI_EXIT_USAGE;
  }
  if (info.st_mode & 077)
    fprintf(stderr,
            "cdnrefresh: warning: the credentials file %s can be read by others (mode %03o); "
            "run chmod 600 %s\n",
            path, (unsigned)(info.st_mode & 0777), path);
  if (ini_parse(path, cli_credentials_entry, out) != 0) {
    fprintf(stderr,
            "cdnrefresh: the credentials file %s must hold 'key = ...' and 'secret = ...' "
            "lines\n",
            path);
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}

int cli_credentials_load(const char *flag_key, const char *flag_secret, const char *flag_file,
                         struct cli_credentials *out) {
  const char *env_key = getenv("CDNREFRESH_KEY");
  const char *env_secret = getenv("CDNREFRESH_SECRET");
  const char *env_file = getenv("CDNREFRESH_CREDENTIALS");
  const char *file = flag_file ? flag_file : env_file && env_file[0] ? env_file : NULL;
  char default_file[4096];
  const char *home = getenv("HOME");
  if (!file && home && home[0]) {
    snprintf(default_file, sizeof(default_file), "%s/.config/cdnrefresh/credentials", home);
    file = default_file;
  }
  out->key = flag_key ? flag_key : env_key && env_key[0] ? env_key : NULL;
  out->secret = flag_secret ? flag_secret : env_secret && env_secret[0] ? env_secret : NULL;
  if ((!out->key || !out->secret) && file) {
    int rc = cli_credentials_read(file, file != default_file, out);
    if (rc)
      return rc;
    if (!out->key)
      out->key = out->file_key;
    if (!out->secret)
      out->secret = out->file_secret;
  }
  if (!out->key != !out->secret) {
    fprintf(stderr,
            "cdnrefresh: a signed request needs both an access key and a secret; only "
            "the %s was given\n",
            out->key ? "key" : "secret");
    return CLI_EXIT_USAGE;
  }
  return CLI_EXIT_OK;
}

void cli_credentials_free(struct cli_credentials *credentials) {
  free(credentials->file_key);
  free(credentials->file_secret);
  credentials->file_key = credentials->file_secret = NULL;
}
