/* agent_auth.c — wrong-token counting per (address, node id) and overall (agent_auth.h). */
#include "engine/fabric/agent_auth.h"

#include <stdio.h>
#include <string.h>

void agent_auth_init(struct agent_auth *auth, int64_t failures_max, int64_t guesses_max,
                     int64_t window_s) {
  memset(auth, 0, sizeof(*auth));
  auth->failures_max = failures_max;
  auth->guesses_max = guesses_max;
  auth->window_ms = window_s * 1000;
}

/* The pair's entry with its window brought up to date, or — when create — a new one in a free
 * entry or in place of the one whose window began first (so a flood of new pairs can push a
 * blocked pair out; the overall count then still holds). NULL when there is none and !create.
 * A peer whose address could not be read counts under "?". */
static struct agent_auth_pair *agent_auth_pair(struct agent_auth *auth, const char *address,
                                               const char *node_id, int64_t now_ms, bool create) {
  if (!address[0])
    address = "?";
  struct agent_auth_pair *victim = NULL;
  for (size_t i = 0; i < AGENT_AUTH_PAIRS; i++) {
    struct agent_auth_pair *pair = &auth->pairs[i];
    if (pair->address[0] && strcmp(pair->address, address) == 0 &&
        strcmp(pair->node_id, node_id) == 0) {
      if (now_ms - pair->window_start_ms >= auth->window_ms)
        *pair = (struct agent_auth_pair){.window_start_ms = now_ms};
      snprintf(pair->address, sizeof(pair->address), "%s", address);
      snprintf(pair->node_id, sizeof(pair->node_id), "%s", node_id);
      return pair;
    }
    bool better =
        !victim || (victim->address[0] &&
                    (!pair->address[0] || pair->window_start_ms < victim->window_start_ms));
    if (better)
      victim = pair;
  }
  if (!create)
    return NULL;
  *victim = (struct agent_auth_pair){.window_start_ms = now_ms};
  snprintf(victim->address, sizeof(victim->address), "%s", address);
  snprintf(victim->node_id, sizeof(victim->node_id), "%s", node_id);
  return victim;
}

static void agent_auth_roll_guesses(struct agent_auth *auth, int64_t now_ms) {
  if (now_ms - auth->guesses_window_start_ms >= auth->window_ms) {
    auth->guesses_window_start_ms = now_ms;
    auth->guesses = 0;
    auth->flood_logged = false;
  }
}

enum agent_auth_verdict agent_auth_before(struct agent_auth *auth, const char *address,
                                          const char *node_id, bool own_token, bool known_address,
                                          int64_t now_ms, bool *first_refusal) {
  *first_refusal = false;
  if (own_token)
    return AGENT_AUTH_CHECK;
  struct agent_auth_pair *pair = agent_auth_pair(auth, address, node_id, now_ms, false);
  if (pair && pair->count >= (uint64_t)auth->failures_max) {
    *first_refusal = !pair->block_logged;
    pair->block_logged = true;
    return AGENT_AUTH_PAIR_BLOCKED;
  }
  agent_auth_roll_guesses(auth, now_ms);
  if (auth->guesses >= (uint64_t)auth->guesses_max && !known_address) {
    *first_refusal = !auth->flood_logged;
    auth->flood_logged = true;
    return AGENT_AUTH_GUESSING;
  }
  return AGENT_AUTH_CHECK;
}

uint32_t agent_auth_failed(struct agent_auth *auth, const char *address, const char *node_id,
                           int64_t now_ms) {
  agent_auth_roll_guesses(auth, now_ms);
  auth->guesses++;
  struct agent_auth_pair *pair = agent_auth_pair(auth, address, node_id, now_ms, true);
  return ++pair->count;
}

void agent_auth_succeeded(struct agent_auth *auth, const char *address, const char *node_id,
                          int64_t now_ms) {
  struct agent_auth_pair *pair = agent_auth_pair(auth, address, node_id, now_ms, false);
  if (pair)
    memset(pair, 0, sizeof(*pair));
}
