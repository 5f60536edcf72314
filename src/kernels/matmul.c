/* Matrix times activations: y = W x for a batch of tokens. Activations are converted
 * once per call (in parallel), then the outputs are split evenly across the pool.
 * Plain matrices: each output is one vec_dot of the active level. Prepared matrices
 * (kern_matrix_prepare, AVX-512): 16-row panels times tiles of up to 8 tokens, work
 * items being (64-token block, panel) pairs. Either way the result is the same for any
 * thread count. Must never allocate per call when given a pool whose scratch is
 * already large enough, nor run a level's kernels dispatch did not choose. */
#include "base/checked.h"
#include "base/mem.h"
#include "kernels/kern_internal.h"

typedef struct {
    const kern_matrix *w;
    const kern_type_traits *wt;   /* weight type */
    const kern_type_traits *xt;   /* activation type (wt->vec_dot_type) */
    const float *x;
    uint8_t *xq_out;              /* conversion target (scratch), NULL for F32 */
    const uint8_t *xq;            /* activations as xt, rows of xq_row_bytes */
    size_t xq_row_bytes;
    int64_t n_tok;
    float *y;
    int64_t ldy;
} matmul_job;

/* Rows of x are contiguous and from_float works block by block, so the whole batch is
   one run of n_tok * blocks_per_row blocks, split evenly. */
static void convert_part(void *ctx, int ith, int nth) {
    const matmul_job *j = ctx;
    int64_t be = j->xt->block_elems;
    int64_t total = j->n_tok * (j->w->cols / be);
    int64_t b0 = total * ith / nth, b1 = total * (ith + 1) / nth;
    if (b1 > b0)
        j->xt->from_float(j->x + b0 * be, j->xq_out + (size_t)b0 * j->xt->block_bytes, (b1 - b0) * be);
}

static void dot_part(void *ctx, int ith, int nth) {
    const matmul_job *j = ctx;
    const kern_matrix *w = j->w;
    int64_t r0 = w->rows * ith / nth, r1 = w->rows * (ith + 1) / nth;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *wrow = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int64_t t = 0; t < j->n_tok; t++)
            j->y[t * j->ldy + r] = j->wt->vec_dot(w->cols, wrow, j->xq + (size_t)t * j->xq_row_bytes);
    }
}

/* ---- prepared (panel) path -------------------------------------------------- */
#define TOKEN_BLOCK 64   /* tokens per work item: a multiple of the 8-token tile */

typedef struct {
    const kern_matrix *w;
    const float *x;
    uint8_t *act;
    size_t act_row_bytes;
    int64_t n_tok;
    float *y;
    int64_t ldy;
} panel_job;

static void panel_convert_part(void *ctx, int ith, int nth) {
    const panel_job *j = ctx;
    int64_t t0 = j->n_tok * ith / nth, t1 = j->n_tok * (ith + 1) / nth;
    for (int64_t t = t0; t < t1; t++)
        kern_act_convert_avx512(j->w->type, j->x + t * j->w->cols, j->w->cols, j->act + (size_t)t * j->act_row_bytes);
}

static void panel_mul_part(void *ctx, int ith, int nth) {
    const panel_job *j = ctx;
    const kern_matrix *w = j->w;
    int64_t panels = (w->rows + KERN_PANEL - 1) / KERN_PANEL;
    int64_t blocks = (j->n_tok + TOKEN_BLOCK - 1) / TOKEN_BLOCK, items = blocks * panels;
    int64_t i0 = items * ith / nth, i1 = items * (ith + 1) / nth;
    while (i0 < i1) {   /* runs of panels within one token block */
        int64_t blk = i0 / panels, pn = i0 % panels;
        int64_t pn_end = pn + (i1 - i0) < panels ? pn + (i1 - i0) : panels;
        int64_t t0 = blk * TOKEN_BLOCK, t1 = t0 + TOKEN_BLOCK < j->n_tok ? t0 + TOKEN_BLOCK : j->n_tok;
        kern_panels_mul_avx512(w->type, w->packed, w->rows, w->cols, pn, pn_end, j->act, j->act_row_bytes, t0, t1,
                               j->y, j->ldy);
        i0 += pn_end - pn;
    }
}

static hearth_status matmul_panels(kern_pool *p, const kern_matrix *w, const float *x, int64_t n_tok, float *y,
                                   int64_t ldy) {
    panel_job job = {w, x, NULL, kern_act_row_bytes(w->type, w->cols), n_tok, y, ldy};
    size_t bytes;
    uint8_t *owned = NULL;
    if (!ck_mul((size_t)n_tok, job.act_row_bytes, &bytes)) return HEARTH_ERR_INVALID;
    job.act = p ? kern_pool_scratch(p, bytes) : (owned = mem_alloc(bytes));
    if (!job.act) return HEARTH_ERR_NOMEM;
    kern_pool_run(p, panel_convert_part, &job);
    kern_pool_run(p, panel_mul_part, &job);
    mem_free(owned);
    return HEARTH_OK;
}

static bool panels_usable(const kern_matrix *w) {
    return w->packed && kern_cpu_level_active() == KERN_CPU_AVX512 &&
           w->packed_bytes == kern_panel_bytes(w->type, w->rows, w->cols);
}

hearth_status kern_matrix_prepare(kern_matrix *w, size_t *bytes) {
    if (bytes) *bytes = 0;
    size_t need_row = kern_row_bytes(w->type, w->cols);
    if (w->rows < 0 || w->cols <= 0 || need_row == 0 || w->row_bytes < need_row) return HEARTH_ERR_INVALID;
    if (w->packed || kern_cpu_level_active() != KERN_CPU_AVX512) return HEARTH_OK;
    size_t size = kern_panel_bytes(w->type, w->rows, w->cols), alloc;
    if (size == 0) return HEARTH_OK;   /* no panel format for this type or shape */
    if (!ck_add(size, 64 + sizeof(void *), &alloc)) return HEARTH_ERR_INVALID;
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
    const kern_type_traits *wt = kern_traits(w->type);
    if (!wt) return HEARTH_ERR_UNSUPPORTED;
    const kern_type_traits *xt = kern_traits(wt->vec_dot_type);
    size_t need_row = kern_row_bytes(w->type, w->cols);
    size_t xq_row_bytes = kern_row_bytes(xt->type, w->cols);
    if (w->rows < 0 || w->cols <= 0 || n_tok < 0 || ldy < w->rows || need_row == 0 ||
        xq_row_bytes == 0 || w->row_bytes < need_row)
        return HEARTH_ERR_INVALID;
    if (n_tok == 0 || w->rows == 0) return HEARTH_OK;
    if (panels_usable(w)) return matmul_panels(p, w, x, n_tok, y, ldy);

    matmul_job job = {w, wt, xt, x, NULL, (const uint8_t *)x, xq_row_bytes, n_tok, y, ldy};
    uint8_t *owned = NULL;
    if (xt->type != GGML_F32) {   /* F32 activations are used as given */
        size_t bytes;
        if (!ck_mul((size_t)n_tok, xq_row_bytes, &bytes)) return HEARTH_ERR_INVALID;
        job.xq_out = p ? kern_pool_scratch(p, bytes) : (owned = mem_alloc(bytes));
        if (!job.xq_out) return HEARTH_ERR_NOMEM;
        job.xq = job.xq_out;
        kern_pool_run(p, convert_part, &job);
    }
    kern_pool_run(p, dot_part, &job);
    mem_free(owned);
    return HEARTH_OK;
}

void kern_get_row(const kern_matrix *w, int64_t r, float *out) {
    kern_traits(w->type)->to_float((const uint8_t *)w->data + (size_t)r * w->row_bytes, out, w->cols);
}
