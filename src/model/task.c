/* task.c — names of the task model's enums, both ways. */
#include "model/task.h"

#include "common/error.h"

#include <string.h>

static const char *const task_type_names[] = {"purge", "preload"};
static const char *const task_mode_names[] = {"delete", "invalidate"};
static const char *const task_state_names[] = {"queued",  "running", "done",
                                               "partial", "failed",  "canceled"};
static const char *const target_kind_names[] = {"url", "prefix", "regex", "tag"};
static const char *const callback_state_names[] = {"none", "pending", "delivered", "failed"};
static const char *const item_state_names[] = {"pending", "succeeded", "failed", "unsupported",
                                               "canceled"};

#define NAMES_COUNT(names) (sizeof(names) / sizeof((names)[0]))

/* Finds name[0..len) in names; returns its index or -1. */
static int task_name_find(const char *const *names, size_t count, const char *name, size_t len) {
  for (size_t i = 0; i < count; i++) {
    if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
      return (int)i;
  }
  return -1;
}

#define TASK_NAME_PARSE(names, name, len, out, type)                                               \
  do {                                                                                             \
    int index_ = task_name_find(names, NAMES_COUNT(names), name, len);                             \
    if (index_ < 0)                                                                                \
      return CDR_EINVALID_VALUE;                                                                   \
    *(out) = (type)index_;                                                                         \
    return 0;                                                                                      \
  } while (0)

const char *task_type_name(enum task_type type) { return task_type_names[type]; }
const char *task_mode_name(enum task_mode mode) { return task_mode_names[mode]; }
const char *task_state_name(enum task_state state) { return task_state_names[state]; }
const char *target_kind_name(enum target_kind kind) { return target_kind_names[kind]; }
const char *item_state_name(enum item_state state) { return item_state_names[state]; }
const char *callback_state_name(enum callback_state state) { return callback_state_names[state]; }

int task_state_parse(const char *name, size_t len, enum task_state *state) {
  TASK_NAME_PARSE(task_state_names, name, len, state, enum task_state);
}

int item_state_parse(const char *name, size_t len, enum item_state *state) {
  TASK_NAME_PARSE(item_state_names, name, len, state, enum item_state);
}

int task_type_parse(const char *name, enum task_type *type) {
  TASK_NAME_PARSE(task_type_names, name, strlen(name), type, enum task_type);
}

int task_mode_parse(const char *name, enum task_mode *mode) {
  TASK_NAME_PARSE(task_mode_names, name, strlen(name), mode, enum task_mode);
}

int target_kind_parse(const char *name, enum target_kind *kind) {
  TASK_NAME_PARSE(target_kind_names, name, strlen(name), kind, enum target_kind);
}

bool task_state_final(enum task_state state) {
  return state == TASK_DONE || state == TASK_PARTIAL || state == TASK_FAILED ||
         state == TASK_CANCELED;
}

int callback_state_parse(const char *name, enum callback_state *state) {
  TASK_NAME_PARSE(callback_state_names, name, strlen(name), state, enum callback_state);
}
