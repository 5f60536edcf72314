/* AVX-512 float32 attention of up to KERN_ATTEND_QUERIES queries against transposed
 * keys, in one pass over registers: each key vector (16 keys) loaded once serves every
 * query, scores keep a running maximum, e^(s - max) uses the shared vector exp, and each
 * value row loaded once feeds every query's weighted sum, scaled once by 1/sum. The
 * queries give independent accumulator chains, so the loops run at FMA throughput, not
 * latency; keys go 16 at a time, so few lanes are wasted on short inputs. Compiled with -mavx512f; must never run unless dispatch chose AVX-512, nor
 * touch memory past the rows and columns it is given (tails are masked). */
#include <immintrin.h>
#include <math.h>

#include "kernels/kern_internal.h"
#include "kernels/simd_exp.h"

static inline __mmask16 tail_mask(int64_t left) {
    return left >= 16 ? (__mmask16)0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
}

/* nq queries (a compile-time constant after inlining): scores, softmax, weighted sum. */
static inline __attribute__((always_inline)) void attend(int nq, const float *q, size_t q_stride, const float *kt,
                                                         size_t ld, int64_t dk, int64_t n_keys, float scale,
                                                         const float *v, size_t v_stride, int64_t dv, float *scores,
                                                         size_t s_stride, float *out, size_t out_stride) {
    const __m512 vs = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
    __m512 vmax[KERN_ATTEND_QUERIES], sum[KERN_ATTEND_QUERIES];
#pragma GCC unroll 4
    for (int r = 0; r < nq; r++) vmax[r] = ninf;
    for (int64_t j = 0; j < n_keys; j += 16) {
        __mmask16 k = tail_mask(n_keys - j);
        __m512 a[KERN_ATTEND_QUERIES];
#pragma GCC unroll 4
        for (int r = 0; r < nq; r++) a[r] = _mm512_setzero_ps();
        for (int64_t i = 0; i < dk; i++) {
            __m512 c = _mm512_maskz_loadu_ps(k, kt + (size_t)i * ld + (size_t)j);
#pragma GCC unroll 4
            for (int r = 0; r < nq; r++) a[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[(size_t)r * q_stride + (size_t)i]), c, a[r]);
        }
#pragma GCC unroll 4
        for (int r = 0; r < nq; r++) {
            __m512 sc = _mm512_mul_ps(a[r], vs);
            _mm512_mask_storeu_ps(scores + (size_t)r * s_stride + j, k, sc);
            vmax[r] = _mm512_mask_max_ps(vmax[r], k, vmax[r], sc);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < nq; r++) {
        __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax[r]));
        float *s = scores + (size_t)r * s_stride;
        sum[r] = _mm512_setzero_ps();
        for (int64_t j = 0; j < n_keys; j += 16) {
            __mmask16 k = tail_mask(n_keys - j);
            __m512 e = _mm512_maskz_mov_ps(k, kern_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), mx)));
            _mm512_mask_storeu_ps(s + j, k, e);
            sum[r] = _mm512_add_ps(sum[r], e);
        }
        sum[r] = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum[r]));
    }
    for (int64_t i = 0; i < dv; i += 32) {
        __mmask16 m0 = tail_mask(dv - i), m1 = tail_mask(dv - i - 16);
        __m512 a[KERN_ATTEND_QUERIES][2];
#pragma GCC unroll 4
        for (int r = 0; r < nq; r++) a[r][0] = a[r][1] = _mm512_setzero_ps();
        for (int64_t j = 0; j < n_keys; j++) {
            const float *row = v + (size_t)j * v_stride + (size_t)i;
            __m512 c0 = _mm512_maskz_loadu_ps(m0, row), c1 = _mm512_maskz_loadu_ps(m1, row + 16);
#pragma GCC unroll 4
            for (int r = 0; r < nq; r++) {
                __m512 w = _mm512_set1_ps(scores[(size_t)r * s_stride + (size_t)j]);
                a[r][0] = _mm512_fmadd_ps(w, c0, a[r][0]);
                a[r][1] = _mm512_fmadd_ps(w, c1, a[r][1]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < nq; r++) {
            _mm512_mask_storeu_ps(out + (size_t)r * out_stride + i, m0, _mm512_mul_ps(a[r][0], sum[r]));
            _mm512_mask_storeu_ps(out + (size_t)r * out_stride + i + 16, m1, _mm512_mul_ps(a[r][1], sum[r]));
        }
    }
}

void kern_attend_cols_avx512(int n_q, const float *q, size_t q_stride, const float *kt, size_t ld, int64_t dk,
                             int64_t n_keys, float scale, const float *v, size_t v_stride, int64_t dv, float *scores,
                             float *out, size_t out_stride) {
    size_t s_stride = (size_t)n_keys;
    switch (n_q) {
    case 4: attend(4, q, q_stride, kt, ld, dk, n_keys, scale, v, v_stride, dv, scores, s_stride, out, out_stride); break;
    case 3: attend(3, q, q_stride, kt, ld, dk, n_keys, scale, v, v_stride, dv, scores, s_stride, out, out_stride); break;
    case 2: attend(2, q, q_stride, kt, ld, dk, n_keys, scale, v, v_stride, dv, scores, s_stride, out, out_stride); break;
    default: attend(1, q, q_stride, kt, ld, dk, n_keys, scale, v, v_stride, dv, scores, s_stride, out, out_stride); break;
    }
}
