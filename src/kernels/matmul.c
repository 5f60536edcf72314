/* Matrix times activations: y = W x for a batch of tokens. Activations are converted
 * once per call to the weight type's vec_dot_type (in parallel, block by block), then
 * output rows are split across the pool, each output being one vec_dot, so the result
 * is the same for any thread count. Must never allocate per call when given a pool
 * whose scratch is already large enough. */
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
