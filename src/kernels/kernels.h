/* Kernel interface used by the model layer: tensor type traits, matmul, elementwise
 * ops and the thread pool. Scalar reference kernels back every entry; SIMD variants
 * (AVX2, AVX-512) plug in behind the same functions, chosen at run time.
 * This layer knows tensors only as typed rows of bytes; it never reads files. */
#ifndef KERNELS_KERNELS_H
#define KERNELS_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/types.h"
#include "hearth.h"

/* ---- CPU level ---------------------------------------------------------------
   Chosen once per process: the best the CPU and OS support (AVX2 means AVX2+FMA+F16C;
   AVX512 means F+BW+VL+VNNI), or lower when HEARTH_CPU=scalar|avx2|avx512 asks. */
typedef enum { KERN_CPU_SCALAR = 0, KERN_CPU_AVX2 = 1, KERN_CPU_AVX512 = 2 } kern_cpu_level;
kern_cpu_level kern_cpu_level_active(void);   /* what the kernels use */
kern_cpu_level kern_cpu_level_best(void);     /* what this machine supports */
bool kern_cpu_has_bf16(void);                 /* AVX512_BF16 (informational) */
const char *kern_cpu_level_name(kern_cpu_level level);   /* "scalar", "avx2", "avx512" */
/* NULL, or one line saying why the active level is not what HEARTH_CPU asked for
   (unknown value, or a level this CPU lacks); for the caller to log. */
const char *kern_cpu_notice(void);

/* ---- type traits ------------------------------------------------------------ */
typedef struct kern_type_traits {
    uint32_t type;                 /* ggml type id */
    const char *name;
    uint32_t block_elems, block_bytes;
    /* row of n elements (n % block_elems == 0) -> float */
    void (*to_float)(const void *src, float *dst, int64_t n);
    /* float -> row of n elements: reference quantizer (also used for activations) */
    void (*from_float)(const float *src, void *dst, int64_t n);
    /* dot of one weight row (this type) with one activation row already converted to
       vec_dot_type, n elements */
    float (*vec_dot)(int64_t n, const void *w, const void *x);
    uint32_t vec_dot_type;         /* activation format vec_dot expects (F32, Q8_0, Q8_K, ...) */
} kern_type_traits;

/* Traits for a type the kernels can compute, or NULL (unsupported). Every function
   pointer is set. The entries may be the fastest kernels this CPU supports (chosen
   once, at first use); Q8_1 and Q8_K are activation formats but complete entries too. */
const kern_type_traits *kern_traits(uint32_t type);
/* The scalar reference kernels of the same types (what SIMD kernels are tested against). */
const kern_type_traits *kern_scalar_traits(uint32_t type);
/* The table a given level installs (level <= kern_cpu_level_best(), else NULL): lets
   tests compare every level this CPU has in one process. */
const kern_type_traits *kern_level_traits(kern_cpu_level level, uint32_t type);

/* Bytes of a row of n elements of type; 0 when the type is unsupported, n is negative
   or not a multiple of the block size, or the size overflows. */
size_t kern_row_bytes(uint32_t type, int64_t n);

float kern_f16_to_f32(uint16_t h);
uint16_t kern_f32_to_f16(float f);    /* round to nearest even */
float kern_bf16_to_f32(uint16_t h);
uint16_t kern_f32_to_bf16(float f);   /* round to nearest even */

/* ---- thread pool ------------------------------------------------------------ */
typedef struct kern_pool kern_pool;
/* Persistent workers; n_threads <= 0 means one per physical core. NULL on failure. */
kern_pool *kern_pool_new(int n_threads);
void kern_pool_free(kern_pool *p);   /* accepts NULL */
int kern_pool_size(const kern_pool *p);
/* Runs fn(ctx, ith, nth) on every thread (the caller is thread 0) and returns when all
   are done. p may be NULL: runs fn(ctx, 0, 1). One caller at a time per pool; fn must
   not call kern_pool_run on the same pool. */
void kern_pool_run(kern_pool *p, void (*fn)(void *ctx, int ith, int nth), void *ctx);

/* ---- matmul ----------------------------------------------------------------- */
/* A weight matrix: rows x cols elements of `type`, row-major, row i at data + i*row_bytes. */
typedef struct kern_matrix {
    uint32_t type;
    int64_t rows;      /* output features */
    int64_t cols;      /* input features (row length) */
    size_t row_bytes;
    const void *data;
    /* Set by kern_matrix_prepare (zero otherwise): the weights repacked for the active
       level's tiled kernels, owned by the matrix, packed_bytes long. */
    void *packed;
    size_t packed_bytes;
} kern_matrix;

/* Repacks w once, at load, when the active level has a tiled kernel for its type
   (AVX-512: Q4_K, Q5_K, Q6_K, Q8_0, Q4_0 into 16-row interleaved panels; F32, F16 and BF16
   with cols a multiple of 32, column-major within each panel); otherwise leaves w as it
   is. data stays valid and untouched (kern_get_row keeps using it). *bytes (may be NULL)
   receives the memory now owned by w (0 when nothing was repacked). Errors:
   HEARTH_ERR_NOMEM, HEARTH_ERR_INVALID (inconsistent shape); w is then unchanged.
   Release with kern_matrix_release. */
hearth_status kern_matrix_prepare(kern_matrix *w, size_t *bytes);
void kern_matrix_release(kern_matrix *w);   /* frees what prepare allocated; idempotent */
/* Bytes kern_matrix_prepare would allocate for a rows x cols matrix of type at the active
   level (0: it would not repack), for budgeting memory before a model is built. */
size_t kern_matrix_prepare_bytes(uint32_t type, int64_t rows, int64_t cols);

/* y[t][r] = sum_c W[r][c] * x[t][c] for t < n_tok. x: [n_tok][cols] floats,
   y: [n_tok][rows] floats (row stride ldy >= rows). Each x row is converted once to the
   weight type's vec_dot_type in the pool's scratch (kept between calls); output rows are
   split across the pool's threads, and the result does not depend on their number.
   p may be NULL (one thread, a temporary buffer per call). Returns HEARTH_ERR_NOMEM if
   the scratch cannot grow, HEARTH_ERR_UNSUPPORTED for a type without kernels,
   HEARTH_ERR_INVALID for inconsistent shapes; y is then untouched. Not reentrant per
   pool: one caller at a time. A prepared matrix runs the tiled kernels: each unpacked
   weight block serves up to 8 tokens; results then differ from the vec_dot loop by
   float rounding only, and still not with the thread count. */
hearth_status kern_matmul(kern_pool *p, const kern_matrix *w, const float *x, int64_t n_tok,
                          float *y, int64_t ldy);

/* Several matrices with the same cols over the same x (e.g. q, k and v; gate and up):
   y[i] = W[i] x with row stride ldy[i], as kern_matmul would give each. Consecutive
   matrices whose activations take the same format share one conversion and one work
   split over all their rows, so a group costs one pass instead of n. 1 <= n <=
   KERN_MATMUL_GROUP; errors as kern_matmul (INVALID also for differing cols); on error
   the outputs of earlier matrices may have been written. */
#define KERN_MATMUL_GROUP 4
hearth_status kern_matmul_group(kern_pool *p, int n, const kern_matrix *const *w, const float *x, int64_t n_tok,
                                float *const *y, const int64_t *ldy);

/* Work fused into one matmul pass, so a forward pass needs fewer pool runs:
   - prepare(ctx, ith, t0, t1), when set, is called by pool thread ith for token rows
     [t0, t1) of x right before it converts them, once per row over all threads; it may
     write those rows of x (the caller's buffer) and any per-token state of its own. It
     replaces a pool run of per-token work before the matmul (a norm, attention).
   - bias[i] (rows floats, or NULL) is added to every output row of matrix i, and then,
     with gelu, GELU (tanh form) is applied, by the thread that computed those outputs
     while they are in its cache.
   Results equal kern_matmul_group followed by the same per-row work, whatever the
   thread count. */
typedef struct kern_mm_fuse {
    void (*prepare)(void *ctx, int ith, int64_t t0, int64_t t1);
    void *ctx;
    const float *bias[KERN_MATMUL_GROUP];
    bool gelu;
} kern_mm_fuse;
/* kern_matmul_group with fused work (f may be NULL: none); errors as kern_matmul_group
   (shape errors come before any work; a later failure may follow prepare). */
hearth_status kern_matmul_fused(kern_pool *p, int n, const kern_matrix *const *w, const float *x, int64_t n_tok,
                                float *const *y, const int64_t *ldy, const kern_mm_fuse *f);

/* Rows [r0, r0 + n) of w as a matrix of its own that shares w's memory, prepared panels
   included: kern_matmul over it gives exactly those rows of w's result (a long matmul
   can run in pieces). r0 must be a multiple of KERN_SLICE_ROWS and the rows inside w;
   else INVALID. The view owns nothing: never release it. */
#define KERN_SLICE_ROWS 16
hearth_status kern_matrix_slice(const kern_matrix *w, int64_t r0, int64_t n, kern_matrix *out);

/* Dequantizes row r (< rows) of w into out[cols]; w->type must have kernels. */
void kern_get_row(const kern_matrix *w, int64_t r, float *out);

/* ---- attention over F16 keys and values --------------------------------------
   One pass of softmax(scale * q·K) · V for up to KERN_ATTN_ROWS query rows that share
   their keys and values (e.g. the query heads of one KV head, for a few consecutive
   tokens of one sequence), with an online softmax (running max and sum), so keys are
   read once for all rows and no score row is kept. Keys arrive in runs of rows in
   position order from 0; row r sees the keys at positions < n_vis[r] (causal mask).
   The state and its workspace belong to one thread. */
#define KERN_ATTN_ROWS 16

typedef struct kern_attn {
    kern_cpu_level level;          /* kernels in use (<= kern_cpu_level_best()) */
    int n_rows;
    int64_t dk, dv;
    int32_t n_vis[KERN_ATTN_ROWS];
    float *ws;                     /* workspace: kern_attn_workspace_floats(dk, dv) floats */
} kern_attn;

/* Floats of workspace one kern_attn needs (0 if dk or dv is below 1 or too large). */
size_t kern_attn_workspace_floats(int64_t dk, int64_t dv);
/* Starts rows q[r] (dk floats each, r < n_rows <= kern_attn_rows(level)) at level (a
   level above the machine's best runs the best). */
void kern_attn_begin(kern_attn *a, kern_cpu_level level, float *ws, int64_t dk, int64_t dv, int n_rows,
                     const float *const *q, const int32_t *n_vis, float scale);
/* Feeds the keys and values at positions pos0 .. pos0 + n - 1: row i of k at
   k + i * k_stride (dk F16 values), of v at v + i * v_stride (dv values). */
void kern_attn_keys(kern_attn *a, const uint16_t *k, size_t k_stride, const uint16_t *v, size_t v_stride,
                    int64_t pos0, int64_t n);
/* Writes each row's dv outputs to out[r] (zeros for a row that saw no key). */
void kern_attn_end(kern_attn *a, float *const *out);
/* Rows a block should hold at level to fill its vectors (8 for AVX2, else 16). Results
   of a row do not depend on which other rows share its block. */
int kern_attn_rows(kern_cpu_level level);

/* ---- elementwise ops (in place where out == x is allowed) -------------------
   Norms: weight and bias may be NULL (no scale / no shift). */
void kern_rmsnorm(const float *x, const float *weight, int64_t n, float eps, float *out);
void kern_layernorm(const float *x, const float *weight, const float *bias, int64_t n,
                    float eps, float *out);
/* Rotary embedding of n_heads heads of head_dim, at position pos, over the first
   n_rot dims of each head. neox: pairs (i, i+n_rot/2); else adjacent pairs (2i, 2i+1). */
void kern_rope(float *x, int n_heads, int head_dim, int n_rot, int64_t pos,
               float freq_base, float freq_scale, bool neox);
/* The same in two steps, so a position's angles serve every layer: cs receives n_rot
   floats (cos, sin of each pair); kern_rope_apply then rotates exactly as kern_rope. */
void kern_rope_angles(int n_rot, int64_t pos, float freq_base, float freq_scale, float *cs);
void kern_rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs, bool neox);
/* In place, max-subtracted; -INFINITY entries get 0; an all -INFINITY row becomes uniform. */
void kern_softmax(float *x, int64_t n);
void kern_silu_mul(const float *gate, const float *up, int64_t n, float *out);
void kern_gelu(float *x, int64_t n);               /* tanh approximation, in place */
void kern_add(float *x, const float *y, int64_t n); /* x += y */
/* Attention of n_q (1..KERN_ATTEND_QUERIES) queries sharing their keys, from keys stored
 * transposed (kt[i * ld + j]: dimension i of key j, dk dims, n_keys >= 1 keys): out row r
 * = softmax(scale * q_r·K) · V, query r at q + r * q_stride, its output (dv floats) at
 * out + r * out_stride, value row j at v + j * v_stride. scores: n_q * n_keys floats of
 * workspace. Each query's result does not depend on n_q. */
#define KERN_ATTEND_QUERIES 4
void kern_attend_cols(int n_q, const float *q, size_t q_stride, const float *kt, size_t ld, int64_t dk,
                      int64_t n_keys, float scale, const float *v, size_t v_stride, int64_t dv, float *scores,
                      float *out, size_t out_stride);

#endif
