/* AVX-512 versions of the per-row ops an encoder pass runs on every token: LayerNorm
 * (mean and variance accumulated in double, as the scalar one), softmax (on the shared
 * vector exp; -INFINITY entries give exactly 0) and add. Compiled with -mavx512f; must
 * never run unless dispatch chose AVX-512, nor touch memory past n elements (tails
 * use masked loads and stores). */
#include <math.h>

#include "kernels/kern_internal.h"
#include "kernels/simd_exp.h"

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

void kern_layernorm_avx512(const float *x, const float *weight, const float *bias, int64_t n, float eps, float *out) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
    }
    double mean = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1)) / (double)n;
    __m512d m = _mm512_set1_pd(mean), v0 = _mm512_setzero_pd(), v1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_maskz_loadu_ps(k, x + i);
        __m512d d0 = _mm512_maskz_sub_pd((__mmask8)k, _mm512_cvtps_pd(_mm512_castps512_ps256(v)), m);
        __m512d d1 = _mm512_maskz_sub_pd((__mmask8)(k >> 8),
                                         _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))), m);
        v0 = _mm512_fmadd_pd(d0, d0, v0);
        v1 = _mm512_fmadd_pd(d1, d1, v1);
    }
    double var = _mm512_reduce_add_pd(_mm512_add_pd(v0, v1)) / (double)n;
    __m512 vm = _mm512_set1_ps((float)mean), vinv = _mm512_set1_ps((float)(1.0 / sqrt(var + eps)));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm), vinv);
        if (weight) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, weight + i));
        if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias + i));
        _mm512_mask_storeu_ps(out + i, k, v);
    }
}

void kern_softmax_avx512(float *x, int64_t n) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 vmax = ninf;
    for (int64_t i = 0; i < n; i += 16)
        vmax = _mm512_max_ps(vmax, _mm512_mask_loadu_ps(ninf, tail_mask(n - i), x + i));
    float max = _mm512_reduce_max_ps(vmax);
    if (max == -INFINITY) {   /* everything masked: no preference, stay finite */
        for (int64_t i = 0; i < n; i++) x[i] = 1.0f / (float)n;
        return;
    }
    __m512 vmx = _mm512_set1_ps(max);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        __m512 v = _mm512_mask_loadu_ps(ninf, k, x + i);
        __mmask16 live = _mm512_cmp_ps_mask(v, ninf, _CMP_NEQ_OQ);
        __m512 e = _mm512_maskz_mov_ps(live, kern_exp16(_mm512_sub_ps(v, vmx)));
        _mm512_mask_storeu_ps(x + i, k, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(_mm512_add_pd(s0, s1))));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), inv));
    }
}

void kern_add_avx512(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, y + i)));
    }
}
