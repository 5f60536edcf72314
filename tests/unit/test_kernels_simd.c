/* SIMD kernels against the scalar reference, for every level this CPU has: activation
 * quantizers bit for bit (random rows, zeros, ties, tiny and huge values), vec_dot on
 * random-bit blocks (every quant and scale value, -128 weights, +-127 activations,
 * sums near the 16-bit limits of maddubs), and the prepared (repacked, tiled) matmul
 * for 1..17 tokens and row counts around the 16-row panel, identical for 1, 2 and 3
 * threads. Under HEARTH_CPU=scalar/avx2 (CTest) prepare must leave matrices plain. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kern_test_util.h"
#include "kernels/kern_internal.h"

static uint16_t rand_f16(kt_rng *r, float lo, float hi) {
    return kern_f32_to_f16(lo + (hi - lo) * (float)kt_uniform(r));
}

static void fill_bytes(kt_rng *r, void *p, size_t n) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)kt_next(r);
}

/* A weight row of random bits with sane super-scales; mode 1 = every quant and scale
   at its largest magnitude (the 16-bit and 32-bit stress case). */
static void make_weight_row(uint32_t type, kt_rng *r, uint8_t *row, int64_t n, int mode) {
    size_t bytes = kern_row_bytes(type, n);
    if (type == GGML_F32 || type == GGML_F16 || type == GGML_BF16) {
        const kern_type_traits *t = kern_scalar_traits(type);
        float *f = malloc(sizeof(float) * (size_t)n);
        kt_fill_normal(r, f, n, mode ? 1000.0f : 1.0f);
        t->from_float(f, row, n);
        free(f);
        return;
    }
    fill_bytes(r, row, bytes);
    if (mode) memset(row, 0xff, bytes);
    int64_t nb = n / kern_scalar_traits(type)->block_elems;
    for (int64_t i = 0; i < nb; i++) {
        switch (type) {
        case GGML_Q4_K: {
            kern_block_q4_k *b = (kern_block_q4_k *)row + i;
            b->d = rand_f16(r, 1e-4f, 1e-2f);
            b->dmin = rand_f16(r, 1e-4f, 1e-2f);
            break;
        }
        case GGML_Q5_K: {
            kern_block_q5_k *b = (kern_block_q5_k *)row + i;
            b->d = rand_f16(r, 1e-4f, 1e-2f);
            b->dmin = rand_f16(r, 1e-4f, 1e-2f);
            break;
        }
        case GGML_Q6_K: {
            kern_block_q6_k *b = (kern_block_q6_k *)row + i;
            if (mode) memset(b->scales, 0x80, sizeof b->scales);   /* -128 */
            b->d = rand_f16(r, 1e-4f, 1e-2f);
            break;
        }
        case GGML_Q8_0: {
            kern_block_q8_0 *b = (kern_block_q8_0 *)row + i;
            if (mode) memset(b->qs, 0x80, sizeof b->qs);           /* -128 */
            b->d = rand_f16(r, 1e-4f, 1e-2f);
            break;
        }
        case GGML_Q4_0: ((kern_block_q4_0 *)row)[i].d = rand_f16(r, 1e-4f, 1e-2f); break;
        case GGML_Q5_0: ((kern_block_q5_0 *)row)[i].d = rand_f16(r, 1e-4f, 1e-2f); break;
        case GGML_Q4_1: {
            kern_block_q4_1 *b = (kern_block_q4_1 *)row + i;
            b->d = rand_f16(r, 1e-4f, 1e-2f);
            b->m = rand_f16(r, -1e-1f, 1e-1f);
            break;
        }
        case GGML_Q5_1: {
            kern_block_q5_1 *b = (kern_block_q5_1 *)row + i;
            b->d = rand_f16(r, 1e-4f, 1e-2f);
            b->m = rand_f16(r, -1e-1f, 1e-1f);
            break;
        }
        }
    }
}

/* Activation floats: normal, or (mode 1) +-1 so every quant is +-127. */
static void make_acts(kt_rng *r, float *x, int64_t n, int mode) {
    kt_fill_normal(r, x, n, 1.0f);
    if (mode)
        for (int64_t i = 0; i < n; i++) x[i] = (kt_next(r) & 1) ? 1.0f : -1.0f;
}

static void test_quantizers_bit_exact(void **state) {
    const int64_t n = 1024;
    kt_rng r = {101};
    float *x = malloc(sizeof(float) * n);
    const uint32_t types[] = {GGML_Q8_0, GGML_Q8_1, GGML_Q8_K};
    for (int level = KERN_CPU_AVX2; level <= (int)kern_cpu_level_best(); level++)
        for (int kind = 0; kind < 6; kind++) {
            kt_fill_normal(&r, x, n, 1.0f);
            if (kind == 1) memset(x, 0, sizeof(float) * n);
            if (kind == 2)   /* halves: rounding ties (x * 127/amax lands on .5) */
                for (int64_t i = 0; i < n; i++) x[i] = (float)((int)(kt_next(&r) % 255) - 127) + 0.5f;
            if (kind == 3) for (int64_t i = 0; i < n; i++) x[i] *= 1e-30f;
            if (kind == 4) for (int64_t i = 0; i < n; i++) x[i] *= 6e4f;
            if (kind == 5) for (int64_t i = 0; i < n; i += 3) x[i] = 0.0f;
            for (size_t k = 0; k < 3; k++) {
                const kern_type_traits *s = kern_scalar_traits(types[k]), *v = kern_level_traits(level, types[k]);
                size_t bytes = kern_row_bytes(types[k], n);
                uint8_t *a = malloc(bytes), *b = malloc(bytes);
                s->from_float(x, a, n);
                v->from_float(x, b, n);
                for (size_t i = 0; i < bytes; i++)
                    if (a[i] != b[i])
                        fail_msg("%s level %s input kind %d: byte %zu is %u, scalar %u", s->name,
                                 kern_cpu_level_name(level), kind, i, b[i], a[i]);
                free(a);
                free(b);
            }
        }
    free(x);
}

/* The AVX-512 activation rows hold the scalar Q8_K / Q8_0 quants, scales and sums. */
static void test_act_converters(void **state) {
    if (kern_cpu_level_best() < KERN_CPU_AVX512) {
        printf("  no AVX-512 on this CPU: skipped\n");
        return;
    }
    const int64_t n = 512;
    kt_rng r = {7};
    float x[512];
    for (int kind = 0; kind < 3; kind++) {
        make_acts(&r, x, n, kind == 1);
        if (kind == 2) memset(x, 0, sizeof x);
        kern_block_q8_k qk[2];
        kern_act_k ak[2];
        kern_scalar_traits(GGML_Q8_K)->from_float(x, qk, n);
        kern_act_convert_avx512(GGML_Q4_K, x, n, ak);
        for (int b = 0; b < 2; b++) {
            assert_memory_equal(qk[b].qs, ak[b].qs, 256);
            assert_memory_equal(qk[b].bsums, ak[b].bs16, sizeof qk[b].bsums);
            assert_true(qk[b].d == ak[b].d);
            for (int j = 0; j < 8; j++) assert_int_equal(ak[b].bs32[j], qk[b].bsums[2 * j] + qk[b].bsums[2 * j + 1]);
        }
        kern_block_q8_0 q0[16];
        kern_act_q8 a0[16];
        kern_scalar_traits(GGML_Q8_0)->from_float(x, q0, n);
        kern_act_convert_avx512(GGML_Q8_0, x, n, a0);
        for (int b = 0; b < 16; b++) {
            assert_memory_equal(q0[b].qs, a0[b].qs, 32);
            assert_true(kern_f16_to_f32(q0[b].d) == a0[b].d);
            int sum = 0;
            for (int j = 0; j < 32; j++) sum += q0[b].qs[j];
            assert_int_equal(a0[b].corr, -128 * sum);
        }
    }
}

/* |w|.|x| of the dequantized rows: the scale of rounding differences. */
static double magnitude(uint32_t type, const uint8_t *w, const uint8_t *xq, int64_t n) {
    const kern_type_traits *t = kern_scalar_traits(type), *a = kern_scalar_traits(t->vec_dot_type);
    float *wf = malloc(sizeof(float) * n), *xf = malloc(sizeof(float) * n);
    t->to_float(w, wf, n);
    a->to_float(xq, xf, n);
    double mag = 0.0;
    for (int64_t i = 0; i < n; i++) mag += fabs((double)wf[i] * xf[i]);
    free(wf);
    free(xf);
    return mag;
}

static void test_vec_dot_vs_scalar(void **state) {
    const uint32_t types[] = {GGML_Q8_0, GGML_Q4_0, GGML_Q4_1, GGML_Q5_0, GGML_Q5_1, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K, GGML_F32, GGML_F16, GGML_BF16};
    const int64_t n = 2048;
    kt_rng r = {202};
    float *x = malloc(sizeof(float) * n);
    for (int level = KERN_CPU_AVX2; level <= (int)kern_cpu_level_best(); level++)
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const kern_type_traits *s = kern_scalar_traits(types[ti]), *v = kern_level_traits(level, types[ti]);
            const kern_type_traits *a = kern_scalar_traits(s->vec_dot_type);
            uint8_t *w = malloc(kern_row_bytes(s->type, n)), *xq = malloc(kern_row_bytes(a->type, n));
            for (int trial = 0; trial < 40; trial++) {
                int mode = trial % 4 == 3;
                make_weight_row(s->type, &r, w, n, mode);
                make_acts(&r, x, n, trial % 2);
                a->from_float(x, xq, n);
                float want = s->vec_dot(n, w, xq), got = v->vec_dot(n, w, xq);
                double tol = 1e-5 * magnitude(s->type, w, xq, n) + 1e-6;
                if (!(fabs((double)got - want) <= tol))
                    fail_msg("%s level %s trial %d: vec_dot %.9g, scalar %.9g (tolerance %.3g)", s->name,
                             kern_cpu_level_name(level), trial, got, want, tol);
            }
            free(w);
            free(xq);
        }
    free(x);
}

/* Prepared matmul vs the scalar vec_dot of scalar-quantized activations. */
static void check_prepared(uint32_t type, int64_t rows, int64_t cols, int mode, kern_pool **pools, kt_rng *r) {
    const kern_type_traits *s = kern_scalar_traits(type), *a = kern_scalar_traits(s->vec_dot_type);
    size_t rb = kern_row_bytes(type, cols);
    uint8_t *data = malloc(rb * (size_t)rows);
    for (int64_t i = 0; i < rows; i++) make_weight_row(type, r, data + (size_t)i * rb, cols, mode);
    kern_matrix m = {.type = type, .rows = rows, .cols = cols, .row_bytes = rb, .data = data};
    size_t bytes = 1;
    assert_int_equal(kern_matrix_prepare(&m, &bytes), HEARTH_OK);
    if (kern_cpu_level_active() != KERN_CPU_AVX512 || kern_panel_bytes(type, rows, cols) == 0) {
        if (m.packed || bytes != 0) fail_msg("%s: prepare repacked at level %s", s->name, kern_cpu_level_name(kern_cpu_level_active()));
    } else if (!m.packed || bytes < kern_panel_bytes(type, rows, cols)) {
        fail_msg("%s %ldx%ld: not repacked (%zu bytes)", s->name, (long)rows, (long)cols, bytes);
    }
    if (bytes != kern_matrix_prepare_bytes(type, rows, cols))
        fail_msg("%s %ldx%ld: prepare took %zu bytes, kern_matrix_prepare_bytes says %zu", s->name, (long)rows, (long)cols,
                 bytes, kern_matrix_prepare_bytes(type, rows, cols));
    const int64_t max_tok = 17, ldy = rows + 3;
    float *x = malloc(sizeof(float) * max_tok * cols), *y[3];
    for (int k = 0; k < 3; k++) y[k] = malloc(sizeof(float) * max_tok * ldy);
    uint8_t *xq = malloc(kern_row_bytes(a->type, cols));
    make_acts(r, x, max_tok * cols, mode);
    for (int64_t n_tok = 1; n_tok <= max_tok; n_tok += (n_tok < 9 ? 1 : 4)) {
        for (int k = 0; k < 3; k++) {
            for (int64_t i = 0; i < max_tok * ldy; i++) y[k][i] = -777.0f;
            assert_int_equal(kern_matmul(pools[k], &m, x, n_tok, y[k], ldy), HEARTH_OK);
        }
        for (int64_t t = 0; t < n_tok; t++) {
            a->from_float(x + t * cols, xq, cols);
            for (int64_t i = 0; i < rows; i++) {
                const uint8_t *wr = data + (size_t)i * rb;
                float want = s->vec_dot(cols, wr, xq), got = y[0][t * ldy + i];
                double tol = 1e-5 * magnitude(type, wr, xq, cols) + 1e-6;
                if (!(fabs((double)got - want) <= tol))
                    fail_msg("%s %ldx%ld mode %d, %ld tokens: y[%ld][%ld] = %.9g, scalar %.9g", s->name, (long)rows,
                             (long)cols, mode, (long)n_tok, (long)t, (long)i, got, want);
            }
            for (int64_t i = rows; i < ldy; i++)
                if (y[0][t * ldy + i] != -777.0f) fail_msg("%s: padding y[%ld][%ld] written", s->name, (long)t, (long)i);
        }
        for (int k = 1; k < 3; k++)
            if (memcmp(y[0], y[k], sizeof(float) * (size_t)(n_tok * ldy)) != 0)
                fail_msg("%s %ldx%ld, %ld tokens: %d threads differ from 1", s->name, (long)rows, (long)cols,
                         (long)n_tok, k + 1);
    }
    kern_matrix_release(&m);
    assert_null(m.packed);
    kern_matrix_release(&m);
    free(xq);
    free(x);
    for (int k = 0; k < 3; k++) free(y[k]);
    free(data);
}

static void test_prepared_matmul(void **state) {
    kern_pool *pools[3] = {kern_pool_new(1), kern_pool_new(2), kern_pool_new(3)};
    kt_rng r = {303};
    const int64_t rows[] = {1, 15, 16, 17, 50};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        check_prepared(GGML_Q4_K, rows[i], 512, i == 3, pools, &r);
        check_prepared(GGML_Q5_K, rows[i], 512, i == 3, pools, &r);
        check_prepared(GGML_Q6_K, rows[i], 512, i == 3, pools, &r);
        check_prepared(GGML_Q8_0, rows[i], 192, i == 3, pools, &r);
        check_prepared(GGML_Q4_0, rows[i], 192, i == 3, pools, &r);
        check_prepared(GGML_F32, rows[i], 96, i == 3, pools, &r);
        check_prepared(GGML_F16, rows[i], 160, i == 3, pools, &r);
        check_prepared(GGML_BF16, rows[i], 64, i == 3, pools, &r);
    }
    check_prepared(GGML_F16, 19, 80, 0, pools, &r);    /* 32 does not divide cols: stays plain */
    check_prepared(GGML_Q8_0, 19, 96, 0, pools, &r);   /* 64 does not divide cols: stays plain */
    check_prepared(GGML_Q4_1, 19, 256, 0, pools, &r);  /* no panel format */
    for (int k = 0; k < 3; k++) kern_pool_free(pools[k]);
}

/* A group of matrices over one x gives, bit for bit, what each gives alone, whether it
   shares a pass (same activation format) or not, for 1..3 threads and batch sizes on both
   sides of the per-thread conversion limit. */
static void test_matmul_group(void **state) {
    const uint32_t types[4] = {GGML_Q4_K, GGML_Q6_K, GGML_Q8_0, GGML_Q4_0};
    const int64_t rows[4] = {40, 16, 33, 24}, cols = 512, ldy[4] = {40, 20, 33, 30};
    kern_pool *pools[3] = {kern_pool_new(1), kern_pool_new(2), kern_pool_new(3)};
    kt_rng r = {404};
    kern_matrix m[4];
    uint8_t *data[4];
    for (int i = 0; i < 4; i++) {
        size_t rb = kern_row_bytes(types[i], cols);
        data[i] = malloc(rb * (size_t)rows[i]);
        for (int64_t k = 0; k < rows[i]; k++) make_weight_row(types[i], &r, data[i] + (size_t)k * rb, cols, 0);
        m[i] = (kern_matrix){.type = types[i], .rows = rows[i], .cols = cols, .row_bytes = rb, .data = data[i]};
        assert_int_equal(kern_matrix_prepare(&m[i], NULL), HEARTH_OK);
    }
    const int64_t max_tok = 40;
    float *x = malloc(sizeof(float) * max_tok * cols), *alone[4], *grouped[4];
    make_acts(&r, x, max_tok * cols, 0);
    for (int i = 0; i < 4; i++) {
        alone[i] = malloc(sizeof(float) * (size_t)(max_tok * ldy[i]));
        grouped[i] = malloc(sizeof(float) * (size_t)(max_tok * ldy[i]));
    }
    const kern_matrix *w[4] = {&m[0], &m[1], &m[2], &m[3]};
    const int64_t toks[] = {1, 3, 17, 40};
    for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++)
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < 4; i++) {
                memset(grouped[i], 0, sizeof(float) * (size_t)(max_tok * ldy[i]));
                memset(alone[i], 0, sizeof(float) * (size_t)(max_tok * ldy[i]));
                assert_int_equal(kern_matmul(NULL, &m[i], x, toks[ti], alone[i], ldy[i]), HEARTH_OK);
            }
            assert_int_equal(kern_matmul_group(pools[k], 4, w, x, toks[ti], grouped, ldy), HEARTH_OK);
            for (int i = 0; i < 4; i++)
                if (memcmp(alone[i], grouped[i], sizeof(float) * (size_t)(max_tok * ldy[i])) != 0)
                    fail_msg("group, %ld tokens, %d threads: matrix %d (%s) differs from its own matmul",
                             (long)toks[ti], k + 1, i, kern_scalar_traits(types[i])->name);
        }
    kern_matrix bad = m[3];
    bad.cols = 256;
    bad.row_bytes = kern_row_bytes(bad.type, 256);
    const kern_matrix *wb[2] = {&m[0], &bad};
    assert_int_equal(kern_matmul_group(NULL, 2, wb, x, 1, grouped, ldy), HEARTH_ERR_INVALID);
    assert_int_equal(kern_matmul_group(NULL, 0, wb, x, 1, grouped, ldy), HEARTH_ERR_INVALID);
    for (int i = 0; i < 4; i++) {
        kern_matrix_release(&m[i]);
        free(data[i]);
        free(alone[i]);
        free(grouped[i]);
    }
    free(x);
    for (int k = 0; k < 3; k++) kern_pool_free(pools[k]);
}

/* Groups mixing float panels of different types, quant panels and a plain F32 matrix
   (passes of three activation formats, converted or used as given): each matrix's result
   equals its own kern_matmul, bit for bit, for small (per-thread conversion) and large batches. */
static void check_group_mixed(const uint32_t types[4], const bool prep[4], kern_pool **pools, kt_rng *r) {
    const int64_t rows[4] = {33, 20, 17, 1}, cols = 192, ldy[4] = {35, 20, 17, 3};
    kern_matrix m[4];
    uint8_t *data[4];
    const int64_t max_tok = 200;
    float *x = malloc(sizeof(float) * max_tok * cols), *alone[4], *grouped[4];
    make_acts(r, x, max_tok * cols, 0);
    for (int i = 0; i < 4; i++) {
        size_t rb = kern_row_bytes(types[i], cols);
        data[i] = malloc(rb * (size_t)rows[i]);
        for (int64_t k = 0; k < rows[i]; k++) make_weight_row(types[i], r, data[i] + (size_t)k * rb, cols, 0);
        m[i] = (kern_matrix){.type = types[i], .rows = rows[i], .cols = cols, .row_bytes = rb, .data = data[i]};
        if (prep[i]) assert_int_equal(kern_matrix_prepare(&m[i], NULL), HEARTH_OK);
        alone[i] = malloc(sizeof(float) * (size_t)(max_tok * ldy[i]));
        grouped[i] = malloc(sizeof(float) * (size_t)(max_tok * ldy[i]));
    }
    const kern_matrix *w[4] = {&m[0], &m[1], &m[2], &m[3]};
    const int64_t toks[] = {1, 5, 9, 40, 200};
    for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++)
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < 4; i++) {
                memset(grouped[i], 0, sizeof(float) * (size_t)(max_tok * ldy[i]));
                memset(alone[i], 0, sizeof(float) * (size_t)(max_tok * ldy[i]));
                assert_int_equal(kern_matmul(pools[k], &m[i], x, toks[ti], alone[i], ldy[i]), HEARTH_OK);
            }
            assert_int_equal(kern_matmul_group(pools[k], 4, w, x, toks[ti], grouped, ldy), HEARTH_OK);
            for (int i = 0; i < 4; i++)
                for (int64_t e = 0; e < toks[ti] * ldy[i]; e++)
                    if (memcmp(&alone[i][e], &grouped[i][e], sizeof(float)) != 0)
                        fail_msg("mixed group, %ld tokens, %d threads: matrix %d (%s%s) y[%ld] = %.9g, alone %.9g",
                                 (long)toks[ti], k + 1, i, kern_scalar_traits(types[i])->name,
                                 prep[i] ? " prepared" : "", (long)e, grouped[i][e], alone[i][e]);
        }
    for (int i = 0; i < 4; i++) {
        kern_matrix_release(&m[i]);
        free(data[i]);
        free(alone[i]);
        free(grouped[i]);
    }
    free(x);
}

static void test_matmul_group_mixed_float(void **state) {
    (void)state;
    kern_pool *pools[3] = {kern_pool_new(1), kern_pool_new(2), kern_pool_new(3)};
    kt_rng r = {405};
    const uint32_t a[4] = {GGML_F16, GGML_F32, GGML_Q8_0, GGML_F32}, b[4] = {GGML_Q4_0, GGML_BF16, GGML_F32, GGML_F16};
    const bool pa[4] = {true, true, true, false}, pb[4] = {true, true, false, true};
    check_group_mixed(a, pa, pools, &r);
    check_group_mixed(b, pb, pools, &r);
    for (int k = 0; k < 3; k++) kern_pool_free(pools[k]);
}

static void test_prepare_errors_and_level(void **state) {
    printf("  CPU level: %s (best %s)%s%s\n", kern_cpu_level_name(kern_cpu_level_active()),
           kern_cpu_level_name(kern_cpu_level_best()), kern_cpu_notice() ? "; " : "",
           kern_cpu_notice() ? kern_cpu_notice() : "");
    assert_true(kern_cpu_level_active() <= kern_cpu_level_best());
    assert_null(kern_level_traits((kern_cpu_level)(kern_cpu_level_best() + 1), GGML_Q4_K));
    assert_ptr_equal(kern_traits(GGML_Q4_K), kern_level_traits(kern_cpu_level_active(), GGML_Q4_K));

    kt_rng r = {9};
    size_t rb = kern_row_bytes(GGML_Q4_K, 256);
    uint8_t *data = malloc(rb * 20);
    for (int i = 0; i < 20; i++) make_weight_row(GGML_Q4_K, &r, data + i * rb, 256, 0);
    kern_matrix m = {.type = GGML_Q4_K, .rows = 20, .cols = 256, .row_bytes = rb - 1, .data = data};
    assert_int_equal(kern_matrix_prepare(&m, NULL), HEARTH_ERR_INVALID);
    m.row_bytes = rb;
    mem_fail_at(1);
    hearth_status st = kern_matrix_prepare(&m, NULL);
    mem_fail_at(0);
    if (kern_cpu_level_active() == KERN_CPU_AVX512) {
        assert_int_equal(st, HEARTH_ERR_NOMEM);
        assert_null(m.packed);
        /* once prepared, a failing activation scratch leaves y untouched */
        assert_int_equal(kern_matrix_prepare(&m, NULL), HEARTH_OK);
        float x[2 * 256], y[2 * 20];
        make_acts(&r, x, 512, 0);
        for (int i = 0; i < 40; i++) y[i] = 5.0f;
        mem_fail_at(1);
        st = kern_matmul(NULL, &m, x, 2, y, 20);
        mem_fail_at(0);
        assert_int_equal(st, HEARTH_ERR_NOMEM);
        for (int i = 0; i < 40; i++) assert_true(y[i] == 5.0f);
    } else {
        assert_int_equal(st, HEARTH_OK);
        assert_null(m.packed);
    }
    kern_matrix_release(&m);
    free(data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_group),
        cmocka_unit_test(test_matmul_group_mixed_float),
        cmocka_unit_test(test_prepare_errors_and_level),
        cmocka_unit_test(test_quantizers_bit_exact),
        cmocka_unit_test(test_act_converters),
        cmocka_unit_test(test_vec_dot_vs_scalar),
        cmocka_unit_test(test_prepared_matmul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
