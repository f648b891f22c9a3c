/* item_result.h — what an edge node reports for one work item, as the fabric records it: the
 * link converts each agent's Results frame into these once (engine/fabric/fabric_link.c), so
 * nothing past the link sees the wire's types. */
#ifndef CDR_ITEM_RESULT_H
#define CDR_ITEM_RESULT_H

#include "model/task.h"

#include <stdbool.h>
#include <stdint.h>

struct item_result {
  uint64_t item_id;      /* the id the work item went out with */
  enum item_state state; /* ITEM_SUCCEEDED, ITEM_FAILED or ITEM_UNSUPPORTED */
  uint32_t http_status;  /* the cache's answer, 0 when there was none */
  bool verified;         /* succeeded, and the agent saw the cache no longer hold the target */
  const char *reason;    /* why it failed or is unsupported ("" when it did not); borrowed */
};

#endif
