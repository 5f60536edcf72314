/* Matrix times activations: y = W x for a batch of tokens, for one matrix or a group
 * sharing x. Activations are converted once per call (in parallel; for a small batch
 * each thread converts all of it for itself, saving a pool run), then the outputs are
 * split evenly across the pool. Plain matrices: each output is one vec_dot of the
 * active level. Prepared matrices (kern_matrix_prepare, AVX-512): 16-row panels times
 * tiles of up to 8 tokens, work items being (token block of up to 64, panel) pairs
 * shared out by tokens x panels. Either way the result is the same for any thread
 * count, and a row slice (kern_matrix_slice) gives the same rows as the whole. Fused work (kern_mm_fuse) rides along:
 * per-token preparation inside the conversion run, bias and GELU right after each tile
 * (panels) or chunk of rows (plain) is computed. Must never allocate per call when given
 * a pool whose scratch is already large enough, nor run a level's kernels dispatch did
 * not choose. */
#include "base/checked.h"
#include "base/mem.h"
#include "kernels/kern_internal.h"

#define TOKEN_BLOCK 64           /* panel path: most tokens per work item */
#define SMALL_BATCH_ELEMS 32768  /* up to n_tok * cols this many, every thread converts the whole
                                    batch for itself (microseconds): one pool run instead of two */
#define FUSE_CHUNK_ROWS 128      /* with bias or GELU, outputs are finished this many rows at a time */

/* One pass over a group of matrices sharing the activations: their work units (16-row
   panels, or rows) are numbered one after another, first[i] being matrix i's first. */
typedef struct {
    int n;
    const kern_matrix *w[KERN_MATMUL_GROUP];
    float *y[KERN_MATMUL_GROUP];
    int64_t ldy[KERN_MATMUL_GROUP];
    int64_t first[KERN_MATMUL_GROUP + 1];
    bool panels;                  /* prepared matrices: the AVX-512 tiled kernels */
    const kern_type_traits *xt;   /* else: the activation type of vec_dot */
    const float *x;
    int64_t cols, n_tok;
    uint8_t *act;                 /* converted activations; NULL: x itself (F32 vec_dot) */
    size_t act_row_bytes;
    bool per_thread;              /* each thread converts every row into its own slice */
    const kern_mm_fuse *prep;     /* its prepare runs in this pass; NULL: none */
    const float *bias[KERN_MATMUL_GROUP];
    bool gelu;
    bool finish;                  /* plain rows with some bias, or gelu: finish_units */
} mm_job;

/* Rows [t0, t1) of x converted into act. Plain rows are contiguous and from_float works
   block by block, so any cut at a block boundary gives the same bytes. */
static void convert_rows(const mm_job *j, int64_t t0, int64_t t1, uint8_t *act) {
    if (t1 <= t0) return;
    if (j->panels) {
        for (int64_t t = t0; t < t1; t++)
            kern_act_convert_avx512(j->w[0]->type, j->x + t * j->cols, j->cols, act + (size_t)t * j->act_row_bytes);
        return;
    }
    j->xt->from_float(j->x + t0 * j->cols, act + (size_t)t0 * j->act_row_bytes, (t1 - t0) * j->cols);
}

static void convert_part(void *ctx, int ith, int nth) {
    const mm_job *j = ctx;
    int64_t t0 = j->n_tok * ith / nth, t1 = j->n_tok * (ith + 1) / nth;
    if (j->prep && t0 < t1) j->prep->prepare(j->prep->ctx, ith, t0, t1);
    convert_rows(j, t0, t1, j->act);
}

/* Only the preparation (activations used as given, or no matrix to multiply). */
static void prepare_part(void *ctx, int ith, int nth) {
    const mm_job *j = ctx;
    int64_t t0 = j->n_tok * ith / nth, t1 = j->n_tok * (ith + 1) / nth;
    if (t0 < t1) j->prep->prepare(j->prep->ctx, ith, t0, t1);
}

/* The active level's kernel for one row against up to KERN_DOT_TOKENS tokens, or NULL. */
static kern_vec_dotn multi_token_dot(uint32_t type) {
    if (kern_cpu_level_active() < KERN_CPU_AVX2) return NULL;
    switch (type) {
    case GGML_F32: return kern_f32_vec_dotn_avx2;
    case GGML_F16: return kern_f16_vec_dotn_avx2;
    case GGML_BF16: return kern_bf16_vec_dotn_avx2;
    case GGML_Q4_K: return kern_q4_k_vec_dotn_avx2;
    case GGML_Q5_K: return kern_q5_k_vec_dotn_avx2;
    case GGML_Q6_K: return kern_q6_k_vec_dotn_avx2;
    default: return NULL;
    }
}

/* Units [u0, u1) of matrix i, tokens [t0, t1). */
static void mul_units(const mm_job *j, int i, int64_t u0, int64_t u1, int64_t t0, int64_t t1, const uint8_t *act) {
    const kern_matrix *w = j->w[i];
    if (j->panels) {
        kern_panels_mul_avx512(w->type, w->packed, w->rows, w->cols, u0, u1, act, j->act_row_bytes, t0, t1, j->y[i],
                               j->ldy[i], j->bias[i], j->gelu);   /* bias and GELU per tile */
        return;
    }
    const kern_type_traits *wt = kern_traits(w->type);
    kern_vec_dotn dotn = multi_token_dot(w->type);
    for (int64_t r = u0; r < u1; r++) {
        const uint8_t *wrow = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        if (!dotn || t1 - t0 == 1) {
            for (int64_t t = t0; t < t1; t++)
                j->y[i][t * j->ldy[i] + r] = wt->vec_dot(w->cols, wrow, act + (size_t)t * j->act_row_bytes);
            continue;
        }
        for (int64_t t = t0; t < t1; t += KERN_DOT_TOKENS) {
            int nt = t1 - t < KERN_DOT_TOKENS ? (int)(t1 - t) : KERN_DOT_TOKENS;
            float out[KERN_DOT_TOKENS];
            dotn(w->cols, wrow, act + (size_t)t * j->act_row_bytes, j->act_row_bytes, nt, out);
            for (int k = 0; k < nt; k++) j->y[i][(t + k) * j->ldy[i] + r] = out[k];
        }
    }
}

/* Bias and GELU on the outputs of units [u0, u1) of matrix i for tokens [t0, t1). */
static void finish_units(const mm_job *j, int i, int64_t u0, int64_t u1, int64_t t0, int64_t t1) {
    int64_t per = j->panels ? KERN_PANEL : 1, rows = j->w[i]->rows;
    int64_t r0 = u0 * per, r1 = u1 * per < rows ? u1 * per : rows;
    for (int64_t t = t0; t < t1; t++) {
        float *y = j->y[i] + t * j->ldy[i] + r0;
        if (j->bias[i]) kern_add(y, j->bias[i] + r0, r1 - r0);
        if (j->gelu) kern_gelu(y, r1 - r0);
    }
}

/* The token blocks of a job: the panel path cuts the batch into ceil(n_tok / TOKEN_BLOCK)
   blocks of whole 8-token tiles, as even as possible (150 tokens: 48 + 48 + 54, not
   64 + 64 + 22, whose short block streams the weights for few tokens); the plain path
   takes all tokens as one block. */
static int64_t n_blocks(const mm_job *j) { return j->panels ? (j->n_tok + TOKEN_BLOCK - 1) / TOKEN_BLOCK : 1; }

static int64_t block_start(const mm_job *j, int64_t b) {
    int64_t nb = n_blocks(j), tiles = (j->n_tok + 7) / 8, t = tiles * b / nb * 8;
    return t < j->n_tok ? t : j->n_tok;
}

/* The first work item (in block-major order) that starts at or after `work`, an item's
   work being its block's token count. */
static int64_t item_at_work(const mm_job *j, int64_t work, int64_t units) {
    int64_t nb = n_blocks(j);
    for (int64_t b = 0; b < nb; b++) {
        int64_t n = block_start(j, b + 1) - block_start(j, b);
        if (work < n * units) return b * units + (work + n - 1) / n;
        work -= n * units;
    }
    return nb * units;
}

/* Work items are (token block, unit) pairs taken in order, each thread getting an equal
   share of token x unit work. Each item's arithmetic is fixed, so the split never shows. */
static void mul_part(void *ctx, int ith, int nth) {
    const mm_job *j = ctx;
    const uint8_t *act = j->act ? j->act : (const uint8_t *)j->x;
    if (j->per_thread) {
        uint8_t *mine = j->act + (size_t)ith * (size_t)j->n_tok * j->act_row_bytes;
        convert_rows(j, 0, j->n_tok, mine);
        act = mine;
    }
    int64_t units = j->first[j->n], work = j->n_tok * units, items = n_blocks(j) * units;
    int64_t chunk = !j->finish ? items : j->panels ? FUSE_CHUNK_ROWS / KERN_PANEL : FUSE_CHUNK_ROWS;
    int64_t i0 = item_at_work(j, work * ith / nth, units), i1 = item_at_work(j, work * (ith + 1) / nth, units);
    while (i0 < i1) {   /* runs of units within one token block and one matrix */
        int64_t blk = i0 / units, u = i0 % units;
        int m = 0;
        while (u >= j->first[m + 1]) m++;
        int64_t run = i1 - i0 < chunk ? i1 - i0 : chunk;
        int64_t u_end = u + run < j->first[m + 1] ? u + run : j->first[m + 1];
        int64_t t0 = block_start(j, blk), t1 = block_start(j, blk + 1);
        mul_units(j, m, u - j->first[m], u_end - j->first[m], t0, t1, act);
        if (j->finish) finish_units(j, m, u - j->first[m], u_end - j->first[m], t0, t1);
        i0 += u_end - u;
    }
}

static bool panels_usable(const kern_matrix *w) {
    return w->packed && kern_cpu_level_active() == KERN_CPU_AVX512 &&
           w->packed_bytes == kern_panel_bytes(w->type, w->rows, w->cols);
}

/* Activation format of w: matrices that agree can share one conversion. */
static uint32_t act_format(const kern_matrix *w) {
    if (panels_usable(w)) {
        if (kern_panel_takes_floats(w->type)) return 1000 + GGML_F32;
        return kern_act_row_bytes(w->type, 256) == kern_act_row_bytes(GGML_Q8_0, 256) ? 1000 + GGML_Q8_0 : 1000 + GGML_Q8_K;
    }
    return kern_traits(w->type)->vec_dot_type;
}

static hearth_status check(const kern_matrix *w, int64_t n_tok, int64_t ldy) {
    const kern_type_traits *wt = kern_traits(w->type);
    if (!wt) return HEARTH_ERR_UNSUPPORTED;
    size_t need_row = kern_row_bytes(w->type, w->cols);
    size_t xq_row_bytes = kern_row_bytes(wt->vec_dot_type, w->cols);
    if (w->rows < 0 || w->cols <= 0 || n_tok < 0 || ldy < w->rows || need_row == 0 || xq_row_bytes == 0 ||
        w->row_bytes < need_row)
        return HEARTH_ERR_INVALID;
    return HEARTH_OK;
}

/* Matrices [0, n) of one activation format, all checked, n_tok > 0, with their biases;
   prep: the fusion whose prepare this pass runs, or NULL. */
static hearth_status run_group(kern_pool *p, int n, const kern_matrix *const *w, const float *x, int64_t n_tok,
                               float *const *y, const int64_t *ldy, const float *const *bias, bool gelu,
                               const kern_mm_fuse *prep) {
    mm_job j = {.n = n, .x = x, .cols = w[0]->cols, .n_tok = n_tok, .panels = panels_usable(w[0]), .prep = prep,
                .gelu = gelu};
    j.xt = kern_traits(kern_traits(w[0]->type)->vec_dot_type);
    j.first[0] = 0;
    for (int i = 0; i < n; i++) {
        j.w[i] = w[i];
        j.y[i] = y[i];
        j.ldy[i] = ldy[i];
        j.bias[i] = bias[i];
        j.finish = !j.panels && (gelu || bias[i] || j.finish);   /* panels finish each tile themselves */
        j.first[i + 1] = j.first[i] + (j.panels ? (w[i]->rows + KERN_PANEL - 1) / KERN_PANEL : w[i]->rows);
    }
    j.act_row_bytes = j.panels ? kern_act_row_bytes(w[0]->type, j.cols) : kern_row_bytes(j.xt->type, j.cols);
    /* F32 activations are used as given, also by the float panels */
    bool convert = j.panels ? !kern_panel_takes_floats(w[0]->type) : j.xt->type != GGML_F32;
    int nth = kern_pool_size(p);
    j.per_thread = convert && nth > 1 && n_tok * j.cols <= SMALL_BATCH_ELEMS && !prep;
    uint8_t *owned = NULL;
    if (convert) {
        size_t bytes;
        if (!ck_mul((size_t)n_tok, j.act_row_bytes, &bytes) ||
            !ck_mul(bytes, (size_t)(j.per_thread ? nth : 1), &bytes))
            return HEARTH_ERR_INVALID;
        j.act = p ? kern_pool_scratch(p, bytes) : (owned = mem_alloc(bytes));
        if (!j.act) return HEARTH_ERR_NOMEM;
        if (!j.per_thread) kern_pool_run(p, convert_part, &j);
    } else {
        j.act_row_bytes = (size_t)j.cols * sizeof(float);
        if (prep) kern_pool_run(p, prepare_part, &j);
    }
    kern_pool_run(p, mul_part, &j);
    mem_free(owned);
    return HEARTH_OK;
}

hearth_status kern_matrix_prepare(kern_matrix *w, size_t *bytes) {
    if (bytes) *bytes = 0;
    size_t need_row = kern_row_bytes(w->type, w->cols);
    if (w->rows < 0 || w->cols <= 0 || need_row == 0 || w->row_bytes < need_row) return HEARTH_ERR_INVALID;
    if (w->packed || kern_cpu_level_active() != KERN_CPU_AVX512) return HEARTH_OK;
    size_t size = kern_panel_bytes(w->type, w->rows, w->cols), alloc = kern_matrix_prepare_bytes(w->type, w->rows, w->cols);
    if (size == 0) return HEARTH_OK;   /* no panel format for this type or shape */
    if (alloc == 0) return HEARTH_ERR_INVALID;
    uint8_t *raw = mem_alloc(alloc);
    if (!raw) return HEARTH_ERR_NOMEM;
    /* 64-byte aligned panels; the allocation's start is kept just before them */
    uint8_t *panels = (uint8_t *)(((uintptr_t)raw + sizeof(void *) + 63) & ~(uintptr_t)63);
    memcpy(panels - sizeof(void *), &raw, sizeof raw);
    kern_pack_panels(w, panels);
    w->packed = panels;
    w->packed_bytes = size;
    if (bytes) *bytes = alloc;
    return HEARTH_OK;
}

size_t kern_matrix_prepare_bytes(uint32_t type, int64_t rows, int64_t cols) {
    size_t size = kern_cpu_level_active() == KERN_CPU_AVX512 ? kern_panel_bytes(type, rows, cols) : 0, alloc;
    if (size == 0 || !ck_add(size, 64 + sizeof(void *), &alloc)) return 0;
    return alloc;
}

void kern_matrix_release(kern_matrix *w) {
    if (!w || !w->packed) return;
    void *raw;
    memcpy(&raw, (uint8_t *)w->packed - sizeof(void *), sizeof raw);
    mem_free(raw);
    w->packed = NULL;
    w->packed_bytes = 0;
}

/* ---- entry ------------------------------------------------------------------- */
hearth_status kern_matmul(kern_pool *p, const kern_matrix *w, const float *x, int64_t n_tok,
                          float *y, int64_t ldy) {
    return kern_matmul_group(p, 1, &w, x, n_tok, &y, &ldy);
}

hearth_status kern_matmul_group(kern_pool *p, int n, const kern_matrix *const *w, const float *x, int64_t n_tok,
                                float *const *y, const int64_t *ldy) {
    return kern_matmul_fused(p, n, w, x, n_tok, y, ldy, NULL);
}

hearth_status kern_matmul_fused(kern_pool *p, int n, const kern_matrix *const *w, const float *x, int64_t n_tok,
                                float *const *y, const int64_t *ldy, const kern_mm_fuse *f) {
    if (n < 1 || n > KERN_MATMUL_GROUP) return HEARTH_ERR_INVALID;
    for (int i = 0; i < n; i++) {
        hearth_status st = check(w[i], n_tok, ldy[i]);
        if (st) return st;
        if (w[i]->cols != w[0]->cols) return HEARTH_ERR_INVALID;
    }
    if (n_tok == 0) return HEARTH_OK;
    const kern_mm_fuse *prep = f && f->prepare ? f : NULL;   /* runs in the first pass only */
    /* runs of consecutive matrices with one activation format share a pass */
    for (int i0 = 0; i0 < n;) {
        int i1 = i0 + 1;
        while (i1 < n && act_format(w[i1]) == act_format(w[i0])) i1++;
        const kern_matrix *gw[KERN_MATMUL_GROUP];
        float *gy[KERN_MATMUL_GROUP];
        int64_t gl[KERN_MATMUL_GROUP];
        const float *gb[KERN_MATMUL_GROUP];
        int g = 0;
        for (int i = i0; i < i1; i++)
            if (w[i]->rows > 0) {
                gw[g] = w[i];
                gy[g] = y[i];
                gb[g] = f ? f->bias[i] : NULL;
                gl[g++] = ldy[i];
            }
        if (g > 0) {
            hearth_status st = run_group(p, g, gw, x, n_tok, gy, gl, gb, f && f->gelu, prep);
            if (st) return st;
            prep = NULL;
        }
        i0 = i1;
    }
    if (prep) {   /* no matrix had rows: the preparation still happens */
        mm_job j = {.n_tok = n_tok, .prep = prep};
        kern_pool_run(p, prepare_part, &j);
    }
    return HEARTH_OK;
}

_Static_assert(KERN_SLICE_ROWS % KERN_PANEL == 0, "a slice starts on a panel");

hearth_status kern_matrix_slice(const kern_matrix *w, int64_t r0, int64_t n, kern_matrix *out) {
    if (r0 < 0 || n <= 0 || r0 % KERN_SLICE_ROWS != 0 || r0 > w->rows || n > w->rows - r0) return HEARTH_ERR_INVALID;
    *out = *w;
    out->rows = n;
    out->data = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
    if (panels_usable(w)) {   /* panels follow one another, each the same size */
        out->packed = (uint8_t *)w->packed + (r0 > 0 ? kern_panel_bytes(w->type, r0, w->cols) : 0);
        out->packed_bytes = kern_panel_bytes(w->type, n, w->cols);
    } else {
        out->packed = NULL;
        out->packed_bytes = 0;
    }
    return HEARTH_OK;
}

void kern_get_row(const kern_matrix *w, int64_t r, float *out) {
    kern_traits(w->type)->to_float((const uint8_t *)w->data + (size_t)r * w->row_bytes, out, w->cols);
}
