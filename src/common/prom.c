/* prom.c — Prometheus text format helpers (prom.h). */
#include "common/prom.h"

#include <stdatomic.h>

void prom_metric(struct buf *out, const char *name, const char *type, const char *help) {
  buf_printf(out, "# HELP cdnrefresh_%s %s\n# TYPE cdnrefresh_%s %s\n", name, help, name, type);
}

void prom_histogram(struct buf *out, const char *name, const char *help,
                    struct histogram *histogram) {
  prom_metric(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
    cumulative += atomic_load(&histogram->buckets[i]);
    if (i == HISTOGRAM_BUCKETS - 1)
      buf_printf(out, "cdnrefresh_%s_bucket{le=\"+Inf\"} %llu\n", name,
                 (unsigned long long)cumulative);
    else
      buf_printf(out, "cdnrefresh_%s_bucket{le=\"%g\"} %llu\n", name, histogram_bounds[i],
                 (unsigned long long)cumulative);
  }
  buf_printf(out, "cdnrefresh_%s_sum %.6f\ncdnrefresh_%s_count %llu\n", name,
             (double)atomic_load(&histogram->sum_us) / 1e6, name,
             (unsigned long long)atomic_load(&histogram->count));
}
