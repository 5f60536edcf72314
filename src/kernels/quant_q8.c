/* The 8-bit block formats: Q8_0 (weights, and activations of Q4_0/Q5_0/Q8_0 weights),
 * Q8_1 (activations of Q4_1/Q5_1 weights: carries d*sum(qs) for the min term) and
 * Q8_K (activations of the K-quants: float scale, per-16 sums). Plain absmax quantizers.
 * Must never produce a quant outside [-127, 127]. */
#include <math.h>

#include "kernels/kern_internal.h"

static float absmax(const float *x, int n) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    return amax;
}

/* ---- Q8_0 ------------------------------------------------------------------- */
void kern_q8_0_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / KERN_QK32; i++, src += KERN_QK32) {
        float d = absmax(src, KERN_QK32) / 127.0f;
        float id = d > 0.0f ? 1.0f / d : 0.0f;
        b[i].d = kern_f32_to_f16(d);
        for (int j = 0; j < KERN_QK32; j++) b[i].qs[j] = (int8_t)roundf(src[j] * id);
    }
}

void kern_q8_0_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / KERN_QK32; i++, dst += KERN_QK32) {
        float d = KERN_F16(b[i].d);
        for (int j = 0; j < KERN_QK32; j++) dst[j] = d * b[i].qs[j];
    }
}

float kern_q8_0_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q8_0 *a = w, *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < KERN_QK32; j++) sumi += a[i].qs[j] * b[i].qs[j];
        sum += (float)sumi * (KERN_F16(a[i].d) * KERN_F16(b[i].d));
    }
    return sum;
}

/* ---- Q8_1 ------------------------------------------------------------------- */
void kern_q8_1_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / KERN_QK32; i++, src += KERN_QK32) {
        float d = absmax(src, KERN_QK32) / 127.0f;
        float id = d > 0.0f ? 1.0f / d : 0.0f;
        int32_t sumq = 0;
        for (int j = 0; j < KERN_QK32; j++) {
            b[i].qs[j] = (int8_t)roundf(src[j] * id);
            sumq += b[i].qs[j];
        }
        b[i].d = kern_f32_to_f16(d);
        b[i].s = kern_f32_to_f16(d * (float)sumq);
    }
}

void kern_q8_1_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q8_1 *b = src;
    for (int64_t i = 0; i < n / KERN_QK32; i++, dst += KERN_QK32) {
        float d = KERN_F16(b[i].d);
        for (int j = 0; j < KERN_QK32; j++) dst[j] = d * b[i].qs[j];
    }
}

float kern_q8_1_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q8_1 *a = w, *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < KERN_QK32; j++) sumi += a[i].qs[j] * b[i].qs[j];
        sum += (float)sumi * (KERN_F16(a[i].d) * KERN_F16(b[i].d));
    }
    return sum;
}

/* ---- Q8_K ------------------------------------------------------------------- */
void kern_q8_k_from_float(const float *src, void *dst, int64_t n) {
    kern_block_q8_k *b = dst;
    for (int64_t i = 0; i < n / KERN_QKK; i++, src += KERN_QKK) {
        float amax = absmax(src, KERN_QKK);
        memset(&b[i], 0, sizeof b[i]);
        if (amax == 0.0f) continue;
        float iscale = 127.0f / amax;
        for (int j = 0; j < KERN_QKK; j++) {
            int q = kern_nearest_int(iscale * src[j]);
            q = q > 127 ? 127 : q < -127 ? -127 : q;
            b[i].qs[j] = (int8_t)q;
            b[i].bsums[j / 16] = (int16_t)(b[i].bsums[j / 16] + q);
        }
        b[i].d = 1.0f / iscale;
    }
}

void kern_q8_k_to_float(const void *src, float *dst, int64_t n) {
    const kern_block_q8_k *b = src;
    for (int64_t i = 0; i < n / KERN_QKK; i++, dst += KERN_QKK)
        for (int j = 0; j < KERN_QKK; j++) dst[j] = b[i].d * b[i].qs[j];
}

float kern_q8_k_vec_dot(int64_t n, const void *w, const void *x) {
    const kern_block_q8_k *a = w, *b = x;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / KERN_QKK; i++) {
        int32_t sumi = 0;
        for (int j = 0; j < KERN_QKK; j++) sumi += a[i].qs[j] * b[i].qs[j];
        sum += (float)sumi * (a[i].d * b[i].d);
    }
    return sum;
}
