/* node_tokens.h — per-node agent tokens (agents.node_tokens_file): one "NODE_ID TOKEN" per line,
 * '#' comments and blank lines allowed. A node listed there must present its own token; other
 * nodes present the shared agents.token. Read once at start; the file should be readable by the
 * engine's user only (a warning is logged otherwise). */
#ifndef CDR_NODE_TOKENS_H
#define CDR_NODE_TOKENS_H

#include <stddef.h>

struct node_tokens;

/* Reads path. Returns 0, or CDR_ECONFIG with err naming the file and line. */
int node_tokens_load(const char *path, struct node_tokens **out, char *err, size_t err_size);

/* The token node_id must present, or NULL when the file does not list it. */
const char *node_tokens_find(const struct node_tokens *tokens, const char *node_id);

/* Nodes listed. */
size_t node_tokens_count(const struct node_tokens *tokens);

void node_tokens_free(struct node_tokens *tokens);

#endif
