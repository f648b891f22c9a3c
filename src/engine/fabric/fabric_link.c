/* fabric_link.c — the engine's end of one agent link: Hello checks, Welcome or Refusal,
 * heartbeats both ways, and the hand-off of Results to the fabric. */
#include "common/array.h"
#include "common/clock.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"
#include "version.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

enum {
  /* The largest frame a peer may send before its Welcome: a Hello with 64 groups of 64
   * characters, a 64-character node id and a token of a few kilobytes fits several times. */
  FABRIC_HELLO_MAX_PAYLOAD = 16 * 1024,
  /* How long a wrong token past a limit waits for its refusal (agent_auth.h). */
  FABRIC_WRONG_TOKEN_PAUSE_MS = 1000,
};

static struct fabric_link *fabric_link_of(struct link_conn *conn) { return conn->owner; }

#define FABRIC_LINK_OF_TIMER(timer, member) CONTAINER_OF(timer, struct fabric_link, member)

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

/* Refuses link's Hello and closes the link once the refusal is written (or when it has not been
 * within the Hello timeout); any frame after it closes the link at once (fabric_link_on_frame),
 * so one connection gets one token checked. Wrong tokens are logged by fabric_link_log_wrong. */
static void fabric_link_refuse(struct fabric_link *link, const char *code, const char *reason) {
  Cdr__Refusal refusal;
  cdr__refusal__init(&refusal);
  refusal.code = (char *)(uintptr_t)code;
  refusal.reason = (char *)(uintptr_t)reason;
  if (strcmp(code, "wrong_token") != 0)
    log_warn("agent.refused", "agent %s refused: %s (%s)", link->conn.peer, reason, code);
  link->refused = true;
  timer_wheel_start(&link->fabric->wheel, &link->liveness,
                    (uint64_t)link->fabric->config->hello_timeout_ms, fabric_link_on_silence);
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

static void fabric_link_refuse_token(struct fabric_link *link) {
  fabric_link_refuse(link, "wrong_token", "the token does not match the engine's agents.token");
}

/* Sends a slow wrong-token refusal once its pause is over (fabric_link_authenticate). */
static void fabric_link_on_refusal_due(struct wheel_timer *timer) {
  fabric_link_refuse_token(FABRIC_LINK_OF_TIMER(timer, liveness));
}

/* Logs what a wrong token tells: each one while its sender is under the limits, then once per
 * window that an address, a node id or all peers together passed theirs. */
static void fabric_link_log_wrong(struct fabric *fabric, const char *address, const char *node_id,
                                  const struct agent_auth_wrong *wrong) {
  const struct engine_config *config = fabric->config;
  if (!wrong->slow)
    log_warn("agent.bad_token",
             "wrong token from %s (node id %.64s), %u from that address in this window", address,
             node_id, wrong->address_count);
  const char *passed[] = {wrong->log_address ? "address" : NULL,
                          wrong->log_node ? "node id" : NULL};
  const char *named[] = {address, node_id};
  for (size_t i = 0; i < 2; i++) {
    if (passed[i])
      log_warn("agent.blocked",
               "%s %.64s sent more than %lld wrong tokens within %lld s: its wrong tokens are "
               "answered only after %d ms for the rest of the window (a right token is welcomed "
               "at once)",
               passed[i], named[i], (long long)config->auth_failures_max,
               (long long)config->auth_window_s, FABRIC_WRONG_TOKEN_PAUSE_MS);
  }
  if (wrong->log_overall)
    log_error("agent.guessing",
              "more than %lld wrong agent tokens from all peers within %lld s: someone is "
              "guessing; every wrong token is answered only after %d ms for the rest of the "
              "window (a right token is welcomed at once)",
              (long long)config->auth_guesses_max, (long long)config->auth_window_s,
              FABRIC_WRONG_TOKEN_PAUSE_MS);
}

/* Checks hello's token (the node's own from agents.node_tokens_file, else the shared one), always:
 * a right token is welcomed whatever anyone sent before it. A wrong one is counted (agent_auth.h)
 * and refused, at once or — past a limit — after FABRIC_WRONG_TOKEN_PAUSE_MS, during which the
 * connection keeps its place among those waiting for a Welcome. Returns false when refused. */
static bool fabric_link_authenticate(struct fabric_link *link, const Cdr__Hello *hello) {
  struct fabric *fabric = link->fabric;
  const char *own = node_tokens_find(fabric->node_tokens, hello->node_id);
  if (fabric_link_token_ok(hello->token, own ? own : fabric->config->agent_token))
    return true;
  struct agent_auth_wrong wrong =
      agent_auth_failed(&fabric->auth, link->address, hello->node_id, clock_now_ms());
  fabric_link_log_wrong(fabric, link->address[0] ? link->address : "?", hello->node_id, &wrong);
  if (!wrong.slow) {
    fabric_link_refuse_token(link);
    return false;
  }
  link->refused = true; /* the refusal follows after the pause */
  timer_wheel_start(&fabric->wheel, &link->liveness, FABRIC_WRONG_TOKEN_PAUSE_MS,
                    fabric_link_on_refusal_due);
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
  if (!fabric_name_valid(hello->node_id, strlen(hello->node_id), FABRIC_NODE_ID_MAX) ||
      !groups_ok || hello->window == 0 ||
      !fabric_name_valid(hello->cache_kind, strlen(hello->cache_kind), 15)) {
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
  welcome.packed_successes = true;
  if (link_conn_send(&link->conn, FRAME_WELCOME, &welcome.base))
    return;
  link->node = node;
  node->link = link;
  list_remove(&fabric->pending, &link->pending);
  link_conn_set_max_payload(&link->conn, (size_t)fabric->config->max_frame_bytes);
  uint32_t window = hello->window;
  if (window > (uint64_t)fabric->config->max_window)
    window = (uint32_t)fabric->config->max_window;
  timer_wheel_start(&fabric->wheel, &link->heartbeat, (uint64_t)fabric->config->heartbeat_ms,
                    fabric_link_on_heartbeat);
  fabric_node_online(fabric, node, window);
}

/* Converts a Results frame into the fabric's own results, once, in the fabric's reused array, and
 * records them. */
static void fabric_link_on_results(struct fabric_link *link, const Cdr__Results *frame) {
  struct fabric *fabric = link->fabric;
  size_t count = frame->n_results + frame->n_verified_ok + frame->n_unverified_ok;
  while (fabric->result_cap < count) {
    if (!array_reserve((void **)&fabric->results, &fabric->result_cap, fabric->result_cap,
                       sizeof(*fabric->results), 256)) {
      link_conn_close(&link->conn, "out of memory reading results");
      return;
    }
  }
  for (size_t i = 0; i < frame->n_results; i++) {
    const Cdr__ItemResult *wire = frame->results[i];
    fabric->results[i] = (struct item_result){
        .item_id = wire->item_id,
        .state = wire->outcome == CDR__OUTCOME__SUCCEEDED     ? ITEM_SUCCEEDED
                 : wire->outcome == CDR__OUTCOME__UNSUPPORTED ? ITEM_UNSUPPORTED
                                                              : ITEM_FAILED,
        .http_status = wire->http_status,
        .verified = wire->verified,
        .reason = wire->reason ? wire->reason : ""};
  }
  struct item_result *ok = fabric->results + frame->n_results;
  for (size_t i = 0; i < frame->n_verified_ok; i++)
    *ok++ = (struct item_result){
        .item_id = frame->verified_ok[i], .state = ITEM_SUCCEEDED, .verified = true, .reason = ""};
  for (size_t i = 0; i < frame->n_unverified_ok; i++)
    *ok++ = (struct item_result){
        .item_id = frame->unverified_ok[i], .state = ITEM_SUCCEEDED, .reason = ""};
  fabric_results_apply(fabric, link->node, fabric->results, count);
}

int fabric_link_send_work(struct fabric_node *node, const Cdr__Work *work) {
  return link_conn_send(&node->link->conn, FRAME_WORK, &work->base);
}

static void fabric_link_on_frame(struct link_conn *conn, enum frame_type type,
                                 ProtobufCMessage *message) {
  struct fabric_link *link = fabric_link_of(conn);
  struct fabric *fabric = link->fabric;
  if (link->refused) {
    link_conn_close(conn, "a frame after a refused Hello");
    return;
  }
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
  case FRAME_RESULTS: fabric_link_on_results(link, (const Cdr__Results *)message); return;
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
  list_remove(&fabric->links, &link->all);
  list_remove(&fabric->pending, &link->pending);
  free(link);
}

struct fabric_link *fabric_pending_victim(const struct list_head *pending, const char *address,
                                          size_t pending_max, size_t per_address_max,
                                          size_t *from_address) {
  struct fabric_link *oldest = NULL, *oldest_here = NULL;
  *from_address = 0; /* a scan of at most pending_max links, newest first */
  for (struct list_node *at = pending->first; at; at = at->next) {
    oldest = LIST_ENTRY(at, struct fabric_link, pending);
    if (strcmp(oldest->address, address) == 0) {
      ++*from_address;
      oldest_here = oldest;
    }
  }
  return *from_address >= per_address_max ? oldest_here
         : pending->count >= pending_max  ? oldest
                                          : NULL;
}

/* Makes room for one more connection from address among those waiting for their Welcome
 * (fabric_pending_victim), closing the one chosen. Evictions are logged at most every ten
 * seconds, with their count. */
static void fabric_link_make_room(struct fabric *fabric, const char *address) {
  size_t from_address;
  struct fabric_link *victim =
      fabric_pending_victim(&fabric->pending, address, (size_t)fabric->config->pending_max,
                            (size_t)fabric->config->pending_per_address_max, &from_address);
  if (!victim)
    return;
  list_remove(&fabric->pending, &victim->pending);
  link_conn_close(&victim->conn, NULL);
  fabric->pending_evicted++;
  int64_t now = clock_now_ms();
  if (now - fabric->pending_logged_ms >= 10000) {
    log_warn("agent.pending_full",
             "closed %lld connections without a Welcome in the last %lld s to make room for new "
             "ones: %zu wait for their Welcome (agents.pending_max %lld), %zu of them from %s "
             "(agents.pending_per_address_max %lld)",
             (long long)fabric->pending_evicted,
             (long long)(fabric->pending_logged_ms ? (now - fabric->pending_logged_ms) / 1000 : 0),
             fabric->pending.count, (long long)fabric->config->pending_max, from_address,
             address[0] ? address : "?", (long long)fabric->config->pending_per_address_max);
    fabric->pending_evicted = 0;
    fabric->pending_logged_ms = now;
  }
}

void fabric_link_accept(struct fabric *fabric) {
  struct fabric_link *link = calloc(1, sizeof(*link));
  if (!link)
    return;
  link->fabric = fabric;
  link_conn_init(&link->conn, &fabric->loop, &fabric->link_buffers, fabric_link_on_frame,
                 fabric_link_on_close, link);
  link_conn_set_max_payload(&link->conn, FABRIC_HELLO_MAX_PAYLOAD);
  list_push_front(&fabric->links, &link->all);
  if (uv_accept((uv_stream_t *)&fabric->listener, (uv_stream_t *)&link->conn.tcp) != 0) {
    link_conn_close(&link->conn, "accept failed");
    return;
  }
  fabric_link_peer_address(link, link->address, sizeof(link->address));
  snprintf(link->conn.peer, sizeof(link->conn.peer), "from %s",
           link->address[0] ? link->address : "?");
  fabric_link_make_room(fabric, link->address);
  list_push_front(&fabric->pending, &link->pending);
  if ((fabric->tls && link_conn_tls(&link->conn, fabric->tls, true, "")) ||
      link_conn_start(&link->conn) != 0) {
    link_conn_close(&link->conn, "accept failed");
    return;
  }
  timer_wheel_start(&fabric->wheel, &link->liveness, (uint64_t)fabric->config->hello_timeout_ms,
                    fabric_link_on_silence);
}

void fabric_link_close_all(struct fabric *fabric) {
  for (struct list_node *at = fabric->links.first; at; at = at->next)
    link_conn_close(&LIST_ENTRY(at, struct fabric_link, all)->conn, "engine is stopping");
}
