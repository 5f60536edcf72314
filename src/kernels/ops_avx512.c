/* AVX-512 elementwise ops of the forward pass: the SiLU-gated product with the shared
 * vector exp, and RMS norm (sum of squares in double, as the scalar one). Compiled with
 * -mavx512f; must never run unless dispatch chose AVX-512. */
#include <math.h>

#include "kernels/kern_internal.h"
#include "kernels/simd_exp.h"

void kern_silu_mul_avx512(const float *gate, const float *up, int64_t n, float *out) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 g = _mm512_loadu_ps(gate + i);
        __m512 e = kern_exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_storeu_ps(out + i, _mm512_div_ps(_mm512_mul_ps(g, _mm512_loadu_ps(up + i)), _mm512_add_ps(one, e)));
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        __m512 e = kern_exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        __m512 v = _mm512_div_ps(_mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, up + i)), _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(out + i, m, v);
    }
}

void kern_gelu_avx512(float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, kern_gelu16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, m, kern_gelu16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void kern_rmsnorm_avx512(const float *x, const float *weight, int64_t n, float eps, float *out) {
    __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512d a = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), b = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        acc0 = _mm512_fmadd_pd(a, a, acc0);
        acc1 = _mm512_fmadd_pd(b, b, acc1);
    }
    double sum2 = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
    for (int64_t k = i; k < n; k++) sum2 += (double)x[k] * x[k];
    float scale = (float)(1.0 / sqrt(sum2 / (double)n + eps));
    __m512 vs = _mm512_set1_ps(scale);
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vs);
        if (weight) v = _mm512_mul_ps(v, _mm512_loadu_ps(weight + i));
        _mm512_storeu_ps(out + i, v);
    }
    for (; i < n; i++) out[i] = x[i] * scale * (weight ? weight[i] : 1.0f);
}
