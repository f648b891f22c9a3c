/* prom.h — writing the Prometheus text exposition format (0.0.4) into a struct buf (buf_printf for
 * the samples): HELP and TYPE lines, and histograms from common/rate.h. Metric names get the
 * cdnrefresh_ prefix. */
#ifndef CDR_PROM_H
#define CDR_PROM_H

#include "common/buf.h"
#include "common/rate.h"

#include <stddef.h>

enum { PROM_TEXT_MAX = 1 << 20 }; /* the maximum of a scrape's buffer: far more than it holds */

/* Writes the HELP and TYPE lines of cdnrefresh_<name>. */
void prom_metric(struct buf *out, const char *name, const char *type, const char *help);

/* Writes cdnrefresh_<name> as a histogram (cumulative buckets in seconds, sum, count). */
void prom_histogram(struct buf *out, const char *name, const char *help,
                    struct histogram *histogram);

#endif
