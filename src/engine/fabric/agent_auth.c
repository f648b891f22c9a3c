/* agent_auth.c — wrong agent tokens counted per address, per node id and overall (agent_auth.h). */
#include "engine/fabric/agent_auth.h"

#include <stdio.h>
#include <string.h>

void agent_auth_init(struct agent_auth *auth, int64_t failures_max, int64_t guesses_max,
                     int64_t window_s, uint64_t seed) {
  memset(auth, 0, sizeof(*auth));
  auth->failures_max = failures_max;
  auth->guesses_max = guesses_max;
  auth->window_ms = window_s * 1000;
  auth->seed = seed;
}

/* FNV-1a over the key, started from the seed and mixed at the end. */
static uint64_t agent_auth_hash(const struct agent_auth *auth, const char *key) {
  uint64_t hash = 14695981039346656037ULL ^ auth->seed;
  for (const unsigned char *at = (const unsigned char *)key; *at; at++)
    hash = (hash ^ *at) * 1099511628211ULL;
  hash ^= hash >> 31;
  return hash * 0x9e3779b97f4a7c15ULL;
}

/* Counts one more wrong token on entry, starting its window again when the last one ended;
 * returns true when the count has just passed limit for the first time in the window. */
static bool agent_auth_count(struct agent_auth *auth, struct agent_auth_count *entry, int64_t limit,
                             int64_t now_ms) {
  if (now_ms - entry->window_start_ms >= auth->window_ms) {
    entry->window_start_ms = now_ms;
    entry->count = 0;
    entry->logged = false;
  }
  if (entry->count < UINT32_MAX)
    entry->count++;
  if (entry->count <= (uint64_t)limit || entry->logged)
    return false;
  entry->logged = true;
  return true;
}

/* How little entry matters when a name needs its place: a free entry or one whose window has
 * ended not at all, else by its count of wrong tokens. */
static uint64_t agent_auth_weight(const struct agent_auth *auth,
                                  const struct agent_auth_count *entry, int64_t now_ms) {
  if (!entry->key[0] || now_ms - entry->window_start_ms >= auth->window_ms)
    return 0;
  return entry->count;
}

/* The entry of kind ('a' or 'n') and name: the one that has it, else — never keep — the one in its
 * bucket that matters least (agent_auth_weight; the oldest window among equals). So a flood of
 * new names pushes out names seen a few times, not the address that sends them all; the overall
 * count holds whatever is forgotten. */
static struct agent_auth_count *agent_auth_entry(struct agent_auth *auth, char kind,
                                                 const char *name, int64_t now_ms,
                                                 const struct agent_auth_count *keep) {
  char key[AGENT_AUTH_KEY];
  snprintf(key, sizeof(key), "%c%s", kind, name);
  struct agent_auth_count *bucket = auth->counts[agent_auth_hash(auth, key) % AGENT_AUTH_BUCKETS];
  struct agent_auth_count *victim = NULL;
  for (size_t i = 0; i < AGENT_AUTH_WAYS; i++) {
    struct agent_auth_count *entry = &bucket[i];
    if (strcmp(entry->key, key) == 0)
      return entry;
    if (entry == keep)
      continue;
    uint64_t weight = agent_auth_weight(auth, entry, now_ms);
    uint64_t least = victim ? agent_auth_weight(auth, victim, now_ms) : UINT64_MAX;
    if (weight < least || (weight == least && entry->window_start_ms < victim->window_start_ms))
      victim = entry;
  }
  *victim = (struct agent_auth_count){.window_start_ms = INT64_MIN / 2};
  memcpy(victim->key, key, sizeof(key));
  return victim;
}

struct agent_auth_wrong agent_auth_failed(struct agent_auth *auth, const char *address,
                                          const char *node_id, int64_t now_ms) {
  struct agent_auth_wrong wrong = {0};
  struct agent_auth_count *by_address =
      agent_auth_entry(auth, 'a', address[0] ? address : "?", now_ms, NULL);
  struct agent_auth_count *by_node = agent_auth_entry(auth, 'n', node_id, now_ms, by_address);
  wrong.log_address = agent_auth_count(auth, by_address, auth->failures_max, now_ms);
  wrong.log_node = agent_auth_count(auth, by_node, auth->failures_max, now_ms);
  wrong.log_overall = agent_auth_count(auth, &auth->overall, auth->guesses_max, now_ms);
  wrong.address_count = by_address->count;
  wrong.node_count = by_node->count;
  wrong.overall_count = auth->overall.count;
  wrong.slow = by_address->count > (uint64_t)auth->failures_max ||
               by_node->count > (uint64_t)auth->failures_max ||
               auth->overall.count > (uint64_t)auth->guesses_max;
  return wrong;
}
