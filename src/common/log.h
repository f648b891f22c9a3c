/* log.h — one JSON line per event that matters, written to stderr for operators.
 *
 * Each line is {"ts":"…","level":"info","event":"api.listen","msg":"…"}: `event` is a stable dotted
 * name to filter on, `msg` says what happened in words. Lines are written with one write(2) so
 * threads never interleave within a line. */
#ifndef CDR_LOG_H
#define CDR_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the lowest level written (default LOG_INFO). Call before starting threads. */
void log_level_set(enum log_level level);

/* Parses "debug", "info", "warn" or "error" into *level. Returns 0 or CDR_EINVALID_VALUE. */
int log_level_parse(const char *name, enum log_level *level);

/* Writes one line for event at level, the message formatted printf-style. Any thread. */
void log_write(enum log_level level, const char *event, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(event, ...) log_write(LOG_DEBUG, event, __VA_ARGS__)
#define log_info(event, ...) log_write(LOG_INFO, event, __VA_ARGS__)
#define log_warn(event, ...) log_write(LOG_WARN, event, __VA_ARGS__)
#define log_error(event, ...) log_write(LOG_ERROR, event, __VA_ARGS__)

#endif
