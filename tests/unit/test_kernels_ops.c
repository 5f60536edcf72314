/* Elementwise ops against their formulas evaluated in double, plus literal values a
 * wrong pairing, base or approximation cannot produce: RoPE's two pairings, softmax
 * with masks and huge logits, GELU's tanh approximation, in-place use; the encoder's
 * attention of 1-4 queries from transposed keys, writing nothing outside its outputs. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kern_test_util.h"
#include "kernels/kernels.h"

static void expect_near(const char *what, const float *got, const double *want, int n, double tol) {
    for (int i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol * fmax(1.0, fabs(want[i]))))
            fail_msg("%s: element %d is %.9g, expected %.9g", what, i, got[i], want[i]);
}

static void test_rmsnorm(void **state) {
    kt_rng r = {1};
    float x[300], w[300], out[300];
    double want[300];
    kt_fill_normal(&r, x, 300, 3.0f);
    kt_fill_normal(&r, w, 300, 1.0f);
    double ss = 0;
    for (int i = 0; i < 300; i++) ss += (double)x[i] * x[i];
    double scale = 1.0 / sqrt(ss / 300 + 1e-5);
    for (int i = 0; i < 300; i++) want[i] = x[i] * scale * w[i];
    kern_rmsnorm(x, w, 300, 1e-5f, out);
    expect_near("rmsnorm", out, want, 300, 2e-6);
    kern_rmsnorm(x, w, 300, 1e-5f, x);   /* in place */
    expect_near("rmsnorm in place", x, want, 300, 2e-6);

    float ones[4] = {2, 2, 2, 2}, o[4];
    kern_rmsnorm(ones, NULL, 4, 0.0f, o);   /* no weight: unit RMS */
    for (int i = 0; i < 4; i++) assert_true(fabsf(o[i] - 1.0f) < 1e-6f);
    float zeros[4] = {0}, oz[4];
    kern_rmsnorm(zeros, NULL, 4, 1e-6f, oz);   /* eps keeps it finite */
    for (int i = 0; i < 4; i++) assert_true(oz[i] == 0.0f);
}

static void test_layernorm(void **state) {
    kt_rng r = {2};
    float x[257], w[257], b[257], out[257];
    double want[257];
    kt_fill_normal(&r, x, 257, 2.0f);
    for (int i = 0; i < 257; i++) x[i] += 5.0f;   /* a mean to remove */
    kt_fill_normal(&r, w, 257, 1.0f);
    kt_fill_normal(&r, b, 257, 1.0f);
    double mean = 0, var = 0;
    for (int i = 0; i < 257; i++) mean += x[i];
    mean /= 257;
    for (int i = 0; i < 257; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= 257;
    for (int i = 0; i < 257; i++) want[i] = (x[i] - mean) / sqrt(var + 1e-12) * w[i] + b[i];
    kern_layernorm(x, w, b, 257, 1e-12f, out);
    expect_near("layernorm", out, want, 257, 3e-6);
    kern_layernorm(x, w, b, 257, 1e-12f, x);
    expect_near("layernorm in place", x, want, 257, 3e-6);

    float v[4] = {1, 2, 3, 4}, o[4];
    kern_layernorm(v, NULL, NULL, 4, 0.0f, o);
    double sd = sqrt(1.25);
    double wv[4] = {-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd};
    expect_near("layernorm plain", o, wv, 4, 1e-6);
}

static void test_rope_literal(void **state) {
    /* head_dim 4, n_rot 4, base 10000: theta_0 = pos, theta_1 = pos / 100 */
    float a[4] = {1, 0, 0, 0}, b[4] = {0, 1, 0, 0};
    kern_rope(a, 1, 4, 4, 1, 10000.0f, 1.0f, false);
    kern_rope(b, 1, 4, 4, 1, 10000.0f, 1.0f, false);
    double wa[4] = {cos(1.0), sin(1.0), 0, 0}, wb[4] = {-sin(1.0), cos(1.0), 0, 0};
    expect_near("rope normal pair (0,1)", a, wa, 4, 1e-6);
    expect_near("rope normal pair (0,1), second", b, wb, 4, 1e-6);

    float c[4] = {1, 0, 0, 0}, d[4] = {0, 1, 0, 0};
    kern_rope(c, 1, 4, 4, 1, 10000.0f, 1.0f, true);
    kern_rope(d, 1, 4, 4, 1, 10000.0f, 1.0f, true);
    double wc[4] = {cos(1.0), 0, sin(1.0), 0}, wd[4] = {0, cos(0.01), 0, sin(0.01)};
    expect_near("rope neox pair (0,2)", c, wc, 4, 1e-6);
    expect_near("rope neox pair (1,3)", d, wd, 4, 1e-6);

    /* freq_scale multiplies the position */
    float e[4] = {0.3f, -0.7f, 0.2f, 0.9f}, f[4] = {0.3f, -0.7f, 0.2f, 0.9f};
    kern_rope(e, 1, 4, 4, 4, 500.0f, 0.25f, false);
    kern_rope(f, 1, 4, 4, 1, 500.0f, 1.0f, false);
    double wf[4] = {f[0], f[1], f[2], f[3]};
    expect_near("rope freq_scale", e, wf, 4, 1e-6);

    /* position 0 is the identity */
    float g[4] = {0.3f, -0.7f, 0.2f, 0.9f};
    kern_rope(g, 1, 4, 4, 0, 10000.0f, 1.0f, true);
    double wg[4] = {0.3f, -0.7f, 0.2f, 0.9f};
    expect_near("rope pos 0", g, wg, 4, 0);
}

static void test_rope_formula(void **state) {
    const int heads = 3, hd = 16, n_rot = 12;
    kt_rng r = {3};
    for (int neox = 0; neox <= 1; neox++) {
        for (int64_t pos = 0; pos < 3000; pos += 777) {
            float x[48];
            double want[48];
            kt_fill_normal(&r, x, 48, 1.0f);
            for (int h = 0; h < heads; h++) {
                const float *v = x + h * hd;
                for (int i = 0; i < hd; i++) want[h * hd + i] = v[i];   /* past n_rot: unchanged */
                for (int i = 0; i < n_rot / 2; i++) {
                    double theta = pos * 0.5 * pow(1e6, -2.0 * i / n_rot);
                    int p0 = neox ? i : 2 * i, p1 = neox ? i + n_rot / 2 : 2 * i + 1;
                    want[h * hd + p0] = v[p0] * cos(theta) - v[p1] * sin(theta);
                    want[h * hd + p1] = v[p0] * sin(theta) + v[p1] * cos(theta);
                }
            }
            float y[48], cs[12];
            memcpy(y, x, sizeof y);
            kern_rope(x, heads, hd, n_rot, pos, 1e6f, 0.5f, neox);
            kern_rope_angles(n_rot, pos, 1e6f, 0.5f, cs);   /* the two-step form: same bits */
            kern_rope_apply(y, heads, hd, n_rot, cs, neox);
            assert_memory_equal(x, y, sizeof y);
            char what[64];
            snprintf(what, sizeof what, "rope %s pos %ld", neox ? "neox" : "normal", (long)pos);
            expect_near(what, x, want, 48, 2e-6);
        }
    }
}

/* More pairs than kern_rope computes angles for at once. */
static void test_rope_long_head(void **state) {
    enum { HD = 320, NROT = 300 };
    kt_rng r = {5};
    float x[2 * HD], y[2 * HD], cs[NROT];
    kt_fill_normal(&r, x, 2 * HD, 1.0f);
    memcpy(y, x, sizeof y);
    kern_rope(x, 2, HD, NROT, 1234, 10000.0f, 1.0f, true);
    kern_rope_angles(NROT, 1234, 10000.0f, 1.0f, cs);
    kern_rope_apply(y, 2, HD, NROT, cs, true);
    assert_memory_equal(x, y, sizeof y);
    double theta = 1234.0 * pow(10000.0, -2.0 * 149 / NROT);   /* the last pair */
    assert_true(fabsf(cs[2 * 149] - (float)cos(theta)) < 1e-6f);
}

static void test_softmax(void **state) {
    float x[6] = {1.0f, 2.0f, 3.0f, -INFINITY, 0.5f, 1000.0f};
    kern_softmax(x, 6);
    assert_true(x[5] > 0.999999f && x[3] == 0.0f);

    float y[5] = {1.0f, 2.0f, 3.0f, -INFINITY, 0.5f};
    double want[5], sum = 0;
    for (int i = 0; i < 5; i++) sum += (i == 3) ? 0 : exp(y[i]);
    for (int i = 0; i < 5; i++) want[i] = (i == 3) ? 0 : exp(y[i]) / sum;
    kern_softmax(y, 5);
    expect_near("softmax", y, want, 5, 1e-6);

    float big[3] = {10000.0f, 10000.0f, 9999.0f};   /* must not overflow */
    kern_softmax(big, 3);
    double e1 = exp(-1.0), wb[3] = {1 / (2 + e1), 1 / (2 + e1), e1 / (2 + e1)};
    expect_near("softmax huge", big, wb, 3, 1e-6);

    float masked[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    kern_softmax(masked, 4);
    double wm[4] = {0.25, 0.25, 0.25, 0.25};
    expect_near("softmax all masked", masked, wm, 4, 0);

    for (int n = 15; n <= 70; n += 11) {   /* whole vectors and tails */
        float z[70];
        double wz[70], zs = 0, zm = -1e300;
        for (int i = 0; i < n; i++) zm = fmax(zm, z[i] = (float)(0.37 * i - 0.011 * i * i));
        for (int i = 0; i < n; i++) zs += exp(z[i] - zm);
        for (int i = 0; i < n; i++) wz[i] = exp(z[i] - zm) / zs;
        kern_softmax(z, n);
        expect_near("softmax long", z, wz, n, 1e-6);
    }

    float one[1] = {-3.0f};
    kern_softmax(one, 1);
    assert_true(one[0] == 1.0f);
}

static void test_silu_mul_gelu_add(void **state) {
    float g[7] = {-100.0f, -3.0f, -0.5f, 0.0f, 0.5f, 3.0f, 100.0f};
    float u[7] = {2.0f, 1.0f, -1.0f, 4.0f, 2.0f, 0.5f, 0.1f}, out[7];
    double want[7];
    for (int i = 0; i < 7; i++) want[i] = g[i] / (1 + exp(-(double)g[i])) * u[i];
    kern_silu_mul(g, u, 7, out);
    expect_near("silu_mul", out, want, 7, 1e-6);
    kern_silu_mul(g, u, 7, g);   /* in place over gate */
    expect_near("silu_mul in place", g, want, 7, 1e-6);

    /* long rows reach the active level's vector loop and its tail */
    enum { N = 1000 };
    static float lg[N], lu[N], lo[N];
    static double lw[N];
    kt_rng r = {9};
    kt_fill_normal(&r, lg, N, 6.0f);
    kt_fill_normal(&r, lu, N, 1.0f);
    for (int i = 0; i < N; i++) lw[i] = lg[i] / (1 + exp(-(double)lg[i])) * lu[i];
    for (int n = N - 13; n <= N; n += 13) {
        kern_silu_mul(lg, lu, n, lo);
        expect_near("silu_mul long", lo, lw, n, 1e-6);
    }

    float x[5] = {1.0f, -1.0f, 0.0f, 3.0f, -6.0f};
    /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    double wg[5];
    for (int i = 0; i < 5; i++) {
        double v = x[i];
        wg[i] = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    }
    kern_gelu(x, 5);
    expect_near("gelu", x, wg, 5, 2e-6);
    /* the tanh approximation's values at +-1 (exact erf GELU: 0.841345, -0.158655) */
    assert_true(fabsf(x[0] - 0.8411920f) < 1e-6f);
    assert_true(fabsf(x[1] + 0.1588080f) < 1e-6f);
    /* long rows reach the active level's vector loop and its tail */
    static float lx[N];
    kt_fill_normal(&r, lx, N, 4.0f);
    for (int i = 0; i < N; i++) {
        double v = lx[i];
        lw[i] = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
    }
    lx[0] = -100.0f, lw[0] = 0; /* saturated ends */
    lx[1] = 100.0f, lw[1] = 100;
    for (int n = N - 13; n <= N; n += 13) {
        memcpy(lo, lx, sizeof lx);
        kern_gelu(lo, n);
        expect_near("gelu long", lo, lw, n, 2e-6);
    }

    /* attention of 1-4 queries from transposed keys: key counts around 8, 16, 32 and 64,
       value widths around the 32-output chunks; each query as computed alone in double */
    enum { DK = 24, MAXK = 70, LD = 71, V_STRIDE = 50, NQ = KERN_ATTEND_QUERIES, Q_STRIDE = 30, O_STRIDE = 53 };
    static float kt[DK * LD], vals[MAXK * V_STRIDE], qa[NQ * Q_STRIDE], ws[NQ * MAXK], att[NQ * O_STRIDE];
    kt_fill_normal(&r, kt, DK * LD, 1.0f);
    kt_fill_normal(&r, vals, MAXK * V_STRIDE, 1.0f);
    kt_fill_normal(&r, qa, NQ * Q_STRIDE, 1.0f);
    static const int key_counts[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 37, 63, 64, 65, 70};
    for (size_t c = 0; c < sizeof key_counts / sizeof key_counts[0]; c++)
        for (int dv = 1; dv <= V_STRIDE; dv += 7)
            for (int nq = 1; nq <= NQ; nq++) {
                int nk = key_counts[c];
                for (int i = 0; i < NQ * O_STRIDE; i++) att[i] = 12345.0f;   /* outside the outputs: untouched */
                kern_attend_cols(nq, qa, Q_STRIDE, kt, LD, DK, nk, 0.3f, vals, V_STRIDE, dv, ws, att, O_STRIDE);
                for (int qi = 0; qi < nq; qi++) {
                    double p[MAXK], mx = -1e300, sum = 0, want_a[V_STRIDE];
                    for (int j = 0; j < nk; j++) {
                        double s = 0;
                        for (int i = 0; i < DK; i++) s += (double)qa[qi * Q_STRIDE + i] * kt[i * LD + j];
                        p[j] = 0.3 * s;
                        mx = fmax(mx, p[j]);
                    }
                    for (int j = 0; j < nk; j++) sum += (p[j] = exp(p[j] - mx));
                    for (int i = 0; i < dv; i++) {
                        double s = 0;
                        for (int j = 0; j < nk; j++) s += p[j] / sum * vals[j * V_STRIDE + i];
                        want_a[i] = s;
                    }
                    expect_near("attend_cols", att + qi * O_STRIDE, want_a, dv, 1e-5);
                }
                for (int i = 0; i < NQ * O_STRIDE; i++)
                    if ((i / O_STRIDE >= nq || i % O_STRIDE >= dv) && att[i] != 12345.0f)
                        fail_msg("attend_cols, %d queries, width %d: wrote out[%d]", nq, dv, i);
            }

    float a[3] = {1, 2, 3}, b[3] = {0.5f, -2, 10};
    kern_add(a, b, 3);
    double wa[3] = {1.5, 0, 13};
    expect_near("add", a, wa, 3, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_rope_literal),
        cmocka_unit_test(test_rope_formula),
        cmocka_unit_test(test_rope_long_head),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_silu_mul_gelu_add),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
