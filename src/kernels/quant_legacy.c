/* The legacy 32-element block formats Q4_0, Q4_1, Q5_0 and Q5_1: dequantization, the
 * reference quantizers (the published ones, so a row quantized here matches the
 * reference tool's bytes) and scalar dot products against Q8_0 / Q8_1 activations.
 * Layout facts: element j < 16 sits in the low nibble of qs[j], element j + 16 in its
 * high nibble; for the 5-bit types bit j of the little-endian qh word is element j's
 * fifth bit (j = 0..31). Must never read or write past n elements. */
#include <math.h>

#include "kernels/kern_internal.h"

static inline uint32_t load_qh(const uint8_t qh[4]) {
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

static inline void store_qh(uint8_t qh[4], uint32_t v) {
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(v >> (8 * k));
}

/* The element of largest magnitude, with its sign. */
static float signed_absmax(const float *x, int n) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    return max;
}

static void min_max(const float *x, int n, float *lo, float *hi) {
    float mn = x[0], mx = x[0];
    for (int i = 1; i < n; i++) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
    }
    *lo = mn;
    *hi = mx;
}

static inline int clamp_top(int v, int top) { return v > top ? top : v; }

/* ---- Q4_0: x = d * (q - 8) -------------------------------------------------- */
void kern_q4_0_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / KERN_QK32; i++, src += KERN_QK32) {
        /* the extreme maps to -8 exactly, the side with one more level */
        float d = signed_absmax(src, KERN_QK32) / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = kern_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            int lo = clamp_top((int)(src[j] * id + 8.5f), 15);
            int hi = clamp_top((int)(src[j + 16] * id + 8.5f), 15);
            b[i].qs[j] = (uint8_t)(lo | hi << 4);
        }
    }
}

void kern_q4_0_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q4_0 *b = src;
    for (int64_t i = 0; i < n / KERN_QK32; i++, dst += KERN_QK32) {
        float d = KERN_F16(b[i].d);
        for (int j = 0; j < 16; j++) {
            dst[j] = d * ((b[i].qs[j] & 0x0f) - 8);
            dst[j + 16] = d * ((b[i].qs[j] >> 4) - 8);
        }
    }
}

float kern_q4_0_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q4_0 *a = w;
    const kern_block_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += ((a[i].qs[j] & 0x0f) - 8) * b[i].qs[j];
            sumi += ((a[i].qs[j] >> 4) - 8) * b[i].qs[j + 16];
        }
        sum += (float)sumi * (KERN_F16(a[i].d) * KERN_F16(b[i].d));
    }
    return sum;
}

/* ---- Q4_1: x = d * q + m ---------------------------------------------------- */
void kern_q4_1_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / KERN_QK32; i++, src += KERN_QK32) {
        float lo, hi;
        min_max(src, KERN_QK32, &lo, &hi);
        float d = (hi - lo) / 15.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        b[i].d = kern_f32_to_f16(d);
        b[i].m = kern_f32_to_f16(lo);
        for (int j = 0; j < 16; j++) {
            int q0 = clamp_top((int)((src[j] - lo) * id + 0.5f), 15);
            int q1 = clamp_top((int)((src[j + 16] - lo) * id + 0.5f), 15);
            b[i].qs[j] = (uint8_t)(q0 | q1 << 4);
        }
    }
}

void kern_q4_1_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q4_1 *b = src;
    for (int64_t i = 0; i < n / KERN_QK32; i++, dst += KERN_QK32) {
        float d = KERN_F16(b[i].d), m = KERN_F16(b[i].m);
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (b[i].qs[j] & 0x0f) + m;
            dst[j + 16] = d * (b[i].qs[j] >> 4) + m;
        }
    }
}

float kern_q4_1_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q4_1 *a = w;
    const kern_block_q8_1 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (a[i].qs[j] & 0x0f) * b[i].qs[j];
            sumi += (a[i].qs[j] >> 4) * b[i].qs[j + 16];
        }
        sum += (float)sumi * (KERN_F16(a[i].d) * KERN_F16(b[i].d)) +
               KERN_F16(a[i].m) * KERN_F16(b[i].s);
    }
    return sum;
}

/* ---- Q5_0: x = d * (q - 16) ------------------------------------------------- */
void kern_q5_0_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q5_0 *b = dst;
    for (int64_t i = 0; i < n / KERN_QK32; i++, src += KERN_QK32) {
        float d = signed_absmax(src, KERN_QK32) / -16.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        b[i].d = kern_f32_to_f16(d);
        for (int j = 0; j < 16; j++) {
            int lo = clamp_top((int)(src[j] * id + 16.5f), 31);
            int hi = clamp_top((int)(src[j + 16] * id + 16.5f), 31);
            b[i].qs[j] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
            qh |= (uint32_t)(lo >> 4) << j;
            qh |= (uint32_t)(hi >> 4) << (j + 16);
        }
        store_qh(b[i].qh, qh);
    }
}

void kern_q5_0_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q5_0 *b = src;
    for (int64_t i = 0; i < n / KERN_QK32; i++, dst += KERN_QK32) {
        float d = KERN_F16(b[i].d);
        uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < 16; j++) {
            int lo = (b[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            dst[j] = d * (lo - 16);
            dst[j + 16] = d * (hi - 16);
        }
    }
}

float kern_q5_0_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q5_0 *a = w;
    const kern_block_q8_0 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        uint32_t qh = load_qh(a[i].qh);
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (a[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int hi = (a[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            sumi += (lo - 16) * b[i].qs[j] + (hi - 16) * b[i].qs[j + 16];
        }
        sum += (float)sumi * (KERN_F16(a[i].d) * KERN_F16(b[i].d));
    }
    return sum;
}

/* ---- Q5_1: x = d * q + m ---------------------------------------------------- */
void kern_q5_1_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q5_1 *b = dst;
    for (int64_t i = 0; i < n / KERN_QK32; i++, src += KERN_QK32) {
        float lo, hi;
        min_max(src, KERN_QK32, &lo, &hi);
        float d = (hi - lo) / 31.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint32_t qh = 0;
        b[i].d = kern_f32_to_f16(d);
        b[i].m = kern_f32_to_f16(lo);
        for (int j = 0; j < 16; j++) {
            int q0 = clamp_top((int)((src[j] - lo) * id + 0.5f), 31);
            int q1 = clamp_top((int)((src[j + 16] - lo) * id + 0.5f), 31);
            b[i].qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
            qh |= (uint32_t)(q0 >> 4) << j;
            qh |= (uint32_t)(q1 >> 4) << (j + 16);
        }
        store_qh(b[i].qh, qh);
    }
}

void kern_q5_1_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q5_1 *b = src;
    for (int64_t i = 0; i < n / KERN_QK32; i++, dst += KERN_QK32) {
        float d = KERN_F16(b[i].d), m = KERN_F16(b[i].m);
        uint32_t qh = load_qh(b[i].qh);
        for (int j = 0; j < 16; j++) {
            int lo = (b[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int hi = (b[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            dst[j] = d * lo + m;
            dst[j + 16] = d * hi + m;
        }
    }
}

float kern_q5_1_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q5_1 *a = w;
    const kern_block_q8_1 *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        uint32_t qh = load_qh(a[i].qh);
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            int lo = (a[i].qs[j] & 0x0f) | (int)((qh >> j) & 1) << 4;
            int hi = (a[i].qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            sumi += lo * b[i].qs[j] + hi * b[i].qs[j + 16];
        }
        sum += (float)sumi * (KERN_F16(a[i].d) * KERN_F16(b[i].d)) +
               KERN_F16(a[i].m) * KERN_F16(b[i].s);
    }
    return sum;
}
