/* AVX-512 elementwise ops of the forward pass: the SiLU-gated product with the shared
 * vector exp. Compiled with -mavx512f; must never run unless dispatch chose AVX-512. */
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
