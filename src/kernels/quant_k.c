/* The K-quant super-block formats Q4_K, Q5_K and Q6_K (256 elements): dequantization,
 * quantizers built on the scale searches of quant_k_search.c, and scalar dot products
 * against Q8_K activations. Each block is first unpacked into one quant per element
 * plus per-group scales, so the bit layout lives in exactly one place per format.
 * Must never read or write past n elements. */
#include <math.h>

#include "kernels/kern_internal.h"

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* ---- the 12-byte scale/min packing shared by Q4_K and Q5_K ----------------------
 * 8 scales and 8 mins of 6 bits: for j < 4 the low 6 bits of bytes j (scale) and j+4
 * (min); for j >= 4 the low 4 bits in byte j+4 (scale low nibble, min high nibble) and
 * the top 2 bits in bits 6-7 of bytes j-4 (scale) and j (min). */
static void unpack_scales_mins(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]) {
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
static void unpack_q4_k(const kern_block_q4_k *b, uint8_t q[256]) {
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
static void unpack_q6_k(const kern_block_q6_k *b, int8_t q[256]) {
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

/* ---- Q4_K / Q5_K quantizer: x = d*sc[j]*q - dmin*mn[j] over 32-element groups j ---- */
static void quantize_k_scale_min(const float *x, int nmax, float rmin, int nstep,
                                 uint16_t *d_out, uint16_t *dmin_out, uint8_t scales[12],
                                 uint8_t L[256]) {
    float scale[8], mins[8], w[32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float av = sqrtf(sum_x2 / 32.0f);
        /* weight large values more, but never ignore small ones */
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(xs[l]);
        scale[j] = kern_fit_scale_min(32, nmax, xs, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep);
        max_scale = fmaxf(max_scale, scale[j]);
        max_min = fmaxf(max_min, mins[j]);
    }

    /* the group scales and mins themselves are quantized to 6 bits */
    float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)clampi(kern_nearest_int(inv_scale * scale[j]), 0, 63);
        mn[j] = (uint8_t)clampi(kern_nearest_int(inv_min * mins[j]), 0, 63);
    }
    pack_scales_mins(sc, mn, scales);
    *d_out = kern_f32_to_f16(max_scale / 63.0f);
    *dmin_out = kern_f32_to_f16(max_min / 63.0f);

    /* requantize against the scales as they will be decoded */
    float d = KERN_F16(*d_out), dmin = KERN_F16(*dmin_out);
    for (int j = 0; j < 8; j++) {
        float dj = d * sc[j];
        if (dj == 0.0f) continue;
        float mj = dmin * mn[j];
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clampi(kern_nearest_int((x[32 * j + l] + mj) / dj), 0, nmax);
    }
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
        unpack_scales_mins(b[i].scales, sc, mn);
        unpack_q4_k(&b[i], q);
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
        unpack_scales_mins(a[i].scales, sc, mn);
        unpack_q4_k(&a[i], q);
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
        unpack_scales_mins(b[i].scales, sc, mn);
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
        unpack_scales_mins(a[i].scales, sc, mn);
        unpack_q5_k(&a[i], q);
        sum += dot_scale_min_block(q, sc, mn, KERN_F16(a[i].d), KERN_F16(a[i].dmin), &y[i]);
    }
    return sum;
}

/* ---- Q6_K: x = d * scales[e/16] * q, q in [-32, 31] --------------------------- */
void kern_q6_k_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q6_k *b = dst;
    uint8_t L[256];
    float scale[16];
    for (int64_t i = 0; i < n / KERN_QKK; i++, src += KERN_QKK) {
        float max_abs = 0.0f, max_scale = 0.0f;
        for (int j = 0; j < 16; j++) {
            scale[j] = kern_fit_scale_signed(16, 32, src + 16 * j, L + 16 * j);
            if (fabsf(scale[j]) > max_abs) {
                max_abs = fabsf(scale[j]);
                max_scale = scale[j];
            }
        }
        if (max_abs < 1e-15f) {
            memset(&b[i], 0, sizeof b[i]);
            continue;
        }
        /* the largest group scale maps to -128, the side with one more level */
        float iscale = -128.0f / max_scale;
        b[i].d = kern_f32_to_f16(1.0f / iscale);
        for (int j = 0; j < 16; j++)
            b[i].scales[j] = (int8_t)clampi(kern_nearest_int(iscale * scale[j]), -128, 127);
        float d = KERN_F16(b[i].d);
        for (int j = 0; j < 16; j++) {
            float dj = d * b[i].scales[j];
            if (dj == 0.0f) continue;
            for (int l = 0; l < 16; l++)
                L[16 * j + l] = (uint8_t)(32 + clampi(kern_nearest_int(src[16 * j + l] / dj), -32, 31));
        }
        pack_q6_k(L, &b[i]);
    }
}

void kern_q6_k_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q6_k *b = src;
    int8_t q[256];
    for (int64_t i = 0; i < n / KERN_QKK; i++, dst += KERN_QKK) {
        float d = KERN_F16(b[i].d);
        unpack_q6_k(&b[i], q);
        for (int e = 0; e < 256; e++) dst[e] = d * b[i].scales[e / 16] * q[e];
    }
}

float kern_q6_k_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q6_k *a = w;
    const kern_block_q8_k *y = x;
    int8_t q[256];
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QKK; i++) {
        unpack_q6_k(&a[i], q);
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
