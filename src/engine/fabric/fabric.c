/* fabric.c — the agent fabric's thread and loop, its inbox, the node registry, recovery at start
 * and the ordered stop. */
#include "common/address.h"
#include "common/array.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/notify/alerts.h"
#include "engine/notify/callback.h"
#include "engine/stats.h"
#include "proto/link_tls.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
  FABRIC_TICK_MS = 10,
  FABRIC_STOP_WAIT_MS = 5000,
};

/* Sends job to the store writer; it comes back to the fabric's inbox. */
void fabric_submit(struct fabric *fabric, struct store_job *job) {
  job->reply_to = &fabric->inbox;
  fabric->jobs_in_flight++;
  store_worker_submit(fabric->writer, job);
}

struct fabric_node *fabric_node_find(struct fabric *fabric, const char *id) {
  for (size_t i = 0; i < fabric->node_count; i++) {
    if (strcmp(fabric->nodes[i]->id, id) == 0)
      return fabric->nodes[i];
  }
  return NULL;
}

bool fabric_name_valid(const char *name, size_t len, size_t max) {
  if (len == 0 || len > max)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.'))
      return false;
  }
  return true;
}

/* Copies text into out (size bytes) as printable ASCII, any other byte as '?': an agent's version
 * string is shown in JSON and on the status page, which take only valid UTF-8. */
static void fabric_copy_printable(char *out, size_t size, const char *text) {
  size_t n = 0;
  for (; text[n] && n + 1 < size; n++)
    out[n] = text[n] >= 0x20 && text[n] < 0x7f ? text[n] : '?';
  out[n] = '\0';
}

/* Replaces node's groups with the JSON array text (malloc'd copies). */
static void fabric_node_set_groups(struct fabric_node *node, const char *groups_json) {
  for (size_t i = 0; i < node->group_count; i++)
    free(node->groups[i]);
  free(node->groups);
  free(node->groups_json);
  node->groups = NULL;
  node->group_count = 0;
  node->groups_json = strdup(groups_json);
  json_t *array = json_loads(groups_json, 0, NULL);
  size_t count = json_array_size(array);
  node->groups = calloc(count ? count : 1, sizeof(*node->groups));
  for (size_t i = 0; node->groups && i < count; i++) {
    const char *name = json_string_value(json_array_get(array, i));
    if (name)
      node->groups[node->group_count++] = strdup(name);
  }
  json_decref(array);
}

static struct fabric_node *fabric_node_add(struct fabric *fabric, const char *id) {
  if (!array_reserve((void **)&fabric->nodes, &fabric->node_cap, fabric->node_count,
                     sizeof(*fabric->nodes), 16))
    return NULL;
  struct fabric_node *node = calloc(1, sizeof(*node));
  if (!node)
    return NULL;
  snprintf(node->id, sizeof(node->id), "%s", id);
  for (int lane = 0; lane < FABRIC_LANES; lane++)
    node->cursor[lane].pos = fabric->log[lane].end; /* no task before it is planned onto it */
  fabric->nodes[fabric->node_count++] = node;
  return node;
}

static void fabric_node_free(struct fabric_node *node) {
  fabric_node_set_groups(node, "[]");
  free(node->groups_json);
  free(node->groups);
  free(node->redeliver);
  free(node->slots);
  free(node);
}

/* A registry write (node registered, updated or removed) came back from the store. */
static void fabric_on_node_written(struct store_job *job) {
  struct fabric *fabric = job->context;
  fabric->jobs_in_flight--;
  struct fabric_node *node = job->result ? fabric_node_find(fabric, job->node.id) : NULL;
  if (job->result)
    log_error("node.save", "node %s could not be %s in the store: %s; trying again", job->node.id,
              job->kind == STORE_JOB_NODE_DELETE ? "deleted" : "saved",
              cdr_error_message(job->result));
  if (node && job->kind == STORE_JOB_NODE_DELETE) {
    node->delete_due = true;
  } else if (node) {
    /* Its number in the plans must outlive a restart. Until its entry is saved its watermarks
     * are not (an update of no row); once it is, they are saved again from the start. */
    node->save_due = true;
    node->saved_below[FABRIC_FAST] = node->saved_below[FABRIC_SLOW] = 0;
  }
  arena_release(&job->arena);
  free(job);
}

static void fabric_node_delete_save(struct fabric *fabric, const struct fabric_node *node) {
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job)
    return;
  arena_init(&job->arena, 1024);
  job->kind = STORE_JOB_NODE_DELETE;
  job->context = fabric;
  job->done = fabric_on_node_written;
  job->node.id = arena_strdup(&job->arena, node->id);
  fabric_submit(fabric, job);
}

void fabric_nodes_save_due(struct fabric *fabric) {
  for (size_t i = 0; i < fabric->node_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    if (node->save_due) {
      node->save_due = false;
      fabric_node_save(fabric, node);
    }
    if (node->delete_due) {
      node->delete_due = false;
      if (node->removed)
        fabric_node_delete_save(fabric, node);
    }
  }
}

void fabric_node_save(struct fabric *fabric, const struct fabric_node *node) {
  struct store_job *job = calloc(1, sizeof(*job));
  if (!job) {
    log_error("node.save", "out of memory: node %s went unsaved", node->id);
    return;
  }
  arena_init(&job->arena, 64 * 1024);
  job->kind = STORE_JOB_NODE_UPSERT;
  job->context = fabric;
  job->done = fabric_on_node_written;
  job->node = (struct store_node){.id = arena_strdup(&job->arena, node->id),
                                  .groups_json = arena_strdup(&job->arena, node->groups_json),
                                  .cache_kind = arena_strdup(&job->arena, node->cache_kind),
                                  .agent_version = arena_strdup(&job->arena, node->agent_version),
                                  .registered_ms = node->registered_ms,
                                  .last_seen_ms = node->last_hello_ms,
                                  .first_result_ms = node->first_result_ms,
                                  .number = node->number};
  fabric_submit(fabric, job);
}

static void fabric_nodes_count(struct fabric *fabric);

struct fabric_node *fabric_node_register(struct fabric *fabric, const Cdr__Hello *hello) {
  struct fabric_node *node = fabric_node_find(fabric, hello->node_id);
  bool known = node != NULL && !node->removed;
  if (node && node->removed) {
    node->removed = false; /* its agent said Hello again: a new registration */
    node->done = node->failed = node->unsupported = node->merged = 0;
  }
  if (!node) {
    if (!(node = fabric_node_add(fabric, hello->node_id)))
      return NULL;
    node->number = fabric->node_numbers++;
  }
  json_t *groups = json_array();
  for (size_t i = 0; i < hello->n_groups; i++)
    json_array_append_new(groups, json_string(hello->groups[i]));
  char *groups_json = json_dumps(groups, JSON_COMPACT);
  json_decref(groups);
  fabric_node_set_groups(node, groups_json ? groups_json : "[]");
  free(groups_json);
  snprintf(node->cache_kind, sizeof(node->cache_kind), "%s", hello->cache_kind);
  fabric_copy_printable(node->agent_version, sizeof(node->agent_version), hello->agent_version);
  node->packed_work = hello->packed_work;
  int64_t now = clock_now_ms();
  if (!known)
    node->registered_ms = now;
  node->last_hello_ms = now;
  fabric_node_save(fabric, node);
  fabric_nodes_count(fabric);
  log_info("node.registered", "node %s (%s, agent %s, groups %s) %s", node->id, node->cache_kind,
           node->agent_version, node->groups_json, known ? "returned" : "registered");
  if (known) {
    char message[160];
    snprintf(message, sizeof(message), "node %s is back online", node->id);
    alerts_raise(fabric->alerts, "node_back", node->id, message);
  }
  return node;
}

/* One node as GET /v1/nodes shows it. */
static json_t *fabric_node_json(const struct fabric_node *node, int64_t now) {
  json_t *groups = json_loads(node->groups_json ? node->groups_json : "[]", 0, NULL);
  json_t *age = node->last_heartbeat_ms ? json_integer(now - node->last_heartbeat_ms) : json_null();
  char first_result[CLOCK_ISO8601_SIZE];
  if (node->first_result_ms)
    clock_format_iso8601(node->first_result_ms, first_result);
  json_t *entry = json_pack("{s:s,s:o,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:I,s:I}", "node_id",
                            node->id, "groups", groups ? groups : json_array(), "cache",
                            node->cache_kind, "agent_version", node->agent_version, "state",
                            node->link ? "online" : "offline", "last_heartbeat_age_ms", age,
                            "queue_depth", (json_int_t)fabric_node_queue_depth(node), "in_flight",
                            (json_int_t)node->in_flight, "items_done", (json_int_t)node->done,
                            "items_unsupported", (json_int_t)node->unsupported, "items_failed",
                            (json_int_t)node->failed, "items_merged", (json_int_t)node->merged);
  json_object_set_new(entry, "first_result_at",
                      node->first_result_ms ? json_string(first_result) : json_null());
  /* A Hello proves only that someone holds the token: a node that never finished an item may
   * be no edge at all, and tasks wait for it until their deadline. */
  if (!node->first_result_ms && !node->link)
    json_object_set_new(entry, "warning",
                        json_string("offline and has never finished an item: tasks wait for it "
                                    "until their deadline; remove it (DELETE /v1/nodes/{id}) if "
                                    "it is not a real edge"));
  return entry;
}

/* Whether node is one the page asks for: its state, and the search in its id or a group. */
static bool fabric_node_wanted(const struct fabric_node *node,
                               const struct fabric_nodes_page *page) {
  if (node->removed || (page->state == 1 && !node->link) || (page->state == 2 && node->link))
    return false;
  if (!page->search[0] || strstr(node->id, page->search))
    return true;
  for (size_t g = 0; g < node->group_count; g++) {
    if (strstr(node->groups[g], page->search))
      return true;
  }
  return false;
}

/* Counts node into the summary's groups: {"eu": {"online": n, "offline": n}, ...}. */
static void fabric_groups_count(json_t *groups, const struct fabric_node *node) {
  for (size_t g = 0; g < node->group_count; g++) {
    json_t *counts = json_object_get(groups, node->groups[g]);
    if (!counts) {
      counts = json_pack("{s:I,s:I}", "online", (json_int_t)0, "offline", (json_int_t)0);
      json_object_set_new(groups, node->groups[g], counts);
    }
    json_t *count = json_object_get(counts, node->link ? "online" : "offline");
    json_integer_set(count, json_integer_value(count) + 1);
  }
}

/* GET /v1/nodes: one page of the nodes the query asks for, in registration order (a stable
 * order: nodes are only ever added), and a summary of every node — by state, by group — so a
 * fleet of 20,000 is read a page at a time while its shape is seen at once. */
static json_t *fabric_nodes_json(struct fabric *fabric, const struct fabric_nodes_page *page) {
  json_t *nodes = json_array(), *groups = json_object();
  int64_t now = clock_now_ms();
  size_t matching = 0, online = 0, offline = 0, next = 0;
  for (size_t i = 0; i < fabric->node_count; i++) {
    const struct fabric_node *node = fabric->nodes[i];
    if (node->removed)
      continue;
    *(node->link ? &online : &offline) += 1;
    fabric_groups_count(groups, node);
    if (!fabric_node_wanted(node, page))
      continue;
    matching++;
    if (i < page->cursor || next)
      continue;
    if (json_array_size(nodes) == page->limit)
      next = i; /* a node past the page: where the next one starts */
    else
      json_array_append_new(nodes, fabric_node_json(node, now));
  }
  char cursor[24];
  snprintf(cursor, sizeof(cursor), "%zu", next);
  return json_pack("{s:o,s:o,s:I,s:{s:I,s:I,s:o}}", "nodes", nodes, "next_cursor",
                   next ? json_string(cursor) : json_null(), "matching", (json_int_t)matching,
                   "summary", "online", (json_int_t)online, "offline", (json_int_t)offline,
                   "groups", groups);
}

enum { FABRIC_TOP_QUEUES = 10 };

/* The deepest node queues seen so far, deepest first. */
struct fabric_top_queues {
  const struct fabric_node *nodes[FABRIC_TOP_QUEUES];
  size_t depths[FABRIC_TOP_QUEUES];
  size_t count;
  size_t steps; /* comparisons and moves made (fabric->stats_steps) */
};

/* Keeps node among the deepest queues if it is one: O(FABRIC_TOP_QUEUES) per node, so the stats
 * of a large fleet cost one pass over the nodes, not a sort of all of them. */
static void fabric_top_queues_offer(struct fabric_top_queues *top, const struct fabric_node *node,
                                    size_t depth) {
  size_t at = top->count;
  while (at > 0 && top->depths[at - 1] < depth)
    at--;
  top->steps += top->count - at + 1;
  if (at == FABRIC_TOP_QUEUES)
    return;
  size_t last = top->count < FABRIC_TOP_QUEUES ? top->count : FABRIC_TOP_QUEUES - 1;
  top->steps += last - at;
  memmove(&top->nodes[at + 1], &top->nodes[at], (last - at) * sizeof(top->nodes[0]));
  memmove(&top->depths[at + 1], &top->depths[at], (last - at) * sizeof(top->depths[0]));
  top->nodes[at] = node;
  top->depths[at] = depth;
  if (top->count < FABRIC_TOP_QUEUES)
    top->count++;
}

/* Gauges of the fabric for /v1/stats and /metrics, with the ten longest node queues. */
static json_t *fabric_stats_json(struct fabric *fabric) {
  long long online = 0, offline = 0, fast = 0, slow = 0, in_flight = 0, tasks = 0;
  struct fabric_top_queues deepest = {.count = 0};
  for (size_t i = 0; i < fabric->node_count; i++) {
    const struct fabric_node *node = fabric->nodes[i];
    if (node->removed)
      continue;
    *(node->link ? &online : &offline) += 1;
    in_flight += node->in_flight;
    size_t node_fast = node->lane_items[FABRIC_FAST], node_slow = node->lane_items[FABRIC_SLOW];
    fast += (long long)node_fast;
    slow += (long long)node_slow;
    fabric_top_queues_offer(&deepest, node, node->redeliver_count + node_fast + node_slow);
  }
  fabric->stats_steps = deepest.steps;
  json_t *top = json_array();
  for (size_t i = 0; i < deepest.count; i++)
    json_array_append_new(top, json_pack("{s:s,s:I}", "node", deepest.nodes[i]->id, "depth",
                                         (json_int_t)deepest.depths[i]));
  tasks = (long long)fabric->tasks.count;
  long long links = 0, buffer_bytes = 0;
  for (struct list_node *at = fabric->links.first; at; at = at->next) {
    links++;
    buffer_bytes +=
        (long long)link_conn_buffer_bytes(&LIST_ENTRY(at, struct fabric_link, all)->conn);
  }
  const struct link_shared *shared = &fabric->link_buffers;
  buffer_bytes += (long long)(shared->read.cap + shared->write.cap + shared->scratch.cap +
                              shared->arena.reserved);
  return json_pack(
      "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:{s:I,s:I,s:I,s:I,s:I}}", "nodes_online",
      (json_int_t)online, "nodes_offline", (json_int_t)offline, "queue_fast", (json_int_t)fast,
      "queue_slow", (json_int_t)slow, "in_flight", (json_int_t)in_flight, "callbacks_pending",
      (json_int_t)(fabric->callbacks ? callbacks_pending(fabric->callbacks) : 0),
      "tasks_in_progress", (json_int_t)tasks, "tasks_parked", (json_int_t)fabric->parked_count,
      "watermarks_age_ms", (json_int_t)(clock_now_ms() - fabric->marks_current_ms), "top_queues",
      top, "internals", "links", (json_int_t)links, "link_buffer_bytes", (json_int_t)buffer_bytes,
      "timers_armed", (json_int_t)fabric->wheel.armed, "timer_wheel_slots",
      (json_int_t)TIMER_WHEEL_SLOTS, "store_jobs_in_flight", (json_int_t)fabric->jobs_in_flight);
}

static void fabric_on_accepted(struct mail *mail) {
  struct store_job *job = CONTAINER_OF(mail, struct store_job, mail);
  fabric_task_adopt(job->context, job);
}

void fabric_accept(struct fabric *fabric, struct store_job *job) {
  job->context = fabric;
  job->mail.arrived = fabric_on_accepted;
  mailbox_post(&fabric->inbox, &job->mail);
}

/* A cancel on its way to the fabric: the task as the store has it (id, and where its plan put
 * it), without its targets. */
struct fabric_cancel_mail {
  struct mail mail;
  struct fabric *fabric;
  struct task task;
};

static void fabric_on_cancel(struct mail *mail) {
  struct fabric_cancel_mail *cancel = CONTAINER_OF(mail, struct fabric_cancel_mail, mail);
  fabric_task_cancel(cancel->fabric, &cancel->task);
  free(cancel);
}

void fabric_cancel(struct fabric *fabric, const struct task *task) {
  struct fabric_cancel_mail *cancel = calloc(1, sizeof(*cancel));
  if (!cancel) {
    log_error("task.cancel", "out of memory: task %s's queued work is dropped at its end instead",
              task->id);
    return;
  }
  cancel->fabric = fabric;
  memcpy(cancel->task.id, task->id, sizeof(cancel->task.id));
  cancel->task.type = task->type;
  cancel->task.planned = task->planned;
  cancel->task.plan_seq = task->plan_seq;
  cancel->mail.arrived = fabric_on_cancel;
  mailbox_post(&fabric->inbox, &cancel->mail);
}

static void fabric_on_answer(struct mail *mail) {
  struct fabric_query *query = CONTAINER_OF(mail, struct fabric_query, mail);
  query->answered(query);
}

/* Answers a question asked from another loop (fabric_ask), then sends the answer back. */
static void fabric_on_question(struct mail *mail) {
  struct fabric_query *query = CONTAINER_OF(mail, struct fabric_query, mail);
  struct fabric *fabric = query->fabric;
  switch (query->question) {
  case FABRIC_NODES:
    query->answer = fabric_nodes_json(fabric, &query->nodes_page);
    query->result = query->answer ? 0 : CDR_ENOMEM;
    break;
  case FABRIC_STATS:
    query->answer = fabric_stats_json(fabric);
    query->result = query->answer ? 0 : CDR_ENOMEM;
    break;
  case FABRIC_TASK_WAITING:
    query->task_waiting.found =
        fabric_task_waiting(fabric, query->task_waiting.job->task, &query->task_waiting.answer);
    break;
  case FABRIC_NODE_REMOVE: {
    struct fabric_node *node = fabric_node_find(fabric, query->node_id);
    query->result = node && !node->removed ? 0 : CDR_ENODE_NOT_FOUND;
    if (!query->result)
      fabric_node_remove(fabric, node);
    break;
  }
  }
  query->mail.arrived = fabric_on_answer;
  mailbox_post(query->reply_to, &query->mail);
}

void fabric_ask(struct fabric *fabric, struct fabric_query *query) {
  query->fabric = fabric;
  query->mail.arrived = fabric_on_question;
  mailbox_post(&fabric->inbox, &query->mail);
}

/* Alerts when a node's queue has stayed deeper than alerts.backlog_items for alerts.backlog_s. */
static void fabric_on_backlog_check(struct wheel_timer *timer) {
  struct fabric *fabric = CONTAINER_OF(timer, struct fabric, backlog);
  int64_t now = clock_now_ms();
  for (size_t i = 0; i < fabric->node_count; i++) {
    struct fabric_node *node = fabric->nodes[i];
    size_t depth = node->removed ? 0 : fabric_node_queue_depth(node);
    if (depth <= (size_t)fabric->config->backlog_items) {
      node->backlog_since_ms = 0;
      continue;
    }
    if (!node->backlog_since_ms)
      node->backlog_since_ms = now;
    if (now - node->backlog_since_ms >= fabric->config->backlog_s * 1000) {
      char message[160];
      snprintf(message, sizeof(message), "%zu items have waited in node %s's queue for %llds",
               depth, node->id, (long long)((now - node->backlog_since_ms) / 1000));
      alerts_raise(fabric->alerts, "backlog", node->id, message);
    }
  }
  timer_wheel_start(&fabric->wheel, timer, 1000, fabric_on_backlog_check);
}

/* Adds the results recorded since the last tick to the engine's rates: two atomic additions per
 * tick instead of per result. */
static void fabric_results_publish(struct fabric *fabric) {
  int64_t now_s = (int64_t)time(NULL);
  for (int succeeded = 0; succeeded < 2; succeeded++) {
    if (fabric->results_unpublished[succeeded])
      rate_add(succeeded ? &engine_stats.items_succeeded : &engine_stats.items_failed, now_s,
               fabric->results_unpublished[succeeded]);
    fabric->results_unpublished[succeeded] = 0;
  }
}

static void fabric_on_tick(uv_timer_t *timer) {
  struct fabric *fabric = timer->data;
  timer_wheel_advance(&fabric->wheel, uv_now(&fabric->loop));
  fabric_backlog_publish(fabric, uv_now(&fabric->loop));
  fabric_results_publish(fabric);
}

/* Counts the nodes a task can go to, for fabric_backlog_charge. */
static void fabric_nodes_count(struct fabric *fabric) {
  int64_t registered = 0;
  for (size_t i = 0; i < fabric->node_count; i++)
    registered += !fabric->nodes[i]->removed;
  atomic_store_explicit(&fabric->nodes_registered, registered, memory_order_relaxed);
}

static void fabric_on_accept(uv_stream_t *listener, int status) {
  struct fabric *fabric = listener->data;
  if (status == 0 && !fabric->stopping)
    fabric_link_accept(fabric);
}

static void fabric_on_stop_check(uv_timer_t *timer) {
  struct fabric *fabric = timer->data;
  uint64_t now = uv_now(&fabric->loop);
  if (!fabric->links_closing) {
    /* First the agents finish what they hold: no new work is sent while stopping. */
    size_t in_flight = 0;
    for (size_t i = 0; i < fabric->node_count; i++)
      in_flight += fabric->nodes[i]->in_flight;
    if (in_flight > 0 && now < fabric->stop_until - FABRIC_STOP_WAIT_MS / 2)
      return;
    fabric->links_closing = true;
    fabric_link_close_all(fabric);
    fabric_progress_flush(fabric, true);
    return;
  }
  bool waiting = fabric->jobs_in_flight > 0 || fabric->links.first != NULL;
  if (!waiting && timer_wheel_armed(&fabric->flush)) {
    timer_wheel_stop(&fabric->wheel, &fabric->flush);
    fabric_progress_flush(fabric, true); /* results that came in while links closed */
    return;
  }
  if (waiting && now < fabric->stop_until)
    return;
  if (waiting)
    log_warn("fabric.stop", "stopping with %zu store writes unanswered", fabric->jobs_in_flight);
  uv_timer_stop(timer);
  uv_stop(&fabric->loop);
}

/* Stop: no new agents and no new work; the agents' results for work they hold are awaited (half
 * of FABRIC_STOP_WAIT_MS at most), then the links close (what is still out goes back to the
 * queues), every result is saved, and the loop ends once the store has answered every job or
 * FABRIC_STOP_WAIT_MS has passed. */
static void fabric_on_stop(uv_async_t *async) {
  struct fabric *fabric = async->data;
  fabric->stopping = true;
  uv_close((uv_handle_t *)&fabric->listener, NULL);
  /* Deliveries in progress stay pending in the store and resume after a restart. */
  fabric_notify_destroy(fabric);
  timer_wheel_stop(&fabric->wheel, &fabric->backlog);
  fabric->stop_until = uv_now(&fabric->loop) + FABRIC_STOP_WAIT_MS;
  uv_timer_start(&fabric->stop_check, fabric_on_stop_check, FABRIC_TICK_MS, FABRIC_TICK_MS);
}

static void fabric_close_handle(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle))
    uv_close(handle, NULL);
}

void fabric_run(struct fabric *fabric) {
  uv_run(&fabric->loop, UV_RUN_DEFAULT);
  uv_walk(&fabric->loop, fabric_close_handle, NULL);
  uv_run(&fabric->loop, UV_RUN_DEFAULT);
  uv_loop_close(&fabric->loop);
}

static void *fabric_main(void *arg) {
  fabric_run(arg);
  return NULL;
}

/* qsort order of tasks read back: those resumed from their plans by plan_seq, then the others
 * as they came (their ids are time-sortable). */
static int fabric_task_plan_order(const void *a, const void *b) {
  const struct task *x = *(const struct task *const *)a, *y = *(const struct task *const *)b;
  if (task_resumable(x) != task_resumable(y))
    return task_resumable(x) ? -1 : 1;
  if (task_resumable(x))
    return x->plan_seq < y->plan_seq ? -1 : x->plan_seq > y->plan_seq;
  return strcmp(x->id, y->id);
}

void fabric_node_forget(struct fabric *fabric, struct fabric_node *node) {
  for (struct list_node *at = fabric->tasks.first; at; at = at->next) {
    struct fabric_task *task = LIST_ENTRY(at, struct fabric_task, link);
    if (plan_nodes_has(task->task->plan_nodes, task->task->plan_nodes_len, node->number))
      fabric_items_fail(fabric, task, node, "node_removed");
  }
  for (size_t r = 0; r < node->redeliver_count; r++) {
    node->redeliver[r].task_node->refs--;
    fabric_record_settle(node->redeliver[r].task_node);
  }
  node->redeliver_count = 0;
  /* Its cursors pass every task: those it had not reached stop waiting for it. */
  for (int lane = 0; lane < FABRIC_LANES; lane++) {
    struct fabric_log *log = &fabric->log[lane];
    struct fabric_cursor *cursor = &node->cursor[lane];
    struct fabric_task_node *current = cursor->current;
    for (uint64_t pos = cursor->pos + (current != NULL); pos < log->end; pos++) {
      struct fabric_task *task = pos >= log->base ? fabric_log_at(log, pos) : NULL;
      if (task && plan_nodes_has(task->task->plan_nodes, task->task->plan_nodes_len, node->number))
        task->unreached--;
    }
    *cursor = (struct fabric_cursor){.pos = log->end};
    node->lane_items[lane] = 0;
    if (current)
      fabric_record_settle(current);
  }
}

/* Reads the registry and every unfinished task back from the store (start-up, before the loop
 * runs, so blocking reads are fine here). */
static int fabric_recover(struct fabric *fabric) {
  struct store_options options = {.read_only = true};
  struct store *store;
  char err[512];
  if (store_open(fabric->config->data_dir, &options, &store, err, sizeof(err))) {
    log_error("fabric.recover", "%s", err);
    return CDR_ESTORE_UNAVAILABLE;
  }
  struct arena arena;
  arena_init(&arena, (size_t)1 << 34);
  struct store_node *nodes;
  size_t node_count = 0, task_count = 0;
  struct task **tasks;
  int rc = store_nodes_load(store, &arena, &nodes, &node_count);
  for (size_t i = 0; !rc && i < node_count; i++) {
    struct fabric_node *node = fabric_node_add(fabric, nodes[i].id);
    if (!node) {
      rc = CDR_ENOMEM;
      break;
    }
    fabric_node_set_groups(node, nodes[i].groups_json);
    snprintf(node->cache_kind, sizeof(node->cache_kind), "%s", nodes[i].cache_kind);
    fabric_copy_printable(node->agent_version, sizeof(node->agent_version), nodes[i].agent_version);
    node->registered_ms = nodes[i].registered_ms;
    node->last_hello_ms = nodes[i].last_seen_ms;
    node->first_result_ms = nodes[i].first_result_ms;
    node->number = nodes[i].number;
    node->removed = nodes[i].removed;
    node->saved_below[FABRIC_FAST] = nodes[i].fast_below;
    node->saved_below[FABRIC_SLOW] = nodes[i].slow_below;
    if (node->number >= fabric->node_numbers)
      fabric->node_numbers = node->number + 1;
    /* New plans must come after everything a watermark already passed. */
    for (int lane = 0; lane < FABRIC_LANES; lane++) {
      if (node->saved_below[lane] - 1 > fabric->plan_seq)
        fabric->plan_seq = node->saved_below[lane] - 1;
    }
  }
  fabric_nodes_count(fabric);
  if (!rc)
    rc = store_tasks_unfinished(store, &arena, &tasks, &task_count);
  for (size_t i = 0; i < task_count; i++) {
    if (tasks[i]->plan_seq > fabric->plan_seq)
      fabric->plan_seq = tasks[i]->plan_seq;
  }
  /* The planned tasks take their places in the logs in plan order, the cursors go where the
   * watermarks say, and then the tasks never planned are planned anew, after them. */
  size_t resumable = 0;
  if (!rc && task_count > 1)
    qsort(tasks, task_count, sizeof(*tasks), fabric_task_plan_order);
  while (!rc && resumable < task_count && task_resumable(tasks[resumable]))
    resumable++;
  for (size_t i = 0; !rc && i <= task_count; i++) {
    if (i == resumable)
      fabric_log_place_cursors(fabric);
    if (i == task_count)
      break;
    struct store_task_node *saved = NULL;
    struct store_failure *failures = NULL;
    size_t saved_count = 0, failure_count = 0;
    if (tasks[i]->planned)
      rc = store_task_nodes_load(store, tasks[i]->id, &arena, &saved, &saved_count);
    if (!rc && tasks[i]->planned)
      rc =
          store_failures_list(store, tasks[i]->id, 0, INT64_MAX, &arena, &failures, &failure_count);
    if (!rc)
      fabric_task_recover(fabric, tasks[i], saved, saved_count, failures, failure_count);
  }
  /* A node removed just before a stop: its removal was saved, the failures of what it owed may
   * not have been. Its tasks were read back waiting for it; they stop waiting now. */
  for (size_t i = 0; !rc && i < fabric->node_count; i++) {
    if (fabric->nodes[i]->removed)
      fabric_node_forget(fabric, fabric->nodes[i]);
  }
  struct task **callbacks = NULL;
  size_t callback_count = 0;
  if (!rc)
    rc = store_callbacks_pending(store, &arena, &callbacks, &callback_count);
  for (size_t i = 0; !rc && i < callback_count; i++)
    fabric_callback_deliver(fabric, callbacks[i]);
  if (rc)
    log_error("fabric.recover", "cannot read nodes and tasks back: %s", cdr_error_message(rc));
  else
    log_info("fabric.recovered",
             "%zu nodes registered, %zu unfinished tasks resumed, %zu callbacks to deliver",
             node_count, task_count, callback_count);
  arena_release(&arena);
  store_close(store);
  return rc;
}

static int fabric_listen(struct fabric *fabric) {
  struct sockaddr_storage address;
  address_parse(fabric->config->agent_listen, &address);
  uv_tcp_init(&fabric->loop, &fabric->listener);
  fabric->listener.data = fabric;
  int rc = uv_tcp_bind(&fabric->listener, (const struct sockaddr *)&address, 0);
  if (!rc)
    rc = uv_listen((uv_stream_t *)&fabric->listener, 1024, fabric_on_accept);
  if (rc)
    log_error("agent.listen", "cannot listen for agents on %s: %s", fabric->config->agent_listen,
              uv_strerror(rc));
  return rc;
}

/* Undoes a fabric_open that failed after its loop was made: the store's answers to what recovery
 * asked are awaited (they come back to this fabric), every handle is closed, and all the fabric
 * holds is freed. The unit tests open fabrics that fail, and an engine may outlive one. */
static void fabric_open_unwind(struct fabric *fabric) {
  fabric->stopping = true;
  while (fabric->jobs_in_flight > 0)
    uv_run(&fabric->loop, UV_RUN_ONCE);
  fabric_notify_destroy(fabric);
  uv_walk(&fabric->loop, fabric_close_handle, NULL);
  uv_run(&fabric->loop, UV_RUN_DEFAULT);
  uv_loop_close(&fabric->loop);
  fabric_free(fabric);
}

int fabric_open(const struct engine_config *config, struct store_worker *writer,
                struct fabric **out) {
  struct fabric *fabric = calloc(1, sizeof(*fabric));
  if (!fabric)
    return CDR_ENOMEM;
  fabric->config = config;
  fabric->writer = writer;
  fabric->send_work = fabric_link_send_work;
  uint64_t seed = 0; /* a failure leaves 0: the counts still hold, only less evenly spread */
  RAND_bytes((unsigned char *)&seed, sizeof(seed));
  agent_auth_init(&fabric->auth, config->auth_failures_max, config->auth_guesses_max,
                  config->auth_window_s, seed);
  if (link_shared_init(&fabric->link_buffers, (size_t)config->max_frame_bytes) ||
      uv_loop_init(&fabric->loop) != 0) {
    link_shared_free(&fabric->link_buffers);
    free(fabric);
    return CDR_ENOMEM;
  }
  timer_wheel_init(&fabric->wheel, FABRIC_TICK_MS, uv_now(&fabric->loop));
  int rc = mailbox_init(&fabric->inbox, &fabric->loop) != 0 ||
                   uv_async_init(&fabric->loop, &fabric->stop, fabric_on_stop) != 0
               ? CDR_ENOMEM
               : 0;
  fabric->stop.data = fabric;
  uv_timer_init(&fabric->loop, &fabric->tick);
  uv_timer_init(&fabric->loop, &fabric->stop_check);
  fabric->tick.data = fabric->stop_check.data = fabric;
  if (!rc && config->node_tokens_file[0]) {
    char err[512];
    rc = node_tokens_load(config->node_tokens_file, &fabric->node_tokens, err, sizeof(err));
    if (rc)
      log_error("node_tokens.load", "%s", err);
    else
      log_info("node_tokens.load", "%zu nodes have their own token (%s)",
               node_tokens_count(fabric->node_tokens), config->node_tokens_file);
  }
  if (!rc && config->tls_cert[0]) {
    char err[512];
    fabric->tls = link_tls_server_context(config->tls_cert, config->tls_key, config->tls_client_ca,
                                          err, sizeof(err));
    if (!fabric->tls) {
      log_error("agent.tls", "%s", err);
      rc = CDR_ECONFIG;
    }
  }
  if (!rc)
    rc = fabric_notify_create(fabric);
  if (!rc) {
    uv_timer_start(&fabric->tick, fabric_on_tick, FABRIC_TICK_MS, FABRIC_TICK_MS);
    fabric_dispatch_start(fabric);
    timer_wheel_start(&fabric->wheel, &fabric->backlog, 1000, fabric_on_backlog_check);
    fabric_marks_start(fabric);
    rc = fabric_recover(fabric);
  }
  if (!rc)
    rc = fabric_listen(fabric);
  if (rc) {
    fabric_open_unwind(fabric);
    return rc;
  }
  log_info("agent.listen", "agents connect to %s%s%s", config->agent_listen,
           fabric->tls ? " over TLS" : "",
           config->tls_client_ca[0] ? " with client certificates" : "");
  *out = fabric;
  return 0;
}

int fabric_start(const struct engine_config *config, struct store_worker *writer,
                 struct fabric **out) {
  int rc = fabric_open(config, writer, out);
  if (!rc && pthread_create(&(*out)->thread, NULL, fabric_main, *out) != 0)
    rc = CDR_EINTERNAL;
  return rc;
}

void fabric_stop(struct fabric *fabric) {
  uv_async_send(&fabric->stop);
  pthread_join(fabric->thread, NULL);
  fabric_free(fabric);
}

void fabric_free(struct fabric *fabric) {
  while (fabric->tasks.first)
    fabric_task_free(fabric, LIST_ENTRY(fabric->tasks.first, struct fabric_task, link));
  fabric_parked_free_all(fabric);
  fabric_backlog_close(fabric);
  for (size_t i = 0; i < fabric->node_count; i++)
    fabric_node_free(fabric->nodes[i]);
  free(fabric->nodes);
  for (int lane = 0; lane < FABRIC_LANES; lane++)
    free(fabric->log[lane].entries);
  fabric_records_spare_free(fabric);
  free(fabric->work_items);
  free(fabric->work_pointers);
  free(fabric->work_url_ids);
  free(fabric->work_url_targets);
  free(fabric->dispatch_due);
  free(fabric->results);
  node_tokens_free(fabric->node_tokens);
  SSL_CTX_free(fabric->tls);
  link_shared_free(&fabric->link_buffers);
  free(fabric);
}

void fabric_node_remove(struct fabric *fabric, struct fabric_node *node) {
  node->removed = true;
  fabric_nodes_count(fabric);
  if (node->link)
    link_conn_close(&node->link->conn, "node removed by an operator");
  node->forget_waits = fabric_unpark_for(fabric, node);
  if (node->forget_waits == 0)
    fabric_node_forget(fabric, node);
  fabric_node_delete_save(fabric, node);
  log_info("node.removed", "node %s removed by an operator; its pending items failed", node->id);
}
