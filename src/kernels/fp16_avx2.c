/* F16 rows <-> float with F16C: the same values as the scalar conversions in fp16.c
 * (exact widening; round to nearest even when narrowing, subnormals and overflow to
 * infinity included). Used for the F16 KV cache and F16 weights. Compiled with
 * -mavx2 -mfma -mf16c; must never run unless dispatch chose the AVX2 level or above. */
#include <immintrin.h>

#include "kernels/kern_internal.h"

void kern_f16_to_float_avx2(const void *src, float *dst, int64_t n) {
    const uint16_t *h = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(h[i]);
}

void kern_f16_from_float_avx2(const float *src, void *dst, int64_t n) {
    uint16_t *h = dst;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) h[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}
