/* test_agent_auth.c — wrong agent tokens counted per (address, node id) and overall. */
#include "unit.h"

#include "engine/fabric/agent_auth.h"

#include <stdio.h>
#include <stdlib.h>

static enum agent_auth_verdict ask(struct agent_auth *auth, const char *address, const char *node,
                                   bool own_token, bool known_address, int64_t now_ms) {
  bool first = false;
  return agent_auth_before(auth, address, node, own_token, known_address, now_ms, &first);
}

static void a_pair_is_blocked_and_its_neighbours_are_not(void **state) {
  (void)state;
  struct agent_auth *auth = malloc(sizeof(*auth));
  agent_auth_init(auth, 3, 1000, 60);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(ask(auth, "10.0.0.1", "edge-1", false, false, 1000), AGENT_AUTH_CHECK);
    assert_int_equal(agent_auth_failed(auth, "10.0.0.1", "edge-1", 1000), i + 1);
  }
  bool first = false;
  assert_int_equal(agent_auth_before(auth, "10.0.0.1", "edge-1", false, true, 2000, &first),
                   AGENT_AUTH_PAIR_BLOCKED);
  assert_true(first);
  assert_int_equal(agent_auth_before(auth, "10.0.0.1", "edge-1", false, true, 2000, &first),
                   AGENT_AUTH_PAIR_BLOCKED);
  assert_false(first); /* logged once per window */
  /* The same address for another node, and the same node from another address, are checked. */
  assert_int_equal(ask(auth, "10.0.0.1", "edge-2", false, false, 2000), AGENT_AUTH_CHECK);
  assert_int_equal(ask(auth, "10.0.0.2", "edge-1", false, false, 2000), AGENT_AUTH_CHECK);
  /* A node with its own token is checked even from the blocked pair. */
  assert_int_equal(ask(auth, "10.0.0.1", "edge-1", true, false, 2000), AGENT_AUTH_CHECK);
  /* The window ends. */
  assert_int_equal(ask(auth, "10.0.0.1", "edge-1", false, false, 61000), AGENT_AUTH_CHECK);
  free(auth);
}

static void guessing_under_new_names_stops_at_the_overall_count(void **state) {
  (void)state;
  struct agent_auth *auth = malloc(sizeof(*auth));
  agent_auth_init(auth, 10, 50, 60);
  /* A guesser who changes node id (and address) every time never trips a pair. */
  for (int i = 0; i < 50; i++) {
    char address[32], node[32];
    snprintf(address, sizeof(address), "10.1.%d.%d", i / 250, i % 250);
    snprintf(node, sizeof(node), "ghost-%d", i);
    assert_int_equal(ask(auth, address, node, false, false, 1000 + i), AGENT_AUTH_CHECK);
    agent_auth_failed(auth, address, node, 1000 + i);
  }
  assert_int_equal(ask(auth, "10.9.9.9", "ghost-x", false, false, 2000), AGENT_AUTH_GUESSING);
  /* Meanwhile a real agent coming back from where it last authenticated is checked, and so is a
   * node with its own token from anywhere. */
  assert_int_equal(ask(auth, "10.0.0.7", "edge-7", false, true, 2000), AGENT_AUTH_CHECK);
  assert_int_equal(ask(auth, "10.9.9.9", "edge-8", true, false, 2000), AGENT_AUTH_CHECK);
  assert_int_equal(ask(auth, "10.9.9.9", "ghost-x", false, false, 61000), AGENT_AUTH_CHECK);
  free(auth);
}

static void a_flood_of_pairs_recycles_the_oldest_entry(void **state) {
  (void)state;
  struct agent_auth *auth = malloc(sizeof(*auth));
  agent_auth_init(auth, 2, 1000000, 60);
  agent_auth_failed(auth, "10.0.0.1", "edge-1", 1000);
  agent_auth_failed(auth, "10.0.0.1", "edge-1", 1000);
  for (int i = 0; i < AGENT_AUTH_PAIRS - 1; i++) {
    char node[32];
    snprintf(node, sizeof(node), "n-%d", i);
    agent_auth_failed(auth, "10.0.0.2", node, 2000);
  }
  assert_int_equal(ask(auth, "10.0.0.1", "edge-1", false, false, 3000), AGENT_AUTH_PAIR_BLOCKED);
  agent_auth_failed(auth, "10.0.0.2", "one-more", 3000); /* the table is full: edge-1's goes */
  assert_int_equal(ask(auth, "10.0.0.1", "edge-1", false, false, 3000), AGENT_AUTH_CHECK);
  assert_int_equal(ask(auth, "10.0.0.2", "n-0", false, false, 3000), AGENT_AUTH_CHECK);
  assert_int_equal(agent_auth_failed(auth, "10.0.0.2", "n-5", 3000), 2); /* still remembered */
  free(auth);
}

static void a_correct_token_starts_the_count_again(void **state) {
  (void)state;
  struct agent_auth *auth = malloc(sizeof(*auth));
  agent_auth_init(auth, 3, 1000, 60);
  agent_auth_failed(auth, "", "edge-1", 1000); /* an unreadable address counts as "?" */
  agent_auth_failed(auth, "", "edge-1", 1000);
  agent_auth_succeeded(auth, "", "edge-1", 1000);
  assert_int_equal(agent_auth_failed(auth, "", "edge-1", 1000), 1);
  free(auth);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(a_pair_is_blocked_and_its_neighbours_are_not),
      cmocka_unit_test(guessing_under_new_names_stops_at_the_overall_count),
      cmocka_unit_test(a_flood_of_pairs_recycles_the_oldest_entry),
      cmocka_unit_test(a_correct_token_starts_the_count_again),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
