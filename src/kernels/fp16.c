/* Half-precision formats: exact f16/bf16 <-> f32 conversions (round to nearest even,
 * infinities, NaNs and subnormals kept) and the scalar row kernels of the float weight
 * types F32, F16 and BF16, whose dot products take F32 activations.
 * Must never flush subnormals or turn a NaN into an infinity. */
#include "kernels/kern_internal.h"

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float kern_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (mant << 13));
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in f32 */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t kern_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) {
        if (x == 0x7f800000u) return sign | 0x7c00;
        return sign | 0x7e00 | (uint16_t)((x >> 13) & 0x3ff);   /* quiet NaN, top payload */
    }
    if (x >= 0x477ff000u) return sign | 0x7c00;   /* >= 65520 rounds past the max (65504) */
    if (x < 0x38800000u) {
        /* below 2^-14: a subnormal f16, in units of 2^-24 */
        uint32_t exp = x >> 23;
        if (exp < 102) return sign;               /* < 2^-25: rounds to zero */
        uint32_t mant = (x & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - exp;               /* 14..24 */
        uint32_t r = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = (x - (112u << 23)) >> 13;        /* rebias the exponent 127 -> 15 */
    uint32_t rem = x & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;   /* a carry may reach 0x7c00: inf */
    return sign | (uint16_t)r;
}

float kern_bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

uint16_t kern_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x0040);  /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---- F32 -------------------------------------------------------------------- */
void kern_f32_to_float(const void *src, float *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void kern_f32_from_float(const float *src, void *dst, int64_t n) {
    memcpy(dst, src, (size_t)n * sizeof(float));
}

float kern_f32_vec_dot(int64_t n, const void *w, const void *x) {
    const float *a = w, *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)a[i] * b[i];
    return (float)sum;
}

/* ---- F16 -------------------------------------------------------------------- */
void kern_f16_to_float(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = kern_f16_to_f32(h[i]);
}

void kern_f16_from_float(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = kern_f32_to_f16(src[i]);
}

float kern_f16_vec_dot(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w;
    const float *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)kern_f16_to_f32(a[i]) * b[i];
    return (float)sum;
}

/* ---- BF16 ------------------------------------------------------------------- */
void kern_bf16_to_float(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = kern_bf16_to_f32(h[i]);
}

void kern_bf16_from_float(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = kern_f32_to_bf16(src[i]);
}

float kern_bf16_vec_dot(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w;
    const float *b = x;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)kern_bf16_to_f32(a[i]) * b[i];
    return (float)sum;
}
