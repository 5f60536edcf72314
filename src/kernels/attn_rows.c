/* Float32 attention of a few queries against keys stored transposed (one row per key
 * dimension), the layout an encoder uses so that one query meets 16 keys per vector
 * operation: dispatch and the scalar reference (scores, softmax, weighted sum of value
 * rows, query by query). Must never read past n_keys columns of a key row or n_keys
 * value rows. */
#include "kernels/kern_internal.h"

static void attend_one_scalar(const float *q, const float *kt, size_t ld, int64_t dk, int64_t n_keys, float scale,
                              float *scores) {
    for (int64_t j = 0; j < n_keys; j++) {
        float s = 0;
        for (int64_t i = 0; i < dk; i++) s += q[i] * kt[(size_t)i * ld + (size_t)j];
        scores[j] = scale * s;
    }
}

void kern_attend_cols(int n_q, const float *q, size_t q_stride, const float *kt, size_t ld, int64_t dk,
                      int64_t n_keys, float scale, const float *v, size_t v_stride, int64_t dv, float *scores,
                      float *out, size_t out_stride) {
    kern_cpu_level level = kern_cpu_level_active();
    if (level == KERN_CPU_AVX512) {
        kern_attend_cols_avx512(n_q, q, q_stride, kt, ld, dk, n_keys, scale, v, v_stride, dv, scores, out, out_stride);
        return;
    }
    for (int r = 0; r < n_q; r++) {
        const float *qr = q + (size_t)r * q_stride;
        float *o = out + (size_t)r * out_stride;
        if (level == KERN_CPU_AVX2) {
            kern_dot_cols_avx2(qr, kt, ld, dk, n_keys, scale, scores);
            kern_softmax_scalar(scores, n_keys);
            kern_weighted_rows_avx2(scores, v, v_stride, n_keys, dv, o);
        } else {
            attend_one_scalar(qr, kt, ld, dk, n_keys, scale, scores);
            kern_softmax_scalar(scores, n_keys);
            kern_weighted_rows_scalar(scores, v, v_stride, n_keys, dv, o);
        }
    }
}
