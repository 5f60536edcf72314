/* AVX2 (+FMA, F16C) kernels on the plain ggml layouts: the activation quantizers Q8_0
 * Q8_1 and Q8_K (bit-identical to the scalar ones) and vec_dot of Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q4_K, Q5_K, Q6_K (u8 x s8 pairs with maddubs, then madd) and of F32/F16/BF16 rows (FMA),
 * plus K-quant dots of one row against 4 tokens (prefill) that unpack each block once and
 * give each token exactly its one-token result.
 * Compiled with -mavx2 -mfma -mf16c; must never run unless dispatch chose AVX2 or
 * above. Activations of the integer dots are in [-127, 127], as the quantizers make
 * them (the sign trick of the Q8_0 dot needs it). */
#include <immintrin.h>
#include <math.h>

#include "kernels/kern_internal.h"

/* exact f16 -> f32 in one instruction (the library's converter is an out-of-line call) */
static inline float f16c(uint16_t h) { return _cvtsh_ss(h); }

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

static inline float absmax8(const float *x, int n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 32 int32 lanes (4 vectors) -> 32 int8 in element order */
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    __m256i v = _mm256_packs_epi16(ab, cd);
    return _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* roundf: ties away from zero (trunc of v + copysign(0.5 - 2^-25, v) is exact) */
static inline __m256i round_away(__m256 v) {
    const __m256 half = _mm256_set1_ps(0.49999997f), sign = _mm256_set1_ps(-0.0f);
    __m256 h = _mm256_or_ps(half, _mm256_and_ps(v, sign));
    return _mm256_cvttps_epi32(_mm256_add_ps(v, h));
}

void kern_q8_0_from_float_avx2(const float *src, void *dst, int64_t n) {
    kern_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / KERN_QK32; i++, src += KERN_QK32) {
        float d = absmax8(src, KERN_QK32) / 127.0f;
        float id = d > 0.0f ? 1.0f / d : 0.0f;
        b[i].d = kern_f32_to_f16(d);
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = round_away(_mm256_mul_ps(_mm256_loadu_ps(src + 8 * k), vid));
        _mm256_storeu_si256((__m256i *)b[i].qs, pack32(q[0], q[1], q[2], q[3]));
    }
}

void kern_q8_1_from_float_avx2(const float *src, void *dst, int64_t n) {
    kern_block_q8_1 *b = dst;
    for (int64_t i = 0; i < n / KERN_QK32; i++, src += KERN_QK32) {
        float d = absmax8(src, KERN_QK32) / 127.0f;
        float id = d > 0.0f ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++) q[k] = round_away(_mm256_mul_ps(_mm256_loadu_ps(src + 8 * k), vid));
        int32_t sumq = hsum8i(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        _mm256_storeu_si256((__m256i *)b[i].qs, pack32(q[0], q[1], q[2], q[3]));
        b[i].d = kern_f32_to_f16(d);
        b[i].s = kern_f32_to_f16(d * (float)sumq);
    }
}

void kern_q8_k_from_float_avx2(const float *src, void *dst, int64_t n) {
    kern_block_q8_k *b = dst;
    const __m256i lim = _mm256_set1_epi32(127), nlim = _mm256_set1_epi32(-127);
    for (int64_t i = 0; i < n / KERN_QKK; i++, src += KERN_QKK) {
        float amax = absmax8(src, KERN_QKK);
        memset(&b[i], 0, sizeof b[i]);
        if (amax == 0.0f) continue;
        float iscale = 127.0f / amax;
        __m256 vs = _mm256_set1_ps(iscale);
        for (int g = 0; g < 8; g++) {
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                __m256i v = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(src + 32 * g + 8 * k), vs));
                q[k] = _mm256_max_epi32(_mm256_min_epi32(v, lim), nlim);
            }
            b[i].bsums[2 * g] = (int16_t)hsum8i(_mm256_add_epi32(q[0], q[1]));
            b[i].bsums[2 * g + 1] = (int16_t)hsum8i(_mm256_add_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i *)(b[i].qs + 32 * g), pack32(q[0], q[1], q[2], q[3]));
        }
        b[i].d = 1.0f / iscale;
    }
}

/* sum of w*x over 32 signed bytes each, as 8 int32 lanes (|x| <= 127) */
static inline __m256i dot_s8(__m256i w, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

float kern_q8_0_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    const kern_block_q8_0 *a = w, *b = x;
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};   /* two fma chains */
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        __m256i s = dot_s8(_mm256_loadu_si256((const __m256i *)a[i].qs), _mm256_loadu_si256((const __m256i *)b[i].qs));
        __m256 d = _mm256_set1_ps(f16c(a[i].d) * f16c(b[i].d));
        acc[i & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc[i & 1]);
    }
    return hsum8(_mm256_add_ps(acc[0], acc[1]));
}

float kern_q4_0_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    const kern_block_q4_0 *a = w;
    const kern_block_q8_0 *b = x;
    const __m256i low = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        __m128i raw = _mm_loadu_si128((const __m128i *)a[i].qs);
        __m256i q = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
        q = _mm256_sub_epi8(_mm256_and_si256(q, low), eight);
        __m256i s = dot_s8(q, _mm256_loadu_si256((const __m256i *)b[i].qs));
        __m256 d = _mm256_set1_ps(f16c(a[i].d) * f16c(b[i].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d, acc);
    }
    return hsum8(acc);
}

/* The 32 quants of a legacy block in element order: low nibbles, then high nibbles. */
static inline __m256i nibbles32(const uint8_t qs[16]) {
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0f));
}

/* Byte j = 0x10 where bit j of the little-endian word qh is set, else 0. */
static inline __m256i fifth_bits(const uint8_t qh[4]) {
    uint32_t v;
    memcpy(&v, qh, sizeof v);
    __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)v),
                                    _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll, 0x0303030303030303ll));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit), _mm256_set1_epi8(0x10));
}

/* sum of unsigned q * signed x over 32 bytes, 8 int32 lanes */
static inline __m256i dot_u8(__m256i q, const int8_t *x) {
    __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

float kern_q4_1_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    const kern_block_q4_1 *a = w;
    const kern_block_q8_1 *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        __m256i s = dot_u8(nibbles32(a[i].qs), b[i].qs);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16c(a[i].d) * f16c(b[i].d)), acc);
        summ += f16c(a[i].m) * f16c(b[i].s);
    }
    return hsum8(acc) + summ;
}

float kern_q5_0_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    const kern_block_q5_0 *a = w;
    const kern_block_q8_0 *b = x;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        __m256i q = _mm256_sub_epi8(_mm256_or_si256(nibbles32(a[i].qs), fifth_bits(a[i].qh)), _mm256_set1_epi8(16));
        __m256i s = dot_s8(q, _mm256_loadu_si256((const __m256i *)b[i].qs));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16c(a[i].d) * f16c(b[i].d)), acc);
    }
    return hsum8(acc);
}

float kern_q5_1_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    const kern_block_q5_1 *a = w;
    const kern_block_q8_1 *b = x;
    __m256 acc = _mm256_setzero_ps();
    float summ = 0.0f;
    for (int64_t i = 0; i < n / KERN_QK32; i++) {
        __m256i s = dot_u8(_mm256_or_si256(nibbles32(a[i].qs), fifth_bits(a[i].qh)), b[i].qs);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(f16c(a[i].d) * f16c(b[i].d)), acc);
        summ += f16c(a[i].m) * f16c(b[i].s);
    }
    return hsum8(acc) + summ;
}

static inline void scales_mins(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0x0f) | (s[j] >> 6) << 4);
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
    }
}

/* sum over 32 elements of q (unsigned, < 64) * x, times the 16-bit scale, as 8 int32 */
static inline __m256i dot_u8_scaled(__m256i q, const int8_t *x, int16_t scale) {
    __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(scale));
}

/* Q4_K and Q5_K: groups of 64 elements as 32 low then 32 high quants. mn16 holds each
   group's min twice (one per 16-element bsum); the integer sums are exact, so the
   result is the scalar formula's rounding of exact sums. */
static inline float dot_scale_min(const uint8_t sc[8], __m256i mn16, float d, float dmin, const __m256i q[8],
                                  const kern_block_q8_k *y) {
    __m256i acc = _mm256_setzero_si256();
    for (int j = 0; j < 8; j++) acc = _mm256_add_epi32(acc, dot_u8_scaled(q[j], y->qs + 32 * j, sc[j]));
    __m256i mins = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y->bsums), mn16);
    /* both horizontal sums at once: lane 0 = sum(acc), lane 1 = sum(mins) */
    __m256i h = _mm256_hadd_epi32(acc, mins);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    s = _mm_hadd_epi32(s, s);
    return y->d * (d * (float)_mm_cvtsi128_si32(s) - dmin * (float)_mm_extract_epi32(s, 1));
}

static inline __m256i mins_pairs(const uint8_t mn[8]) {
    __m128i m = _mm_loadl_epi64((const __m128i *)mn);
    return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));
}

/* Calls dot with nt as a constant, so that each token count unrolls. */
#define DOT_NT_CONSTANT(dot)                                                     \
    switch (nt) {                                                                \
    case 1: dot(n, w, x, x_stride, 1, out); break;                               \
    case 2: dot(n, w, x, x_stride, 2, out); break;                               \
    case 3: dot(n, w, x, x_stride, 3, out); break;                               \
    default: dot(n, w, x, x_stride, KERN_DOT_TOKENS, out); break;                \
    }

/* One Q4_K row against nt activation rows (x_stride bytes apart): each token's
   arithmetic is that of the one-token dot, the unpacking is shared. */
static inline __attribute__((always_inline)) void q4_k_dot_nt(int64_t n, const kern_block_q4_k *a, const uint8_t *x,
                                                              size_t x_stride, const int nt, float *out) {
    const __m256i low = _mm256_set1_epi8(0x0f);
    float sum[KERN_DOT_TOKENS] = {0};
    for (int64_t i = 0; i < n / KERN_QKK; i++) {
        __m256i q[8];
        for (int g = 0; g < 4; g++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * g));
            q[2 * g] = _mm256_and_si256(raw, low);
            q[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low);
        }
        uint8_t sc[8], mn[8];
        scales_mins(a[i].scales, sc, mn);
        float d = f16c(a[i].d), dmin = f16c(a[i].dmin);
        __m256i mn16 = mins_pairs(mn);
        for (int t = 0; t < nt; t++)
            sum[t] += dot_scale_min(sc, mn16, d, dmin, q, (const kern_block_q8_k *)(x + (size_t)t * x_stride) + i);
    }
    for (int t = 0; t < nt; t++) out[t] = sum[t];
}

float kern_q4_k_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    float out;
    q4_k_dot_nt(n, w, x, 0, 1, &out);
    return out;
}

void kern_q4_k_vec_dotn_avx2(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out) {
    DOT_NT_CONSTANT(q4_k_dot_nt);
}

/* moves bit `from` of every byte to bit 4 (other bits: garbage to mask off) */
static inline __m256i to_bit4(__m256i v, int from) {
    return from <= 4 ? _mm256_slli_epi16(v, 4 - from) : _mm256_srli_epi16(v, from - 4);
}

static inline __attribute__((always_inline)) void q5_k_dot_nt(int64_t n, const kern_block_q5_k *a, const uint8_t *x,
                                                              size_t x_stride, const int nt, float *out) {
    const __m256i low = _mm256_set1_epi8(0x0f), bit = _mm256_set1_epi8(0x10);
    float sum[KERN_DOT_TOKENS] = {0};
    for (int64_t i = 0; i < n / KERN_QKK; i++) {
        __m256i q[8];
        __m256i qh = _mm256_loadu_si256((const __m256i *)a[i].qh);
        for (int g = 0; g < 4; g++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(a[i].qs + 32 * g));
            /* bit 2g of qh[l] -> bit 4 of the low quant; bit 2g+1 -> bit 4 of the high */
            __m256i h0 = _mm256_and_si256(to_bit4(qh, 2 * g), bit);
            __m256i h1 = _mm256_and_si256(to_bit4(qh, 2 * g + 1), bit);
            q[2 * g] = _mm256_or_si256(_mm256_and_si256(raw, low), h0);
            q[2 * g + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low), h1);
        }
        uint8_t sc[8], mn[8];
        scales_mins(a[i].scales, sc, mn);
        float d = f16c(a[i].d), dmin = f16c(a[i].dmin);
        __m256i mn16 = mins_pairs(mn);
        for (int t = 0; t < nt; t++)
            sum[t] += dot_scale_min(sc, mn16, d, dmin, q, (const kern_block_q8_k *)(x + (size_t)t * x_stride) + i);
    }
    for (int t = 0; t < nt; t++) out[t] = sum[t];
}

float kern_q5_k_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    float out;
    q5_k_dot_nt(n, w, x, 0, 1, &out);
    return out;
}

void kern_q5_k_vec_dotn_avx2(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out) {
    DOT_NT_CONSTANT(q5_k_dot_nt);
}

static inline __attribute__((always_inline)) void q6_k_dot_nt(int64_t n, const kern_block_q6_k *a, const uint8_t *x,
                                                              size_t x_stride, const int nt, float *out) {
    const __m256i low = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(0x30);
    float sum[KERN_DOT_TOKENS] = {0};
    for (int64_t i = 0; i < n / KERN_QKK; i++) {
        __m256i acc[KERN_DOT_TOKENS];
        for (int t = 0; t < nt; t++) acc[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(a[i].ql + 64 * h + 32));
            __m256i hb = _mm256_loadu_si256((const __m256i *)(a[i].qh + 32 * h));
            __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(l0, low), _mm256_and_si256(_mm256_slli_epi16(hb, 4), two)),
                _mm256_or_si256(_mm256_and_si256(l1, low), _mm256_and_si256(_mm256_slli_epi16(hb, 2), two)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), _mm256_and_si256(hb, two)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low), _mm256_and_si256(_mm256_srli_epi16(hb, 2), two)),
            };
            for (int k = 0; k < 4; k++) {
                const int8_t *sc = a[i].scales + 8 * h + 2 * k;
                __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
                for (int t = 0; t < nt; t++) {
                    const kern_block_q8_k *y = (const kern_block_q8_k *)(x + (size_t)t * x_stride) + i;
                    __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(y->qs + 128 * h + 32 * k)));
                    acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(p, s));
                }
            }
        }
        /* quants are stored +32: subtract 32 * sum(scale * bsum) */
        __m256i scl = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a[i].scales));
        float d = f16c(a[i].d);
        for (int t = 0; t < nt; t++) {
            const kern_block_q8_k *y = (const kern_block_q8_k *)(x + (size_t)t * x_stride) + i;
            __m256i off = _mm256_madd_epi16(scl, _mm256_loadu_si256((const __m256i *)y->bsums));
            int32_t sumi = hsum8i(acc[t]) - 32 * hsum8i(off);
            sum[t] += y->d * d * (float)sumi;
        }
    }
    for (int t = 0; t < nt; t++) out[t] = sum[t];
}

float kern_q6_k_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    float out;
    q6_k_dot_nt(n, w, x, 0, 1, &out);
    return out;
}

void kern_q6_k_vec_dotn_avx2(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out) {
    DOT_NT_CONSTANT(q6_k_dot_nt);
}
#undef DOT_NT_CONSTANT

/* ---- float rows: 8-lane FMA, 4 accumulators ---------------------------------- */
static inline float dot_f32_lanes(int64_t n, const float *b, __m256 (*load)(const void *, int64_t), const void *a) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) acc[k] = _mm256_fmadd_ps(load(a, i + 8 * k), _mm256_loadu_ps(b + i + 8 * k), acc[k]);
    for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load(a, i), _mm256_loadu_ps(b + i), acc[0]);
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    return sum;
}

static inline __m256 load_f32(const void *a, int64_t i) { return _mm256_loadu_ps((const float *)a + i); }
static inline __m256 load_f16(const void *a, int64_t i) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)a + i)));
}
static inline __m256 load_bf16(const void *a, int64_t i) {
    __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)a + i)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(h, 16));
}

/* dot_f32_lanes for two activation rows: each sum in exactly that order (so bit-identical
   to it), each weight vector loaded and widened once for both. */
static inline void dot_f32_lanes2(int64_t n, const float *b0, const float *b1, __m256 (*load)(const void *, int64_t),
                                  const void *a, float out[2]) {
    __m256 p[4], q[4];
    for (int k = 0; k < 4; k++) p[k] = q[k] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            __m256 w = load(a, i + 8 * k);
            p[k] = _mm256_fmadd_ps(w, _mm256_loadu_ps(b0 + i + 8 * k), p[k]);
            q[k] = _mm256_fmadd_ps(w, _mm256_loadu_ps(b1 + i + 8 * k), q[k]);
        }
    for (; i + 8 <= n; i += 8) {
        __m256 w = load(a, i);
        p[0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(b0 + i), p[0]);
        q[0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(b1 + i), q[0]);
    }
    out[0] = hsum8(_mm256_add_ps(_mm256_add_ps(p[0], p[1]), _mm256_add_ps(p[2], p[3])));
    out[1] = hsum8(_mm256_add_ps(_mm256_add_ps(q[0], q[1]), _mm256_add_ps(q[2], q[3])));
}

/* A float-like row against nt activation rows: pairs through dot_f32_lanes2, then the
   scalar tail per token as the one-token dot does it. */
#define FLOAT_DOTN(name, elem_t, load, widen)                                                                     \
    void kern_##name##_vec_dotn_avx2(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out) { \
        const elem_t *a = w;                                                                                     \
        int t = 0;                                                                                               \
        for (; t + 2 <= nt; t += 2) {                                                                            \
            const float *b0 = (const float *)((const uint8_t *)x + (size_t)t * x_stride);                        \
            const float *b1 = (const float *)((const uint8_t *)x + (size_t)(t + 1) * x_stride);                  \
            dot_f32_lanes2(n, b0, b1, load, a, out + t);                                                         \
            for (int64_t i = n & ~(int64_t)7; i < n; i++) {                                                      \
                out[t] += widen(a[i]) * b0[i];                                                                   \
                out[t + 1] += widen(a[i]) * b1[i];                                                               \
            }                                                                                                    \
        }                                                                                                        \
        if (t < nt) out[t] = kern_##name##_vec_dot_avx2(n, w, (const uint8_t *)x + (size_t)t * x_stride);       \
    }

float kern_f32_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    const float *a = w, *b = x;
    float sum = dot_f32_lanes(n, b, load_f32, a);
    for (int64_t i = n & ~(int64_t)7; i < n; i++) sum += a[i] * b[i];
    return sum;
}

float kern_f16_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w;
    const float *b = x;
    float sum = dot_f32_lanes(n, b, load_f16, a);
    for (int64_t i = n & ~(int64_t)7; i < n; i++) sum += kern_f16_to_f32(a[i]) * b[i];
    return sum;
}

float kern_bf16_vec_dot_avx2(int64_t n, const void *w, const void *x) {
    const uint16_t *a = w;
    const float *b = x;
    float sum = dot_f32_lanes(n, b, load_bf16, a);
    for (int64_t i = n & ~(int64_t)7; i < n; i++) sum += kern_bf16_to_f32(a[i]) * b[i];
    return sum;
}

static inline float same_f32(float v) { return v; }
FLOAT_DOTN(f32, float, load_f32, same_f32)
FLOAT_DOTN(f16, uint16_t, load_f16, kern_f16_to_f32)
FLOAT_DOTN(bf16, uint16_t, load_bf16, kern_bf16_to_f32)
#undef FLOAT_DOTN
