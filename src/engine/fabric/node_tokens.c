/* node_tokens.c — per-node agent tokens read from a file (node_tokens.h). */
#include "engine/fabric/node_tokens.h"

#include "common/array.h"
#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct node_token {
  char *node_id;
  char *token;
};

struct node_tokens {
  struct node_token *entries; /* sorted by node_id */
  size_t count, cap;
};

static int node_token_compare(const void *a, const void *b) {
  return strcmp(((const struct node_token *)a)->node_id, ((const struct node_token *)b)->node_id);
}

static bool node_tokens_add(struct node_tokens *tokens, const char *node_id, const char *token) {
  if (!array_reserve((void **)&tokens->entries, &tokens->cap, tokens->count,
                     sizeof(*tokens->entries), 16))
    return false;
  struct node_token *entry = &tokens->entries[tokens->count];
  entry->node_id = strdup(node_id);
  entry->token = strdup(token);
  if (!entry->node_id || !entry->token) {
    free(entry->node_id);
    free(entry->token);
    return false;
  }
  tokens->count++;
  return true;
}

/* Parses the file's lines into tokens; returns 0 or CDR_ECONFIG with err set. */
static int node_tokens_parse(FILE *file, const char *path, struct node_tokens *tokens, char *err,
                             size_t err_size) {
  char line[1024];
  for (int number = 1; fgets(line, sizeof(line), file); number++) {
    char node_id[128], token[512], extra[2];
    char *hash = strchr(line, '#');
    if (hash)
      *hash = '\0';
    int fields = sscanf(line, "%127s %511s %1s", node_id, token, extra);
    if (fields <= 0)
      continue; /* blank or comment */
    if (fields != 2) {
      snprintf(err, err_size, "config: %s line %d: want NODE_ID TOKEN", path, number);
      return CDR_ECONFIG;
    }
    if (!node_tokens_add(tokens, node_id, token)) {
      snprintf(err, err_size, "config: %s: out of memory", path);
      return CDR_ECONFIG;
    }
  }
  qsort(tokens->entries, tokens->count, sizeof(*tokens->entries), node_token_compare);
  for (size_t i = 1; i < tokens->count; i++) {
    if (strcmp(tokens->entries[i - 1].node_id, tokens->entries[i].node_id) == 0) {
      snprintf(err, err_size, "config: %s: node %s is listed twice", path,
               tokens->entries[i].node_id);
      return CDR_ECONFIG;
    }
  }
  return 0;
}

int node_tokens_load(const char *path, struct node_tokens **out, char *err, size_t err_size) {
  FILE *file = fopen(path, "r");
  if (!file) {
    snprintf(err, err_size, "config: cannot read agents.node_tokens_file %s: %s", path,
             strerror(errno));
    return CDR_ECONFIG;
  }
  struct stat info;
  if (fstat(fileno(file), &info) == 0 && (info.st_mode & 077))
    log_warn("node_tokens.permissions",
             "%s can be read by other users (mode %03o): it holds agent secrets, make it 0600",
             path, (unsigned)(info.st_mode & 0777));
  struct node_tokens *tokens = calloc(1, sizeof(*tokens));
  int rc = tokens ? node_tokens_parse(file, path, tokens, err, err_size) : CDR_ECONFIG;
  fclose(file);
  if (rc) {
    node_tokens_free(tokens);
    return rc;
  }
  *out = tokens;
  return 0;
}

const char *node_tokens_find(const struct node_tokens *tokens, const char *node_id) {
  if (!tokens || tokens->count == 0)
    return NULL;
  struct node_token key = {(char *)(uintptr_t)node_id, NULL};
  const struct node_token *found =
      bsearch(&key, tokens->entries, tokens->count, sizeof(key), node_token_compare);
  return found ? found->token : NULL;
}

size_t node_tokens_count(const struct node_tokens *tokens) { return tokens ? tokens->count : 0; }

void node_tokens_free(struct node_tokens *tokens) {
  if (!tokens)
    return;
  for (size_t i = 0; i < tokens->count; i++) {
    free(tokens->entries[i].node_id);
    free(tokens->entries[i].token);
  }
  free(tokens->entries);
  free(tokens);
}
