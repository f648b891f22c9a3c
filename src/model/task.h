/* model/ — the product's types and their rules, with no I/O and no threads: tasks (this file),
 * tenants and their quotas (tenant.h), an item's result as the fabric records it
 * (item_result.h). May include model/ and common/ (scripts/check-layers); linked as cdr_model.
 *
 * task.h — the task model: what a customer asked for, where it stands, and its names in the API.
 *
 * A task is one accepted purge or preload request. Its targets (URLs, prefixes, regexes, tags) are
 * held in request order; the counters count (target, node) results. A struct task and everything it
 * points to live in one arena owned by whoever built it (request parser or store reader). */
#ifndef CDR_TASK_H
#define CDR_TASK_H

#include "common/task_id.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum task_type { TASK_PURGE, TASK_PRELOAD };
enum task_mode { TASK_MODE_DELETE, TASK_MODE_INVALIDATE };
enum task_state { TASK_QUEUED, TASK_RUNNING, TASK_DONE, TASK_PARTIAL, TASK_FAILED, TASK_CANCELED };
enum target_kind { TARGET_URL, TARGET_PREFIX, TARGET_REGEX, TARGET_TAG };
enum { TARGET_KIND_COUNT = 4 };
enum item_state { ITEM_PENDING, ITEM_SUCCEEDED, ITEM_FAILED, ITEM_UNSUPPORTED, ITEM_CANCELED };
enum callback_state { CALLBACK_NONE, CALLBACK_PENDING, CALLBACK_DELIVERED, CALLBACK_FAILED };

/* One try to deliver a task's callback. */
struct callback_attempt {
  int64_t attempt;     /* 1, 2, ... */
  int64_t at_ms;       /* epoch ms the try ended */
  int64_t http_status; /* receiver's answer, 0 when none */
  const char *error;   /* why it failed (transport error or status), NULL on success */
};

struct task_target {
  enum target_kind kind;
  enum item_state state; /* summary over the target's nodes */
  const char *value;     /* normalised URL, regex source or tag */
};

struct task_counters {
  int64_t total; /* (target, node) pairs */
  int64_t succeeded;
  int64_t failed;
  int64_t pending;
  int64_t unsupported;
  int64_t verified; /* succeeded results the agent checked in the cache afterwards */
};

/* What an unfinished task still waits for, as the fabric knows it (GET /v1/tasks/{id}). */
struct task_waiting {
  int64_t nodes;            /* nodes that owe it a result */
  int64_t offline;          /* of them, those without an agent link */
  int64_t offline_since_ms; /* when the engine last heard from the longest-offline one; 0: none */
};

struct task {
  char id[TASK_ID_LENGTH + 1];
  const char *tenant;
  enum task_type type;
  enum task_mode mode;
  enum task_state state;
  const char *node_groups_json; /* JSON array of group names, or NULL for every node */
  const char *headers_json;     /* preload request headers as a JSON object, or NULL */
  const char *callback;         /* URL to notify when the task finishes, or NULL */
  int64_t deadline_s;           /* seconds after creation the task may take */
  bool verify;                  /* agents check the cache after each purge ("verify", default) */
  int64_t created_ms, started_ms, finished_ms; /* epoch ms; 0 when not yet */
  struct task_counters counters;
  size_t target_counts[TARGET_KIND_COUNT]; /* targets of each kind */
  size_t target_count;
  struct task_target *targets; /* target_count entries, or NULL when not loaded */
  bool planned;                /* split over its nodes (store_task_plan) */
  int64_t plan_seq;            /* its place in the order tasks were planned; a node's saved
                                  watermark (store_node.fast_below, slow_below) passing it says
                                  the node has finished it */
  uint8_t *plan_nodes; /* bitmap over node numbers: the nodes it went to (NULL: not planned, or
                          planned by an older engine, whose results are per-node rows) */
  size_t plan_nodes_len;
  enum callback_state callback_state;
  int64_t callback_attempt_count;
  struct callback_attempt *callback_attempts; /* loaded for GET /v1/tasks/{id}, else NULL */
  const struct task_waiting *waiting; /* asked of the fabric for GET /v1/tasks/{id}, else NULL */
};

/* Per-(task, node) results are 2 bits per target: ITEM_PENDING, ITEM_SUCCEEDED, ITEM_FAILED or
 * ITEM_UNSUPPORTED (ITEM_CANCELED is derived from the task's state, never stored). */
static inline size_t item_states_bytes(size_t targets) { return (targets + 3) / 4; }

static inline enum item_state item_states_get(const uint8_t *states, size_t index) {
  return (enum item_state)((states[index / 4] >> (2 * (index % 4))) & 3u);
}

static inline void item_states_set(uint8_t *states, size_t index, enum item_state state) {
  unsigned shift = 2 * (index % 4);
  states[index / 4] = (uint8_t)((states[index / 4] & ~(3u << shift)) | ((unsigned)state << shift));
}

/* Sets every target of a bitmap of bytes bytes to state (ITEM_PENDING..ITEM_UNSUPPORTED). */
static inline void item_states_fill(uint8_t *states, size_t bytes, enum item_state state) {
  memset(states, 0x55 * (int)state, bytes); /* the state's 2 bits, four times a byte */
}

/* A task's plan: 1 bit per node number. */
static inline bool plan_nodes_has(const uint8_t *plan, size_t len, int64_t number) {
  return number >= 0 && (size_t)number / 8 < len && (plan[number / 8] >> (number % 8) & 1u);
}

static inline void plan_nodes_set(uint8_t *plan, int64_t number) {
  plan[number / 8] = (uint8_t)(plan[number / 8] | 1u << (number % 8));
}

/* Whether a task read back resumes from the plan it has (else it is planned anew). */
static inline bool task_resumable(const struct task *task) {
  return task->planned && task->plan_nodes;
}

/* Per-(task, node) verification: 1 bit per target, set when a succeeded result was verified. */
static inline size_t item_verified_bytes(size_t targets) { return (targets + 7) / 8; }

static inline bool item_verified_get(const uint8_t *verified, size_t index) {
  return (verified[index / 8] >> (index % 8)) & 1u;
}

static inline void item_verified_set(uint8_t *verified, size_t index) {
  verified[index / 8] = (uint8_t)(verified[index / 8] | (1u << (index % 8)));
}

static inline void item_verified_clear(uint8_t *verified, size_t index) {
  verified[index / 8] = (uint8_t)(verified[index / 8] & ~(1u << (index % 8)));
}

/* API names of the enums ("purge", "invalidate", "partial", "prefix", "failed"). Static strings. */
const char *task_type_name(enum task_type type);
const char *task_mode_name(enum task_mode mode);
const char *task_state_name(enum task_state state);
const char *target_kind_name(enum target_kind kind);
const char *item_state_name(enum item_state state);
const char *callback_state_name(enum callback_state state);

/* Parse API names back. Return 0, or CDR_EINVALID_VALUE for a name that is not one of them. */
int task_state_parse(const char *name, size_t len, enum task_state *state);
int item_state_parse(const char *name, size_t len, enum item_state *state);
int task_type_parse(const char *name, enum task_type *type);
int task_mode_parse(const char *name, enum task_mode *mode);
int target_kind_parse(const char *name, enum target_kind *kind);
int callback_state_parse(const char *name, enum callback_state *state);

/* True for done, partial, failed and canceled: states a task never leaves. */
bool task_state_final(enum task_state state);

#endif
