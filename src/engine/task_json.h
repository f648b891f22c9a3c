/* task_json.h — the API's JSON view of tasks and their targets (docs/API.md shows each shape). */
#ifndef CDR_TASK_JSON_H
#define CDR_TASK_JSON_H

#include "engine/task.h"

#include <jansson.h>

/* Returns a new JSON object describing task: id, type, mode, status, targets by kind, node
 * selection, callback, deadline, counters and timings. NULL when out of memory. Caller decrefs. */
json_t *task_json_summary(const struct task *task);

/* Returns a new JSON object for one target at position index of its task. Caller decrefs. */
json_t *task_json_target(const struct task_target *target, int64_t index);

#endif
