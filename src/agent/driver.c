/* driver.c — helpers every cache driver uses. */
#include "agent/driver.h"

#include <stdio.h>
#include <string.h>

bool driver_url_split(const char *url, const char **host, size_t *host_len, const char **path) {
  const char *start = strstr(url, "://");
  if (!start)
    return false;
  start += 3;
  const char *slash = strchr(start, '/');
  if (!slash || slash == start)
    return false;
  *host = start;
  *host_len = (size_t)(slash - start);
  *path = slash;
  return true;
}

void driver_outcome_failed(struct exec_outcome *outcome, long status, CURLcode error) {
  outcome->outcome = CDR__OUTCOME__FAILED;
  outcome->http_status = status > 0 ? (unsigned)status : 0;
  if (status > 0)
    snprintf(outcome->reason, sizeof(outcome->reason), "http_%ld", status);
  else if (error == CURLE_COULDNT_CONNECT)
    snprintf(outcome->reason, sizeof(outcome->reason), "connection_refused");
  else if (error == CURLE_OPERATION_TIMEDOUT)
    snprintf(outcome->reason, sizeof(outcome->reason), "timeout");
  else
    snprintf(outcome->reason, sizeof(outcome->reason), "transport_error_%d", (int)error);
}

void driver_outcome_unsupported(struct exec_outcome *outcome, const char *reason) {
  outcome->outcome = CDR__OUTCOME__UNSUPPORTED;
  outcome->http_status = 0;
  snprintf(outcome->reason, sizeof(outcome->reason), "%s", reason);
}
