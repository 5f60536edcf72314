/* Elementwise and per-vector ops of the forward pass: RMS norm (AVX-512 variant),
 * layer norm, rotary embedding, softmax, SiLU-gated product (AVX2 and AVX-512 variants),
 * GELU, add (layer norm, softmax and add: AVX-512 variants in ops_rows_avx512.c).
 * Reductions accumulate in double; angles are computed in double. Must never read or
 * write past n elements. */
#include <math.h>

#include "kernels/kern_internal.h"

void kern_rmsnorm(const float *x, const float *weight, int64_t n, float eps, float *out) {
    if (kern_cpu_level_active() == KERN_CPU_AVX512) {
        kern_rmsnorm_avx512(x, weight, n, eps, out);
        return;
    }
    double sum2 = 0.0;
    for (int64_t i = 0; i < n; i++) sum2 += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(sum2 / (double)n + eps));
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * (weight ? weight[i] : 1.0f);
}

void kern_layernorm(const float *x, const float *weight, const float *bias, int64_t n,
                    float eps, float *out) {
    if (kern_cpu_level_active() == KERN_CPU_AVX512) kern_layernorm_avx512(x, weight, bias, n, eps, out);
    else kern_layernorm_scalar(x, weight, bias, n, eps, out);
}

void kern_layernorm_scalar(const float *x, const float *weight, const float *bias, int64_t n, float eps,
                           float *out) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += x[i];
    double mean = sum / (double)n;
    double var = 0.0;
    for (int64_t i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    double inv = 1.0 / sqrt(var / (double)n + eps);
    for (int64_t i = 0; i < n; i++) {
        float v = (float)((x[i] - mean) * inv);
        out[i] = v * (weight ? weight[i] : 1.0f) + (bias ? bias[i] : 0.0f);
    }
}

/* cs[2(i - i0)], cs[2(i - i0) + 1] = cos, sin of pair i's angle, for pairs [i0, i1) */
static void rope_angles(int n_rot, int i0, int i1, int64_t pos, float freq_base, float freq_scale, float *cs) {
    for (int i = i0; i < i1; i++) {
        double theta = (double)pos * freq_scale * pow(freq_base, -2.0 * i / n_rot);
        cs[2 * (i - i0)] = (float)cos(theta);
        cs[2 * (i - i0) + 1] = (float)sin(theta);
    }
}

static void rope_pairs(float *x, int n_heads, int head_dim, int n_rot, int i0, int i1, const float *cs, bool neox) {
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (int64_t)h * head_dim;
        for (int i = i0; i < i1; i++) {
            float c = cs[2 * (i - i0)], s = cs[2 * (i - i0) + 1];
            int a = neox ? i : 2 * i;
            int b = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

void kern_rope_angles(int n_rot, int64_t pos, float freq_base, float freq_scale, float *cs) {
    rope_angles(n_rot, 0, n_rot / 2, pos, freq_base, freq_scale, cs);
}

void kern_rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs, bool neox) {
    rope_pairs(x, n_heads, head_dim, n_rot, 0, n_rot / 2, cs, neox);
}

void kern_rope(float *x, int n_heads, int head_dim, int n_rot, int64_t pos,
               float freq_base, float freq_scale, bool neox) {
    enum { CHUNK = 64 };
    float cs[2 * CHUNK];
    for (int i0 = 0; i0 < n_rot / 2; i0 += CHUNK) {
        int i1 = i0 + CHUNK < n_rot / 2 ? i0 + CHUNK : n_rot / 2;
        rope_angles(n_rot, i0, i1, pos, freq_base, freq_scale, cs);
        rope_pairs(x, n_heads, head_dim, n_rot, i0, i1, cs, neox);
    }
}

void kern_softmax(float *x, int64_t n) {
    if (kern_cpu_level_active() == KERN_CPU_AVX512) kern_softmax_avx512(x, n);
    else kern_softmax_scalar(x, n);
}

void kern_softmax_scalar(float *x, int64_t n) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; i++) max = fmaxf(max, x[i]);
    if (max == -INFINITY) {   /* everything masked: no preference, stay finite */
        for (int64_t i = 0; i < n; i++) x[i] = 1.0f / (float)n;
        return;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void kern_silu_mul_scalar(const float *gate, const float *up, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void kern_silu_mul(const float *gate, const float *up, int64_t n, float *out) {
    switch (kern_cpu_level_active()) {
    case KERN_CPU_AVX512: kern_silu_mul_avx512(gate, up, n, out); break;
    case KERN_CPU_AVX2: kern_silu_mul_avx2(gate, up, n, out); break;
    default: kern_silu_mul_scalar(gate, up, n, out); break;
    }
}

void kern_gelu_scalar(float *x, int64_t n) {
    const float k = 0.7978845608028654f;   /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

void kern_weighted_rows_scalar(const float *w, const float *rows, size_t stride, int64_t n_rows, int64_t n,
                               float *out) {
    memset(out, 0, (size_t)n * sizeof *out);
    for (int64_t j = 0; j < n_rows; j++)
        for (int64_t i = 0; i < n; i++) out[i] += w[j] * rows[(size_t)j * stride + (size_t)i];
}

void kern_gelu(float *x, int64_t n) {
    switch (kern_cpu_level_active()) {
    case KERN_CPU_AVX512: kern_gelu_avx512(x, n); break;
    case KERN_CPU_AVX2: kern_gelu_avx2(x, n); break;
    default: kern_gelu_scalar(x, n); break;
    }
}

void kern_add(float *x, const float *y, int64_t n) {
    if (kern_cpu_level_active() == KERN_CPU_AVX512) kern_add_avx512(x, y, n);
    else kern_add_scalar(x, y, n);
}

void kern_add_scalar(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}
