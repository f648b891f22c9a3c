/* fabric_registry.c — the fabric's node registry: nodes registered by their agents' Hello (or read
 * back at a start), their numbers and groups, saving and deleting their entries in the store
 * (again each second until a save takes), and removal by an operator. */
#include "common/array.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/fabric/fabric_internal.h"
#include "engine/notify/alerts.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

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

void fabric_node_free(struct fabric_node *node) {
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

struct fabric_node *fabric_node_restore(struct fabric *fabric, const struct store_node *entry) {
  struct fabric_node *node = fabric_node_add(fabric, entry->id);
  if (!node)
    return NULL;
  fabric_node_set_groups(node, entry->groups_json);
  snprintf(node->cache_kind, sizeof(node->cache_kind), "%s", entry->cache_kind);
  fabric_copy_printable(node->agent_version, sizeof(node->agent_version), entry->agent_version);
  node->registered_ms = entry->registered_ms;
  node->last_hello_ms = entry->last_seen_ms;
  node->first_result_ms = entry->first_result_ms;
  node->number = entry->number;
  node->removed = entry->removed;
  node->saved_below[FABRIC_FAST] = entry->fast_below;
  node->saved_below[FABRIC_SLOW] = entry->slow_below;
  if (node->number >= fabric->node_numbers)
    fabric->node_numbers = node->number + 1;
  return node;
}

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

/* Counts the nodes a task can go to, for fabric_backlog_charge. */
void fabric_nodes_count(struct fabric *fabric) {
  int64_t registered = 0;
  for (size_t i = 0; i < fabric->node_count; i++)
    registered += !fabric->nodes[i]->removed;
  atomic_store_explicit(&fabric->nodes_registered, registered, memory_order_relaxed);
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
