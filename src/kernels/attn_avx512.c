/* AVX-512 attention over F16 keys/values (see attn.c for the algorithm): one query row
 * per lane of a 16-float vector. Queries and outputs are kept transposed, [d][lane], so
 * scoring a chunk of 8 keys is, per element d, one query load and 8 FMAs against
 * broadcast key elements; the online softmax (max, rescale, exp) is lane-wise with no
 * horizontal step; and the value update is, per d, 8 FMAs of the chunk's weights against
 * broadcast value elements. Compiled with -mavx512f -mf16c; must never run unless
 * dispatch chose the AVX-512 level. */
#include <float.h>
#include <immintrin.h>

#include "kernels/kern_internal.h"
#include "kernels/simd_exp.h"

#define W 16
#define TK KERN_ATTN_CHUNK

static void f16_row(const uint16_t *src, int64_t n, float *dst) {
    int64_t d = 0;
    for (; d + 16 <= n; d += 16) _mm512_storeu_ps(dst + d, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + d))));
    for (; d < n; d++) dst[d] = _cvtsh_ss(src[d]);
}

void kern_attn_begin_avx512(kern_attn *a, const float *const *q, float scale) {
    kern_attn_parts p = kern_attn_split(a);
    for (int64_t d = 0; d < a->dk; d++)
        for (int r = 0; r < W; r++) p.q[d * W + r] = r < a->n_rows ? q[r][d] * scale : 0.0f;
    for (int64_t d = 0; d < a->dv; d++) _mm512_storeu_ps(p.o + d * W, _mm512_setzero_ps());
    _mm512_storeu_ps(p.m, _mm512_set1_ps(-FLT_MAX));
    _mm512_storeu_ps(p.l, _mm512_setzero_ps());
}

void kern_attn_keys_avx512(kern_attn *a, const uint16_t *k, size_t k_stride, const uint16_t *v, size_t v_stride,
                           int64_t pos0, int64_t n) {
    kern_attn_parts p = kern_attn_split(a);
    const int64_t dk = a->dk, dv = a->dv;
    const __m512i vis = _mm512_loadu_si512(a->n_vis);
    __m512 m = _mm512_loadu_ps(p.m), l = _mm512_loadu_ps(p.l);
    for (int64_t i = 0; i < n; i += TK) {
        int nk = n - i < TK ? (int)(n - i) : TK;
        for (int j = 0; j < nk; j++) {
            f16_row(k + (size_t)(i + j) * k_stride, dk, p.kf + j * dk);
            f16_row(v + (size_t)(i + j) * v_stride, dv, p.vf + j * dv);
        }
        for (int j = nk; j < TK; j++) {   /* absent keys: zeros, so their weight 0 stays 0 */
            memset(p.kf + j * dk, 0, (size_t)dk * sizeof(float));
            memset(p.vf + j * dv, 0, (size_t)dv * sizeof(float));
        }
        __m512 s[TK];
#pragma GCC unroll 8
        for (int j = 0; j < TK; j++) s[j] = _mm512_setzero_ps();
        for (int64_t d = 0; d < dk; d++) {
            __m512 qd = _mm512_loadu_ps(p.q + d * W);
    #pragma GCC unroll 8
        for (int j = 0; j < TK; j++) s[j] = _mm512_fmadd_ps(qd, _mm512_set1_ps(p.kf[j * dk + d]), s[j]);
        }
        __mmask16 vm[TK];
        __m512 cm = m;
#pragma GCC unroll 8
        for (int j = 0; j < TK; j++) {
            vm[j] = j < nk ? _mm512_cmpgt_epi32_mask(vis, _mm512_set1_epi32((int32_t)(pos0 + i + j))) : 0;
            cm = _mm512_mask_max_ps(cm, vm[j], cm, s[j]);
        }
        __m512 alpha = kern_exp16(_mm512_sub_ps(m, cm));
        l = _mm512_mul_ps(l, alpha);
#pragma GCC unroll 8
        for (int j = 0; j < TK; j++) {
            s[j] = _mm512_maskz_mov_ps(vm[j], kern_exp16(_mm512_sub_ps(s[j], cm)));
            l = _mm512_add_ps(l, s[j]);
        }
        m = cm;
        for (int64_t d = 0; d < dv; d++) {
            __m512 o = _mm512_mul_ps(_mm512_loadu_ps(p.o + d * W), alpha);
#pragma GCC unroll 8
            for (int j = 0; j < TK; j++) o = _mm512_fmadd_ps(s[j], _mm512_set1_ps(p.vf[j * dv + d]), o);
            _mm512_storeu_ps(p.o + d * W, o);
        }
    }
    _mm512_storeu_ps(p.m, m);
    _mm512_storeu_ps(p.l, l);
}

void kern_attn_end_avx512(kern_attn *a, float *const *out) {
    kern_attn_parts p = kern_attn_split(a);
    float inv[W];
    for (int r = 0; r < a->n_rows; r++) inv[r] = p.l[r] > 0.0f ? 1.0f / p.l[r] : 0.0f;
    for (int r = 0; r < a->n_rows; r++)
        for (int64_t d = 0; d < a->dv; d++) out[r][d] = p.o[d * W + r] * inv[r];
}
