/* Real quantized files: the fixture models hold the same random weights as F16 and as
 * Q8_0, Q4_0 and Q4_K_M written by the reference quantizer. Dequantizing a tensor with
 * these kernels must land close to the F16 weights (a wrong layout lands far away),
 * and our own quantizers, run on the F16 weights, must do at least about as well as
 * the reference's bytes. For Q8_0 and Q4_0, whose published quantizer ours follows,
 * every value must also be within one quant step of the file's (the files were
 * quantized from the F32 originals, so near-ties may round the other way).
 * Skips when the fixtures are absent. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "kern_test_util.h"
#include "kernels/kernels.h"

typedef struct {
    gguf_file *f16, *q;
} file_pair;

static gguf_file *open_model(const char *name) {
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", name);
    gguf_file *f = NULL;
    hearth_err err = {0};
    if (gguf_open(fixture_path(rel), &f, &err) != HEARTH_OK) fail_msg("open %s: %s", rel, err.msg);
    return f;
}

/* Dequantizes a whole 2-D tensor (rows of ne[0]) into a new float array. */
static float *dequantize(const gguf_tensor *t) {
    kern_matrix m = {.type = t->type, .rows = t->ne[1], .cols = t->ne[0],
                     .row_bytes = kern_row_bytes(t->type, t->ne[0]), .data = t->data};
    if (!kern_traits(t->type)) fail_msg("tensor type %u has no kernels", t->type);
    float *out = malloc(sizeof(float) * (size_t)(t->ne[0] * t->ne[1]));
    assert_non_null(out);
    for (int64_t r = 0; r < m.rows; r++) kern_get_row(&m, r, out + r * m.cols);
    return out;
}

static const gguf_tensor *tensor(gguf_file *f, const char *name) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) fail_msg("tensor %s missing", name);
    assert_int_equal(t->n_dims, 2);
    return t;
}

/* Compares one tensor of file q with the F16 original: returns the relative RMS error
   and checks our quantizer of the same type against the file's bytes. */
static double compare_tensor(gguf_file *f16, gguf_file *q, const char *name, double bound,
                             bool within_one_step) {
    const gguf_tensor *tr = tensor(f16, name), *tq = tensor(q, name);
    assert_int_equal(tr->ne[0], tq->ne[0]);
    assert_int_equal(tr->ne[1], tq->ne[1]);
    int64_t n = tr->ne[0] * tr->ne[1];
    float *ref = dequantize(tr), *got = dequantize(tq);
    double err = kt_rel_rms(got, ref, n);

    /* our quantizer on the same weights */
    const kern_type_traits *t = kern_scalar_traits(tq->type);
    size_t bytes = (size_t)tq->size;
    uint8_t *mine = malloc(bytes);
    float *mine_f = malloc(sizeof(float) * (size_t)n);
    assert_true(mine && mine_f);
    t->from_float(ref, mine, n);
    t->to_float(mine, mine_f, n);
    double my_err = kt_rel_rms(mine_f, ref, n);
    size_t bb = t->block_bytes, nblk = bytes / bb, same = 0;
    for (size_t b = 0; b < nblk; b++) same += memcmp(mine + b * bb, (const uint8_t *)tq->data + b * bb, bb) == 0;
    printf("  %-24s %-5s rel RMS error %.5f (file)  %.5f (ours), identical blocks %zu/%zu\n", name,
           t->name, err, my_err, same, nblk);

    if (err > bound) fail_msg("%s (%s): relative RMS error %.5f > %.5f", name, t->name, err, bound);
    if (my_err > err * 1.02 + 1e-6)
        fail_msg("%s (%s): our quantizer's error %.5f is worse than the file's %.5f", name, t->name, my_err, err);
    for (size_t b = 0; within_one_step && b < nblk; b++) {
        const uint8_t *blk = (const uint8_t *)tq->data + b * bb;
        float d = kern_f16_to_f32((uint16_t)(blk[0] | blk[1] << 8));   /* Q8_0/Q4_0 start with d */
        for (uint32_t e = 0; e < t->block_elems; e++) {
            size_t i = b * t->block_elems + e;
            if (fabsf(mine_f[i] - got[i]) > 1.01f * fabsf(d) + fabsf(ref[i]) * 0x1p-10f)
                fail_msg("%s (%s): element %zu is %g here, %g in the file (step %g)", name, t->name, i,
                         mine_f[i], got[i], d);
        }
    }
    free(ref);
    free(got);
    free(mine);
    free(mine_f);
    return err;
}

static void run_model(const char *file, double bound, bool within_one_step) {
    if (!fixtures_available()) return;
    gguf_file *f16 = open_model("llama-spm-f16.gguf"), *q = open_model(file);
    printf("%s vs llama-spm-f16.gguf:\n", file);
    const char *names[] = {"blk.0.ffn_down.weight", "blk.0.attn_q.weight", "blk.1.attn_v.weight",
                           "blk.1.ffn_gate.weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) compare_tensor(f16, q, names[i], bound, within_one_step);
    gguf_close(q);
    gguf_close(f16);
}

static void test_q8_0_file(void **state) { run_model("llama-spm-q8_0.gguf", 0.006, true); }
static void test_q4_0_file(void **state) { run_model("llama-spm-q4_0.gguf", 0.12, true); }
static void test_q4_k_m_file(void **state) { run_model("llama-spm-q4_k_m.gguf", 0.12, false); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_0_file),
        cmocka_unit_test(test_q4_0_file),
        cmocka_unit_test(test_q4_k_m_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
