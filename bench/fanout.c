/* fanout.c — fan-out benchmark: N simulated agents in one process (one libuv loop) that answer
 * every Work item at once, and a submitter that posts one-URL purges to the engine one after the
 * other. For each task it prints nothing; at the end it prints the time from the 202 to the last
 * node's result being sent, p50/p99 over all tasks. Not a test.
 *
 * Usage: fanout ENGINE_API_URL AGENT_HOST:PORT AGENTS TASKS
 * With TASKS 0 it only keeps the agents answering, until it is killed (bench/soak.py). */
#include "common/address.h"
#include "common/clock.h"
#include "proto/link_conn.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

struct sim_agent {
  struct link_conn conn;
  uv_connect_t connect;
  char node_id[32];
  bool welcomed;
};

static atomic_int welcomed;
static atomic_long answered;        /* Work items answered, all agents, all tasks */
static atomic_llong last_answer_us; /* when the latest item was answered */
static uv_async_t stop_async;

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sim_on_frame(struct link_conn *conn, enum frame_type type, ProtobufCMessage *message) {
  struct sim_agent *agent = conn->owner;
  if (type == FRAME_WELCOME && !agent->welcomed) {
    agent->welcomed = true;
    atomic_fetch_add(&welcomed, 1);
    return;
  }
  if (type != FRAME_WORK)
    return;
  const Cdr__Work *work = (const Cdr__Work *)message;
  static Cdr__ItemResult results[1024];
  static Cdr__ItemResult *pointers[1024];
  size_t n = work->n_items < 1024 ? work->n_items : 1024;
  for (size_t i = 0; i < n; i++) {
    cdr__item_result__init(&results[i]);
    results[i].item_id = work->items[i]->item_id;
    results[i].outcome = CDR__OUTCOME__SUCCEEDED;
    results[i].http_status = 200;
    pointers[i] = &results[i];
  }
  Cdr__Results frame;
  cdr__results__init(&frame);
  frame.n_results = n;
  frame.results = pointers;
  link_conn_send(conn, FRAME_RESULTS, &frame.base);
  atomic_store(&last_answer_us, now_us());
  atomic_fetch_add(&answered, (long)n);
}

static void sim_on_close(struct link_conn *conn) { (void)conn; }

static void sim_on_connect(uv_connect_t *req, int status) {
  struct sim_agent *agent = req->data;
  if (status < 0 || link_conn_start(&agent->conn) != 0) {
    fprintf(stderr, "fanout: connect failed: %s\n", uv_strerror(status));
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
  hello.window = 64;
  link_conn_send(&agent->conn, FRAME_HELLO, &hello.base);
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
  if (argc != 5) {
    fprintf(stderr, "usage: fanout ENGINE_API_URL AGENT_HOST:PORT AGENTS TASKS\n");
    return 2;
  }
  const char *api = argv[1];
  int agents = atoi(argv[3]), tasks = atoi(argv[4]);
  struct rlimit limit;
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  struct sockaddr_storage address;
  if (address_parse(argv[2], &address)) {
    fprintf(stderr, "fanout: bad agent address %s\n", argv[2]);
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_async_init(&loop, &stop_async, sim_on_stop);
  struct sim_agent *sims = calloc((size_t)agents, sizeof(*sims));
  for (int i = 0; i < agents; i++) {
    struct sim_agent *agent = &sims[i];
    snprintf(agent->node_id, sizeof(agent->node_id), "sim-%05d", i);
    link_conn_init(&agent->conn, &loop, 1 << 20, sim_on_frame, sim_on_close, agent);
    agent->connect.data = agent;
    uv_tcp_connect(&agent->connect, &agent->conn.tcp, (const struct sockaddr *)&address,
                   sim_on_connect);
  }
  pthread_t thread;
  pthread_create(&thread, NULL, sim_loop_main, &loop);
  for (int waited = 0; atomic_load(&welcomed) < agents && waited < 30000; waited += 10)
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
  uv_async_send(&stop_async);
  pthread_join(thread, NULL);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return timeouts ? 1 : 0;
}
