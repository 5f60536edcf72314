/* Float32 attention of one query against keys stored transposed (one row per key
 * dimension), the layout an encoder uses so that one query meets 16 keys per vector
 * operation: dispatch and the scalar reference (scores, softmax, weighted sum of value
 * rows). Must never read past n_keys columns of a key row or n_keys value rows. */
#include "kernels/kern_internal.h"

void kern_attend_cols_scalar(const float *q, const float *kt, size_t ld, int64_t dk, int64_t n_keys, float scale,
                             const float *v, size_t v_stride, int64_t dv, float *scores, float *out) {
    for (int64_t j = 0; j < n_keys; j++) {
        float s = 0;
        for (int64_t i = 0; i < dk; i++) s += q[i] * kt[(size_t)i * ld + (size_t)j];
        scores[j] = scale * s;
    }
    kern_softmax_scalar(scores, n_keys);
    kern_weighted_rows_scalar(scores, v, v_stride, n_keys, dv, out);
}

void kern_attend_cols(const float *q, const float *kt, size_t ld, int64_t dk, int64_t n_keys, float scale,
                      const float *v, size_t v_stride, int64_t dv, float *scores, float *out) {
    switch (kern_cpu_level_active()) {
    case KERN_CPU_AVX512: kern_attend_cols_avx512(q, kt, ld, dk, n_keys, scale, v, v_stride, dv, scores, out); break;
    case KERN_CPU_AVX2:
        kern_dot_cols_avx2(q, kt, ld, dk, n_keys, scale, scores);
        kern_softmax_scalar(scores, n_keys);
        kern_weighted_rows_avx2(scores, v, v_stride, n_keys, dv, out);
        break;
    default: kern_attend_cols_scalar(q, kt, ld, dk, n_keys, scale, v, v_stride, dv, scores, out); break;
    }
}
