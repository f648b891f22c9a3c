/* test_agent_auth.c — wrong agent tokens counted per address, per node id and overall: who is
 * slowed, when the count starts again, what a flood of names forgets. (Nothing here refuses a
 * right token: fabric_link.c checks every one.) */
#include "unit.h"

#include "engine/fabric/agent_auth.h"

#include <stdio.h>
#include <stdlib.h>

static struct agent_auth *new_auth(int64_t failures_max, int64_t guesses_max) {
  struct agent_auth *auth = malloc(sizeof(*auth));
  agent_auth_init(auth, failures_max, guesses_max, 60, 0x5eed);
  return auth;
}

static void an_address_past_its_limit_is_slowed_and_its_neighbours_are_not(void **state) {
  (void)state;
  struct agent_auth *auth = new_auth(3, 1000);
  for (uint32_t i = 1; i <= 3; i++) { /* one address, a new node id each time */
    char node[16];
    snprintf(node, sizeof(node), "n-%u", i);
    struct agent_auth_wrong wrong = agent_auth_failed(auth, "10.0.0.1", node, 1000);
    assert_int_equal(wrong.address_count, i);
    assert_int_equal(wrong.node_count, 1);
    assert_false(wrong.slow);
  }
  struct agent_auth_wrong fourth = agent_auth_failed(auth, "10.0.0.1", "n-4", 2000);
  assert_true(fourth.slow);
  assert_true(fourth.log_address);
  assert_false(fourth.log_node);
  struct agent_auth_wrong fifth = agent_auth_failed(auth, "10.0.0.1", "n-5", 2000);
  assert_true(fifth.slow);
  assert_false(fifth.log_address); /* reported once per window */
  /* Another address is not slowed by this one's count. */
  assert_false(agent_auth_failed(auth, "10.0.0.2", "n-1", 2000).slow);
  /* The window ends: the address starts again. */
  struct agent_auth_wrong later = agent_auth_failed(auth, "10.0.0.1", "n-6", 61000);
  assert_false(later.slow);
  assert_int_equal(later.address_count, 1);
  free(auth);
}

static void a_node_id_guessed_from_many_addresses_is_slowed(void **state) {
  (void)state;
  struct agent_auth *auth = new_auth(2, 1000);
  assert_false(agent_auth_failed(auth, "10.0.0.1", "edge-1", 1000).slow);
  assert_false(agent_auth_failed(auth, "10.0.0.2", "edge-1", 1000).slow);
  struct agent_auth_wrong third = agent_auth_failed(auth, "10.0.0.3", "edge-1", 1000);
  assert_int_equal(third.node_count, 3);
  assert_int_equal(third.address_count, 1);
  assert_true(third.slow);
  assert_true(third.log_node);
  /* Another node id from a fresh address is not. */
  assert_false(agent_auth_failed(auth, "10.0.0.4", "edge-2", 1000).slow);
  free(auth);
}

static void guessing_under_new_names_is_slowed_by_the_overall_count(void **state) {
  (void)state;
  struct agent_auth *auth = new_auth(10, 50);
  /* A guesser who changes node id and address every time never passes a per-name limit... */
  for (int i = 0; i < 50; i++) {
    char address[32], node[32];
    snprintf(address, sizeof(address), "10.1.%d.%d", i / 250, i % 250);
    snprintf(node, sizeof(node), "ghost-%d", i);
    struct agent_auth_wrong wrong = agent_auth_failed(auth, address, node, 1000 + i);
    assert_false(wrong.slow);
    assert_int_equal(wrong.overall_count, i + 1);
  }
  /* ...but past guesses_max every wrong token is, once reported. */
  struct agent_auth_wrong next = agent_auth_failed(auth, "10.9.9.9", "ghost-x", 2000);
  assert_true(next.slow);
  assert_true(next.log_overall);
  assert_false(next.log_address || next.log_node);
  assert_false(agent_auth_failed(auth, "10.9.9.8", "ghost-y", 2000).log_overall);
  assert_false(agent_auth_failed(auth, "10.9.9.9", "ghost-x", 61000).slow);
  free(auth);
}

static void a_flood_of_names_forgets_names_seen_least_never_the_guesser(void **state) {
  (void)state;
  enum { TABLE = AGENT_AUTH_BUCKETS * AGENT_AUTH_WAYS };
  struct agent_auth *auth = new_auth(2, 1000000);
  agent_auth_failed(auth, "10.0.0.1", "edge-1", 1000);
  agent_auth_failed(auth, "10.0.0.1", "edge-1", 1000);
  assert_true(agent_auth_failed(auth, "10.0.0.1", "edge-1", 1000).slow);
  /* One address guessing under twice as many new node ids as the table holds: the names seen
   * once push each other out, the address sending them all is never forgotten, nor edge-1. */
  for (int i = 0; i < 2 * TABLE; i++) {
    char node[32];
    snprintf(node, sizeof(node), "n-%d", i);
    struct agent_auth_wrong wrong = agent_auth_failed(auth, "10.9.9.9", node, 2000 + i);
    assert_int_equal(wrong.address_count, i + 1);
    assert_int_equal(wrong.node_count, 1);
    assert_int_equal(wrong.slow, i >= 2);
  }
  struct agent_auth_wrong again = agent_auth_failed(auth, "10.0.0.1", "edge-1", 5000);
  assert_int_equal(again.node_count, 4);
  assert_int_equal(again.address_count, 4);
  assert_true(again.slow);
  assert_int_equal(again.overall_count, 3 + 2 * TABLE + 1);
  free(auth);
}

static void an_unreadable_address_counts_as_one_address(void **state) {
  (void)state;
  struct agent_auth *auth = new_auth(3, 1000);
  agent_auth_failed(auth, "", "edge-1", 1000);
  assert_int_equal(agent_auth_failed(auth, "", "edge-2", 1000).address_count, 2);
  assert_int_equal(agent_auth_failed(auth, "?", "edge-3", 1000).address_count, 3);
  free(auth);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(an_address_past_its_limit_is_slowed_and_its_neighbours_are_not),
      cmocka_unit_test(a_node_id_guessed_from_many_addresses_is_slowed),
      cmocka_unit_test(guessing_under_new_names_is_slowed_by_the_overall_count),
      cmocka_unit_test(a_flood_of_names_forgets_names_seen_least_never_the_guesser),
      cmocka_unit_test(an_unreadable_address_counts_as_one_address),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
