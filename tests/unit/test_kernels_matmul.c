/* Thread pool and matmul: every thread index runs exactly once per run and the caller
 * sees all their work; matmul equals a naive loop over vec_dot (bit for bit) and the
 * float product of the dequantized operands (tightly), gives identical output with
 * 1, 2 and 3 threads, honours ldy, and fails cleanly on bad shapes or no memory. */
#include "testutil.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "kern_test_util.h"
#include "kernels/kernels.h"

typedef struct {
    atomic_int calls[8];
    atomic_int seen_nth;
    int stamp[8];   /* plain writes by each thread, read by the caller after the run */
    int run;
} pool_probe;

static void probe_fn(void *ctx, int ith, int nth) {
    pool_probe *p = ctx;
    atomic_fetch_add(&p->calls[ith], 1);
    atomic_store(&p->seen_nth, nth);
    p->stamp[ith] = p->run;
}

static void test_pool_runs_every_thread_once(void **state) {
    for (int n = 1; n <= 4; n++) {
        kern_pool *pool = kern_pool_new(n);
        assert_non_null(pool);
        assert_int_equal(kern_pool_size(pool), n);
        pool_probe probe = {0};
        for (int run = 1; run <= 1000; run++) {
            probe.run = run;
            kern_pool_run(pool, probe_fn, &probe);
            for (int i = 0; i < n; i++) {
                if (atomic_load(&probe.calls[i]) != run)
                    fail_msg("%d threads, run %d: thread %d ran %d times", n, run, i, atomic_load(&probe.calls[i]));
                if (probe.stamp[i] != run) fail_msg("run %d: thread %d's write not visible", run, i);
            }
            assert_int_equal(atomic_load(&probe.seen_nth), n);
        }
        kern_pool_free(pool);
    }
    kern_pool_free(NULL);
}

static void test_pool_defaults_and_null(void **state) {
    kern_pool *pool = kern_pool_new(0);
    assert_non_null(pool);
    assert_true(kern_pool_size(pool) >= 1);
    kern_pool_free(pool);
    pool_probe probe = {0};
    probe.run = 1;
    kern_pool_run(NULL, probe_fn, &probe);
    assert_int_equal(atomic_load(&probe.calls[0]), 1);
    assert_int_equal(atomic_load(&probe.seen_nth), 1);
    assert_int_equal(kern_pool_size(NULL), 1);
}

/* A pool whose workers slept (after the spin window) still wakes for the next run. */
static void test_pool_wakes_sleeping_workers(void **state) {
    kern_pool *pool = kern_pool_new(3);
    assert_non_null(pool);
    pool_probe probe = {0};
    for (int run = 1; run <= 3; run++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        probe.run = run;
        kern_pool_run(pool, probe_fn, &probe);
        for (int i = 0; i < 3; i++) assert_int_equal(atomic_load(&probe.calls[i]), run);
    }
    kern_pool_free(pool);
}

/* Weight matrix of `type` from random floats; returns the quantized bytes. */
static uint8_t *make_weights(uint32_t type, int64_t rows, int64_t cols, kt_rng *r, kern_matrix *m) {
    size_t rb = kern_row_bytes(type, cols);
    uint8_t *data = malloc(rb * (size_t)rows);
    float *row = malloc(sizeof(float) * (size_t)cols);
    for (int64_t i = 0; i < rows; i++) {
        kt_fill_normal(r, row, cols, 0.1f);
        kern_scalar_traits(type)->from_float(row, data + (size_t)i * rb, cols);
    }
    free(row);
    *m = (kern_matrix){.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = data};
    return data;
}

/* kern_matmul of n_tok tokens against each type, checked as the file's header says. */
static void matches_naive(const uint32_t *types, size_t n_types, int64_t cols, int64_t n_tok) {
    const int64_t rows = 37, ldy = 41;
    kt_rng r = {77};
    kern_pool *pools[3] = {kern_pool_new(1), kern_pool_new(2), kern_pool_new(3)};
    float *x = malloc(sizeof(float) * n_tok * cols);
    float *y[4], *naive = malloc(sizeof(float) * n_tok * ldy);
    for (int k = 0; k < 4; k++) y[k] = malloc(sizeof(float) * n_tok * ldy);
    float *wrow = malloc(sizeof(float) * cols), *xrow = malloc(sizeof(float) * cols);

    for (size_t ti = 0; ti < n_types; ti++) {
        kern_matrix m;
        uint8_t *data = make_weights(types[ti], rows, cols, &r, &m);
        kt_fill_normal(&r, x, n_tok * cols, 1.0f);
        for (int k = 0; k < 4; k++)
            for (int64_t i = 0; i < n_tok * ldy; i++) y[k][i] = -12345.0f;   /* padding sentinel */

        for (int k = 0; k < 3; k++) assert_int_equal(kern_matmul(pools[k], &m, x, n_tok, y[k], ldy), HEARTH_OK);
        assert_int_equal(kern_matmul(NULL, &m, x, n_tok, y[3], ldy), HEARTH_OK);

        const kern_type_traits *t = kern_traits(types[ti]);
        const kern_type_traits *a = kern_traits(t->vec_dot_type);
        uint8_t *xq = malloc(kern_row_bytes(a->type, cols));
        for (int64_t tok = 0; tok < n_tok; tok++) {
            a->from_float(x + tok * cols, xq, cols);
            a->to_float(xq, xrow, cols);
            for (int64_t i = 0; i < rows; i++) {
                const uint8_t *wr = data + (size_t)i * m.row_bytes;
                naive[tok * ldy + i] = t->vec_dot(cols, wr, xq);
                t->to_float(wr, wrow, cols);
                double ref = 0.0, mag = 0.0;
                for (int64_t c = 0; c < cols; c++) {
                    ref += (double)wrow[c] * xrow[c];
                    mag += fabs((double)wrow[c] * xrow[c]);
                }
                float got = y[0][tok * ldy + i];
                double tol = (a->type == GGML_Q8_1 ? 1e-3 : 1e-5) * mag + 1e-7;
                if (fabs(got - ref) > tol)
                    fail_msg("%s: y[%ld][%ld] = %.7g, dequantized product %.7g", t->name, (long)tok, (long)i, got, ref);
            }
            for (int64_t i = rows; i < ldy; i++)
                if (y[0][tok * ldy + i] != -12345.0f) fail_msg("%s: padding at y[%ld][%ld] written", t->name, (long)tok, (long)i);
        }
        for (int64_t tok = 0; tok < n_tok; tok++)
            for (int64_t i = 0; i < rows; i++)
                if (memcmp(&naive[tok * ldy + i], &y[0][tok * ldy + i], sizeof(float)) != 0)
                    fail_msg("%s: y[%ld][%ld] = %.9g, naive vec_dot loop %.9g", t->name, (long)tok, (long)i,
                             y[0][tok * ldy + i], naive[tok * ldy + i]);
        for (int k = 1; k < 4; k++)
            if (memcmp(y[0], y[k], sizeof(float) * n_tok * ldy) != 0)
                fail_msg("%s: output with %s differs from 1 thread", t->name,
                         k == 1 ? "2 threads" : k == 2 ? "3 threads" : "no pool");
        free(xq);
        free(data);
    }
    for (int k = 0; k < 3; k++) kern_pool_free(pools[k]);
    for (int k = 0; k < 4; k++) free(y[k]);
    free(naive);
    free(x);
    free(wrow);
    free(xrow);
}

static void test_matmul_matches_naive(void **state) {
    const uint32_t all[] = {GGML_F32, GGML_F16, GGML_BF16, GGML_Q8_0, GGML_Q4_0, GGML_Q4_1,
                            GGML_Q5_0, GGML_Q5_1, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};
    const uint32_t floats[] = {GGML_F32, GGML_F16, GGML_BF16};
    /* token counts around the multi-token kernels' groups of 4 (and pairs, for floats);
       300 columns leave both a partial 32 and a scalar tail */
    for (int64_t n_tok = 1; n_tok <= 6; n_tok++) matches_naive(all, sizeof all / sizeof all[0], 512, n_tok);
    for (int64_t n_tok = 1; n_tok <= 6; n_tok++) matches_naive(floats, sizeof floats / sizeof floats[0], 300, n_tok);
    (void)state;
}

static void test_get_row(void **state) {
    kt_rng r = {3};
    kern_matrix m;
    uint8_t *data = make_weights(GGML_Q4_K, 4, 256, &r, &m);
    float a[256], b[256];
    kern_get_row(&m, 2, a);
    kern_scalar_traits(GGML_Q4_K)->to_float(data + 2 * m.row_bytes, b, 256);
    assert_memory_equal(a, b, sizeof a);
    free(data);
}

static void test_matmul_errors(void **state) {
    kt_rng r = {4};
    kern_matrix m;
    uint8_t *data = make_weights(GGML_Q8_0, 8, 64, &r, &m);
    float x[2 * 64], y[16];
    kt_fill_normal(&r, x, 128, 1.0f);
    for (int i = 0; i < 16; i++) y[i] = 7.0f;

    kern_matrix bad = m;
    bad.cols = 60;   /* not whole blocks */
    assert_int_equal(kern_matmul(NULL, &bad, x, 2, y, 8), HEARTH_ERR_INVALID);
    assert_int_equal(kern_matmul(NULL, &m, x, 2, y, 7), HEARTH_ERR_INVALID);   /* ldy < rows */
    bad = m;
    bad.row_bytes = m.row_bytes - 1;
    assert_int_equal(kern_matmul(NULL, &bad, x, 2, y, 8), HEARTH_ERR_INVALID);
    bad = m;
    bad.type = GGML_Q2_K;
    assert_int_equal(kern_matmul(NULL, &bad, x, 2, y, 8), HEARTH_ERR_UNSUPPORTED);
    assert_int_equal(kern_matmul(NULL, &m, x, 0, y, 8), HEARTH_OK);

    /* out of memory for the activation scratch: an error, y untouched */
    kern_pool *pool = kern_pool_new(2);
    assert_non_null(pool);
    mem_fail_at(1);
    hearth_status st = kern_matmul(pool, &m, x, 2, y, 8);
    mem_fail_at(0);
    assert_int_equal(st, HEARTH_ERR_NOMEM);
    for (int i = 0; i < 16; i++) assert_true(y[i] == 7.0f);
    mem_fail_at(1);
    st = kern_matmul(NULL, &m, x, 2, y, 8);
    mem_fail_at(0);
    assert_int_equal(st, HEARTH_ERR_NOMEM);

    /* once grown, the scratch is reused: no allocation per call */
    assert_int_equal(kern_matmul(pool, &m, x, 2, y, 8), HEARTH_OK);
    mem_fail_at(1);
    st = kern_matmul(pool, &m, x, 2, y, 8);
    mem_fail_at(0);
    assert_int_equal(st, HEARTH_OK);
    kern_pool_free(pool);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_runs_every_thread_once),
        cmocka_unit_test(test_pool_defaults_and_null),
        cmocka_unit_test(test_pool_wakes_sleeping_workers),
        cmocka_unit_test(test_matmul_matches_naive),
        cmocka_unit_test(test_get_row),
        cmocka_unit_test(test_matmul_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
