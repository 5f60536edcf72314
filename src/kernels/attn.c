/* Attention over F16 keys/values with an online softmax: the level dispatch and the
 * scalar reference. The reference keeps, per query row, the running max m, the running
 * sum l of exp(s - m) and the unnormalised output o; each visible key either raises m
 * (rescaling l and o by exp(m_old - m_new)) or adds exp(s - m) of its value. The SIMD
 * levels (attn_avx2.c, attn_avx512.c) do the same over chunks of keys, one query row per
 * vector lane. Must never read keys past the n given, nor let a row see a key at or
 * beyond its n_vis. */
#include <float.h>
#include <math.h>

#include "kernels/kern_internal.h"

#define MAX_HEAD 4096

size_t kern_attn_workspace_floats(int64_t dk, int64_t dv) {
    if (dk < 1 || dv < 1 || dk > MAX_HEAD || dv > MAX_HEAD) return 0;
    /* queries and outputs for KERN_ATTN_ROWS rows, a chunk of converted keys and values,
       and the running max and sum of each row */
    return (size_t)(KERN_ATTN_ROWS + KERN_ATTN_CHUNK) * (size_t)(dk + dv) + 2 * KERN_ATTN_ROWS;
}

kern_attn_parts kern_attn_split(const kern_attn *a) {
    kern_attn_parts p;
    float *w = a->ws;
    p.q = w;
    w += (size_t)KERN_ATTN_ROWS * (size_t)a->dk;
    p.o = w;
    w += (size_t)KERN_ATTN_ROWS * (size_t)a->dv;
    p.kf = w;
    w += (size_t)KERN_ATTN_CHUNK * (size_t)a->dk;
    p.vf = w;
    w += (size_t)KERN_ATTN_CHUNK * (size_t)a->dv;
    p.m = w;
    p.l = w + KERN_ATTN_ROWS;
    return p;
}

/* ---- scalar reference: row-major q[r][dk] (scaled), o[r][dv] ------------------ */
static void begin_scalar(kern_attn *a, const float *const *q, float scale) {
    kern_attn_parts p = kern_attn_split(a);
    for (int r = 0; r < a->n_rows; r++) {
        for (int64_t d = 0; d < a->dk; d++) p.q[r * a->dk + d] = q[r][d] * scale;
        for (int64_t d = 0; d < a->dv; d++) p.o[r * a->dv + d] = 0.0f;
        p.m[r] = -INFINITY;
        p.l[r] = 0.0f;
    }
}

static void keys_scalar(kern_attn *a, const uint16_t *k, size_t k_stride, const uint16_t *v, size_t v_stride,
                        int64_t pos0, int64_t n) {
    kern_attn_parts p = kern_attn_split(a);
    for (int64_t i = 0; i < n; i++) {
        const uint16_t *kr = k + (size_t)i * k_stride, *vr = v + (size_t)i * v_stride;
        for (int64_t d = 0; d < a->dk; d++) p.kf[d] = kern_f16_to_f32(kr[d]);
        for (int64_t d = 0; d < a->dv; d++) p.vf[d] = kern_f16_to_f32(vr[d]);
        for (int r = 0; r < a->n_rows; r++) {
            if (pos0 + i >= a->n_vis[r]) continue;
            const float *qr = p.q + r * a->dk;
            float *o = p.o + r * a->dv;
            float s = 0.0f;
            for (int64_t d = 0; d < a->dk; d++) s += qr[d] * p.kf[d];
            float w = 1.0f;
            if (s > p.m[r]) {
                float alpha = expf(p.m[r] - s);
                p.l[r] *= alpha;
                for (int64_t d = 0; d < a->dv; d++) o[d] *= alpha;
                p.m[r] = s;
            } else {
                w = expf(s - p.m[r]);
            }
            p.l[r] += w;
            for (int64_t d = 0; d < a->dv; d++) o[d] += w * p.vf[d];
        }
    }
}

static void end_scalar(kern_attn *a, float *const *out) {
    kern_attn_parts p = kern_attn_split(a);
    for (int r = 0; r < a->n_rows; r++) {
        float inv = p.l[r] > 0.0f ? 1.0f / p.l[r] : 0.0f;
        for (int64_t d = 0; d < a->dv; d++) out[r][d] = p.o[r * a->dv + d] * inv;
    }
}

/* ---- dispatch ------------------------------------------------------------------- */
void kern_attn_begin(kern_attn *a, kern_cpu_level level, float *ws, int64_t dk, int64_t dv, int n_rows,
                     const float *const *q, const int32_t *n_vis, float scale) {
    kern_cpu_level best = kern_cpu_level_best();
    a->level = level > best ? best : level;
    a->n_rows = n_rows;
    a->dk = dk;
    a->dv = dv;
    a->ws = ws;
    for (int r = 0; r < KERN_ATTN_ROWS; r++) a->n_vis[r] = r < n_rows ? n_vis[r] : 0;
    switch (a->level) {
    case KERN_CPU_AVX512: kern_attn_begin_avx512(a, q, scale); break;
    case KERN_CPU_AVX2: kern_attn_begin_avx2(a, q, scale); break;
    default: begin_scalar(a, q, scale); break;
    }
}

void kern_attn_keys(kern_attn *a, const uint16_t *k, size_t k_stride, const uint16_t *v, size_t v_stride,
                    int64_t pos0, int64_t n) {
    switch (a->level) {
    case KERN_CPU_AVX512: kern_attn_keys_avx512(a, k, k_stride, v, v_stride, pos0, n); break;
    case KERN_CPU_AVX2: kern_attn_keys_avx2(a, k, k_stride, v, v_stride, pos0, n); break;
    default: keys_scalar(a, k, k_stride, v, v_stride, pos0, n); break;
    }
}

void kern_attn_end(kern_attn *a, float *const *out) {
    switch (a->level) {
    case KERN_CPU_AVX512: kern_attn_end_avx512(a, out); break;
    case KERN_CPU_AVX2: kern_attn_end_avx2(a, out); break;
    default: end_scalar(a, out); break;
    }
}

int kern_attn_rows(kern_cpu_level level) {
    kern_cpu_level best = kern_cpu_level_best();
    return (level > best ? best : level) == KERN_CPU_AVX2 ? 8 : KERN_ATTN_ROWS;
}
