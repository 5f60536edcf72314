/* Vector e^x shared by the SIMD kernel files (included only from *_avx2.c / *_avx512.c,
 * which are compiled with the matching -m flags): x is clamped to [-87, 88], split as
 * n ln2 + f with |f| <= ln2/2, e^f by its degree-6 Taylor polynomial (about 1 ulp), and
 * scaled by 2^n. Inputs below -87 give e^-87, not 0: callers mask what must vanish. */
#ifndef KERNELS_SIMD_EXP_H
#define KERNELS_SIMD_EXP_H

#include <immintrin.h>

#define KERN_EXP_POLY(T, set1, fmadd, f)                          \
    do {                                                          \
        T p_ = set1(1.0f / 720.0f);                               \
        p_ = fmadd(p_, f, set1(1.0f / 120.0f));                   \
        p_ = fmadd(p_, f, set1(1.0f / 24.0f));                    \
        p_ = fmadd(p_, f, set1(1.0f / 6.0f));                     \
        p_ = fmadd(p_, f, set1(0.5f));                            \
        p_ = fmadd(p_, f, set1(1.0f));                            \
        f = fmadd(p_, f, set1(1.0f));                             \
    } while (0)

#ifdef __AVX2__
static inline __m256 kern_exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 f = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    f = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), f);
    KERN_EXP_POLY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, f);
    /* 2^n with n in [-126, 127]: the biased exponent field */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(f, _mm256_castsi256_ps(e));
}
#endif

#ifdef __AVX512F__
static inline __m512 kern_exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    f = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), f);
    KERN_EXP_POLY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, f);
    return _mm512_scalef_ps(f, n);
}

/* GELU, tanh form, as 0.5 v (1 + tanh z) = v / (1 + e^(-2z)), z = sqrt(2/pi) (v + 0.044715 v^3):
   one definition, so a fused matmul's GELU equals kern_gelu's bit for bit. */
static inline __m512 kern_gelu16(__m512 v) {
    const __m512 c = _mm512_set1_ps(0.044715f), k = _mm512_set1_ps(-2.0f * 0.7978845608028654f);
    __m512 z = _mm512_fmadd_ps(_mm512_mul_ps(c, v), _mm512_mul_ps(v, v), v);
    return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), kern_exp16(_mm512_mul_ps(k, z))));
}
#endif

#endif
