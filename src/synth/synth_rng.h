/* The seeded generator of the synthetic models: xoshiro256** seeded through splitmix64,
 * and standard normals by the Box-Muller transform. Our own, so the same seed gives the
 * same bytes on every run (transcendentals come from libm, so bit-identity across
 * different libm builds is likely, not promised); never uses rand(). Header-only and stateless
 * apart from the caller's synth_rng. */
#ifndef SYNTH_SYNTH_RNG_H
#define SYNTH_SYNTH_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct synth_rng {
    uint64_t s[4];
} synth_rng;

static inline uint64_t synth_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A generator for the stream identified by (seed, a, b): e.g. a tensor and a row, so
 * rows can be produced in any order on any thread. */
static inline synth_rng synth_rng_for(uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t x = seed ^ (a * 0xd1342543de82ef95ULL) ^ (b * 0x9e6c63d0676a9a99ULL);
    synth_rng r;
    for (int i = 0; i < 4; i++) r.s[i] = synth_splitmix64(&x);
    return r;
}

static inline uint64_t synth_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t synth_next(synth_rng *r) {
    uint64_t *s = r->s, out = synth_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = synth_rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double synth_uniform(synth_rng *r) { return (double)(synth_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n), n >= 1 (multiply-shift; the bias is below 2^-32 for n < 2^32). */
static inline uint64_t synth_below(synth_rng *r, uint64_t n) {
    return (uint64_t)(((unsigned __int128)synth_next(r) * n) >> 64);
}

/* Fills out[0..n) with mean + std * N(0, 1). */
static inline void synth_normals(synth_rng *r, float *out, int64_t n, double mean, double std) {
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = 1.0 - synth_uniform(r), u2 = synth_uniform(r);
        double rad = sqrt(-2.0 * log(u1)), ang = 6.283185307179586 * u2;
        out[i] = (float)(mean + std * rad * cos(ang));
        if (i + 1 < n) out[i + 1] = (float)(mean + std * rad * sin(ang));
    }
}

#endif
