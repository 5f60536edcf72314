/* Summary statistics of latency samples: min, mean, max and linearly interpolated
 * percentiles (p = 50 is the median; the same method as numpy's default). Pure
 * arithmetic on the caller's array: never allocates. */
#include "loadgen/loadgen.h"

#include <stdlib.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double loadgen_percentile(const double *sorted, size_t n, double p) {
    if (n == 0) return 0;
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)rank;
    if (lo >= n - 1) return sorted[n - 1];
    double frac = rank - (double)lo;
    return sorted[lo] + (sorted[lo + 1] - sorted[lo]) * frac;
}

loadgen_summary loadgen_summarize(double *v, size_t n) {
    loadgen_summary s = {.n = n};
    if (n == 0) return s;
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += v[i];
    s.min = v[0];
    s.max = v[n - 1];
    s.mean = sum / (double)n;
    s.p50 = loadgen_percentile(v, n, 50);
    s.p90 = loadgen_percentile(v, n, 90);
    s.p99 = loadgen_percentile(v, n, 99);
    return s;
}
