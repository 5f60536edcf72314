/* Helpers shared by the kernels' unit tests: a seeded random source (uniform and
 * normal) and error measures. Header-only so each test binary stays self-contained. */
#ifndef TESTS_KERN_TEST_UTIL_H
#define TESTS_KERN_TEST_UTIL_H

#include <math.h>
#include <stdint.h>

typedef struct { uint64_t s; } kt_rng;

static inline uint64_t kt_next(kt_rng *r) {
    /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static inline double kt_uniform(kt_rng *r) { return (double)(kt_next(r) >> 11) * 0x1p-53; }

static inline float kt_normal(kt_rng *r) {
    double u1 = kt_uniform(r), u2 = kt_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static inline void kt_fill_normal(kt_rng *r, float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * kt_normal(r);
}

/* sqrt(mean((a-b)^2)) / sqrt(mean(b^2)); 0 when both are zero. */
static inline double kt_rel_rms(const float *a, const float *b, int64_t n) {
    double se = 0.0, sb = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        se += d * d;
        sb += (double)b[i] * b[i];
    }
    if (sb == 0.0) return se == 0.0 ? 0.0 : INFINITY;
    return sqrt(se / sb);
}

static inline double kt_max_abs_diff(const float *a, const float *b, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

#endif
