/* Internal to the kernels module: the ggml block layouts (byte-exact, as stored in GGUF
 * files), the scalar reference kernels of each type family, and helpers shared between
 * kernel files. Nothing outside src/kernels includes this; the model layer uses kernels.h. */
#ifndef KERNELS_KERN_INTERNAL_H
#define KERNELS_KERN_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

#define KERN_QK32 32   /* elements per legacy block (Q4_0 .. Q8_1) */
#define KERN_QKK 256   /* elements per K-quant super-block */

/* ---- block layouts (ggml, little endian; f16 stored as raw bits) ------------ */
typedef struct { uint16_t d; uint8_t qs[16]; } kern_block_q4_0;               /* 18 B */
typedef struct { uint16_t d, m; uint8_t qs[16]; } kern_block_q4_1;            /* 20 B */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } kern_block_q5_0;  /* 22 B */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } kern_block_q5_1; /* 24 B */
typedef struct { uint16_t d; int8_t qs[32]; } kern_block_q8_0;                /* 34 B */
typedef struct { uint16_t d, s; int8_t qs[32]; } kern_block_q8_1;             /* 36 B, s = d*sum(qs) */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];     /* 8 scales + 8 mins, 6 bits each, packed */
    uint8_t qs[128];        /* 4-bit quants; 64-element groups, low nibbles first */
} kern_block_q4_k;                                                            /* 144 B */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[32];         /* fifth bit: bit 2g of qh[l] for element 64g+l, bit 2g+1 for 64g+32+l */
    uint8_t qs[128];
} kern_block_q5_k;                                                            /* 176 B */
typedef struct {
    uint8_t ql[128];        /* low 4 bits */
    uint8_t qh[64];         /* high 2 bits */
    int8_t scales[16];      /* one per 16 elements */
    uint16_t d;
} kern_block_q6_k;                                                            /* 210 B */
typedef struct {
    float d;
    int8_t qs[256];
    int16_t bsums[16];      /* sum of each 16 consecutive qs */
} kern_block_q8_k;                                                            /* 292 B */

_Static_assert(sizeof(kern_block_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(kern_block_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(kern_block_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(kern_block_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(kern_block_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(kern_block_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(kern_block_q4_k) == 144, "q4_k layout");
_Static_assert(sizeof(kern_block_q5_k) == 176, "q5_k layout");
_Static_assert(sizeof(kern_block_q6_k) == 210, "q6_k layout");
_Static_assert(sizeof(kern_block_q8_k) == 292, "q8_k layout");

/* Round to nearest, ties to even, for |f| < 2^22 (every caller stays far inside). */
static inline int kern_nearest_int(float f) {
    float v = f + 12582912.0f;   /* 1.5 * 2^23: the sum's low mantissa bits are the integer */
    int32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

#define KERN_F16(h) kern_f16_to_f32(h)

/* ---- scalar reference kernels, one set per type ----------------------------- */
#define KERN_DECLARE_TYPE(t)                                                  \
    void kern_##t##_to_float(const void *src, float *dst, int64_t n);         \
    void kern_##t##_from_float(const float *src, void *dst, int64_t n);      \
    float kern_##t##_vec_dot(int64_t n, const void *w, const void *x);

KERN_DECLARE_TYPE(f32)
KERN_DECLARE_TYPE(f16)
KERN_DECLARE_TYPE(bf16)
KERN_DECLARE_TYPE(q8_0)
KERN_DECLARE_TYPE(q8_1)
KERN_DECLARE_TYPE(q8_k)
KERN_DECLARE_TYPE(q4_0)
KERN_DECLARE_TYPE(q4_1)
KERN_DECLARE_TYPE(q5_0)
KERN_DECLARE_TYPE(q5_1)
KERN_DECLARE_TYPE(q4_k)
KERN_DECLARE_TYPE(q5_k)
KERN_DECLARE_TYPE(q6_k)
#undef KERN_DECLARE_TYPE

/* Unpacked K-quant blocks (quant_k.c): 6-bit scales and mins of Q4_K/Q5_K, Q4_K quants
   (0..15) and Q6_K quants (-32..31), one per element. */
void kern_k_unpack_scales_mins(const uint8_t s[12], uint8_t sc[8], uint8_t mn[8]);
void kern_q4_k_unpack(const kern_block_q4_k *b, uint8_t q[256]);
void kern_q5_k_unpack(const kern_block_q5_k *b, uint8_t q[256]);   /* 0..31 */
void kern_q6_k_unpack(const kern_block_q6_k *b, int8_t q[256]);

/* ---- K-quant scale search (quant_k_search.c) -------------------------------- */
/* Fits x[i] ~ scale*L[i] - min with L[i] in [0, nmax], min >= 0, minimising the
   weighted squared error: a grid of candidate scales, each refined by least squares.
   Returns scale (0 when x is constant) and stores min. */
float kern_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                         float *min, float rmin, float rdelta, int nstep);
/* Fits x[i] ~ scale*(L[i] - nmax) with L[i] in [0, 2*nmax - 1] (signed, no offset),
   minimising the w-weighted squared error over a grid of candidate scales. Returns
   scale (0 for an all-zero group). */
float kern_fit_scale_signed(int n, int nmax, const float *x, const float *w, uint8_t *L);

/* ---- SIMD kernels (files *_avx2.c / *_avx512.c, compiled with their -m flags) ----
   Only ever called after dispatch chose their level (traits.c, matmul.c). */
#define KERN_DECLARE_AVX2(t) float kern_##t##_vec_dot_avx2(int64_t n, const void *w, const void *x);
KERN_DECLARE_AVX2(q8_0)
KERN_DECLARE_AVX2(q4_0)
KERN_DECLARE_AVX2(q4_1)
KERN_DECLARE_AVX2(q5_0)
KERN_DECLARE_AVX2(q5_1)
KERN_DECLARE_AVX2(q4_k)
KERN_DECLARE_AVX2(q5_k)
KERN_DECLARE_AVX2(q6_k)
KERN_DECLARE_AVX2(f32)
KERN_DECLARE_AVX2(f16)
KERN_DECLARE_AVX2(bf16)
#undef KERN_DECLARE_AVX2
/* One weight row against nt (1..KERN_DOT_TOKENS) activation rows x_stride bytes apart,
   each result bit-identical to the type's vec_dot of the same level: the weights are
   unpacked or widened once for all of them (plain rows: prefill, several decoding slots). */
#define KERN_DOT_TOKENS 4
typedef void (*kern_vec_dotn)(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out);
void kern_q4_k_vec_dotn_avx2(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out);
void kern_q5_k_vec_dotn_avx2(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out);
void kern_q6_k_vec_dotn_avx2(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out);
void kern_f32_vec_dotn_avx2(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out);
void kern_f16_vec_dotn_avx2(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out);
void kern_bf16_vec_dotn_avx2(int64_t n, const void *w, const void *x, size_t x_stride, int nt, float *out);
void kern_f16_to_float_avx2(const void *src, float *dst, int64_t n);
void kern_f16_from_float_avx2(const float *src, void *dst, int64_t n);
void kern_q8_0_from_float_avx2(const float *src, void *dst, int64_t n);
void kern_q8_1_from_float_avx2(const float *src, void *dst, int64_t n);
void kern_q8_k_from_float_avx2(const float *src, void *dst, int64_t n);

/* ---- repacked weights for the AVX-512 tiled matmul (matmul_pack.c) ----------
   A panel is 16 consecutive rows (the last one padded with zero rows); within it the
   blocks of the 16 rows are interleaved (units of 64-byte lines, from a 64-byte aligned
   start) so that one 64-byte load holds 4 consecutive
   quants of each row in its 32-bit lane i (row i), ready for vpdpbusd against 4
   broadcast activation bytes. Quants are unsigned; signed formats carry +128 / +32. */
#define KERN_PANEL 16

/* Q4_K: per super-block of 16 rows; the 8 x 32-element sub-blocks of 4 chunks of 8
   elements: chunk byte 4i+b of qs[j][c] = q[32j+8c+b] | q[32j+8c+4+b] << 4 of row i. */
typedef struct {
    uint16_t d[KERN_PANEL], dmin[KERN_PANEL];   /* f16 */
    uint8_t sc[8][KERN_PANEL];                  /* sub-block scale j of row i */
    uint8_t mn[4][KERN_PANEL][2];               /* mins (2m, 2m+1) of row i */
    uint8_t qs[8][4][64];
} kern_panel_q4_k;                              /* 2368 B */

/* Q5_K: Q4_K's panel plus the fifth bits: qh[j] byte 4i+b, bit 2c / 2c+1 = bit 4 of
   elements 32j+8c+b / 32j+8c+4+b of row i. */
typedef struct {
    uint16_t d[KERN_PANEL], dmin[KERN_PANEL];
    uint8_t sc[8][KERN_PANEL];
    uint8_t mn[4][KERN_PANEL][2];
    uint8_t qs[8][4][64];
    uint8_t qh[8][64];
} kern_panel_q5_k;                              /* 2880 B */

/* Q6_K: 8 units of 32 elements; ql as Q4_K's qs (quants + 32, low 4 bits); qh[u][h]
   holds the top 2 bits for chunks 2h, 2h+1 of unit u: byte 4i+b bits 0-1 / 2-3 / 4-5 /
   6-7 are elements 8c+b, 8c+4+b of chunk 2h, then the same of chunk 2h+1. Padded to a
   whole number of cache lines. */
typedef struct {
    uint8_t ql[8][4][64];
    uint8_t qh[8][2][64];
    int8_t sc[8][KERN_PANEL][2];                /* scales (2u, 2u+1) of row i */
    uint16_t d[KERN_PANEL];
    uint16_t pad[KERN_PANEL];
} kern_panel_q6_k;                              /* 3392 B */

/* Q8_0: per 2 blocks (64 elements) of 16 rows, so a unit is whole cache lines; byte
   4i+b of qs[h][c] = q[4c+b] + 128 of block h of row i. */
typedef struct {
    uint8_t qs[2][8][64];
    uint16_t d[2][KERN_PANEL];
} kern_panel_q8_0;                              /* 1088 B */

/* Q4_0: per 2 blocks (64 elements) of 16 rows; byte 4i+b of qs[h][c] = q[8c+b] |
   q[8c+4+b] << 4 (quants 0..15, value d * (q - 8)) of block h of row i. Same size as
   the 32 blocks it holds. */
typedef struct {
    uint8_t qs[2][4][64];
    uint16_t d[2][KERN_PANEL];
} kern_panel_q4_0;                              /* 576 B */

_Static_assert(sizeof(kern_panel_q4_0) == 576, "q4_0 panel");
_Static_assert(sizeof(kern_panel_q4_k) == 2368, "q4_k panel");
_Static_assert(sizeof(kern_panel_q5_k) == 2880, "q5_k panel");
_Static_assert(offsetof(kern_panel_q5_k, qs) == offsetof(kern_panel_q4_k, qs), "q5_k panel starts as q4_k");
_Static_assert(sizeof(kern_panel_q6_k) == 3392, "q6_k panel");
_Static_assert(sizeof(kern_panel_q8_0) == 1088, "q8_0 panel");

/* F32, F16 and BF16: per 32 columns of 16 rows, column-major: element c of row i at
   [c][i] in the type's own encoding, so one load holds column c of all 16 rows. The
   tiled kernel multiplies them with the float activations as given (no conversion). */
#define KERN_FLOAT_UNIT 32

/* True for the types whose panels take float activations (F32, F16, BF16). */
bool kern_panel_takes_floats(uint32_t type);
/* Bytes of the panels of a rows x cols matrix of type (0: no panel format or overflow). */
size_t kern_panel_bytes(uint32_t type, int64_t rows, int64_t cols);
/* Writes the panels of w (whose type has a panel format) into out. */
void kern_pack_panels(const kern_matrix *w, void *out);

/* Activation formats of the tiled kernels, one row per token, made by the AVX-512
   converters: for K-quants per 256 elements, for Q8_0 and Q4_0 per 32. */
typedef struct {
    int8_t qs[256];
    float d;
    int16_t bs16[16];   /* sums of 16 consecutive qs */
    int16_t bs32[8];    /* sums of 32 consecutive qs */
    int32_t pad;
} kern_act_k;           /* 312 B */
typedef struct {
    int8_t qs[32];
    float d;            /* the f16-rounded scale, as Q8_0 stores it */
    int32_t corr;       /* -128 * sum(qs): undoes the +128 of packed Q8_0 (Q4_0: corr / 16) */
} kern_act_q8;          /* 40 B */

/* AVX-512: converts n_tok rows of cols floats into activation rows (act_row_bytes
   apart) for panel type wtype, and multiplies a range of panels by a range of tokens,
   adding bias (rows floats, or NULL) and then applying GELU (gelu) to each tile's
   outputs right after computing them. */
size_t kern_act_row_bytes(uint32_t wtype, int64_t cols);
void kern_act_convert_avx512(uint32_t wtype, const float *x, int64_t cols, void *act);
void kern_panels_mul_avx512(uint32_t wtype, const void *panels, int64_t rows, int64_t cols,
                            int64_t p0, int64_t p1, const uint8_t *act, size_t act_row_bytes,
                            int64_t t0, int64_t t1, float *y, int64_t ldy, const float *bias, bool gelu);

/* ---- elementwise ops (ops.c, ops_avx2.c, ops_avx512.c) --------------------- */
void kern_silu_mul_scalar(const float *gate, const float *up, int64_t n, float *out);
void kern_silu_mul_avx2(const float *gate, const float *up, int64_t n, float *out);
void kern_silu_mul_avx512(const float *gate, const float *up, int64_t n, float *out);
void kern_gelu_scalar(float *x, int64_t n);
void kern_dot_cols_avx2(const float *q, const float *kt, size_t ld, int64_t dk, int64_t n_keys, float scale,
                        float *out);
void kern_weighted_rows_scalar(const float *w, const float *rows, size_t stride, int64_t n_rows, int64_t n, float *out);
void kern_weighted_rows_avx2(const float *w, const float *rows, size_t stride, int64_t n_rows, int64_t n, float *out);
void kern_gelu_avx2(float *x, int64_t n);
void kern_gelu_avx512(float *x, int64_t n);
void kern_rmsnorm_avx512(const float *x, const float *weight, int64_t n, float eps, float *out);
/* Per-row ops of the encoder pass (ops.c: scalar reference; ops_rows_avx512.c). */
void kern_layernorm_scalar(const float *x, const float *weight, const float *bias, int64_t n, float eps, float *out);
void kern_layernorm_avx512(const float *x, const float *weight, const float *bias, int64_t n, float eps, float *out);
void kern_softmax_scalar(float *x, int64_t n);
void kern_softmax_avx512(float *x, int64_t n);
void kern_add_scalar(float *x, const float *y, int64_t n);
void kern_add_avx512(float *x, const float *y, int64_t n);
void kern_attend_cols_avx512(int n_q, const float *q, size_t q_stride, const float *kt, size_t ld, int64_t dk,
                             int64_t n_keys, float scale, const float *v, size_t v_stride, int64_t dv, float *scores,
                             float *out, size_t out_stride);

/* ---- attention (attn.c, attn_avx2.c, attn_avx512.c) ------------------------ */
#define KERN_ATTN_CHUNK 8   /* keys converted and scored together */
/* The workspace of a kern_attn: queries (scaled) and unnormalised outputs, in row-major
   [row][d] for the scalar level and transposed [d][lane] for the SIMD levels; one chunk
   of keys and values converted to float, [key][d]; running max m and sum l per row. */
typedef struct {
    float *q, *o, *kf, *vf, *m, *l;
} kern_attn_parts;
kern_attn_parts kern_attn_split(const kern_attn *a);
void kern_attn_begin_avx2(kern_attn *a, const float *const *q, float scale);
void kern_attn_keys_avx2(kern_attn *a, const uint16_t *k, size_t k_stride, const uint16_t *v, size_t v_stride,
                         int64_t pos0, int64_t n);
void kern_attn_end_avx2(kern_attn *a, float *const *out);
void kern_attn_begin_avx512(kern_attn *a, const float *const *q, float scale);
void kern_attn_keys_avx512(kern_attn *a, const uint16_t *k, size_t k_stride, const uint16_t *v, size_t v_stride,
                           int64_t pos0, int64_t n);
void kern_attn_end_avx512(kern_attn *a, float *const *out);

/* ---- thread pool scratch (pool.c) ------------------------------------------- */
/* A buffer of at least bytes owned by the pool, kept between calls; NULL if it cannot
   grow. Only the thread that calls kern_pool_run may use it, outside worker code. */
void *kern_pool_scratch(kern_pool *p, size_t bytes);

#endif
