/* The sampler's pseudo-random generator: xoshiro256** (Blackman and Vigna), its state
 * seeded from one 64-bit seed by splitmix64. Pure integer arithmetic, so a seed gives
 * the same sequence on every platform. Not for anything security-related. */
#ifndef ENGINE_SAMPLER_RNG_H
#define ENGINE_SAMPLER_RNG_H

#include <stdint.h>

typedef struct sampler_rng {
    uint64_t s[4];
} sampler_rng;

static inline uint64_t sampler_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t sampler_rotl(uint64_t v, int k) { return (v << k) | (v >> (64 - k)); }

/* splitmix64 outputs are never all zero over four draws, the one state xoshiro forbids. */
static inline void sampler_rng_seed(sampler_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = sampler_splitmix64(&seed);
}

static inline uint64_t sampler_rng_next(sampler_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = sampler_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = sampler_rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double sampler_rng_uniform(sampler_rng *r) {
    return (double)(sampler_rng_next(r) >> 11) * 0x1.0p-53;
}

#endif
