/* agent_auth.h — what the engine remembers of wrong agent tokens, to keep guessing slow without
 * letting anyone lock a real agent out.
 *
 * Wrong tokens are counted per (peer address, claimed node id) pair within a window: a pair that
 * sent failures_max of them has its Hellos refused unchecked until the window ends — another node
 * id on the same address (a shared NAT, a second agent on the host) is not affected. Wrong tokens
 * of every pair together are counted too: past guesses_max in a window (someone trying the shared
 * token under ever new node ids or addresses), a shared-token Hello is checked only when it comes
 * from the address its node last authenticated from. A node with its own token (node_tokens.h) is
 * always checked: a correct own token proves the node whatever else happened, so it is never
 * refused for someone else's guesses.
 *
 * Plain data and no I/O: the fabric thread owns one and asks it before each token check. */
#ifndef CDR_AGENT_AUTH_H
#define CDR_AGENT_AUTH_H

#include <stdbool.h>
#include <stdint.h>

enum {
  AGENT_AUTH_PAIRS = 256,  /* (address, node id) pairs whose recent wrong tokens are remembered */
  AGENT_AUTH_ADDRESS = 48, /* a numeric IPv4 or IPv6 address and its NUL */
  AGENT_AUTH_NODE_ID = 65, /* a node id (FABRIC_NODE_ID_MAX) and its NUL */
};

struct agent_auth_pair {
  char address[AGENT_AUTH_ADDRESS]; /* "" when the entry is free */
  char node_id[AGENT_AUTH_NODE_ID];
  int64_t window_start_ms;
  uint32_t count;
  bool block_logged; /* the first Hello refused for this pair was logged */
};

struct agent_auth {
  int64_t failures_max; /* wrong tokens per pair and window before the pair is refused */
  int64_t guesses_max;  /* wrong tokens of all pairs per window before unknown addresses are */
  int64_t window_ms;
  int64_t guesses_window_start_ms;
  uint64_t guesses; /* wrong tokens of all pairs in the current window */
  bool flood_logged;
  struct agent_auth_pair pairs[AGENT_AUTH_PAIRS];
};

enum agent_auth_verdict {
  AGENT_AUTH_CHECK,        /* check the token */
  AGENT_AUTH_PAIR_BLOCKED, /* refuse unchecked: this pair sent too many wrong tokens */
  AGENT_AUTH_GUESSING,     /* refuse unchecked: too many wrong tokens overall, unknown address */
};

void agent_auth_init(struct agent_auth *auth, int64_t failures_max, int64_t guesses_max,
                     int64_t window_s);

/* What to do with a Hello from address claiming node_id. own_token: the node has its own token;
 * known_address: address is where the node last authenticated from. *first_refusal is set true
 * the first time in a window a pair or the flood refuses (so callers log once, not per Hello). */
enum agent_auth_verdict agent_auth_before(struct agent_auth *auth, const char *address,
                                          const char *node_id, bool own_token, bool known_address,
                                          int64_t now_ms, bool *first_refusal);

/* Counts a wrong token from (address, node_id); returns the pair's count in this window. */
uint32_t agent_auth_failed(struct agent_auth *auth, const char *address, const char *node_id,
                           int64_t now_ms);

/* A correct token from (address, node_id): the pair's count starts again. */
void agent_auth_succeeded(struct agent_auth *auth, const char *address, const char *node_id,
                          int64_t now_ms);

#endif
