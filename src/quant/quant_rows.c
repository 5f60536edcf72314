/* Parallel row conversion: each pool thread takes a contiguous range of rows, asks the
 * source for each row as floats and encodes it with the kernels' reference quantizer of
 * the destination type. Rows are independent, so the bytes do not depend on the thread
 * count. Never allocates per row: one float row of scratch per thread. */
#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"
#include "quant/quant.h"

typedef struct rows_job {
    quant_row_fn src;
    void *src_ctx;
    void (*encode)(const float *src, void *dst, int64_t n);
    int64_t n_cols, n_rows;
    size_t row_bytes;
    unsigned char *dst;
    float *scratch; /* [nth][n_cols] */
} rows_job;

static void rows_worker(void *ctx, int ith, int nth) {
    rows_job *j = ctx;
    int64_t per = (j->n_rows + nth - 1) / nth;
    int64_t r0 = per * ith, r1 = r0 + per < j->n_rows ? r0 + per : j->n_rows;
    float *row = j->scratch + (size_t)ith * (size_t)j->n_cols;
    for (int64_t r = r0; r < r1; r++) {
        j->src(j->src_ctx, r, row, j->n_cols);
        j->encode(row, j->dst + (size_t)r * j->row_bytes, j->n_cols);
    }
}

hearth_status quant_rows(kern_pool *pool, quant_row_fn src, void *src_ctx, uint32_t dst_type,
                         int64_t n_cols, int64_t n_rows, void *dst, hearth_err *err) {
    const kern_type_traits *tr = kern_traits(dst_type);
    if (!tr) return err_set(err, HEARTH_ERR_UNSUPPORTED, "quantize: no encoder for tensor type %u", dst_type);
    size_t row_bytes = kern_row_bytes(dst_type, n_cols);
    if (n_cols < 1 || n_rows < 0 || row_bytes == 0)
        return err_set(err, HEARTH_ERR_INVALID, "quantize: rows of %lld elements cannot be stored as %s",
                       (long long)n_cols, tr->name);
    int nth = kern_pool_size(pool);
    size_t n_floats;
    float *scratch = ck_mul((size_t)nth, (size_t)n_cols, &n_floats) ? mem_alloc_array(n_floats, sizeof *scratch)
                                                                      : NULL;
    if (!scratch) return err_set(err, HEARTH_ERR_NOMEM, "quantize: out of memory for %d rows of %lld floats", nth,
                                 (long long)n_cols);
    rows_job j = {.src = src, .src_ctx = src_ctx, .encode = tr->from_float, .n_cols = n_cols,
                  .n_rows = n_rows, .row_bytes = row_bytes, .dst = dst, .scratch = scratch};
    kern_pool_run(pool, rows_worker, &j);
    mem_free(scratch);
    return HEARTH_OK;
}
