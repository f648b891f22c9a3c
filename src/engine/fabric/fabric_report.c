/* fabric_report.c — what the fabric tells of its nodes: GET /v1/nodes pages, the fabric's part
 * of /v1/stats (with the ten deepest queues, found in one pass), and the backlog alert for a
 * node whose queue stays deep. */
#include "common/clock.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/notify/alerts.h"
#include "engine/notify/callback.h"
#include "proto/link_conn.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

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
json_t *fabric_nodes_json(struct fabric *fabric, const struct fabric_nodes_page *page) {
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
json_t *fabric_stats_json(struct fabric *fabric) {
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
      "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:{s:I,s:I,s:I,s:I,s:I}}", "nodes_online",
      (json_int_t)online, "nodes_offline", (json_int_t)offline, "queue_fast", (json_int_t)fast,
      "queue_slow", (json_int_t)slow, "in_flight", (json_int_t)in_flight, "callbacks_pending",
      (json_int_t)(fabric->callbacks ? callbacks_pending(fabric->callbacks) : 0),
      "tasks_in_progress", (json_int_t)tasks, "tasks_parked", (json_int_t)fabric->parked_count,
      "parked_targets", (json_int_t)fabric->parked_targets, "backlog_results",
      (json_int_t)fabric->pending_items, "watermarks_age_ms",
      (json_int_t)(clock_now_ms() - fabric->marks_current_ms), "top_queues", top, "internals",
      "links", (json_int_t)links, "link_buffer_bytes", (json_int_t)buffer_bytes, "timers_armed",
      (json_int_t)fabric->wheel.armed, "timer_wheel_slots", (json_int_t)TIMER_WHEEL_SLOTS,
      "store_jobs_in_flight", (json_int_t)fabric->jobs_in_flight);
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

void fabric_queue_alerts_start(struct fabric *fabric) {
  timer_wheel_start(&fabric->wheel, &fabric->backlog, 1000, fabric_on_backlog_check);
}
