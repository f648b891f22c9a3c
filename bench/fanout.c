/* fanout.c — simulated agents: N agents in one process (one libuv loop) that answer every Work
 * item at once (succeeded, verified unless the item skips it) and every heartbeat, dial again
 * when the engine goes away, and a submitter that posts one-URL purges to the engine one after
 * the other. At the end it prints the time from the 202 to the last node's result being sent,
 * p50/p99 over all tasks. The benchmarks' fleet, and the kill -9 test's (which reads --log).
 *
 * Usage: fanout [--window N] [--sources N] [--unverified] [--refuse TEXT] [--log FILE]
 *        ENGINE_API_URL AGENT_HOST:PORT AGENTS TASKS
 * With TASKS 0 it only keeps the agents answering, until it is killed (bench/soak.py, the bulk and
 * idle benchmarks, the kill -9 test). --window is each agent's window (items in flight);
 * --sources spreads the connections over N loopback source addresses (127.0.1.1…), since one
 * address has only ~28,000 ephemeral ports. --unverified answers every success unverified, as an
 * agent whose cache cannot check (Varnish bans): the engine then keeps a record per (task, node).
 * --refuse makes every odd-numbered agent fail each item whose target contains TEXT (403,
 * http_403), as a cache that refuses it. --log appends a line per item answered, written before
 * the answer is sent: "NODE<TAB>S|F<TAB>TARGET" (succeeded or failed). Connections are opened at
 * most CONNECTING at a time, so a big fleet does not overflow the engine's accept backlog. */
#include "common/address.h"
#include "common/clock.h"
#include "common/log.h"
#include "proto/link_conn.h"

#include <curl/curl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { CONNECTING = 256 }; /* connects in flight at once */
enum { REDIAL_MS = 200 };  /* an agent whose link closed dials again after this (+ jitter) */
enum { WORK_MAX = 1024 };  /* items in one Work frame at most: the engine's batch */

struct sim_agent {
  struct link_conn conn;
  uv_connect_t connect;
  uv_timer_t redial;
  int index;
  char node_id[32];
  bool welcomed;
  bool packed_successes; /* its engine reads successes as bare ids, as an agent sends them then */
};

static struct sim_fleet {
  uv_loop_t loop;
  struct sim_agent *agents;
  int count, started, window, sources;
  bool unverified;    /* every success unverified (--unverified) */
  const char *refuse; /* odd-numbered agents fail targets containing it (--refuse) */
  FILE *log;          /* a line per item answered (--log) */
  struct sockaddr_storage engine;
  struct link_shared buffers;
} fleet;

static atomic_int welcomed;
static atomic_long answered;        /* Work items answered, all agents, all tasks */
static atomic_llong last_answer_us; /* when the latest item was answered */
static uv_async_t stop_async;

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sim_connect_next(void);
static void sim_dial(struct sim_agent *agent);

/* Whether agent fails target, as a cache refusing it would (--refuse). */
static bool sim_refuses(const struct sim_agent *agent, const char *target) {
  return fleet.refuse && agent->index % 2 == 1 && strstr(target, fleet.refuse);
}

static void sim_on_frame(struct link_conn *conn, enum frame_type type, ProtobufCMessage *message) {
  struct sim_agent *agent = conn->owner;
  if (type == FRAME_WELCOME && !agent->welcomed) {
    agent->welcomed = true;
    agent->packed_successes = ((const Cdr__Welcome *)message)->packed_successes;
    atomic_fetch_add(&welcomed, 1);
    sim_connect_next();
    return;
  }
  if (type == FRAME_HEARTBEAT) {
    Cdr__Heartbeat heartbeat;
    cdr__heartbeat__init(&heartbeat);
    heartbeat.sent_ms = ((const Cdr__Heartbeat *)message)->sent_ms;
    link_conn_send(conn, FRAME_HEARTBEAT, &heartbeat.base);
    return;
  }
  if (type != FRAME_WORK)
    return;
  const Cdr__Work *work = (const Cdr__Work *)message;
  static Cdr__ItemResult results[WORK_MAX];
  static Cdr__ItemResult *pointers[WORK_MAX];
  static uint64_t verified[WORK_MAX], unverified[WORK_MAX];
  static char http_403[] = "http_403";
  /* Work holds at most WORK_MAX items in all, as messages or packed purges. */
  size_t n = work->n_items + work->n_url_purge_ids;
  if (n > WORK_MAX)
    n = WORK_MAX;
  Cdr__Results frame;
  cdr__results__init(&frame);
  frame.results = pointers;
  frame.verified_ok = verified;
  frame.unverified_ok = unverified;
  for (size_t i = 0; i < n; i++) {
    bool whole = i < work->n_items; /* a WorkItem message, not a packed purge */
    uint64_t item_id = whole ? work->items[i]->item_id : work->url_purge_ids[i - work->n_items];
    const char *target = whole ? work->items[i]->target
                         : i - work->n_items < work->n_url_purge_targets
                             ? work->url_purge_targets[i - work->n_items]
                             : "";
    bool refused = sim_refuses(agent, target);
    if (fleet.log)
      fprintf(fleet.log, "%s\t%c\t%s\n", agent->node_id, refused ? 'F' : 'S', target);
    /* as an agent whose cache tells, unless it cannot (--unverified) */
    bool checked = !fleet.unverified && (!whole || !work->items[i]->skip_verify);
    if (agent->packed_successes && !refused) {
      if (checked)
        verified[frame.n_verified_ok++] = item_id;
      else
        unverified[frame.n_unverified_ok++] = item_id;
      continue;
    }
    cdr__item_result__init(&results[i]);
    results[i].item_id = item_id;
    results[i].outcome = refused ? CDR__OUTCOME__FAILED : CDR__OUTCOME__SUCCEEDED;
    results[i].http_status = refused ? 403 : 200;
    if (refused)
      results[i].reason = http_403;
    results[i].verified = checked && !refused;
    pointers[frame.n_results++] = &results[i];
  }
  if (fleet.log)
    fflush(fleet.log); /* what it answered is on disk before the engine can record it */
  link_conn_send(conn, FRAME_RESULTS, &frame.base);
  atomic_store(&last_answer_us, now_us());
  atomic_fetch_add(&answered, (long)n);
}

static void sim_on_redial(uv_timer_t *timer) { sim_dial(timer->data); }

/* The link closed (the engine went away, or the connect failed): dial again shortly, the
 * agents spread over REDIAL_MS so they do not all come back at once. */
static void sim_on_close(struct link_conn *conn) {
  struct sim_agent *agent = conn->owner;
  if (agent->welcomed)
    atomic_fetch_sub(&welcomed, 1);
  agent->welcomed = false;
  uv_timer_start(&agent->redial, sim_on_redial, REDIAL_MS + (uint64_t)(agent->index % REDIAL_MS),
                 0);
}

static void sim_on_connect(uv_connect_t *req, int status) {
  struct sim_agent *agent = req->data;
  if (status < 0 || link_conn_start(&agent->conn) != 0) {
    link_conn_close(&agent->conn, NULL);
    return;
  }
  Cdr__Hello hello;
  cdr__hello__init(&hello);
  char token[] = "", kind[] = "nginx", version[] = "bench";
  hello.node_id = agent->node_id;
  hello.token = token;
  hello.protocol_version = FRAME_VERSION;
  hello.agent_version = version;
  hello.cache_kind = kind;
  hello.window = (uint32_t)fleet.window;
  hello.packed_work = true;
  link_conn_send(&agent->conn, FRAME_HELLO, &hello.base);
}

/* Gives agent a socket bound to its loopback source address, the port chosen at connect time
 * (IP_BIND_ADDRESS_NO_PORT), so each source address offers its own ephemeral ports. */
static int sim_bind_source(struct sim_agent *agent, int index) {
  if (fleet.sources <= 1)
    return 0;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
  struct sockaddr_in from = {.sin_family = AF_INET};
  from.sin_addr.s_addr = htonl((127u << 24) | (1u << 8) | (uint32_t)(1 + index % fleet.sources));
  if (fd < 0 || setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) != 0 ||
      bind(fd, (const struct sockaddr *)&from, sizeof(from)) != 0) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  if (uv_tcp_open(&agent->conn.tcp, fd) != 0) {
    close(fd);
    return -1;
  }
  return 0;
}

/* Opens agent's connection to the engine. */
static void sim_dial(struct sim_agent *agent) {
  link_conn_init(&agent->conn, &fleet.loop, &fleet.buffers, sim_on_frame, sim_on_close, agent);
  agent->connect.data = agent;
  if (sim_bind_source(agent, agent->index) != 0 ||
      uv_tcp_connect(&agent->connect, &agent->conn.tcp, (const struct sockaddr *)&fleet.engine,
                     sim_on_connect) != 0)
    link_conn_close(&agent->conn, NULL);
}

/* Opens the next agent's connection; each welcome opens one more, CONNECTING at a time. */
static void sim_connect_next(void) {
  if (fleet.started >= fleet.count)
    return;
  int index = fleet.started++;
  struct sim_agent *agent = &fleet.agents[index];
  agent->index = index;
  snprintf(agent->node_id, sizeof(agent->node_id), "sim-%05d", index);
  uv_timer_init(&fleet.loop, &agent->redial);
  agent->redial.data = agent;
  sim_dial(agent);
}

static void sim_on_stop(uv_async_t *async) { uv_stop(async->loop); }

static void *sim_loop_main(void *arg) {
  uv_run(arg, UV_RUN_DEFAULT);
  return NULL;
}

static size_t sim_discard(char *data, size_t size, size_t count, void *user) {
  (void)data;
  (void)user;
  return size * count;
}

static int compare_ll(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  static const struct option options[] = {
      {"window", required_argument, NULL, 'w'}, {"sources", required_argument, NULL, 's'},
      {"unverified", no_argument, NULL, 'u'},   {"refuse", required_argument, NULL, 'r'},
      {"log", required_argument, NULL, 'l'},    {0}};
  fleet.window = 64;
  fleet.sources = 1;
  for (int option; (option = getopt_long(argc, argv, "", options, NULL)) != -1;) {
    if (option == 'w')
      fleet.window = atoi(optarg);
    else if (option == 's')
      fleet.sources = atoi(optarg);
    else if (option == 'u')
      fleet.unverified = true;
    else if (option == 'r')
      fleet.refuse = optarg;
    else if (option == 'l' && !(fleet.log = fopen(optarg, "a"))) {
      perror(optarg);
      return 2;
    } else if (option != 'l')
      return 2;
  }
  if (argc - optind != 4 || fleet.window < 1 || fleet.sources < 1 || fleet.sources > 254) {
    fprintf(stderr, "usage: fanout [--window N] [--sources 1..254] [--unverified] [--refuse TEXT] "
                    "[--log FILE] ENGINE_API_URL AGENT_HOST:PORT AGENTS TASKS\n");
    return 2;
  }
  argv += optind - 1;
  const char *api = argv[1];
  int agents = atoi(argv[3]), tasks = atoi(argv[4]);
  struct rlimit limit;
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  if (address_parse(argv[2], &fleet.engine)) {
    fprintf(stderr, "fanout: bad agent address %s\n", argv[2]);
    return 2;
  }
  log_level_set(LOG_WARN); /* not every link the engine's restarts close */
  uv_loop_init(&fleet.loop);
  link_shared_init(&fleet.buffers, 1 << 20);
  uv_async_init(&fleet.loop, &stop_async, sim_on_stop);
  fleet.agents = calloc((size_t)agents, sizeof(*fleet.agents));
  fleet.count = agents;
  for (int i = 0; i < CONNECTING; i++)
    sim_connect_next();
  pthread_t thread;
  pthread_create(&thread, NULL, sim_loop_main, &fleet.loop);
  int patience_ms = 30000 + agents; /* a millisecond per agent beyond 30 s */
  for (int waited = 0; atomic_load(&welcomed) < agents && waited < patience_ms; waited += 10)
    usleep(10000);
  if (atomic_load(&welcomed) < agents) {
    fprintf(stderr, "fanout: only %d of %d agents were welcomed\n", atomic_load(&welcomed), agents);
    return 1;
  }

  if (tasks == 0) {
    printf("fanout: %d agents connected and answering\n", agents);
    fflush(stdout);
    pthread_join(thread, NULL); /* until killed */
    return 0;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL *curl = curl_easy_init();
  char url[512];
  snprintf(url, sizeof(url), "%s/v1/purge", api);
  struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, sim_discard);
  long long *latency = calloc((size_t)tasks, sizeof(*latency));
  int timeouts = 0;
  for (int t = 0; t < tasks; t++) {
    char body[128];
    snprintf(body, sizeof(body), "{\"urls\":[\"https://fanout.example/%d.css\"]}", t);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    long before = atomic_load(&answered);
    long status = 0;
    if (curl_easy_perform(curl) != CURLE_OK ||
        (curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status), status != 202)) {
      fprintf(stderr, "fanout: submit failed (HTTP %ld)\n", status);
      return 1;
    }
    int64_t accepted = now_us();
    int64_t deadline = accepted + 10 * 1000000;
    while (atomic_load(&answered) < before + agents && now_us() < deadline)
      usleep(50);
    if (atomic_load(&answered) < before + agents)
      timeouts++;
    latency[t] = atomic_load(&last_answer_us) - accepted;
  }
  qsort(latency, (size_t)tasks, sizeof(*latency), compare_ll);
  printf("fanout: %d agents, %d one-URL purges one after another\n", agents, tasks);
  printf("202 -> last node's result sent: p50 %.2f ms, p99 %.2f ms, max %.2f ms "
         "(goals: p50 < 10 ms, p99 < 50 ms)%s\n",
         latency[tasks / 2] / 1000.0, latency[(tasks * 99) / 100] / 1000.0,
         latency[tasks - 1] / 1000.0, timeouts ? " — some tasks timed out" : "");
  printf("RESULT fanout_p50_ms %.2f\nRESULT fanout_p99_ms %.2f\n", latency[tasks / 2] / 1000.0,
         latency[(tasks * 99) / 100] / 1000.0);
  uv_async_send(&stop_async);
  pthread_join(thread, NULL);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return timeouts ? 1 : 0;
}
