/* AVX-512 float32 attention of one query against transposed keys, in one pass over
 * registers: scores 16 keys per vector (four independent accumulators, 64 keys at a
 * time) with a running maximum, e^(s - max) on the shared vector exp, then the weighted
 * sum of value rows (independent chains over 32 outputs) scaled once by 1/sum.
 * Compiled with -mavx512f; must never run unless dispatch chose AVX-512, nor touch
 * memory past the rows and columns it is given (tails are masked). */
#include <immintrin.h>
#include <math.h>

#include "kernels/kern_internal.h"
#include "kernels/simd_exp.h"

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* scores[j] = scale * q . kt[:, j]; returns their maximum. */
static float scores16(const float *q, const float *kt, size_t ld, int64_t dk, int64_t n_keys, float scale,
                      float *scores) {
    const __m512 vs = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    __m512 vmax = ninf;
    for (int64_t j = 0; j < n_keys; j += 64) {
        __mmask16 k0 = tail_mask(n_keys - j), k1 = tail_mask(n_keys - j - 16), k2 = tail_mask(n_keys - j - 32),
                  k3 = tail_mask(n_keys - j - 48);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t i = 0; i < dk; i++) {
            const float *r = kt + (size_t)i * ld + (size_t)j;
            __m512 qi = _mm512_set1_ps(q[i]);
            a0 = _mm512_fmadd_ps(qi, _mm512_maskz_loadu_ps(k0, r), a0);
            if (k1) a1 = _mm512_fmadd_ps(qi, _mm512_maskz_loadu_ps(k1, r + 16), a1);
            if (k2) a2 = _mm512_fmadd_ps(qi, _mm512_maskz_loadu_ps(k2, r + 32), a2);
            if (k3) a3 = _mm512_fmadd_ps(qi, _mm512_maskz_loadu_ps(k3, r + 48), a3);
        }
        __m512 s[4] = {_mm512_mul_ps(a0, vs), _mm512_mul_ps(a1, vs), _mm512_mul_ps(a2, vs), _mm512_mul_ps(a3, vs)};
        __mmask16 k[4] = {k0, k1, k2, k3};
        for (int c = 0; c < 4; c++) {
            _mm512_mask_storeu_ps(scores + j + 16 * c, k[c], s[c]);
            vmax = _mm512_mask_max_ps(vmax, k[c], vmax, s[c]);
        }
    }
    return _mm512_reduce_max_ps(vmax);
}

void kern_attend_cols_avx512(const float *q, const float *kt, size_t ld, int64_t dk, int64_t n_keys, float scale,
                             const float *v, size_t v_stride, int64_t dv, float *scores, float *out) {
    __m512 vmx = _mm512_set1_ps(scores16(q, kt, ld, dk, n_keys, scale, scores)), sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < n_keys; j += 16) {
        __mmask16 k = tail_mask(n_keys - j);
        __m512 e = _mm512_maskz_mov_ps(k, kern_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, scores + j), vmx)));
        _mm512_mask_storeu_ps(scores + j, k, e);
        sum = _mm512_add_ps(sum, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t i = 0; i < dv; i += 32) {
        __mmask16 m0 = tail_mask(dv - i), m1 = tail_mask(dv - i - 16);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
        int64_t j = 0;
        for (; j + 2 <= n_keys; j += 2) {
            const float *r = v + (size_t)j * v_stride + (size_t)i, *r2 = r + v_stride;
            __m512 w0 = _mm512_set1_ps(scores[j]), w1 = _mm512_set1_ps(scores[j + 1]);
            a0 = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m0, r), a0);
            a1 = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m1, r + 16), a1);
            b0 = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(m0, r2), b0);
            b1 = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(m1, r2 + 16), b1);
        }
        if (j < n_keys) {
            const float *r = v + (size_t)j * v_stride + (size_t)i;
            __m512 w0 = _mm512_set1_ps(scores[j]);
            a0 = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m0, r), a0);
            a1 = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(m1, r + 16), a1);
        }
        _mm512_mask_storeu_ps(out + i, m0, _mm512_mul_ps(_mm512_add_ps(a0, b0), inv));
        _mm512_mask_storeu_ps(out + i + 16, m1, _mm512_mul_ps(_mm512_add_ps(a1, b1), inv));
    }
}
