/* AVX-512 (F/BW/VL + VNNI) tiled matmul on the 16-row panels of matmul_pack.c: tiles of
 * 16 rows x up to 8 tokens, where every 64-byte weight load is unpacked once and then
 * feeds one vpdpbusd per token (unsigned quants x signed int8 activations, with the
 * offset and min terms taken from the activation block sums), and the activation
 * converters that make those sums; F32/F16/BF16 panels widen each column of 16 rows once
 * and FMA it with one broadcast float per token. Per output, the arithmetic is the same
 * whatever the tile's token count, so results do not depend on how work is split.
 * Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mf16c; must never run
 * unless dispatch chose the AVX-512 level. */
#include <immintrin.h>

#include "kernels/kern_internal.h"
#include "kernels/simd_exp.h"

#define TILE_T 8
#define PREFETCH_AHEAD 16384   /* bytes: a few microseconds of streaming ahead */
#define INLINE static inline __attribute__((always_inline))

INLINE __m512i bcast32(const void *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

/* float bit operations without AVX512DQ */
INLINE __m512 fabs16(__m512 v) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff))); }
INLINE __m512 half_away(__m512 v) {   /* copysign(0.5 - 2^-25, v) */
    __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_castsi512_ps(_mm512_or_si512(sign, _mm512_castps_si512(_mm512_set1_ps(0.49999997f))));
}

/* Part k of n of the lines PREFETCH_AHEAD bytes past a unit into the cache: weights
   stream from memory while a tile computes on them, and the hardware prefetcher alone
   falls behind when 8 tokens make each line slow to consume. Only the first tile over a
   panel asks (the panel's other tiles find its lines, and the next panel's first ones,
   already fetched): the same coverage for an eighth of the prefetch instructions. */
INLINE void prefetch_part(const void *unit, size_t unit_bytes, int k, int n) {
    const char *p = (const char *)unit + PREFETCH_AHEAD;
    for (size_t off = unit_bytes * (size_t)k / (size_t)n; off < unit_bytes * (size_t)(k + 1) / (size_t)n; off += 64)
        _mm_prefetch(p + off, _MM_HINT_T0);
}

INLINE __m512 f16x16(const uint16_t *h) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h)); }

/* ---- activation converters -------------------------------------------------- */
size_t kern_act_row_bytes(uint32_t wtype, int64_t cols) {
    if (kern_panel_takes_floats(wtype)) return (size_t)cols * sizeof(float);
    if (wtype == GGML_Q8_0 || wtype == GGML_Q4_0) return (size_t)(cols / KERN_QK32) * sizeof(kern_act_q8);
    return (size_t)(cols / KERN_QKK) * sizeof(kern_act_k);
}

/* Lane k = the sum of the 16 lanes of v[k]: a transpose-and-add tree, 45 instructions
   where 16 separate reductions take about 160. */
static __m512i sums16(const __m512i v[16]) {
    __m512i t[8], u[4];
    for (int i = 0; i < 8; i++)   /* per 128-bit lane: partial sums of v[2i], v[2i+1] interleaved */
        t[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++)   /* per 128-bit lane: v[4i..4i+3], one each */
        u[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(t[2 * i], t[2 * i + 1]), _mm512_unpackhi_epi64(t[2 * i], t[2 * i + 1]));
    __m512i w0 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[0], u[1], 0x88), _mm512_shuffle_i32x4(u[0], u[1], 0xdd));
    __m512i w1 = _mm512_add_epi32(_mm512_shuffle_i32x4(u[2], u[3], 0x88), _mm512_shuffle_i32x4(u[2], u[3], 0xdd));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(w0, w1, 0x88), _mm512_shuffle_i32x4(w0, w1, 0xdd));
}

/* As the scalar Q8_K quantizer: q = nearest(x * 127/amax) (ties to even), d = amax/127. */
static void convert_k(const float *x, int64_t cols, kern_act_k *out) {
    const __m512i lim = _mm512_set1_epi32(127), nlim = _mm512_set1_epi32(-127);
    for (int64_t b = 0; b < cols / KERN_QKK; b++, x += KERN_QKK) {
        kern_act_k *a = &out[b];
        __m512 m = _mm512_setzero_ps();
        for (int k = 0; k < 16; k++) m = _mm512_max_ps(m, fabs16(_mm512_loadu_ps(x + 16 * k)));
        float amax = _mm512_reduce_max_ps(m);
        if (amax == 0.0f) {
            memset(a, 0, sizeof *a);
            continue;
        }
        float iscale = 127.0f / amax;
        __m512 vs = _mm512_set1_ps(iscale);
        __m512i s16[16];
        for (int k = 0; k < 16; k++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * k), vs));
            q = _mm512_max_epi32(_mm512_min_epi32(q, lim), nlim);
            _mm_storeu_si128((__m128i *)(a->qs + 16 * k), _mm512_cvtepi32_epi8(q));
            s16[k] = q;
        }
        _mm256_storeu_si256((__m256i *)a->bs16, _mm512_cvtepi32_epi16(sums16(s16)));
        for (int k = 0; k < 8; k++) a->bs32[k] = (int16_t)(a->bs16[2 * k] + a->bs16[2 * k + 1]);
        a->d = 1.0f / iscale;
        a->pad = 0;
    }
}

/* As the scalar Q8_0 quantizer: q = roundf(x / d), d = amax/127 stored as f16. */
static void convert_q8(const float *x, int64_t cols, kern_act_q8 *out) {
    for (int64_t b = 0; b < cols / KERN_QK32; b++, x += KERN_QK32) {
        __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(fabs16(x0), fabs16(x1)));
        float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
        __m512 vid = _mm512_set1_ps(id);
        __m512 v0 = _mm512_mul_ps(x0, vid), v1 = _mm512_mul_ps(x1, vid);
        /* roundf: ties away from zero */
        __m512i q0 = _mm512_cvttps_epi32(_mm512_add_ps(v0, half_away(v0)));
        __m512i q1 = _mm512_cvttps_epi32(_mm512_add_ps(v1, half_away(v1)));
        _mm_storeu_si128((__m128i *)out[b].qs, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(out[b].qs + 16), _mm512_cvtepi32_epi8(q1));
        out[b].d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(d), _MM_FROUND_TO_NEAREST_INT)));
        out[b].corr = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    }
}

void kern_act_convert_avx512(uint32_t wtype, const float *x, int64_t cols, void *act) {
    if (wtype == GGML_Q8_0 || wtype == GGML_Q4_0) convert_q8(x, cols, act);
    else convert_k(x, cols, act);
}

/* ---- tiles: 16 rows (one panel) x T tokens ------------------------------------ */
INLINE const kern_act_k *act_k(const uint8_t *act, size_t arb, int t) { return (const kern_act_k *)(act + (size_t)t * arb); }

/* bit 2c + k of every byte of h moved to bit 4 (then masked by the caller) */
INLINE __m512i q5_high(__m512i h, int s) {
    return s >= 0 ? _mm512_slli_epi16(h, s) : _mm512_srli_epi16(h, -s);
}

/* Q4_K, or Q5_K when H (the fifth bits, one line per sub-block) is not NULL. */
INLINE void tile_q45_k(const kern_panel_q4_k *P, size_t stride, const uint8_t *H, int64_t nsb, const uint8_t *act, size_t arb, const int T,
                      float *y, int64_t ldy, __mmask16 mask, bool pf) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 accf[TILE_T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) accf[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < nsb; sb++) {
        const kern_panel_q4_k *p = (const kern_panel_q4_k *)((const uint8_t *)P + sb * stride);
        const uint8_t *h = H ? H + sb * stride : NULL;
        __m512i isum[TILE_T];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) isum[t] = _mm512_setzero_si512();
        for (int j = 0; j < 8; j++) {
            if (pf) prefetch_part(p, stride, j, 8);
            __m512i w[8];
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                __m512i raw = _mm512_loadu_si512(p->qs[j][c]);
                w[2 * c] = _mm512_and_si512(raw, m4);
                w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
            }
            if (h) {   /* a | (b & c): the fifth bit over each nibble */
                const __m512i m16 = _mm512_set1_epi8(0x10);
                __m512i hb = _mm512_loadu_si512(h + 64 * j);
#pragma GCC unroll 8
                for (int k = 0; k < 8; k++) w[k] = _mm512_ternarylogic_epi32(w[k], q5_high(hb, 4 - k), m16, 0xf8);
            }
            __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p->sc[j]));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const int8_t *xq = act_k(act, arb, t)[sb].qs + 32 * j;
                __m512i s = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) {
                    s = _mm512_dpbusd_epi32(s, w[k], bcast32(xq + 4 * k));
                    s1 = _mm512_dpbusd_epi32(s1, w[4 + k], bcast32(xq + 16 + 4 * k));
                }
                isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(_mm512_add_epi32(s, s1), sc));
            }
        }
        __m512 d = f16x16(p->d), dm = f16x16(p->dmin);
        __m512i mn[4];
#pragma GCC unroll 4
        for (int m = 0; m < 4; m++) mn[m] = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p->mn[m]));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const kern_act_k *a = &act_k(act, arb, t)[sb];
            __m512i ms = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int m = 0; m < 4; m++) ms = _mm512_dpwssd_epi32(ms, mn[m], bcast32(&a->bs32[2 * m]));
            __m512 v = _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum[t]));
            v = _mm512_fnmadd_ps(dm, _mm512_cvtepi32_ps(ms), v);
            accf[t] = _mm512_fmadd_ps(v, _mm512_set1_ps(a->d), accf[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, mask, accf[t]);
}

INLINE void tile_q4_k(const kern_panel_q4_k *P, int64_t nsb, const uint8_t *act, size_t arb, const int T,
                      float *y, int64_t ldy, __mmask16 mask, bool pf) {
    tile_q45_k(P, sizeof *P, NULL, nsb, act, arb, T, y, ldy, mask, pf);
}

INLINE void tile_q5_k(const kern_panel_q5_k *P, int64_t nsb, const uint8_t *act, size_t arb, const int T,
                      float *y, int64_t ldy, __mmask16 mask, bool pf) {
    /* the Q4_K fields lead the Q5_K panel in the same order */
    tile_q45_k((const kern_panel_q4_k *)(const void *)P, sizeof *P, P->qh[0], nsb, act, arb, T, y, ldy, mask, pf);
}

/* bits 2k, 2k+1 of every byte of h moved to bits 4, 5 (then masked by the caller) */
INLINE __m512i q6_high(__m512i h, int k) {
    switch (k) {
    case 0: return _mm512_slli_epi16(h, 4);
    case 1: return _mm512_slli_epi16(h, 2);
    case 2: return h;
    default: return _mm512_srli_epi16(h, 2);
    }
}

INLINE void tile_q6_k(const kern_panel_q6_k *P, int64_t nsb, const uint8_t *act, size_t arb, const int T,
                      float *y, int64_t ldy, __mmask16 mask, bool pf) {
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    __m512 accf[TILE_T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) accf[t] = _mm512_setzero_ps();
    for (int64_t sb = 0; sb < nsb; sb++) {
        const kern_panel_q6_k *p = P + sb;
        __m512i isum[TILE_T];
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) isum[t] = _mm512_setzero_si512();
        for (int u = 0; u < 8; u++) {
            if (pf) prefetch_part(p, sizeof *p, u, 8);
            __m512i w[8];
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                __m512i raw = _mm512_loadu_si512(p->ql[u][c]);
                __m512i h = _mm512_loadu_si512(p->qh[u][c / 2]);
                int k = 2 * (c % 2);
                /* a | (b & c): nibble with the two high bits */
                w[2 * c] = _mm512_ternarylogic_epi32(_mm512_and_si512(raw, m4), q6_high(h, k), m30, 0xf8);
                w[2 * c + 1] = _mm512_ternarylogic_epi32(_mm512_and_si512(_mm512_srli_epi16(raw, 4), m4),
                                                         q6_high(h, k + 1), m30, 0xf8);
            }
            __m512i pair = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p->sc[u]));
            __m512i sc0 = _mm512_srai_epi32(_mm512_slli_epi32(pair, 16), 16), sc1 = _mm512_srai_epi32(pair, 16);
            /* -32 * scale, for the +32 the quants carry, against the 16-element sums */
            __m512i off = _mm512_sub_epi16(_mm512_setzero_si512(), _mm512_slli_epi16(pair, 5));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++) {
                const kern_act_k *a = &act_k(act, arb, t)[sb];
                const int8_t *xq = a->qs + 32 * u;
                __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) s0 = _mm512_dpbusd_epi32(s0, w[k], bcast32(xq + 4 * k));
#pragma GCC unroll 4
                for (int k = 0; k < 4; k++) s1 = _mm512_dpbusd_epi32(s1, w[4 + k], bcast32(xq + 16 + 4 * k));
                __m512i v = _mm512_dpwssd_epi32(isum[t], off, bcast32(&a->bs16[2 * u]));
                v = _mm512_add_epi32(v, _mm512_mullo_epi32(s0, sc0));
                isum[t] = _mm512_add_epi32(v, _mm512_mullo_epi32(s1, sc1));
            }
        }
        __m512 d = f16x16(p->d);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            __m512 v = _mm512_mul_ps(d, _mm512_cvtepi32_ps(isum[t]));
            accf[t] = _mm512_fmadd_ps(v, _mm512_set1_ps(act_k(act, arb, t)[sb].d), accf[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, mask, accf[t]);
}

INLINE void tile_q8_0(const kern_panel_q8_0 *P, int64_t units, const uint8_t *act, size_t arb, const int T,
                      float *y, int64_t ldy, __mmask16 mask, bool pf) {
    __m512 accf[TILE_T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) accf[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < 2 * units; b++) {
        const kern_panel_q8_0 *p = P + b / 2;
        if (pf) prefetch_part(p, sizeof *p, (int)(b % 2), 2);
        __m512i w[8];
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) w[c] = _mm512_loadu_si512(p->qs[b % 2][c]);
        __m512 dw = f16x16(p->d[b % 2]);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const kern_act_q8 *a = (const kern_act_q8 *)(act + (size_t)t * arb) + b;
            /* two dependency chains of 4: vpdpbusd latency, not throughput, bounds one */
            __m512i s = _mm512_set1_epi32(a->corr), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                s = _mm512_dpbusd_epi32(s, w[c], bcast32(a->qs + 4 * c));
                s1 = _mm512_dpbusd_epi32(s1, w[4 + c], bcast32(a->qs + 16 + 4 * c));
            }
            s = _mm512_add_epi32(s, s1);
            accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(a->d)), accf[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, mask, accf[t]);
}

INLINE void tile_q4_0(const kern_panel_q4_0 *P, int64_t units, const uint8_t *act, size_t arb, const int T,
                      float *y, int64_t ldy, __mmask16 mask, bool pf) {
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 accf[TILE_T];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) accf[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < 2 * units; b++) {
        const kern_panel_q4_0 *p = P + b / 2;
        if (pf) prefetch_part(p, sizeof *p, (int)(b % 2), 2);
        __m512i w[8];
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512i raw = _mm512_loadu_si512(p->qs[b % 2][c]);
            w[2 * c] = _mm512_and_si512(raw, m4);
            w[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
        }
        __m512 dw = f16x16(p->d[b % 2]);
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
            const kern_act_q8 *a = (const kern_act_q8 *)(act + (size_t)t * arb) + b;
            /* -8 * sum(qs) undoes the +8 of the stored quants */
            __m512i s = _mm512_set1_epi32(a->corr / 16), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c += 2) {
                s = _mm512_dpbusd_epi32(s, w[2 * c], bcast32(a->qs + 8 * c));
                s = _mm512_dpbusd_epi32(s, w[2 * c + 1], bcast32(a->qs + 8 * c + 4));
                s1 = _mm512_dpbusd_epi32(s1, w[2 * c + 2], bcast32(a->qs + 8 * c + 8));
                s1 = _mm512_dpbusd_epi32(s1, w[2 * c + 3], bcast32(a->qs + 8 * c + 12));
            }
            s = _mm512_add_epi32(s, s1);
            accf[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, _mm512_set1_ps(a->d)), accf[t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + t * ldy, mask, accf[t]);
}

/* One function per (type, T) so every tile loop is unrolled with constant bounds. */
#define TILE_FNS(name, ptype)                                                                   \
    static void name##_t(int T, const void *P, int64_t units, const uint8_t *act, size_t arb, \
                         float *y, int64_t ldy, __mmask16 mask, bool pf) {                    \
        const ptype *p = P;                                                                    \
        switch (T) {                                                                           \
        case 1: name(p, units, act, arb, 1, y, ldy, mask, pf); break;                         \
        case 2: name(p, units, act, arb, 2, y, ldy, mask, pf); break;                         \
        case 3: name(p, units, act, arb, 3, y, ldy, mask, pf); break;                         \
        case 4: name(p, units, act, arb, 4, y, ldy, mask, pf); break;                         \
        case 5: name(p, units, act, arb, 5, y, ldy, mask, pf); break;                         \
        case 6: name(p, units, act, arb, 6, y, ldy, mask, pf); break;                         \
        case 7: name(p, units, act, arb, 7, y, ldy, mask, pf); break;                         \
        default: name(p, units, act, arb, 8, y, ldy, mask, pf); break;                        \
        }                                                                                      \
    }
TILE_FNS(tile_q4_k, kern_panel_q4_k)
TILE_FNS(tile_q5_k, kern_panel_q5_k)
TILE_FNS(tile_q6_k, kern_panel_q6_k)
TILE_FNS(tile_q8_0, kern_panel_q8_0)
TILE_FNS(tile_q4_0, kern_panel_q4_0)

/* Bias, then GELU, on a tile's T x 16 outputs while they are in L1; the same float
   operations as kern_add and kern_gelu on the stored values. */
static void finish_tile(int T, float *y, int64_t ldy, __mmask16 mask, const float *bias, bool gelu) {
    __m512 b = bias ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps();
    for (int t = 0; t < T; t++) {
        __m512 v = _mm512_maskz_loadu_ps(mask, y + t * ldy);
        if (bias) v = _mm512_add_ps(v, b);
        if (gelu) v = kern_gelu16(v);
        _mm512_mask_storeu_ps(y + t * ldy, mask, v);
    }
}

/* ---- float panels (F32, F16, BF16 as stored) against float activations ---------
   Each output sums column c in chain c mod FLOAT_CHAINS, the chains added in order at the
   end, whatever the tile: the independent chains that fill the FMA pipes come from
   FLOAT_GROUP panels and up to 4 tokens side by side, and each broadcast activation
   feeds every panel of the group. So a token's result never depends on its batch. */
#define FLOAT_CHAINS 2
#define FLOAT_GROUP 2
#define FLOAT_TOKENS 4

INLINE __m512 float_col(int kind, const uint8_t *p, int c) {
    const int64_t at = (int64_t)c * KERN_PANEL;
    switch (kind) {
    case GGML_F32: return _mm512_loadu_ps((const float *)p + at);
    case GGML_F16: return f16x16((const uint16_t *)p + at);
    default: {
        __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + at)));
        return _mm512_castsi512_ps(_mm512_slli_epi32(h, 16));
    }
    }
}

/* Panels P, P + pb, ... (G of them) x tokens x, x + xs, ... (T of them) into y (panel g's
   rows at y + 16g, token t's at y + t * ldy); mask: the rows of the group's last panel. */
INLINE void float_tile(int kind, size_t es, const uint8_t *P, size_t pb, const int G, int64_t units, const float *x,
                       size_t xs, const int T, float *y, int64_t ldy, __mmask16 mask, bool pf) {
    const size_t ub = (size_t)KERN_FLOAT_UNIT * KERN_PANEL * es;
    __m512 acc[FLOAT_CHAINS][FLOAT_GROUP][FLOAT_TOKENS];
#pragma GCC unroll 2
    for (int k = 0; k < FLOAT_CHAINS; k++)
#pragma GCC unroll 2
        for (int g = 0; g < G; g++)
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[k][g][t] = _mm512_setzero_ps();
    for (int64_t u = 0; u < units; u++) {
        const uint8_t *p = P + (size_t)u * ub;
        const float *xu = x + u * KERN_FLOAT_UNIT;
        if (pf)
            for (int g = 0; g < G; g++) prefetch_part(p + (size_t)g * pb, ub, 0, 1);
#pragma GCC unroll 4
        for (int c0 = 0; c0 < KERN_FLOAT_UNIT; c0 += FLOAT_CHAINS)
#pragma GCC unroll 2
            for (int k = 0; k < FLOAT_CHAINS; k++) {
                __m512 w[FLOAT_GROUP];
#pragma GCC unroll 2
                for (int g = 0; g < G; g++) w[g] = float_col(kind, p + (size_t)g * pb, c0 + k);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    __m512 xb = _mm512_set1_ps(xu[(size_t)t * xs + (size_t)(c0 + k)]);
#pragma GCC unroll 2
                    for (int g = 0; g < G; g++) acc[k][g][t] = _mm512_fmadd_ps(w[g], xb, acc[k][g][t]);
                }
            }
    }
#pragma GCC unroll 2
    for (int g = 0; g < G; g++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            _mm512_mask_storeu_ps(y + t * ldy + g * KERN_PANEL, g == G - 1 ? mask : (__mmask16)0xffff,
                                  _mm512_add_ps(acc[0][g][t], acc[1][g][t]));
}

/* One function per kind, dispatching to float_tile with constant G (1, 2) and T (1, 2, 4). */
#define FLOAT_TILES(name, kind, elem_t)                                                                       \
    static void name(int G, int T, const uint8_t *P, size_t pb, int64_t units, const float *x, size_t xs,    \
                     float *y, int64_t ldy, __mmask16 mask, bool pf) {                                        \
        const size_t es = sizeof(elem_t);                                                                     \
        switch (G * 8 + T) {                                                                                  \
        case 2 * 8 + 1: float_tile(kind, es, P, pb, 2, units, x, xs, 1, y, ldy, mask, pf); break;            \
        case 2 * 8 + 2: float_tile(kind, es, P, pb, 2, units, x, xs, 2, y, ldy, mask, pf); break;            \
        case 2 * 8 + 4: float_tile(kind, es, P, pb, 2, units, x, xs, 4, y, ldy, mask, pf); break;            \
        case 1 * 8 + 1: float_tile(kind, es, P, pb, 1, units, x, xs, 1, y, ldy, mask, pf); break;            \
        case 1 * 8 + 2: float_tile(kind, es, P, pb, 1, units, x, xs, 2, y, ldy, mask, pf); break;            \
        default: float_tile(kind, es, P, pb, 1, units, x, xs, 4, y, ldy, mask, pf); break;                   \
        }                                                                                                     \
    }
FLOAT_TILES(tiles_f32, GGML_F32, float)
FLOAT_TILES(tiles_f16, GGML_F16, uint16_t)
FLOAT_TILES(tiles_bf16, GGML_BF16, uint16_t)
#undef FLOAT_TILES

static __mmask16 rows_mask(int64_t rows, int64_t panel) {
    int64_t left = rows - panel * KERN_PANEL;
    return left >= KERN_PANEL ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* kern_panels_mul_avx512 for the float types: pairs of panels (a last one alone), each
   against the tokens in parts of 4, 2 and 1. */
static void float_panels_mul(uint32_t wtype, const void *panels, int64_t rows, int64_t cols, int64_t p0, int64_t p1,
                             const uint8_t *act, size_t act_row_bytes, int64_t t0, int64_t t1, float *y, int64_t ldy,
                             const float *bias, bool gelu) {
    void (*tiles)(int, int, const uint8_t *, size_t, int64_t, const float *, size_t, float *, int64_t, __mmask16,
                  bool) = wtype == GGML_F32 ? tiles_f32 : wtype == GGML_F16 ? tiles_f16 : tiles_bf16;
    const int64_t units = cols / KERN_FLOAT_UNIT;
    const size_t pb = (size_t)units * KERN_FLOAT_UNIT * KERN_PANEL * (wtype == GGML_F32 ? 4 : 2);
    const size_t xs = act_row_bytes / sizeof(float);
    for (int64_t pn = p0; pn < p1;) {
        int G = p1 - pn >= FLOAT_GROUP ? FLOAT_GROUP : 1;
        const uint8_t *P = (const uint8_t *)panels + (size_t)pn * pb;
        for (int64_t t = t0; t < t1;) {
            int T = t1 - t >= FLOAT_TOKENS ? FLOAT_TOKENS : t1 - t >= 2 ? 2 : 1;
            tiles(G, T, P, pb, units, (const float *)act + (size_t)t * xs, xs, y + t * ldy + pn * KERN_PANEL, ldy,
                  rows_mask(rows, pn + G - 1), t == t0);
            if (bias || gelu)
                for (int g = 0; g < G; g++)
                    finish_tile(T, y + t * ldy + (pn + g) * KERN_PANEL, ldy, rows_mask(rows, pn + g),
                                bias ? bias + (pn + g) * KERN_PANEL : NULL, gelu);
            t += T;
        }
        pn += G;
    }
}

void kern_panels_mul_avx512(uint32_t wtype, const void *panels, int64_t rows, int64_t cols,
                            int64_t p0, int64_t p1, const uint8_t *act, size_t act_row_bytes,
                            int64_t t0, int64_t t1, float *y, int64_t ldy, const float *bias, bool gelu) {
    if (kern_panel_takes_floats(wtype)) {
        float_panels_mul(wtype, panels, rows, cols, p0, p1, act, act_row_bytes, t0, t1, y, ldy, bias, gelu);
        return;
    }
    void (*tile)(int, const void *, int64_t, const uint8_t *, size_t, float *, int64_t, __mmask16, bool);
    size_t unit_bytes;
    int64_t units;
    switch (wtype) {
    case GGML_Q4_K: tile = tile_q4_k_t; unit_bytes = sizeof(kern_panel_q4_k); units = cols / KERN_QKK; break;
    case GGML_Q5_K: tile = tile_q5_k_t; unit_bytes = sizeof(kern_panel_q5_k); units = cols / KERN_QKK; break;
    case GGML_Q6_K: tile = tile_q6_k_t; unit_bytes = sizeof(kern_panel_q6_k); units = cols / KERN_QKK; break;
    case GGML_Q4_0: tile = tile_q4_0_t; unit_bytes = sizeof(kern_panel_q4_0); units = cols / (2 * KERN_QK32); break;
    default: tile = tile_q8_0_t; unit_bytes = sizeof(kern_panel_q8_0); units = cols / (2 * KERN_QK32); break;
    }
    for (int64_t pn = p0; pn < p1; pn++) {
        const uint8_t *P = (const uint8_t *)panels + (size_t)pn * (size_t)units * unit_bytes;
        __mmask16 mask = rows_mask(rows, pn);
        for (int64_t t = t0; t < t1; t += TILE_T) {
            int T = t1 - t < TILE_T ? (int)(t1 - t) : TILE_T;
            tile(T, P, units, act + (size_t)t * act_row_bytes, act_row_bytes, y + t * ldy + pn * KERN_PANEL, ldy, mask,
                 t == t0);
            if (bias || gelu)
                finish_tile(T, y + t * ldy + pn * KERN_PANEL, ldy, mask, bias ? bias + pn * KERN_PANEL : NULL, gelu);
        }
    }
}
