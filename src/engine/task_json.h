/* task_json.h — the API's JSON view of tasks and their targets (docs/API.md shows each shape). */
#ifndef CDR_TASK_JSON_H
#define CDR_TASK_JSON_H

#include "common/json_text.h"
#include "model/task.h"
#include "store/task_items.h"

#include <jansson.h>

/* Appends the JSON text describing task: id, type, mode, status, targets by kind, node selection,
 * callback, deadline, counters and timings (out->failed when out of memory). Written directly: the
 * 202 of every accepted task carries it. */
void task_json_summary_text(const struct task *task, struct json_text *out);

/* The same as a new JSON object, for responses that embed it. NULL when out of memory. Caller
 * decrefs. */
json_t *task_json_summary(const struct task *task);

/* Appends the JSON text of one item: the target, its summary state and its result on each node.
 * Written directly: an items page holds up to 10,000 results, and a jansson tree of them cost
 * ten times the page's store reads. */
void task_json_item_text(const struct item_row *row, struct json_text *out);

#endif
