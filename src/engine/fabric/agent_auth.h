/* agent_auth.h — what the engine remembers of wrong agent tokens: enough to slow and report a
 * guesser, never enough to refuse the holder of the token.
 *
 * Every Hello's token is checked, whatever came before it: the token is the secret, so a Hello
 * that holds it is welcomed even while someone guesses from the same address under the same node
 * id, and nothing here has to survive a restart. Wrong tokens are counted within a window per peer
 * address, per claimed node id and over all peers. A wrong token past failures_max for its
 * address or for its node id, or past guesses_max over all peers, is "slow": the engine answers it
 * only after a pause (fabric_link.c), so a guesser that waits for its answers gets one per pause
 * and connection, and each kind of flood is logged once per window instead of once per Hello.
 *
 * Plain data and no I/O: the fabric thread owns one and tells it each wrong token. */
#ifndef CDR_AGENT_AUTH_H
#define CDR_AGENT_AUTH_H

#include <stdbool.h>
#include <stdint.h>

enum {
  AGENT_AUTH_BUCKETS = 128, /* counts live in a keyed-hash table of this many buckets... */
  AGENT_AUTH_WAYS = 4,      /* ...of this many entries; a full bucket forgets its least count */
  AGENT_AUTH_KEY = 68,      /* a kind letter, a node id (64) or a numeric address (47), a NUL */
};

struct agent_auth_count {
  char key[AGENT_AUTH_KEY]; /* 'a' + address or 'n' + node id; "" while the entry is free */
  int64_t window_start_ms;
  uint32_t count; /* wrong tokens in this window */
  bool logged;    /* passing the limit in this window was reported */
};

struct agent_auth {
  int64_t failures_max; /* wrong tokens per address, and per node id, answered at once */
  int64_t guesses_max;  /* wrong tokens over all peers answered at once */
  int64_t window_ms;
  uint64_t seed; /* of the hash, so a guesser cannot aim its names at one bucket */
  struct agent_auth_count overall;
  struct agent_auth_count counts[AGENT_AUTH_BUCKETS][AGENT_AUTH_WAYS];
};

/* What one wrong token makes of its sender. */
struct agent_auth_wrong {
  uint32_t address_count, node_count, overall_count; /* in their windows, this one included */
  bool slow;                                         /* past a limit: answer it after the pause */
  bool log_address; /* the address, the node id, all peers passed their limit just now: */
  bool log_node;    /* each true once per window, to be logged */
  bool log_overall;
};

void agent_auth_init(struct agent_auth *auth, int64_t failures_max, int64_t guesses_max,
                     int64_t window_s, uint64_t seed);

/* Counts a wrong token from address (a numeric IP; "" when unknown) claiming node_id. */
struct agent_auth_wrong agent_auth_failed(struct agent_auth *auth, const char *address,
                                          const char *node_id, int64_t now_ms);

#endif
