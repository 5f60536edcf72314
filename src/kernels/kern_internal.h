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

/* ---- thread pool scratch (pool.c) ------------------------------------------- */
/* A buffer of at least bytes owned by the pool, kept between calls; NULL if it cannot
   grow. Only the thread that calls kern_pool_run may use it, outside worker code. */
void *kern_pool_scratch(kern_pool *p, size_t bytes);

#endif
