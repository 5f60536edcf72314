/* AVX2 elementwise ops of the forward pass: the SiLU-gated product with the shared
 * vector exp, GELU, and the pieces of float32 encoder attention. Compiled with -mavx2 -mfma; must never run unless dispatch chose AVX2 or
 * above. */
#include "kernels/kern_internal.h"
#include "kernels/simd_exp.h"

void kern_silu_mul_avx2(const float *gate, const float *up, int64_t n, float *out) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = kern_exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        _mm256_storeu_ps(out + i, _mm256_div_ps(_mm256_mul_ps(g, _mm256_loadu_ps(up + i)), _mm256_add_ps(one, e)));
    }
    kern_silu_mul_scalar(gate + i, up + i, n - i, out + i);
}

/* Attention scores from transposed keys, 8 keys per vector (see kern_attend_cols). */
void kern_dot_cols_avx2(const float *q, const float *kt, size_t ld, int64_t dk, int64_t n_keys, float scale,
                        float *out) {
    int64_t j = 0;
    for (; j + 8 <= n_keys; j += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t i = 0; i < dk; i++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(q[i]), _mm256_loadu_ps(kt + (size_t)i * ld + (size_t)j), acc);
        _mm256_storeu_ps(out + j, _mm256_mul_ps(acc, _mm256_set1_ps(scale)));
    }
    for (; j < n_keys; j++) {
        float s = 0;
        for (int64_t i = 0; i < dk; i++) s += q[i] * kt[(size_t)i * ld + (size_t)j];
        out[j] = scale * s;
    }
}

void kern_weighted_rows_avx2(const float *w, const float *rows, size_t stride, int64_t n_rows, int64_t n, float *out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t j = 0; j < n_rows; j++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(w[j]), _mm256_loadu_ps(rows + (size_t)j * stride + (size_t)i), acc);
        _mm256_storeu_ps(out + i, acc);
    }
    for (; i < n; i++) {
        float s = 0;
        for (int64_t j = 0; j < n_rows; j++) s += w[j] * rows[(size_t)j * stride + (size_t)i];
        out[i] = s;
    }
}

/* GELU, tanh form, as 0.5 v (1 + tanh z) = v / (1 + e^(-2z)), z = sqrt(2/pi) (v + 0.044715 v^3). */
void kern_gelu_avx2(float *x, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), c = _mm256_set1_ps(0.044715f);
    const __m256 k = _mm256_set1_ps(-2.0f * 0.7978845608028654f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 z = _mm256_fmadd_ps(_mm256_mul_ps(c, v), _mm256_mul_ps(v, v), v);
        __m256 e = kern_exp8(_mm256_mul_ps(k, z));
        _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
    if (i < n) {   /* the tail through the same vector formula: a value's result never depends on where it sits */
        float tail[8] = {0};
        memcpy(tail, x + i, (size_t)(n - i) * sizeof *tail);
        __m256 v = _mm256_loadu_ps(tail);
        __m256 z = _mm256_fmadd_ps(_mm256_mul_ps(c, v), _mm256_mul_ps(v, v), v);
        _mm256_storeu_ps(tail, _mm256_div_ps(v, _mm256_add_ps(one, kern_exp8(_mm256_mul_ps(k, z)))));
        memcpy(x + i, tail, (size_t)(n - i) * sizeof *tail);
    }
}
