/* prom.h — writing the Prometheus text exposition format (0.0.4): a growing text buffer, HELP and
 * TYPE lines, and histograms from common/rate.h. Metric names get the cdnrefresh_ prefix. */
#ifndef CDR_PROM_H
#define CDR_PROM_H

#include "common/rate.h"

#include <stddef.h>

struct prom_text {
  char *data; /* NUL-terminated; NULL until something is written, or when out of memory */
  size_t len, cap;
};

/* Appends formatted text. On out of memory the text stays as it was. */
__attribute__((format(printf, 2, 3))) void prom_printf(struct prom_text *out, const char *format,
                                                       ...);

/* Writes the HELP and TYPE lines of cdnrefresh_<name>. */
void prom_metric(struct prom_text *out, const char *name, const char *type, const char *help);

/* Writes cdnrefresh_<name> as a histogram (cumulative buckets in seconds, sum, count). */
void prom_histogram(struct prom_text *out, const char *name, const char *help,
                    struct histogram *histogram);

#endif
