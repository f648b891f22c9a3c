/* agent_link.c — dialing, Hello, Work intake, batched Results, heartbeats and reconnects. */
#include "agent/agent_link.h"

#include "agent/agent_stats.h"
#include "common/address.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/list.h"
#include "common/log.h"
#include "common/timer_wheel.h"
#include "proto/link_conn.h"
#include "version.h"

#include <stdlib.h>
#include <string.h>

enum {
  AGENT_TICK_MS = 10,
  AGENT_WELCOME_TIMEOUT_MS = 5000,
  AGENT_BACKOFF_MIN_MS = 100,
  AGENT_BACKOFF_MAX_MS = 5000,
  AGENT_MAX_PAYLOAD = 16 * 1024 * 1024,
  AGENT_GROUPS_MAX = 64,
};

struct agent_link {
  uv_loop_t *loop;
  const struct agent_config *config;
  SSL_CTX *tls; /* NULL: plain TCP */
  struct driver *driver;
  char engines[AGENT_ENGINES_MAX][SETTING_STRING_MAX];
  size_t engine_count, engine_next;
  char *groups[AGENT_GROUPS_MAX];
  size_t group_count;
  char groups_text[SETTING_STRING_MAX];
  struct link_conn *conn; /* current connection, NULL between attempts */
  struct link_shared link_buffers;
  uv_connect_t connect_req;
  bool welcomed;
  uint64_t generation; /* bumped when a connection ends: older results are dropped */
  struct executor *executor;
  struct timer_wheel wheel;
  uv_timer_t tick;
  struct wheel_timer reconnect, heartbeat, liveness;
  unsigned failed_dials; /* since the last Welcome: how long the next pause is */
  uint32_t heartbeat_ms, heartbeat_misses;
  Cdr__ItemResult *results; /* the batch being gathered, sent once per loop iteration */
  Cdr__ItemResult **result_pointers;
  char (*reasons)[48];
  char (*cache_statuses)[16];
  size_t result_count, result_cap;
  bool packed_successes; /* the engine's Welcome said it reads successes as bare ids */
  uint64_t *verified_ok; /* those ids, when it does (result_cap each) */
  uint64_t *unverified_ok;
  size_t verified_count, unverified_count;
  uv_check_t flush;
  bool stopping;
  bool draining;            /* no new work; stop once the executor is idle */
  uint64_t drain_until;     /* loop ms */
  struct wheel_timer drain; /* checks whether the executor is idle */
  int exit_code;
  void (*on_stop)(void *context);
  void *on_stop_context;
};

#define AGENT_LINK_OF_TIMER(timer, member) CONTAINER_OF(timer, struct agent_link, member)

static void agent_link_dial(struct agent_link *link);

static void agent_on_reconnect(struct wheel_timer *timer) {
  agent_link_dial(AGENT_LINK_OF_TIMER(timer, reconnect));
}

/* Waits a jittered, growing pause before the next engine is tried. */
static void agent_link_schedule_reconnect(struct agent_link *link) {
  uint64_t delay =
      backoff_delay_ms(AGENT_BACKOFF_MIN_MS, AGENT_BACKOFF_MAX_MS, ++link->failed_dials);
  timer_wheel_start(&link->wheel, &link->reconnect, delay, agent_on_reconnect);
}

static void agent_on_heartbeat(struct wheel_timer *timer) {
  struct agent_link *link = AGENT_LINK_OF_TIMER(timer, heartbeat);
  Cdr__Heartbeat heartbeat;
  cdr__heartbeat__init(&heartbeat);
  heartbeat.sent_ms = (uint64_t)clock_now_ms();
  if (link->conn && link_conn_send(link->conn, FRAME_HEARTBEAT, &heartbeat.base) == 0)
    timer_wheel_start(&link->wheel, timer, link->heartbeat_ms, agent_on_heartbeat);
}

static void agent_on_silence(struct wheel_timer *timer) {
  struct agent_link *link = AGENT_LINK_OF_TIMER(timer, liveness);
  if (link->conn)
    link_conn_close(link->conn, link->welcomed ? "engine missed heartbeats" : "no Welcome in time");
}

static void agent_on_flush(uv_check_t *check) {
  struct agent_link *link = check->data;
  uv_check_stop(check);
  if (link->result_count + link->verified_count + link->unverified_count == 0 || !link->conn ||
      !link->welcomed)
    return;
  Cdr__Results results;
  cdr__results__init(&results);
  results.n_results = link->result_count;
  results.results = link->result_pointers;
  results.n_verified_ok = link->verified_count;
  results.verified_ok = link->verified_ok;
  results.n_unverified_ok = link->unverified_count;
  results.unverified_ok = link->unverified_ok;
  link_conn_send(link->conn, FRAME_RESULTS, &results.base);
  link->result_count = link->verified_count = link->unverified_count = 0;
}

static void agent_on_item_done(void *context, uint64_t tag, uint64_t item_id,
                               const struct exec_outcome *outcome) {
  struct agent_link *link = context;
  if (tag != link->generation || !link->welcomed ||
      link->result_count + link->verified_count + link->unverified_count == link->result_cap)
    return; /* the link this item came on is gone: the engine sends it again */
  if (link->packed_successes && outcome->outcome == CDR__OUTCOME__SUCCEEDED) {
    if (outcome->verified)
      link->verified_ok[link->verified_count++] = item_id;
    else
      link->unverified_ok[link->unverified_count++] = item_id;
    uv_check_start(&link->flush, agent_on_flush);
    return;
  }
  size_t n = link->result_count++;
  Cdr__ItemResult *result = &link->results[n];
  cdr__item_result__init(result);
  result->item_id = item_id;
  result->outcome = outcome->outcome;
  result->http_status = outcome->http_status;
  result->verified = outcome->verified;
  memcpy(link->reasons[n], outcome->reason, sizeof(link->reasons[n]));
  memcpy(link->cache_statuses[n], outcome->cache_status, sizeof(link->cache_statuses[n]));
  result->reason = link->reasons[n];
  result->cache_status = link->cache_statuses[n];
  link->result_pointers[n] = result;
  uv_check_start(&link->flush, agent_on_flush);
}

static void agent_link_on_welcome(struct agent_link *link, const Cdr__Welcome *welcome) {
  link->welcomed = true;
  atomic_store(&agent_stats.link_up, 1);
  atomic_fetch_add(&agent_stats.link_connects, 1);
  link->failed_dials = 0;
  link->heartbeat_ms = welcome->heartbeat_interval_ms ? welcome->heartbeat_interval_ms : 1000;
  link->heartbeat_misses = welcome->heartbeat_misses ? welcome->heartbeat_misses : 3;
  link->packed_successes = welcome->packed_successes;
  log_info("link.welcome", "connected to %s (%s) as node %s", link->conn->peer, welcome->engine_id,
           link->config->node_id);
  timer_wheel_start(&link->wheel, &link->heartbeat, link->heartbeat_ms, agent_on_heartbeat);
}

/* Hands one work item to the executor, or answers it at once when it is not fit for a cache
 * request or there is no room (or memory) for it now: the engine tries a busy item again later. */
static void agent_link_take(struct agent_link *link, const Cdr__WorkItem *item) {
  const char *problem = driver_item_problem(item);
  if (!problem && executor_submit(link->executor, item, link->generation) == 0)
    return;
  struct exec_outcome refused = {.outcome = CDR__OUTCOME__FAILED};
  snprintf(refused.reason, sizeof(refused.reason), "%s", problem ? problem : "agent_busy");
  agent_on_item_done(link, link->generation, item->item_id, &refused);
}

/* Refusals that only a change of this agent's configuration (or version) can fix: the token, the
 * Hello's names, the protocol. Any other — too_many_failures from an engine that counted someone
 * else's guesses, duplicate_node while the engine has not yet seen this node's previous link die,
 * a code this agent does not know — may pass, so the agent dials again with backoff. */
static bool agent_refusal_is_final(const char *code) {
  static const char *const final[] = {"wrong_token", "bad_hello", "unsupported_version"};
  for (size_t i = 0; i < sizeof(final) / sizeof(final[0]); i++)
    if (code && strcmp(code, final[i]) == 0)
      return true;
  return false;
}

static void agent_link_on_refusal(struct agent_link *link, const Cdr__Refusal *refusal) {
  bool final = agent_refusal_is_final(refusal->code);
  log_error("link.refused", "engine %s refused node %s: %s (%s); %s", link->conn->peer,
            link->config->node_id, refusal->reason, refusal->code,
            final ? "stopping: fix the agent's configuration" : "trying again after a pause");
  if (!final) {
    link_conn_close(link->conn, NULL); /* agent_link_on_close dials again after a pause */
    return;
  }
  link->exit_code = 1;
  agent_link_stop(link);
}

static void agent_link_on_frame(struct link_conn *conn, enum frame_type type,
                                ProtobufCMessage *message) {
  struct agent_link *link = conn->owner;
  if (link->welcomed)
    timer_wheel_start(&link->wheel, &link->liveness,
                      (uint64_t)link->heartbeat_ms * link->heartbeat_misses, agent_on_silence);
  switch (type) {
  case FRAME_WELCOME:
    if (!link->welcomed) {
      agent_link_on_welcome(link, (const Cdr__Welcome *)message);
      timer_wheel_start(&link->wheel, &link->liveness,
                        (uint64_t)link->heartbeat_ms * link->heartbeat_misses, agent_on_silence);
    }
    return;
  case FRAME_REFUSAL: agent_link_on_refusal(link, (const Cdr__Refusal *)message); return;
  case FRAME_WORK: {
    const Cdr__Work *work = (const Cdr__Work *)message;
    if (!link->welcomed) {
      link_conn_close(conn, "Work before Welcome: not an engine that accepted this node");
      return;
    }
    if (link->draining)
      return; /* stopping: the engine sends these again when this node returns */
    if (work->n_url_purge_ids != work->n_url_purge_targets) {
      link_conn_close(conn, "Work with packed purge ids and targets of different lengths");
      return;
    }
    for (size_t i = 0; i < work->n_items; i++)
      agent_link_take(link, work->items[i]);
    for (size_t i = 0; i < work->n_url_purge_ids; i++) {
      Cdr__WorkItem item; /* a hard, verified exact-URL purge without headers */
      cdr__work_item__init(&item);
      item.item_id = work->url_purge_ids[i];
      item.target = work->url_purge_targets[i];
      agent_link_take(link, &item);
    }
    return;
  }
  case FRAME_HEARTBEAT: return;
  default: link_conn_close(conn, "unexpected frame type from the engine"); return;
  }
}

static void agent_link_on_close(struct link_conn *conn) {
  struct agent_link *link = conn->owner;
  free(conn);
  link->conn = NULL;
  link->welcomed = false;
  atomic_store(&agent_stats.link_up, 0);
  link->generation++;
  link->result_count = link->verified_count = link->unverified_count = 0;
  link->packed_successes = false; /* the next engine says again what it reads */
  /* Items of the dead link that have not started are sent again by the engine: dropping them
   * keeps quick reconnects from piling up work nobody will hear about. (When stopping, the
   * executor is already being torn down.) */
  if (!link->stopping)
    executor_drop_waiting(link->executor, link->generation);
  timer_wheel_stop(&link->wheel, &link->heartbeat);
  timer_wheel_stop(&link->wheel, &link->liveness);
  if (!link->stopping)
    agent_link_schedule_reconnect(link);
}

static void agent_link_send_hello(struct agent_link *link) {
  Cdr__Hello hello;
  cdr__hello__init(&hello);
  char version[] = CDR_VERSION;
  hello.node_id = (char *)(uintptr_t)link->config->node_id;
  hello.token = (char *)(uintptr_t)link->config->token;
  hello.protocol_version = FRAME_VERSION;
  hello.agent_version = version;
  hello.cache_kind = (char *)(uintptr_t)link->config->cache;
  hello.n_groups = link->group_count;
  hello.groups = link->groups;
  hello.window = (uint32_t)link->config->window;
  hello.packed_work = true;
  link_conn_send(link->conn, FRAME_HELLO, &hello.base);
}

static void agent_on_connect(uv_connect_t *req, int status) {
  struct agent_link *link = req->data;
  if (status < 0) {
    link_conn_close(link->conn, uv_strerror(status));
    return;
  }
  if (link_conn_start(link->conn) != 0) {
    link_conn_close(link->conn, "cannot read from the connection");
    return;
  }
  agent_link_send_hello(link);
  timer_wheel_start(&link->wheel, &link->liveness, AGENT_WELCOME_TIMEOUT_MS, agent_on_silence);
}

/* The host of "IPv4:PORT" or "[IPv6]:PORT", without brackets. */
static void agent_link_host_of(const char *address, char *out, size_t size) {
  const char *colon = strrchr(address, ':');
  size_t len = colon ? (size_t)(colon - address) : strlen(address);
  if (len >= 2 && address[0] == '[' && address[len - 1] == ']') {
    address++;
    len -= 2;
  }
  snprintf(out, size, "%.*s", (int)len, address);
}

static void agent_link_dial(struct agent_link *link) {
  if (link->stopping)
    return;
  const char *engine = link->engines[link->engine_next++ % link->engine_count];
  struct sockaddr_storage address;
  link->conn = malloc(sizeof(*link->conn));
  if (link->conn)
    link_conn_init(link->conn, link->loop, &link->link_buffers, agent_link_on_frame,
                   agent_link_on_close, link);
  if (!link->conn || address_parse(engine, &address)) {
    log_error("link.dial", "cannot dial engine %s", engine);
    free(link->conn);
    link->conn = NULL;
    agent_link_schedule_reconnect(link);
    return;
  }
  snprintf(link->conn->peer, sizeof(link->conn->peer), "%.60s", engine);
  if (link->tls) {
    /* The certificate must name the configured server name, else the address's host. */
    char host[SETTING_STRING_MAX];
    agent_link_host_of(engine, host, sizeof(host));
    const char *name = link->config->tls_server_name[0] ? link->config->tls_server_name : host;
    if (link_conn_tls(link->conn, link->tls, false, name)) {
      link_conn_close(link->conn, "out of memory starting TLS");
      return;
    }
  }
  link->connect_req.data = link;
  int rc = uv_tcp_connect(&link->connect_req, &link->conn->tcp, (const struct sockaddr *)&address,
                          agent_on_connect);
  if (rc)
    link_conn_close(link->conn, uv_strerror(rc));
}

static void agent_on_tick(uv_timer_t *timer) {
  struct agent_link *link = timer->data;
  timer_wheel_advance(&link->wheel, uv_now(link->loop));
}

/* Splits "a,b,c" into at most max non-empty parts of out (pointing into text, which is cut). */
static size_t agent_split(char *text, char **out, size_t max) {
  size_t n = 0;
  for (char *part = strtok(text, ","); part && n < max; part = strtok(NULL, ","))
    out[n++] = part;
  return n;
}

int agent_link_start(uv_loop_t *loop, const struct agent_config *config, struct driver *driver,
                     SSL_CTX *tls, void (*on_stop)(void *context), void *context,
                     struct agent_link **out) {
  struct agent_link *link = calloc(1, sizeof(*link));
  if (!link)
    return CDR_ENOMEM;
  link->tls = tls;
  link->on_stop = on_stop;
  link->on_stop_context = context;
  link->loop = loop;
  link->config = config;
  link->driver = driver;
  char engines[SETTING_STRING_MAX];
  snprintf(engines, sizeof(engines), "%s", config->engines);
  char *parts[AGENT_ENGINES_MAX];
  link->engine_count = agent_split(engines, parts, AGENT_ENGINES_MAX);
  for (size_t i = 0; i < link->engine_count; i++)
    snprintf(link->engines[i], sizeof(link->engines[i]), "%s", parts[i]);
  snprintf(link->groups_text, sizeof(link->groups_text), "%s", config->groups);
  link->group_count = agent_split(link->groups_text, link->groups, AGENT_GROUPS_MAX);
  if (link->engine_count == 0) {
    free(link);
    return CDR_ECONFIG;
  }
  link->result_cap = (size_t)config->window * 2;
  link->results = calloc(link->result_cap, sizeof(*link->results));
  link->result_pointers = calloc(link->result_cap, sizeof(*link->result_pointers));
  link->reasons = calloc(link->result_cap, sizeof(*link->reasons));
  link->cache_statuses = calloc(link->result_cap, sizeof(*link->cache_statuses));
  link->verified_ok = calloc(link->result_cap, sizeof(*link->verified_ok));
  link->unverified_ok = calloc(link->result_cap, sizeof(*link->unverified_ok));
  /* Twice the window: items of a dead link may still run while the new link fills its window. */
  int rc =
      executor_create(loop, driver, (size_t)config->window * 2, (size_t)config->concurrency,
                      (long)config->request_timeout_ms, agent_on_item_done, link, &link->executor);
  if (!rc)
    rc = link_shared_init(&link->link_buffers, AGENT_MAX_PAYLOAD);
  if (rc || !link->results || !link->result_pointers || !link->reasons || !link->cache_statuses ||
      !link->verified_ok || !link->unverified_ok)
    return rc ? rc : CDR_ENOMEM;
  timer_wheel_init(&link->wheel, AGENT_TICK_MS, uv_now(loop));
  uv_timer_init(loop, &link->tick);
  link->tick.data = link;
  uv_timer_start(&link->tick, agent_on_tick, AGENT_TICK_MS, AGENT_TICK_MS);
  uv_check_init(loop, &link->flush);
  link->flush.data = link;
  agent_link_dial(link);
  *out = link;
  return 0;
}

static void agent_link_free(void *context) {
  struct agent_link *link = context;
  free(link->results);
  free(link->result_pointers);
  free(link->reasons);
  free(link->cache_statuses);
  free(link->verified_ok);
  free(link->unverified_ok);
  /* the link itself is freed by agent_link_destroy after the loop ends: it still holds the exit
   * code, and its connection may still be writing its last results */
}

void agent_link_destroy(struct agent_link *link) {
  link_shared_free(&link->link_buffers);
  free(link);
}

static void agent_on_drain_check(struct wheel_timer *timer) {
  struct agent_link *link = AGENT_LINK_OF_TIMER(timer, drain);
  bool idle = executor_busy(link->executor) == 0 && link->result_count == 0;
  if (!idle && uv_now(link->loop) < link->drain_until) {
    timer_wheel_start(&link->wheel, timer, AGENT_TICK_MS, agent_on_drain_check);
    return;
  }
  if (!idle)
    log_warn("agent.drain", "stopping with %zu cache requests unfinished",
             executor_busy(link->executor));
  agent_link_stop(link);
}

void agent_link_drain(struct agent_link *link, uint64_t drain_ms) {
  if (link->draining) {
    agent_link_stop(link); /* asked twice: stop without waiting */
    return;
  }
  if (link->stopping)
    return;
  link->draining = true;
  link->drain_until = uv_now(link->loop) + drain_ms;
  log_info("agent.drain", "finishing %zu cache requests before stopping",
           executor_busy(link->executor));
  timer_wheel_start(&link->wheel, &link->drain, 0, agent_on_drain_check);
}

void agent_link_stop(struct agent_link *link) {
  if (link->stopping)
    return;
  link->stopping = true;
  timer_wheel_stop(&link->wheel, &link->reconnect);
  timer_wheel_stop(&link->wheel, &link->heartbeat);
  timer_wheel_stop(&link->wheel, &link->liveness);
  timer_wheel_stop(&link->wheel, &link->drain);
  if (link->conn)
    link_conn_finish(link->conn, "agent is stopping"); /* the last results go out first */
  uv_close((uv_handle_t *)&link->tick, NULL);
  uv_close((uv_handle_t *)&link->flush, NULL);
  executor_destroy(link->executor, agent_link_free);
  link->on_stop(link->on_stop_context);
}

int agent_link_exit_code(const struct agent_link *link) { return link->exit_code; }
