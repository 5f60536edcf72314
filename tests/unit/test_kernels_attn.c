/* The attention kernel (online softmax over F16 keys/values) at every CPU level this
 * machine has, against softmax attention evaluated in double: head sizes with and
 * without vector tails, contexts from one key to several hundred fed in uneven runs,
 * full and partial blocks of rows, per-row causal limits, sharp and flat score
 * distributions, and a row that sees no key. A control shows a one-key mask error
 * would be caught. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern_test_util.h"
#include "kernels/kernels.h"

typedef struct {
    int64_t dk, dv, n_ctx;
    float q_scale;   /* larger: sharper softmax */
    int ramp;        /* keys whose scores keep rising (the max moves every chunk) */
} attn_case;

typedef struct {
    uint16_t *k, *v;   /* [n_ctx][stride] F16, head at an offset inside the row */
    float *q;          /* [KERN_ATTN_ROWS][dk] */
    size_t k_stride, v_stride;
    int64_t k_off, v_off;
} attn_data;

static attn_data make_data(const attn_case *c, kt_rng *r) {
    attn_data d;
    d.k_stride = (size_t)(c->dk * 3);   /* the head of interest is the middle one */
    d.v_stride = (size_t)(c->dv * 3);
    d.k_off = c->dk;
    d.v_off = c->dv;
    d.k = malloc(sizeof(uint16_t) * d.k_stride * (size_t)c->n_ctx);
    d.v = malloc(sizeof(uint16_t) * d.v_stride * (size_t)c->n_ctx);
    d.q = malloc(sizeof(float) * KERN_ATTN_ROWS * (size_t)c->dk);
    for (size_t i = 0; i < d.k_stride * (size_t)c->n_ctx; i++) d.k[i] = kern_f32_to_f16(kt_normal(r));
    for (size_t i = 0; i < d.v_stride * (size_t)c->n_ctx; i++) d.v[i] = kern_f32_to_f16(kt_normal(r));
    kt_fill_normal(r, d.q, KERN_ATTN_ROWS * c->dk, c->q_scale);
    if (c->ramp)   /* key p's first element grows with p and every query likes it */
        for (int64_t p = 0; p < c->n_ctx; p++) {
            d.k[(size_t)p * d.k_stride + (size_t)d.k_off] = kern_f32_to_f16(0.05f * (float)p);
            for (int rr = 0; rr < KERN_ATTN_ROWS; rr++) d.q[rr * c->dk] = fabsf(d.q[rr * c->dk]) + 4.0f;
        }
    return d;
}

static void free_data(attn_data *d) {
    free(d->k);
    free(d->v);
    free(d->q);
}

/* softmax(scale q.K[0..n_vis)) V in double */
static void reference(const attn_case *c, const attn_data *d, int row, int32_t n_vis, double *out) {
    double scale = 1.0 / sqrt((double)c->dk), mx = -INFINITY;
    double *s = malloc(sizeof(double) * (size_t)(n_vis > 0 ? n_vis : 1));
    for (int32_t p = 0; p < n_vis; p++) {
        double acc = 0;
        for (int64_t e = 0; e < c->dk; e++)
            acc += (double)d->q[row * c->dk + e] * kern_f16_to_f32(d->k[(size_t)p * d->k_stride + (size_t)(d->k_off + e)]);
        s[p] = acc * scale;
        mx = fmax(mx, s[p]);
    }
    double sum = 0;
    for (int32_t p = 0; p < n_vis; p++) sum += (s[p] = exp(s[p] - mx));
    for (int64_t e = 0; e < c->dv; e++) {
        double acc = 0;
        for (int32_t p = 0; p < n_vis; p++)
            acc += s[p] * kern_f16_to_f32(d->v[(size_t)p * d->v_stride + (size_t)(d->v_off + e)]);
        out[e] = n_vis > 0 ? acc / sum : 0.0;
    }
    free(s);
}

/* Runs the kernel over rows [0, n_rows) with limits n_vis, keys fed in runs of uneven
   length; returns the outputs [n_rows][dv]. */
static float *run_kernel(kern_cpu_level level, const attn_case *c, const attn_data *d, int n_rows,
                         const int32_t *n_vis, kt_rng *r) {
    size_t wsf = kern_attn_workspace_floats(c->dk, c->dv);
    assert_true(wsf > 0);
    float *ws = aligned_alloc(64, (wsf * sizeof(float) + 63) / 64 * 64);
    float *out = malloc(sizeof(float) * (size_t)(n_rows * c->dv));
    const float *q[KERN_ATTN_ROWS];
    float *o[KERN_ATTN_ROWS];
    int32_t max_vis = 0;
    for (int i = 0; i < n_rows; i++) {
        q[i] = d->q + i * c->dk;
        o[i] = out + i * c->dv;
        if (n_vis[i] > max_vis) max_vis = n_vis[i];
    }
    kern_attn a;
    kern_attn_begin(&a, level, ws, c->dk, c->dv, n_rows, q, n_vis, 1.0f / sqrtf((float)c->dk));
    for (int64_t p = 0; p < max_vis;) {
        int64_t run = 1 + (int64_t)(kt_next(r) % 37);
        if (run > max_vis - p) run = max_vis - p;
        kern_attn_keys(&a, d->k + (size_t)p * d->k_stride + (size_t)d->k_off, d->k_stride,
                       d->v + (size_t)p * d->v_stride + (size_t)d->v_off, d->v_stride, p, run);
        p += run;
    }
    kern_attn_end(&a, o);
    free(ws);
    return out;
}

/* Largest |got - want| over the rows, relative to the largest |want| (at least 1). */
static double rel_error(const attn_case *c, const attn_data *d, int n_rows, const int32_t *n_vis, const float *got) {
    double *want = malloc(sizeof(double) * (size_t)c->dv), worst = 0;
    for (int i = 0; i < n_rows; i++) {
        reference(c, d, i, n_vis[i], want);
        double mag = 1;
        for (int64_t e = 0; e < c->dv; e++) mag = fmax(mag, fabs(want[e]));
        for (int64_t e = 0; e < c->dv; e++) worst = fmax(worst, fabs(got[i * c->dv + e] - want[e]) / mag);
    }
    free(want);
    return worst;
}

static void test_against_double(void **state) {
    const attn_case cases[] = {
        {64, 64, 1, 1.0f, 0},   {64, 64, 9, 1.0f, 0},    {64, 64, 300, 1.0f, 0}, {64, 64, 300, 8.0f, 0},
        {128, 128, 77, 1.0f, 0}, {128, 128, 40, 4.0f, 1}, {72, 36, 33, 2.0f, 0},  {20, 12, 17, 1.0f, 1},
        {64, 64, 130, 1.0f, 1},
    };
    kt_rng r = {7};
    for (kern_cpu_level level = KERN_CPU_SCALAR; level <= kern_cpu_level_best(); level++) {
        double worst = 0;
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const attn_case *c = &cases[ci];
            attn_data d = make_data(c, &r);
            int full = kern_attn_rows(level);
            int counts[2] = {full, 3};
            for (int k = 0; k < 2; k++) {
                int n_rows = counts[k];
                int32_t n_vis[KERN_ATTN_ROWS];
                for (int i = 0; i < n_rows; i++) {   /* causal-like limits, never above n_ctx */
                    int64_t v = c->n_ctx - (i % 4) * (c->n_ctx / 5 + 1);
                    n_vis[i] = (int32_t)(v > 1 ? v : 1);
                }
                float *got = run_kernel(level, c, &d, n_rows, n_vis, &r);
                double e = rel_error(c, &d, n_rows, n_vis, got);
                worst = fmax(worst, e);
                if (e > 1e-4)
                    fail_msg("%s: dk %lld dv %lld ctx %lld rows %d: error %.3g > 1e-4", kern_cpu_level_name(level),
                             (long long)c->dk, (long long)c->dv, (long long)c->n_ctx, n_rows, e);
                free(got);
            }
            free_data(&d);
        }
        printf("attention %s: worst relative error %.3g\n", kern_cpu_level_name(level), worst);
    }
}

/* A row with n_vis 0 gets zeros; the other rows of its block are unaffected. */
static void test_row_without_keys(void **state) {
    attn_case c = {64, 64, 20, 1.0f, 0};
    kt_rng r = {11};
    attn_data d = make_data(&c, &r);
    for (kern_cpu_level level = KERN_CPU_SCALAR; level <= kern_cpu_level_best(); level++) {
        int32_t n_vis[3] = {20, 0, 5};
        float *got = run_kernel(level, &c, &d, 3, n_vis, &r);
        for (int64_t e = 0; e < c.dv; e++)
            if (got[c.dv + e] != 0.0f) fail_msg("%s: element %lld of a row without keys is %g", kern_cpu_level_name(level), (long long)e, got[c.dv + e]);
        int32_t one[1] = {20};
        assert_true(rel_error(&c, &d, 1, one, got) < 2e-5);
        free(got);
    }
    free_data(&d);
}

/* Control: a kernel that let each row see one key too many would fail the check above. */
static void test_mask_error_is_visible(void **state) {
    attn_case c = {64, 64, 300, 1.0f, 0};
    kt_rng r = {13};
    attn_data d = make_data(&c, &r);
    int32_t n_vis[1] = {299}, wrong[1] = {300};
    float *got = run_kernel(kern_cpu_level_active(), &c, &d, 1, wrong, &r);
    double e = rel_error(&c, &d, 1, n_vis, got);
    printf("one extra key: error %.3g\n", e);
    assert_true(e > 1e-4);
    free(got);
    free_data(&d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_double),
        cmocka_unit_test(test_row_without_keys),
        cmocka_unit_test(test_mask_error_is_visible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
