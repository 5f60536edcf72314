/* AVX2 elementwise ops of the forward pass: the SiLU-gated product with the shared
 * vector exp. Compiled with -mavx2 -mfma; must never run unless dispatch chose AVX2 or
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
    kern_gelu_scalar(x + i, n - i);
}
