/* Scale searches behind the K-quant quantizers: for a small group of values, find the
 * scale (and min) whose rounded quants reproduce the group with the least weighted
 * squared error. Each candidate scale from a grid fixes a rounding; the best scale (and
 * min) for that rounding then follows in closed form by least squares.
 * Pure arithmetic: must never allocate, and only writes n entries of L. */
#include <math.h>

#include "kernels/kern_internal.h"

#define GROUP_EPS 1e-15f

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

float kern_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                         float *min_out, float rmin, float rdelta, int nstep) {
    float lo = x[0], hi = x[0], sum_w = 0.0f, sum_x = 0.0f;
    for (int i = 0; i < n; i++) {
        lo = fminf(lo, x[i]);
        hi = fmaxf(hi, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0.0f) lo = 0.0f;   /* the offset only ever lowers the range (min >= 0) */
    if (hi == lo) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *min_out = -lo;
        return 0.0f;
    }

    /* start: the plain min/max mapping */
    float iscale = nmax / (hi - lo);
    float scale = 1.0f / iscale, offset = lo;
    float best_err = 0.0f;
    for (int i = 0; i < n; i++) {
        int l = clampi(kern_nearest_int(iscale * (x[i] - lo)), 0, nmax);
        L[i] = (uint8_t)l;
        float diff = scale * l + lo - x[i];
        best_err += w[i] * diff * diff;
    }

    uint8_t trial[KERN_QKK];
    for (int step = 0; step <= nstep; step++) {
        float cand_iscale = (rmin + rdelta * step + nmax) / (hi - lo);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = clampi(kern_nearest_int(cand_iscale * (x[i] - lo)), 0, nmax);
            trial[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        /* weighted least squares for x ~ s*l + m over this rounding */
        float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det <= 0.0f) continue;
        float s = (sum_w * sum_xl - sum_x * sum_l) / det;
        float m = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (m > 0.0f) {   /* a positive offset is not representable: refit with m = 0 */
            m = 0.0f;
            s = sum_xl / sum_l2;
        }
        float err = 0.0f;
        for (int i = 0; i < n; i++) {
            float diff = s * trial[i] + m - x[i];
            err += w[i] * diff * diff;
        }
        if (err < best_err) {
            memcpy(L, trial, (size_t)n);
            best_err = err;
            scale = s;
            offset = m;
        }
    }
    *min_out = -offset;
    return scale;
}

float kern_fit_scale_signed(int n, int nmax, const float *x, const float *w, uint8_t *L) {
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    for (int i = 0; i < n; i++) L[i] = (uint8_t)nmax;   /* quant 0 until a scale is found */
    if (amax < GROUP_EPS) return 0.0f;
    /* the extreme maps to -nmax, the side with one more level */
    float best = -1.0f, scale = 0.0f;
    for (int step = 0; step <= 19; step++) {
        int k = step == 0 ? 0 : step <= 9 ? step - 10 : step - 9;   /* 0, -9..-1, 1..9 */
        float iscale = -(nmax + 0.1f * k) / max;
        float sum_lx = 0.0f, sum_l2 = 0.0f;
        for (int i = 0; i < n; i++) {
            int l = clampi(kern_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            sum_lx += w[i] * x[i] * l;
            sum_l2 += w[i] * l * l;
        }
        /* least-squares scale sum_lx/sum_l2 reduces the error by sum_lx^2/sum_l2 */
        if (sum_l2 <= 0.0f) continue;
        if (best >= 0.0f && sum_lx * sum_lx <= best * sum_l2) continue;
        for (int i = 0; i < n; i++)
            L[i] = (uint8_t)(nmax + clampi(kern_nearest_int(iscale * x[i]), -nmax, nmax - 1));
        scale = sum_lx / sum_l2;
        best = scale * sum_lx;
    }
    return scale;
}
