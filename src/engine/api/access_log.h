/* access_log.h — the API's request log (--access-log FILE): one JSON line per answered API request
 * with its time, method, path, status, duration and, for POSTs, the request body, so that
 * `cdnrefresh replay FILE` can submit the same requests again (load tests, migrations).
 *
 * Each line is written with one write(2) on a file opened O_APPEND, so lines from the API loops
 * never interleave. Off unless opened. */
#ifndef CDR_ACCESS_LOG_H
#define CDR_ACCESS_LOG_H

#include <h2o.h>
#include <stdint.h>

/* Opens (creating, appending) path. Returns 0 or a negative errno. Before the loops start. */
int access_log_open(const char *path);

/* Logs req, answered with status after us microseconds. Does nothing when no log is open. */
void access_log_write(h2o_req_t *req, int status, int64_t us);

/* Closes the log after the loops stopped. */
void access_log_close(void);

#endif
