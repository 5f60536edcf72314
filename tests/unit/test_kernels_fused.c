/* kern_matmul_fused: the per-token preparation runs exactly once for every row, before
 * the row is used, and the result equals kern_matmul_group on the prepared rows followed
 * by bias and GELU, bit for bit, with 1, 2 and 3 threads and without a pool; for plain
 * and repacked weights, F32, F16 and BF16 (activations used as given) and small and large
 * batches. */
#include "testutil.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kern_test_util.h"
#include "kernels/kernels.h"

enum { COLS = 256, MAX_TOK = 70 };

typedef struct {
    float *x;
    atomic_int calls[MAX_TOK];
} prep_ctx;

/* Doubles rows [t0, t1) and shifts them by the token index: visible in the output. */
static void prepare_rows(void *ctx, int ith, int64_t t0, int64_t t1) {
    (void)ith;
    prep_ctx *p = ctx;
    for (int64_t t = t0; t < t1; t++) {
        for (int64_t c = 0; c < COLS; c++) p->x[t * COLS + c] = 2.0f * p->x[t * COLS + c] + 0.01f * (float)t;
        atomic_fetch_add(&p->calls[t], 1);
    }
}

static void make_matrix(uint32_t type, int64_t rows, kt_rng *r, kern_matrix *m, uint8_t **data) {
    size_t rb = kern_row_bytes(type, COLS);
    *data = malloc(rb * (size_t)rows);
    float row[COLS];
    for (int64_t i = 0; i < rows; i++) {
        kt_fill_normal(r, row, COLS, 0.1f);
        kern_scalar_traits(type)->from_float(row, *data + (size_t)i * rb, COLS);
    }
    *m = (kern_matrix){.type = type, .rows = rows, .cols = COLS, .row_bytes = rb, .data = *data};
}

static void check_case(uint32_t type, bool repack, int64_t n_tok, bool gelu, kern_pool *pool, const char *pool_name) {
    kt_rng r = {(uint64_t)(type * 131 + n_tok)};
    kern_matrix m[2];
    uint8_t *data[2];
    const int64_t rows[2] = {37, 50}, ldy[2] = {41, 50};
    for (int i = 0; i < 2; i++) {
        make_matrix(type, rows[i], &r, &m[i], &data[i]);
        if (repack) assert_int_equal(kern_matrix_prepare(&m[i], NULL), HEARTH_OK);
    }
    static float x0[MAX_TOK * COLS], xf[MAX_TOK * COLS], bias[2][64], got[2][MAX_TOK * 50], want[2][MAX_TOK * 50];
    kt_fill_normal(&r, x0, n_tok * COLS, 1.0f);
    kt_fill_normal(&r, bias[0], 64, 1.0f);
    kt_fill_normal(&r, bias[1], 64, 1.0f);

    /* reference: prepare by hand, plain group matmul, then bias and GELU per row */
    static prep_ctx ref;
    ref.x = xf;
    memcpy(xf, x0, sizeof(float) * (size_t)(n_tok * COLS));
    prepare_rows(&ref, 0, 0, n_tok);
    const kern_matrix *w[2] = {&m[0], &m[1]};
    float *y[2] = {want[0], want[1]};
    assert_int_equal(kern_matmul_group(pool, 2, w, xf, n_tok, y, ldy), HEARTH_OK);
    for (int i = 0; i < 2; i++)
        for (int64_t t = 0; t < n_tok; t++) {
            kern_add(want[i] + t * ldy[i], bias[i], rows[i]);
            if (gelu) kern_gelu(want[i] + t * ldy[i], rows[i]);
        }

    static prep_ctx p;
    p.x = xf;
    for (int t = 0; t < MAX_TOK; t++) atomic_store(&p.calls[t], 0);
    memcpy(xf, x0, sizeof(float) * (size_t)(n_tok * COLS));
    for (int i = 0; i < 2; i++)
        for (int64_t k = 0; k < MAX_TOK * 50; k++) got[i][k] = want[i][k] + 1.0f;
    kern_mm_fuse f = {.prepare = prepare_rows, .ctx = &p, .bias = {bias[0], bias[1]}, .gelu = gelu};
    float *yg[2] = {got[0], got[1]};
    assert_int_equal(kern_matmul_fused(pool, 2, w, xf, n_tok, yg, ldy, &f), HEARTH_OK);
    for (int64_t t = 0; t < n_tok; t++)
        if (atomic_load(&p.calls[t]) != 1)
            fail_msg("%s%s, %ld tokens, %s: row %ld prepared %d times", kern_traits(type)->name,
                     repack ? " repacked" : "", (long)n_tok, pool_name, (long)t, atomic_load(&p.calls[t]));
    for (int i = 0; i < 2; i++)
        for (int64_t t = 0; t < n_tok; t++)
            for (int64_t c = 0; c < rows[i]; c++)
                if (memcmp(&got[i][t * ldy[i] + c], &want[i][t * ldy[i] + c], sizeof(float)) != 0)
                    fail_msg("%s%s, %ld tokens, %s, gelu %d: y%d[%ld][%ld] = %.9g, unfused %.9g", kern_traits(type)->name,
                             repack ? " repacked" : "", (long)n_tok, pool_name, gelu, i, (long)t, (long)c,
                             got[i][t * ldy[i] + c], want[i][t * ldy[i] + c]);
    for (int i = 0; i < 2; i++) {
        kern_matrix_release(&m[i]);
        free(data[i]);
    }
}

static void test_fused_equals_unfused(void **state) {
    kern_pool *pools[3] = {kern_pool_new(1), kern_pool_new(2), kern_pool_new(3)};
    const char *names[4] = {"1 thread", "2 threads", "3 threads", "no pool"};
    const uint32_t types[] = {GGML_Q8_0, GGML_Q4_K, GGML_F32, GGML_F16, GGML_BF16};
    const int64_t toks[] = {5, 70};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (int repack = 0; repack < 2; repack++)
            for (size_t k = 0; k < 2; k++)
                for (int pi = 0; pi < 4; pi++)
                    check_case(types[ti], repack, toks[k], (pi + k) % 2 == 0, pi < 3 ? pools[pi] : NULL, names[pi]);
    for (int i = 0; i < 3; i++) kern_pool_free(pools[i]);
}

/* Only a preparation and a matrix without rows: the rows are still prepared. */
static void test_prepare_without_rows(void **state) {
    static float x[4 * COLS];
    static prep_ctx p;
    p.x = x;
    float row[COLS] = {0};
    kern_matrix m = {.type = GGML_F32, .rows = 0, .cols = COLS, .row_bytes = sizeof row, .data = row};
    const kern_matrix *w = &m;
    float y[4];
    float *yp = y;
    int64_t ldy = 0;
    kern_mm_fuse f = {.prepare = prepare_rows, .ctx = &p};
    kern_pool *pool = kern_pool_new(2);
    assert_int_equal(kern_matmul_fused(pool, 1, &w, x, 4, &yp, &ldy, &f), HEARTH_OK);
    for (int t = 0; t < 4; t++) assert_int_equal(atomic_load(&p.calls[t]), 1);
    kern_pool_free(pool);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_equals_unfused),
        cmocka_unit_test(test_prepare_without_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
