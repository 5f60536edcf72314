/* Scalar elementwise and per-vector ops of the forward pass: RMS norm, layer norm,
 * rotary embedding, softmax, SiLU-gated product, GELU, add. Reductions accumulate in
 * double; angles are computed in double. Must never read or write past n elements. */
#include <math.h>

#include "kernels/kern_internal.h"

void kern_rmsnorm(const float *x, const float *weight, int64_t n, float eps, float *out) {
    double sum2 = 0.0;
    for (int64_t i = 0; i < n; i++) sum2 += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(sum2 / (double)n + eps));
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * (weight ? weight[i] : 1.0f);
}

void kern_layernorm(const float *x, const float *weight, const float *bias, int64_t n,
                    float eps, float *out) {
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

void kern_rope(float *x, int n_heads, int head_dim, int n_rot, int64_t pos,
               float freq_base, float freq_scale, bool neox) {
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        double theta = (double)pos * freq_scale * pow(freq_base, -2.0 * i / n_rot);
        float c = (float)cos(theta), s = (float)sin(theta);
        int a = neox ? i : 2 * i;
        int b = neox ? i + half : 2 * i + 1;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (int64_t)h * head_dim;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

void kern_softmax(float *x, int64_t n) {
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

void kern_silu_mul(const float *gate, const float *up, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void kern_gelu(float *x, int64_t n) {
    const float k = 0.7978845608028654f;   /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

void kern_add(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}
