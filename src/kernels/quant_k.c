/* The K-quant super-block formats Q4_K, Q5_K and Q6_K (256 elements): dequantization,
 * quantizers built on the scale searches of quant_k_search.c, and scalar dot products
 * against Q8_K activations. Each block is first unpacked into one quant per element
 * plus per-group scales, so the bit layout lives in exactly one place per format.
 * Must never read or write past n elements. */
#include <math.h>
#include <stdbool.h>

#include "kernels/kern_internal.h"

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- the 12-byte scale/min packing shared by Q4_K and Q5_K ----------------------
 * 8 scales and 8 mins of 6 bits: for j < 4 the low 6 bits of bytes j (scale) and j+4
 * (min); for j >= 4 the low 4 bits in byte j+4 (scale low nibble, min high nibble) and
 * the top 2 bits in bits 6-7 of bytes j-4 (scale) and j (min). */
void kern_k_unpack_scales_mins(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
    }
    for (int j = 4; j < 8; j++) {
        sc[j] = (uint8_t)((s[j + 4] & 0x0f) | (s[j - 4] >> 6) << 4);
        mn[j] = (uint8_t)((s[j + 4] >> 4) | (s[j] >> 6) << 4);
    }
}

static void pack_scales_mins(const uint8_t sc[8], const uint8_t mn[8], uint8_t s[12]) {
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)((sc[j] & 63) | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)((mn[j] & 63) | (mn[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 0x0f) | (mn[j + 4] & 0x0f) << 4);
    }
}

/* Quant q[e] of element e (0..255): nibbles of qs in 64-element groups, low nibbles
   (elements 64g..64g+31) then high nibbles (64g+32..64g+63); Q5_K adds a fifth bit. */
void kern_q4_k_unpack(const kern_block_q4_k *b, uint8_t q[256]) {
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            q[64 * g + l] = b->qs[32 * g + l] & 0x0f;
            q[64 * g + 32 + l] = b->qs[32 * g + l] >> 4;
        }
}

static void unpack_q5_k(const kern_block_q5_k *b, uint8_t q[256]) {
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            q[64 * g + l] = (uint8_t)((b->qs[32 * g + l] & 0x0f) | ((b->qh[l] >> (2 * g)) & 1) << 4);
            q[64 * g + 32 + l] = (uint8_t)((b->qs[32 * g + l] >> 4) | ((b->qh[l] >> (2 * g + 1)) & 1) << 4);
        }
}

static void pack_nibbles(const uint8_t q[256], uint8_t qs[128]) {
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++)
            qs[32 * g + l] = (uint8_t)((q[64 * g + l] & 0x0f) | (q[64 * g + 32 + l] & 0x0f) << 4);
}

/* Q6_K: in each 128-element half h, element 128h + 32k + l (k < 4, l < 32) takes its
   low 4 bits from ql[64h + l + 32*(k&1)] (low nibble for k < 2, high for k >= 2) and
   its high 2 bits from bits 2k..2k+1 of qh[32h + l]. Quants are stored +32. */
void kern_q6_k_unpack(const kern_block_q6_k *b, int8_t q[256]) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                uint8_t lo = b->ql[64 * h + l + 32 * (k & 1)];
                lo = k < 2 ? (lo & 0x0f) : (lo >> 4);
                int hi = (b->qh[32 * h + l] >> (2 * k)) & 3;
                q[128 * h + 32 * k + l] = (int8_t)((lo | hi << 4) - 32);
            }
}

static void pack_q6_k(const uint8_t L[256], kern_block_q6_k *b) {
    memset(b->ql, 0, sizeof b->ql);
    memset(b->qh, 0, sizeof b->qh);
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                uint8_t v = L[128 * h + 32 * k + l];
                b->ql[64 * h + l + 32 * (k & 1)] |= (uint8_t)((v & 0x0f) << (k < 2 ? 0 : 4));
                b->qh[32 * h + l] |= (uint8_t)((v >> 4) << (2 * k));
            }
}

/* ---- Q4_K / Q5_K quantizer: x = d*sc[j]*q - dmin*mn[j] over 32-element groups j ----
 * 1. per group, fit a float scale and min (kern_fit_scale_min);
 * 2. encode them as 6-bit multiples of two fp16 super-scales d, dmin, trying the
 *    neighbours of the nearest integers and keeping the pair whose rounding fits best;
 * 3. refit d and dmin by least squares over the whole block for those integers and
 *    quants, and redo step 2 while the weighted error keeps falling. */

static inline float f16_round(float f) { return KERN_F16(kern_f32_to_f16(f)); }

/* Rounds group x (32 values) for x ~ ds*q - dm; writes q, returns the weighted error. */
static float round_group_min(const float *x, const float *w, int nmax, float ds, float dm, uint8_t *q) {
    float err = 0.0f, inv = ds > 0.0f ? 1.0f / ds : 0.0f;
    for (int l = 0; l < 32; l++) {
        int v = clampi(kern_nearest_int((x[l] + dm) * inv), 0, nmax);
        q[l] = (uint8_t)v;
        float diff = ds * v - dm - x[l];
        err += w[l] * diff * diff;
    }
    return err;
}

/* Step 2 for all groups; returns the block's weighted error. */
static float encode_groups(const float *x, const float *w, int nmax, float d, float dmin,
                           const float scale[8], const float mins[8], uint8_t sc[8], uint8_t mn[8],
                           uint8_t L[256]) {
    float total = 0.0f;
    uint8_t trial[32];
    for (int j = 0; j < 8; j++) {
        int s0 = d > 0.0f ? kern_nearest_int(scale[j] / d) : 0;
        int m0 = dmin > 0.0f ? kern_nearest_int(mins[j] / dmin) : 0;
        float best = INFINITY;
        for (int ds = -1; ds <= 1; ds++)
            for (int dm = -1; dm <= 1; dm++) {
                int s = clampi(s0 + ds, 0, 63), m = clampi(m0 + dm, 0, 63);
                float e = round_group_min(x + 32 * j, w + 32 * j, nmax, d * s, dmin * m, trial);
                if (e < best) {
                    best = e;
                    sc[j] = (uint8_t)s;
                    mn[j] = (uint8_t)m;
                    memcpy(L + 32 * j, trial, 32);
                }
            }
        total += best;
    }
    return total;
}

/* Step 3: least-squares d, dmin for x ~ d*(sc*q) - dmin*mn; false if degenerate. */
static bool refit_super_scales(const float *x, const float *w, const uint8_t sc[8], const uint8_t mn[8],
                               const uint8_t L[256], float *d, float *dmin) {
    double A = 0, B = 0, C = 0, X = 0, Y = 0;
    for (int i = 0; i < 256; i++) {
        double a = (double)sc[i / 32] * L[i], b = mn[i / 32];
        A += w[i] * a * a;
        B += w[i] * a * b;
        C += w[i] * b * b;
        X += w[i] * a * x[i];
        Y += w[i] * b * x[i];
    }
    if (A <= 0) return false;
    double det = A * C - B * B;
    double nd = X / A, ne = 0.0;
    if (C > 0 && det > 1e-12 * A * C) {
        nd = (X * C - B * Y) / det;
        ne = (B * X - A * Y) / det;
        if (ne < 0) {
            ne = 0;
            nd = X / A;
        }
    }
    if (!(nd > 0)) return false;
    *d = f16_round((float)nd);
    *dmin = f16_round((float)ne);
    return *d > 0.0f;
}

static void quantize_k_scale_min(const float *x, int nmax, float rmin, int nstep,
                                 uint16_t *d_out, uint16_t *dmin_out, uint8_t scales[12],
                                 uint8_t L[256]) {
    float scale[8], mins[8], w[256];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float av = sqrtf(sum_x2 / 32.0f);
        /* weight large values more, but never ignore small ones */
        for (int l = 0; l < 32; l++) w[32 * j + l] = av + fabsf(xs[l]);
        scale[j] = kern_fit_scale_min(32, nmax, xs, w + 32 * j, L + 32 * j, &mins[j], rmin, 0.1f, nstep);
        max_scale = fmaxf(max_scale, scale[j]);
        max_min = fmaxf(max_min, mins[j]);
    }

    uint8_t sc[8], mn[8];
    float d = f16_round(max_scale / 63.0f), dmin = f16_round(max_min / 63.0f);
    if (d == 0.0f) {
        /* scales negligible (below fp16's range) or groups constant: each group becomes
           the offset nearest its weighted mean, when that mean is negative */
        memset(sc, 0, sizeof sc);
        memset(L, 0, 256);
        for (int j = 0; j < 8; j++) {
            float sw = 0.0f, swx = 0.0f;
            for (int l = 0; l < 32; l++) {
                sw += w[32 * j + l];
                swx += w[32 * j + l] * x[32 * j + l];
            }
            float mean = sw > 0.0f ? swx / sw : 0.0f;
            mn[j] = (uint8_t)(dmin > 0.0f ? clampi(kern_nearest_int(-mean / dmin), 0, 63) : 0);
        }
    } else {
        float err = encode_groups(x, w, nmax, d, dmin, scale, mins, sc, mn, L);
        for (int iter = 0; iter < 2; iter++) {
            float d2 = d, dmin2 = dmin;
            uint8_t sc2[8], mn2[8], L2[256];
            if (!refit_super_scales(x, w, sc, mn, L, &d2, &dmin2)) break;
            float err2 = encode_groups(x, w, nmax, d2, dmin2, scale, mins, sc2, mn2, L2);
            if (!(err2 < err)) break;
            err = err2;
            d = d2;
            dmin = dmin2;
            memcpy(sc, sc2, sizeof sc);
            memcpy(mn, mn2, sizeof mn);
            memcpy(L, L2, 256);
        }
    }
    pack_scales_mins(sc, mn, scales);
    *d_out = kern_f32_to_f16(d);
    *dmin_out = kern_f32_to_f16(dmin);
}

/* ---- Q4_K ------------------------------------------------------------------- */
void kern_q4_k_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q4_k *b = dst;
    uint8_t L[256];
    for (int64_t i = 0; i < n / KERN_QKK; i++, src += KERN_QKK) {
        quantize_k_scale_min(src, 15, -1.0f, 20, &b[i].d, &b[i].dmin, b[i].scales, L);
        pack_nibbles(L, b[i].qs);
    }
}

void kern_q4_k_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q4_k *b = src;
    uint8_t q[256], sc[8], mn[8];
    for (int64_t i = 0; i < n / KERN_QKK; i++, dst += KERN_QKK) {
        float d = KERN_F16(b[i].d), dmin = KERN_F16(b[i].dmin);
        kern_k_unpack_scales_mins(b[i].scales, sc, mn);
        kern_q4_k_unpack(&b[i], q);
        for (int e = 0; e < 256; e++) dst[e] = d * sc[e / 32] * q[e] - dmin * mn[e / 32];
    }
}

/* Shared by Q4_K and Q5_K once the quants are unpacked. */
static float dot_scale_min_block(const uint8_t q[256], const uint8_t sc[8], const uint8_t mn[8],
                                 float d, float dmin, const kern_block_q8_k *y) {
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
        int32_t s = 0;
        for (int l = 0; l < 32; l++) s += q[32 * j + l] * y->qs[32 * j + l];
        sumi += sc[j] * s;
        summ += mn[j] * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
    }
    return y->d * (d * (float)sumi - dmin * (float)summ);
}

float kern_q4_k_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q4_k *a = w;
    const kern_block_q8_k *y = x;
    uint8_t q[256], sc[8], mn[8];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QKK; i++) {
        kern_k_unpack_scales_mins(a[i].scales, sc, mn);
        kern_q4_k_unpack(&a[i], q);
        sum += dot_scale_min_block(q, sc, mn, KERN_F16(a[i].d), KERN_F16(a[i].dmin), &y[i]);
    }
    return sum;
}

/* ---- Q5_K ------------------------------------------------------------------- */
void kern_q5_k_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q5_k *b = dst;
    uint8_t L[256];
    for (int64_t i = 0; i < n / KERN_QKK; i++, src += KERN_QKK) {
        quantize_k_scale_min(src, 31, -0.5f, 15, &b[i].d, &b[i].dmin, b[i].scales, L);
        pack_nibbles(L, b[i].qs);
        memset(b[i].qh, 0, sizeof b[i].qh);
        for (int g = 0; g < 4; g++)
            for (int l = 0; l < 32; l++) {
                b[i].qh[l] |= (uint8_t)((L[64 * g + l] >> 4) << (2 * g));
                b[i].qh[l] |= (uint8_t)((L[64 * g + 32 + l] >> 4) << (2 * g + 1));
            }
    }
}

void kern_q5_k_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q5_k *b = src;
    uint8_t q[256], sc[8], mn[8];
    for (int64_t i = 0; i < n / KERN_QKK; i++, dst += KERN_QKK) {
        float d = KERN_F16(b[i].d), dmin = KERN_F16(b[i].dmin);
        kern_k_unpack_scales_mins(b[i].scales, sc, mn);
        unpack_q5_k(&b[i], q);
        for (int e = 0; e < 256; e++) dst[e] = d * sc[e / 32] * q[e] - dmin * mn[e / 32];
    }
}

float kern_q5_k_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q5_k *a = w;
    const kern_block_q8_k *y = x;
    uint8_t q[256], sc[8], mn[8];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QKK; i++) {
        kern_k_unpack_scales_mins(a[i].scales, sc, mn);
        unpack_q5_k(&a[i], q);
        sum += dot_scale_min_block(q, sc, mn, KERN_F16(a[i].d), KERN_F16(a[i].dmin), &y[i]);
    }
    return sum;
}

/* ---- Q6_K: x = d * scales[e/16] * q, q in [-32, 31] ---------------------------
 * Per 16-element group a signed scale is fitted (kern_fit_scale_signed), then the
 * scales are encoded as int8 multiples of one fp16 d as for Q4_K: neighbours of the
 * nearest integer are tried, and d is refitted by least squares while the error falls.
 * Errors are weighted as for Q4_K: group RMS + |x|. */

static float round_group_signed(const float *x, const float *w, float ds, uint8_t *q) {
    float err = 0.0f, inv = ds != 0.0f ? 1.0f / ds : 0.0f;
    for (int l = 0; l < 16; l++) {
        int v = clampi(kern_nearest_int(x[l] * inv), -32, 31);
        q[l] = (uint8_t)(v + 32);
        float diff = ds * v - x[l];
        err += w[l] * diff * diff;
    }
    return err;
}

static float encode_groups_q6(const float *x, const float *w, float d, const float scale[16], int8_t sc[16], uint8_t L[256]) {
    float total = 0.0f;
    uint8_t trial[16];
    for (int j = 0; j < 16; j++) {
        int s0 = kern_nearest_int(scale[j] / d);
        float best = INFINITY;
        for (int ds = -1; ds <= 1; ds++) {
            int s = clampi(s0 + ds, -128, 127);
            float e = round_group_signed(x + 16 * j, w + 16 * j, d * s, trial);
            if (e < best) {
                best = e;
                sc[j] = (int8_t)s;
                memcpy(L + 16 * j, trial, 16);
            }
        }
        total += best;
    }
    return total;
}

void kern_q6_k_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q6_k *b = dst;
    uint8_t L[256], L2[256];
    float scale[16], w[256];
    int8_t sc2[16];
    for (int64_t i = 0; i < n / KERN_QKK; i++, src += KERN_QKK) {
        float max_abs = 0.0f, max_scale = 0.0f;
        for (int j = 0; j < 16; j++) {
            const float *xs = src + 16 * j;
            float sum_x2 = 0.0f;
            for (int l = 0; l < 16; l++) sum_x2 += xs[l] * xs[l];
            float av = sqrtf(sum_x2 / 16.0f);
            for (int l = 0; l < 16; l++) w[16 * j + l] = av + fabsf(xs[l]);
            scale[j] = kern_fit_scale_signed(16, 32, xs, w + 16 * j, L + 16 * j);
            if (fabsf(scale[j]) > max_abs) {
                max_abs = fabsf(scale[j]);
                max_scale = scale[j];
            }
        }
        /* the largest group scale maps to -128, the side with one more level */
        float d = f16_round(max_scale / -128.0f);
        if (max_abs < 1e-15f || d == 0.0f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        float err = encode_groups_q6(src, w, d, scale, b[i].scales, L);
        for (int iter = 0; iter < 2; iter++) {
            double num = 0, den = 0;
            for (int e = 0; e < 256; e++) {
                double a = (double)b[i].scales[e / 16] * (L[e] - 32);
                num += w[e] * a * src[e];
                den += w[e] * a * a;
            }
            if (!(den > 0)) break;
            float d2 = f16_round((float)(num / den));
            if (d2 == 0.0f) break;
            float err2 = encode_groups_q6(src, w, d2, scale, sc2, L2);
            if (!(err2 < err)) break;
            err = err2;
            d = d2;
            memcpy(b[i].scales, sc2, sizeof sc2);
            memcpy(L, L2, sizeof L);
        }
        b[i].d = kern_f32_to_f16(d);
        pack_q6_k(L, &b[i]);
    }
}

void kern_q6_k_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q6_k *b = src;
    int8_t q[256];
    for (int64_t i = 0; i < n / KERN_QKK; i++, dst += KERN_QKK) {
        float d = KERN_F16(b[i].d);
        kern_q6_k_unpack(&b[i], q);
        for (int e = 0; e < 256; e++) dst[e] = d * b[i].scales[e / 16] * q[e];
    }
}

float kern_q6_k_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q6_k *a = w;
    const kern_block_q8_k *y = x;
    int8_t q[256];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QKK; i++) {
        kern_q6_k_unpack(&a[i], q);
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) s += q[16 * j + l] * y[i].qs[16 * j + l];
            sumi += a[i].scales[j] * s;
        }
        sum += y[i].d * KERN_F16(a[i].d) * (float)sumi;
    }
    return sum;
}
