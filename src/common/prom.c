/* prom.c — Prometheus text format helpers (prom.h). */
#include "common/prom.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

void prom_printf(struct prom_text *out, const char *format, ...) {
  for (;;) {
    va_list args;
    va_start(args, format);
    int n = vsnprintf(out->data ? out->data + out->len : NULL, out->data ? out->cap - out->len : 0,
                      format, args);
    va_end(args);
    if (n < 0)
      return;
    if (out->data && out->len + (size_t)n < out->cap) {
      out->len += (size_t)n;
      return;
    }
    size_t cap = out->cap ? out->cap * 2 : 8192;
    while (cap < out->len + (size_t)n + 1)
      cap *= 2;
    char *grown = realloc(out->data, cap);
    if (!grown)
      return;
    out->data = grown;
    out->cap = cap;
  }
}

void prom_metric(struct prom_text *out, const char *name, const char *type, const char *help) {
  prom_printf(out, "# HELP cdnrefresh_%s %s\n# TYPE cdnrefresh_%s %s\n", name, help, name, type);
}

void prom_histogram(struct prom_text *out, const char *name, const char *help,
                    struct histogram *histogram) {
  prom_metric(out, name, "histogram", help);
  uint64_t cumulative = 0;
  for (int i = 0; i < HISTOGRAM_BUCKETS; i++) {
    cumulative += atomic_load(&histogram->buckets[i]);
    if (i == HISTOGRAM_BUCKETS - 1)
      prom_printf(out, "cdnrefresh_%s_bucket{le=\"+Inf\"} %llu\n", name,
                  (unsigned long long)cumulative);
    else
      prom_printf(out, "cdnrefresh_%s_bucket{le=\"%g\"} %llu\n", name, histogram_bounds[i],
                  (unsigned long long)cumulative);
  }
  prom_printf(out, "cdnrefresh_%s_sum %.6f\ncdnrefresh_%s_count %llu\n", name,
              (double)atomic_load(&histogram->sum_us) / 1e6, name,
              (unsigned long long)atomic_load(&histogram->count));
}
