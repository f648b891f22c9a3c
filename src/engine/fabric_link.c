/* fabric_link.c — the engine's end of one agent link: Hello checks, Welcome or Refusal,
 * heartbeats both ways, and the hand-off of Results to the fabric. */
#include "common/clock.h"
#include "common/log.h"
#include "engine/fabric_internal.h"
#include "version.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

enum { FABRIC_HELLO_TIMEOUT_MS = 5000 };

static struct fabric_link *fabric_link_of(struct link_conn *conn) { return conn->owner; }

#define FABRIC_LINK_OF_TIMER(timer, member)                                                        \
  ((struct fabric_link *)(void *)((char *)(timer)-offsetof(struct fabric_link, member)))

static void fabric_link_on_heartbeat(struct wheel_timer *timer) {
  struct fabric_link *link = FABRIC_LINK_OF_TIMER(timer, heartbeat);
  /* An idle link holds no buffer and its node no window; a busy one grows them again. */
  link_conn_trim(&link->conn);
  if (link->node)
    fabric_node_trim(link->node);
  Cdr__Heartbeat heartbeat;
  cdr__heartbeat__init(&heartbeat);
  heartbeat.sent_ms = (uint64_t)clock_now_ms();
  if (link_conn_send(&link->conn, FRAME_HEARTBEAT, &heartbeat.base) == 0)
    timer_wheel_start(&link->fabric->wheel, timer, (uint64_t)link->fabric->config->heartbeat_ms,
                      fabric_link_on_heartbeat);
}

static void fabric_link_on_silence(struct wheel_timer *timer) {
  struct fabric_link *link = FABRIC_LINK_OF_TIMER(timer, liveness);
  link_conn_close(&link->conn,
                  link->node ? "missed heartbeats: node is offline" : "no Hello in time");
}

static void fabric_link_refuse(struct fabric_link *link, const char *code, const char *reason) {
  Cdr__Refusal refusal;
  cdr__refusal__init(&refusal);
  refusal.code = (char *)(uintptr_t)code;
  refusal.reason = (char *)(uintptr_t)reason;
  log_warn("agent.refused", "agent %s refused: %s (%s)", link->conn.peer, reason, code);
  if (link_conn_send(&link->conn, FRAME_REFUSAL, &refusal.base) == 0)
    link_conn_finish(&link->conn, "hello refused");
}

/* Compares a token with the configured one in time that depends on neither (their SHA-256 digests
 * are compared in constant time), so timing tells a prober nothing about the secret. */
static bool fabric_link_token_ok(const char *given, const char *expected) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256((const unsigned char *)given, strlen(given), a);
  SHA256((const unsigned char *)expected, strlen(expected), b);
  return CRYPTO_memcmp(a, b, sizeof(a)) == 0;
}

/* The numeric address of link's peer, without the port ("" when unknown). */
static void fabric_link_peer_address(struct fabric_link *link, char *out, size_t size) {
  struct sockaddr_storage peer;
  int len = sizeof(peer);
  out[0] = '\0';
  if (uv_tcp_getpeername(&link->conn.tcp, (struct sockaddr *)&peer, &len) != 0)
    return;
  if (peer.ss_family == AF_INET)
    uv_ip4_name((const struct sockaddr_in *)&peer, out, size);
  else if (peer.ss_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)&peer, out, size);
}

/* Checks hello's token (the node's own from agents.node_tokens_file, else the shared one) after
 * asking what the engine remembers of wrong tokens (agent_auth.h) whether to check it at all.
 * Refuses and returns false when the Hello may not go on. */
static bool fabric_link_authenticate(struct fabric_link *link, const Cdr__Hello *hello) {
  struct fabric *fabric = link->fabric;
  const char *address = link->address;
  int64_t now = clock_now_ms();
  const char *own = node_tokens_find(fabric->node_tokens, hello->node_id);
  struct fabric_node *known = fabric_node_find(fabric, hello->node_id);
  bool known_address = known && known->auth_address[0] && strcmp(known->auth_address, address) == 0;
  bool first_refusal = false;
  switch (agent_auth_before(&fabric->auth, address, hello->node_id, own != NULL, known_address, now,
                            &first_refusal)) {
  case AGENT_AUTH_CHECK: break;
  case AGENT_AUTH_PAIR_BLOCKED:
    if (first_refusal)
      log_warn("agent.blocked",
               "agent address %s sent %lld wrong tokens for node id %.64s: its Hellos for that "
               "node are refused unchecked for the rest of the %lld s window",
               address, (long long)fabric->config->auth_failures_max, hello->node_id,
               (long long)fabric->config->auth_window_s);
    fabric_link_refuse(link, "too_many_failures",
                       "too many wrong tokens for this node id from this address; try again later");
    return false;
  case AGENT_AUTH_GUESSING:
    if (first_refusal)
      log_error("agent.guessing",
                "%lld wrong agent tokens within %lld s: until the window ends, Hellos with the "
                "shared token are checked only from the address each node last authenticated "
                "from (nodes with their own token are always checked)",
                (long long)fabric->config->auth_guesses_max,
                (long long)fabric->config->auth_window_s);
    fabric_link_refuse(link, "too_many_failures", "too many wrong tokens overall; try again later");
    return false;
  }
  if (fabric_link_token_ok(hello->token, own ? own : fabric->config->agent_token)) {
    agent_auth_succeeded(&fabric->auth, address, hello->node_id, now);
    return true;
  }
  uint32_t count = agent_auth_failed(&fabric->auth, address, hello->node_id, now);
  log_warn("agent.bad_token", "wrong token from %s (node id %.64s), %u in this window", address,
           hello->node_id, count);
  fabric_link_refuse(link, "wrong_token", "the token does not match the engine's agents.token");
  return false;
}

static void fabric_link_on_hello(struct fabric_link *link, const Cdr__Hello *hello) {
  struct fabric *fabric = link->fabric;
  if (!fabric_link_authenticate(link, hello))
    return;
  snprintf(link->conn.peer, sizeof(link->conn.peer), "%.40s", hello->node_id);
  if (hello->protocol_version != FRAME_VERSION) {
    fabric_link_refuse(link, "unsupported_version", "the engine speaks link protocol version 1");
    return;
  }
  bool groups_ok = hello->n_groups <= 64;
  for (size_t i = 0; groups_ok && i < hello->n_groups; i++)
    groups_ok = fabric_name_valid(hello->groups[i], strlen(hello->groups[i]), 64);
  if (!fabric_name_valid(hello->node_id, strlen(hello->node_id), NODE_ID_MAX) || !groups_ok ||
      hello->window == 0 || !fabric_name_valid(hello->cache_kind, strlen(hello->cache_kind), 15)) {
    fabric_link_refuse(link, "bad_hello",
                       "node id, groups and cache kind must be 1..64 of A-Z a-z 0-9 . _ -, "
                       "window at least 1");
    return;
  }
  struct fabric_node *existing = fabric_node_find(fabric, hello->node_id);
  if (existing && existing->link) {
    fabric_link_refuse(link, "duplicate_node", "another agent is connected with this node id");
    return;
  }
  struct fabric_node *node = fabric_node_register(fabric, hello);
  if (!node) {
    link_conn_close(&link->conn, "out of memory registering the node");
    return;
  }
  Cdr__Welcome welcome;
  cdr__welcome__init(&welcome);
  char engine_id[] = "cdnrefresh-engine " CDR_VERSION;
  welcome.engine_id = engine_id;
  welcome.heartbeat_interval_ms = (uint32_t)fabric->config->heartbeat_ms;
  welcome.heartbeat_misses = (uint32_t)fabric->config->heartbeat_misses;
  if (link_conn_send(&link->conn, FRAME_WELCOME, &welcome.base))
    return;
  link->node = node;
  node->link = link;
  snprintf(node->auth_address, sizeof(node->auth_address), "%s", link->address);
  uint32_t window = hello->window;
  if (window > (uint64_t)fabric->config->max_window)
    window = (uint32_t)fabric->config->max_window;
  timer_wheel_start(&fabric->wheel, &link->heartbeat, (uint64_t)fabric->config->heartbeat_ms,
                    fabric_link_on_heartbeat);
  fabric_node_online(fabric, node, window);
}

static void fabric_link_on_frame(struct link_conn *conn, enum frame_type type,
                                 ProtobufCMessage *message) {
  struct fabric_link *link = fabric_link_of(conn);
  struct fabric *fabric = link->fabric;
  uint64_t silence = (uint64_t)(fabric->config->heartbeat_ms * fabric->config->heartbeat_misses);
  timer_wheel_start(&fabric->wheel, &link->liveness, silence, fabric_link_on_silence);
  if (link->node)
    link->node->last_heartbeat_ms = clock_now_ms();
  if (!link->node && type != FRAME_HELLO) {
    link_conn_close(conn, "first frame was not a Hello");
    return;
  }
  switch (type) {
  case FRAME_HELLO:
    if (link->node)
      link_conn_close(conn, "a second Hello");
    else
      fabric_link_on_hello(link, (const Cdr__Hello *)message);
    return;
  case FRAME_RESULTS:
    fabric_results_apply(fabric, link->node, (const Cdr__Results *)message);
    return;
  case FRAME_HEARTBEAT: return;
  default: link_conn_close(conn, "unexpected frame type from an agent"); return;
  }
}

static void fabric_link_on_close(struct link_conn *conn) {
  struct fabric_link *link = fabric_link_of(conn);
  struct fabric *fabric = link->fabric;
  timer_wheel_stop(&fabric->wheel, &link->heartbeat);
  timer_wheel_stop(&fabric->wheel, &link->liveness);
  if (link->node) {
    link->node->link = NULL;
    fabric_node_offline(fabric, link->node);
  }
  if (link->prev)
    link->prev->next = link->next;
  else
    fabric->links = link->next;
  if (link->next)
    link->next->prev = link->prev;
  free(link);
}

void fabric_link_accept(struct fabric *fabric) {
  struct fabric_link *link = calloc(1, sizeof(*link));
  if (!link)
    return;
  link->fabric = fabric;
  link_conn_init(&link->conn, &fabric->loop, &fabric->link_buffers, fabric_link_on_frame,
                 fabric_link_on_close, link);
  link->next = fabric->links;
  if (fabric->links)
    fabric->links->prev = link;
  fabric->links = link;
  if (uv_accept((uv_stream_t *)&fabric->listener, (uv_stream_t *)&link->conn.tcp) != 0 ||
      (fabric->tls && link_conn_tls(&link->conn, fabric->tls, true, "")) ||
      link_conn_start(&link->conn) != 0) {
    link_conn_close(&link->conn, "accept failed");
    return;
  }
  fabric_link_peer_address(link, link->address, sizeof(link->address));
  snprintf(link->conn.peer, sizeof(link->conn.peer), "from %s",
           link->address[0] ? link->address : "?");
  timer_wheel_start(&fabric->wheel, &link->liveness, FABRIC_HELLO_TIMEOUT_MS,
                    fabric_link_on_silence);
}

void fabric_link_close_all(struct fabric *fabric) {
  for (struct fabric_link *link = fabric->links; link; link = link->next)
    link_conn_close(&link->conn, "engine is stopping");
}
