/* Quantizers and dot products of every type: round-trip error on random rows within
 * bounds a correct quantizer meets (and a broken one misses), edge blocks (zeros,
 * constants, one huge outlier, alternating signs, tiny values, values near the f16
 * maximum), and vec_dot against float dots of the dequantized rows (tight) and of the
 * original rows (loose). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kern_test_util.h"
#include "kernels/kernels.h"

#define N 1024   /* elements per test row: 4 K-quant super-blocks */

typedef struct {
    uint32_t type;
    double rel_rms;      /* bound on round-trip relative RMS error for N(0,1) data */
    double max_step;     /* bound on |error| / block absmax, any element */
} type_case;

static const type_case cases[] = {
    {GGML_F32, 0.0, 0.0},
    {GGML_F16, 3e-4, 1e-3},
    {GGML_BF16, 2.5e-3, 4e-3},
    {GGML_Q8_0, 0.0065, 0.5 / 127 + 1e-3},
    {GGML_Q8_1, 0.0065, 0.5 / 127 + 1e-3},
    {GGML_Q8_K, 0.0085, 0.5 / 127 + 1e-4},   /* one scale per 256: larger absmax */
    {GGML_Q4_0, 0.115, 1.0 / 8 + 1e-3},      /* the positive side stops at 7/8 */
    {GGML_Q4_1, 0.095, 1.0 / 15 + 1e-3},     /* half a step of (max - min) / 15 */
    {GGML_Q5_0, 0.057, 1.0 / 16 + 1e-3},
    {GGML_Q5_1, 0.047, 1.0 / 31 + 1e-3},
    {GGML_Q4_K, 0.075, 0.25},
    {GGML_Q5_K, 0.037, 0.125},
    {GGML_Q6_K, 0.0185, 0.07},
};

static void round_trip(uint32_t type, const float *x, float *back, int64_t n) {
    const kern_type_traits *t = kern_scalar_traits(type);
    uint8_t *buf = malloc(kern_row_bytes(type, n));
    assert_non_null(buf);
    t->from_float(x, buf, n);
    t->to_float(buf, back, n);
    free(buf);
}

/* Largest |error| relative to the absmax of its block (or of the row for plain types). */
static double worst_step(uint32_t type, const float *x, const float *back, int64_t n) {
    int64_t be = kern_scalar_traits(type)->block_elems;
    if (be == 1) be = n;
    double worst = 0.0;
    for (int64_t b = 0; b < n; b += be) {
        double amax = 0.0;
        for (int64_t i = b; i < b + be; i++) amax = fmax(amax, fabs(x[i]));
        if (amax == 0.0) continue;
        for (int64_t i = b; i < b + be; i++) worst = fmax(worst, fabs((double)back[i] - x[i]) / amax);
    }
    return worst;
}

static void test_round_trip_random(void **state) {
    kt_rng r = {1234};
    float *x = malloc(sizeof(float) * N), *back = malloc(sizeof(float) * N);
    kt_fill_normal(&r, x, N, 1.0f);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *name = kern_scalar_traits(cases[c].type)->name;
        round_trip(cases[c].type, x, back, N);
        double e = kt_rel_rms(back, x, N), s = worst_step(cases[c].type, x, back, N);
        printf("  %-5s rel RMS %.5f (bound %.5f)  worst |err|/absmax %.4f (bound %.4f)\n", name, e,
               cases[c].rel_rms, s, cases[c].max_step);
        if (e > cases[c].rel_rms) fail_msg("%s: relative RMS error %g > %g", name, e, cases[c].rel_rms);
        if (s > cases[c].max_step) fail_msg("%s: worst error %g of absmax > %g", name, s, cases[c].max_step);
    }
    free(x);
    free(back);
}

typedef enum { E_ZERO, E_CONST, E_OUTLIER, E_ALTERNATE, E_TINY, E_NEAR_F16_MAX, E_COUNT } edge_kind;
static const char *edge_names[] = {"all zero", "constant", "outlier", "alternating", "tiny", "near f16 max"};

static void fill_edge(edge_kind k, kt_rng *r, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        switch (k) {
        case E_ZERO: x[i] = 0.0f; break;
        case E_CONST: x[i] = -0.7f; break;
        case E_OUTLIER: x[i] = kt_normal(r); break;
        case E_ALTERNATE: x[i] = (i & 1) ? 1.5f : -1.5f; break;
        case E_TINY: x[i] = 1e-6f * kt_normal(r); break;
        case E_NEAR_F16_MAX: x[i] = (i % 3 == 0 ? -60000.0f : 50000.0f) + 100.0f * kt_normal(r); break;
        default: break;
        }
    }
    if (k == E_OUTLIER)
        for (int64_t i = 5; i < n; i += 256) x[i] = 1000.0f;
}

static void test_edge_blocks(void **state) {
    kt_rng r = {99};
    float x[N], back[N];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint32_t type = cases[c].type;
        const char *name = kern_scalar_traits(type)->name;
        for (int k = 0; k < E_COUNT; k++) {
            fill_edge((edge_kind)k, &r, x, N);
            round_trip(type, x, back, N);
            for (int64_t i = 0; i < N; i++)
                if (!isfinite(back[i])) fail_msg("%s, %s: element %ld decoded as %g", name, edge_names[k], (long)i, back[i]);
            double amax = 0.0;
            for (int64_t i = 0; i < N; i++) amax = fmax(amax, fabs(x[i]));
            double err = kt_max_abs_diff(back, x, N);
            switch ((edge_kind)k) {
            case E_ZERO:
                if (err != 0.0) fail_msg("%s: zeros came back with error %g", name, err);
                break;
            case E_CONST:
                /* one level: every format holds it to fp16 precision */
                if (err > amax * 2e-3) fail_msg("%s, constant: error %g", name, err);
                break;
            case E_ALTERNATE:
                /* Q4_0/Q5_0 cannot hold +max when -max sets the scale: the step bound */
                if (worst_step(type, x, back, N) > cases[c].max_step)
                    fail_msg("%s, alternating: worst error %g of absmax", name, worst_step(type, x, back, N));
                break;
            case E_OUTLIER:
                /* the outlier itself survives; the rest stays within the type's step bound */
                for (int64_t i = 5; i < N; i += 256)
                    if (fabs(back[i] - 1000.0) > 1000.0 * 0.01)
                        fail_msg("%s: outlier 1000 came back as %g", name, back[i]);
                if (worst_step(type, x, back, N) > cases[c].max_step + 1e-3)
                    fail_msg("%s, outlier: worst error %g of absmax", name, worst_step(type, x, back, N));
                break;
            case E_TINY:
                /* scales may underflow fp16: values may vanish, never grow */
                if (err > amax) fail_msg("%s, tiny: error %g larger than the values (%g)", name, err, amax);
                break;
            case E_NEAR_F16_MAX:
                if (worst_step(type, x, back, N) > cases[c].max_step + 1e-3)
                    fail_msg("%s, near f16 max: worst error %g of absmax", name, worst_step(type, x, back, N));
                break;
            default: break;
            }
        }
    }
}

/* vec_dot of every weight type with its activation format. */
static void test_vec_dot(void **state) {
    kt_rng r = {5};
    float *w = malloc(sizeof(float) * N), *x = malloc(sizeof(float) * N);
    float *wd = malloc(sizeof(float) * N), *xd = malloc(sizeof(float) * N);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const kern_type_traits *t = kern_scalar_traits(cases[c].type);
        const kern_type_traits *a = kern_scalar_traits(t->vec_dot_type);
        for (int trial = 0; trial < 3; trial++) {
            kt_fill_normal(&r, w, N, 0.05f);
            kt_fill_normal(&r, x, N, 2.0f);
            if (trial == 1) for (int i = 0; i < N; i++) w[i] += 0.03f;   /* offset: min terms matter */
            if (trial == 2) for (int i = 0; i < N; i++) x[i] = fabsf(x[i]) + 0.5f;
            uint8_t *wq = malloc(kern_row_bytes(t->type, N)), *xq = malloc(kern_row_bytes(a->type, N));
            t->from_float(w, wq, N);
            a->from_float(x, xq, N);
            t->to_float(wq, wd, N);
            a->to_float(xq, xd, N);
            double dot = t->vec_dot(N, wq, xq);
            double tight = 0.0, mag = 0.0, exact = 0.0, nw = 0.0, nx = 0.0, nwe = 0.0, nxe = 0.0;
            for (int i = 0; i < N; i++) {
                tight += (double)wd[i] * xd[i];
                mag += fabs((double)wd[i] * xd[i]);
                exact += (double)w[i] * x[i];
                nw += (double)w[i] * w[i];
                nx += (double)x[i] * x[i];
                nwe += ((double)wd[i] - w[i]) * ((double)wd[i] - w[i]);
                nxe += ((double)xd[i] - x[i]) * ((double)xd[i] - x[i]);
            }
            /* Q8_1 stores d*sum(q) as f16: the min term of Q4_1/Q5_1 carries its rounding */
            double tol = 1e-5 * mag + 1e-7;
            if (a->type == GGML_Q8_1) tol = 1e-3 * mag;
            if (fabs(dot - tight) > tol)
                fail_msg("%s x %s (trial %d): vec_dot %.7g, dot of dequantized rows %.7g", t->name, a->name,
                         trial, dot, tight);
            /* |sum dw*x + w*dx| <= |dw||x| + |w||dx| + |dw||dx| (Cauchy-Schwarz) */
            double loose = sqrt(nwe * nx) + sqrt(nw * nxe) + sqrt(nwe * nxe) + 1e-6 * sqrt(nw * nx);
            if (fabs(dot - exact) > loose)
                fail_msg("%s x %s (trial %d): vec_dot %.7g, exact dot %.7g (bound %.3g)", t->name, a->name,
                         trial, dot, exact, loose);
            free(wq);
            free(xq);
        }
    }
    free(w);
    free(x);
    free(wd);
    free(xd);
}

static void test_vec_dot_zero_activations(void **state) {
    kt_rng r = {11};
    float w[N], x[N] = {0};
    kt_fill_normal(&r, w, N, 1.0f);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const kern_type_traits *t = kern_scalar_traits(cases[c].type);
        const kern_type_traits *a = kern_scalar_traits(t->vec_dot_type);
        uint8_t wq[N * 4], xq[N * 4];
        t->from_float(w, wq, N);
        a->from_float(x, xq, N);
        float dot = t->vec_dot(N, wq, xq);
        if (dot != 0.0f) fail_msg("%s: dot with zero activations is %g", t->name, dot);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_edge_blocks),
        cmocka_unit_test(test_vec_dot),
        cmocka_unit_test(test_vec_dot_zero_activations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
