/* Quantized by Hearth, judged by the reference: the fixture F16 model quantized with
 * quant_file, run by the model layer, against the reference engine's F16 logits.
 * Q8_0 must land in the fixture README's band for quantized weights (KL <= 5e-2 at every
 * checked position, top-1 agreement on >= 90%). Q4_K_M cannot: 4-bit weights move these
 * peaked random models far more, and the reference's own Q4_K_M file (quantized by its
 * quantizer from the same F16 weights) is up to KL 0.41 from its F16 logits. So Q4_K_M is
 * held to that yardstick: mean KL at most 1.25x and worst KL at most 1.5x those of the
 * reference's Q4_K_M logits, and top-1 agreement on >= 60% of positions (a broken
 * encoder or recipe gives KL >= 1 and near-random top-1). Prints both sides. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "quant/quant.h"

#define MAX_POS 128
#define REF "llama-spm-f16"

/* KL(p || q) of the softmaxes of a (p, the reference) and b (q). */
static double kl_div(const float *a, const float *b, int64_t n) {
    double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0, kl = 0;
    for (int64_t i = 0; i < n; i++) ma = fmax(ma, a[i]), mb = fmax(mb, b[i]);
    for (int64_t i = 0; i < n; i++) sa += exp(a[i] - ma), sb += exp(b[i] - mb);
    double la = ma + log(sa), lb = mb + log(sb);
    for (int64_t i = 0; i < n; i++) kl += exp(a[i] - la) * ((a[i] - la) - (b[i] - lb));
    return kl;
}

static int64_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct tally {
    int rows, top1, ref_top1;
    double max_kl, sum_kl;           /* ours against the F16 reference */
    double ref_max_kl, ref_sum_kl;   /* the reference's own quantized file against it */
} tally;

static float *read_rows(const char *model_name, const char *file, int64_t rows, int64_t n_vocab) {
    char rel[256];
    size_t len;
    snprintf(rel, sizeof rel, "ref/%s/ref.%s", model_name, file);
    float *x = (float *)read_file(fixture_path(rel), &len);
    if (!x) fail_msg("cannot read %s", rel);
    if (len != (size_t)(rows * n_vocab) * sizeof(float)) fail_msg("%s: %zu bytes", rel, len);
    return x;
}

/* Runs one case's tokens in one batch and compares the positions the reference kept;
 * ref_model names the reference's logits for its own quantized file of the same type. */
static void check_case(model *m, json_t *c, size_t ci, int64_t n_vocab, const char *ref_model, bool band,
                       tally *t) {
    json_t *toks = json_object_get(c, "tokens");
    const char *positions = json_string_value(json_object_get(c, "logits_positions"));
    const char *file = json_string_value(json_object_get(c, "logits_file"));
    size_t n = json_array_size(toks);
    assert_true(n > 0 && n <= MAX_POS && positions && file);
    bool all = !strcmp(positions, "all");
    int64_t rows = all ? (int64_t)n : 1;
    float *ref = read_rows(REF, file, rows, n_vocab), *refq = read_rows(ref_model, file, rows, n_vocab);

    hearth_err err = {0};
    model_ctx *ctx = NULL;
    kv_cache *kv = NULL;
    model_batch b;
    model_ctx_params cp = {.n_batch = MAX_POS, .n_outputs = MAX_POS, .n_ctx = MAX_POS};
    kv_config kc = model_kv_config(m, MAX_POS, 1);
    if (model_ctx_new(m, &cp, NULL, &ctx, &err) || kv_cache_new(&kc, &kv, &err) || model_batch_init(&b, MAX_POS, &err))
        fail_msg("%s", err.msg);
    for (size_t i = 0; i < n; i++)
        model_batch_add(&b, (int32_t)json_integer_value(json_array_get(toks, i)), (int32_t)i, 0, all || i == n - 1);
    if (model_forward(ctx, kv, &b, &err)) fail_msg("case %zu: %s", ci, err.msg);
    for (int64_t r = 0; r < rows; r++) {
        const float *ours = model_logits(ctx, (int32_t)r), *want = ref + r * n_vocab;
        double kl = kl_div(want, ours, n_vocab);
        double ref_kl = kl_div(want, refq + r * n_vocab, n_vocab);
        if (band && !(kl <= 5e-2)) fail_msg("case %zu row %lld: KL %.4g > 5e-2", ci, (long long)r, kl);
        t->max_kl = fmax(t->max_kl, kl);
        t->sum_kl += kl;
        t->ref_max_kl = fmax(t->ref_max_kl, ref_kl);
        t->ref_sum_kl += ref_kl;
        t->rows++;
        t->top1 += argmax(want, n_vocab) == argmax(ours, n_vocab);
        t->ref_top1 += argmax(want, n_vocab) == argmax(refq + r * n_vocab, n_vocab);
    }
    model_batch_free(&b);
    kv_cache_free(kv);
    model_ctx_free(ctx);
    free(refq);
    free(ref);
}

static void check_scheme(const char *scheme, const char *ref_model, bool band) {
    if (!fixtures_available()) return;
    char out[64];
    snprintf(out, sizeof out, "/tmp/hearth-qlogits-%d.gguf", (int)getpid());
    gguf_file *in = NULL, *q = NULL;
    hearth_err err = {0};
    if (gguf_open(fixture_path("models/" REF ".gguf"), &in, &err)) fail_msg("%s", err.msg);
    if (quant_file(in, out, quant_scheme_find(scheme), NULL, NULL, NULL, &err)) fail_msg("%s", err.msg);
    gguf_close(in);
    if (gguf_open(out, &q, &err)) fail_msg("%s", err.msg);
    unlink(out);
    model *m = NULL;
    if (model_new(q, &m, &err)) fail_msg("%s", err.msg);

    json_error_t je;
    json_t *root = json_load_file(fixture_path("ref/" REF "/ref.json"), 0, &je);
    if (!root) fail_msg("ref.json: %s", je.text);
    int64_t n_vocab = json_integer_value(json_object_get(root, "n_vocab"));
    assert_int_equal(n_vocab, model_hp(m)->n_vocab);
    json_t *cases = json_object_get(root, "cases");
    tally t = {0};
    for (size_t ci = 0; ci < json_array_size(cases); ci++)
        check_case(m, json_array_get(cases, ci), ci, n_vocab, ref_model, band, &t);
    printf("%s against the F16 reference: Hearth's file mean KL %.4f, max %.4f, top-1 %d/%d; "
           "the reference's file mean KL %.4f, max %.4f, top-1 %d/%d\n", scheme, t.sum_kl / t.rows, t.max_kl, t.top1,
           t.rows, t.ref_sum_kl / t.rows, t.ref_max_kl, t.ref_top1, t.rows);
    if (band && t.top1 * 10 < t.rows * 9)
        fail_msg("%s: top-1 agrees on %d of %d rows, want >= 90%%", scheme, t.top1, t.rows);
    if (!band) {
        if (!(t.sum_kl <= 1.25 * t.ref_sum_kl && t.max_kl <= 1.5 * t.ref_max_kl))
            fail_msg("%s: mean KL %.4f / max %.4f against the reference quantizer's %.4f / %.4f", scheme,
                     t.sum_kl / t.rows, t.max_kl, t.ref_sum_kl / t.rows, t.ref_max_kl);
        if (t.top1 * 10 < t.rows * 6) fail_msg("%s: top-1 agrees on %d of %d rows, want >= 60%%", scheme, t.top1, t.rows);
    }
    json_decref(root);
    model_free(m);
    gguf_close(q);
}

static void test_q8_0(void **state) { check_scheme("Q8_0", "llama-spm-q8_0", true); }
static void test_q4_k_m(void **state) { check_scheme("Q4_K_M", "llama-spm-q4_k_m", false); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_0),
        cmocka_unit_test(test_q4_k_m),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
