/* Golden test of the whole model path against the reference engine's outputs in
 * ../shared/fixtures/ref: tokenization equals the reference's, every logits row is within
 * the fixture README's tolerance (KL of the softmaxes; F16: 1e-4 and all 24 greedy tokens
 * identical, decoding one token at a time through the KV cache; quantized: 5e-2 and top-1
 * agreement on >= 90% of rows), and prefill in one batch equals prefill one token at a
 * time. Prints the max KL per case for the record.
 *
 * llama-2-tiny-random: the reference's logits for this model are NaN in four of five
 * cases and, where finite, disagree with exact arithmetic (position 0, where attention is
 * the identity, is off by 2x in logit scale; a float64 recomputation agrees with Hearth to
 * 1e-6). So for it the test prints the KL against the reference for the record and asserts
 * against an exact float64 forward pass instead (tests/support/oracle.c). */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "oracle.h"
#include "engine/generate.h"
#include "model/model.h"

#define N_GREEDY 24
#define MAX_POS 128

typedef struct golden_model {
    const char *name;
    bool quantized;
    bool oracle; /* reference unusable: assert against the float64 oracle */
} golden_model;

static const golden_model models[] = {
    {"llama-spm-f16", false, false},  {"llama-spm-q8_0", true, false},       {"llama-spm-q4_0", true, false},
    {"llama-spm-q4_k_m", true, false}, {"qwen2t-bpe-q8_0", true, false}, {"llama-2-tiny-random", false, true},
};

/* KL(p || q) of the softmaxes of logits a (p) and b (q); NaN if a has non-finite values. */
static double kl_div(const float *a, const float *b, int64_t n) {
    double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0, kl = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return NAN;
        ma = fmax(ma, a[i]);
        mb = fmax(mb, b[i]);
    }
    for (int64_t i = 0; i < n; i++) {
        sa += exp(a[i] - ma);
        sb += exp(b[i] - mb);
    }
    double la = ma + log(sa), lb = mb + log(sb);
    for (int64_t i = 0; i < n; i++) kl += exp(a[i] - la) * ((a[i] - la) - (b[i] - lb));
    return kl;
}

static int32_t argmax_f(const float *x, int64_t n) {
    int32_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = (int32_t)i;
    return best;
}

/* ---- running Hearth ----------------------------------------------------------------- */

typedef struct runner {
    const model *m;
    model_ctx *ctx;
    kv_cache *kv;
    model_batch batch;
    int64_t n_vocab;
} runner;

static void runner_init(runner *r, const model *m) {
    hearth_err err;
    r->m = m;
    r->n_vocab = model_hp(m)->n_vocab;
    model_ctx_params cp = {.n_batch = MAX_POS, .n_outputs = MAX_POS, .n_ctx = MAX_POS};
    kv_config kc = model_kv_config(m, MAX_POS, 1);
    assert_int_equal(model_ctx_new(m, &cp, NULL, &r->ctx, &err), HEARTH_OK);
    assert_int_equal(kv_cache_new(&kc, &r->kv, &err), HEARTH_OK);
    assert_int_equal(model_batch_init(&r->batch, MAX_POS, &err), HEARTH_OK);
}

static void runner_free(runner *r) {
    model_batch_free(&r->batch);
    kv_cache_free(r->kv);
    model_ctx_free(r->ctx);
}

/* Runs tokens [from, to) as one batch at positions from..to-1, logits for all; copies
 * them to out[to - from][n_vocab]. */
static void run_batch(runner *r, const int32_t *tokens, int64_t from, int64_t to, float *out) {
    hearth_err err;
    model_batch_clear(&r->batch);
    for (int64_t i = from; i < to; i++) model_batch_add(&r->batch, tokens[i], (int32_t)i, 0, true);
    if (model_forward(r->ctx, r->kv, &r->batch, &err)) fail_msg("forward: %s", err.msg);
    for (int64_t i = 0; i < to - from; i++)
        memcpy(out + i * r->n_vocab, model_logits(r->ctx, (int32_t)i), (size_t)r->n_vocab * sizeof(float));
}

/* Prefill of n tokens then n_greedy argmax steps fed back one at a time. all_rows gets
 * the logits of every position (n + n_greedy rows); greedy the chosen tokens. */
static void run_greedy(runner *r, const int32_t *prompt, int64_t n, int n_greedy, float *all_rows,
                       int32_t *seq /* [n + n_greedy] */) {
    kv_seq_clear(r->kv, 0);
    memcpy(seq, prompt, (size_t)n * sizeof(int32_t));
    run_batch(r, seq, 0, n, all_rows);
    for (int i = 0; i < n_greedy; i++) {
        seq[n + i] = argmax_f(all_rows + (n + i - 1) * r->n_vocab, r->n_vocab);
        if (i + 1 < n_greedy) run_batch(r, seq, n + i, n + i + 1, all_rows + (n + i) * r->n_vocab);
    }
}

/* ---- per case ------------------------------------------------------------------------ */

/* The case's logits rows: the file ref.json names, or ref.caseN.f32 as the fixture
 * README names it (ref.json's logits_file omits the "ref." prefix). */
static float *read_rows(const char *model_name, const char *file, size_t ci, int64_t rows, int64_t n_vocab) {
    char rel[256];
    size_t len;
    snprintf(rel, sizeof rel, "ref/%s/%s", model_name, file);
    char *buf = read_file(fixture_path(rel), &len);
    if (!buf) {
        snprintf(rel, sizeof rel, "ref/%s/ref.case%zu.f32", model_name, ci);
        buf = read_file(fixture_path(rel), &len);
    }
    if (!buf) fail_msg("%s: cannot read the reference logits", rel);
    if (len != (size_t)(rows * n_vocab) * sizeof(float))
        fail_msg("%s: %zu bytes, expected %lld rows of %lld floats", rel, len, (long long)rows, (long long)n_vocab);
    return (float *)buf;
}

typedef struct model_tally {
    int rows, top1;
    double max_kl;
} model_tally;

static void check_tokens(const gen_model *gm, const char *prompt, const int32_t *ref, size_t n_ref, size_t ci) {
    hearth_err err;
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(tok_encode(gm->vocab, prompt, strlen(prompt), true, false, &ids, &n, &err), HEARTH_OK);
    bool same = n == n_ref;
    for (size_t i = 0; same && i < n; i++) same = ids[i] == ref[i];
    if (!same) {
        printf("case %zu tokens: ours", ci);
        for (size_t i = 0; i < n; i++) printf(" %d", ids[i]);
        printf("\n        ref ");
        for (size_t i = 0; i < n_ref; i++) printf(" %d", ref[i]);
        printf("\n");
        fail_msg("case %zu: tokenization differs from the reference (%zu vs %zu tokens)", ci, n, n_ref);
    }
    mem_free(ids);
}

/* Batch prefill equals one-token-at-a-time prefill within 1e-4 relative. */
static void check_batch_equals_sequential(runner *r, const int32_t *tokens, int64_t n, const float *batch_rows) {
    float *one = malloc((size_t)r->n_vocab * sizeof(float));
    kv_seq_clear(r->kv, 0);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        run_batch(r, tokens, i, i + 1, one);
        const float *b = batch_rows + i * r->n_vocab;
        double scale = 0, diff = 0;
        for (int64_t j = 0; j < r->n_vocab; j++) {
            scale = fmax(scale, fabs(b[j]));
            diff = fmax(diff, fabs(b[j] - one[j]));
        }
        worst = fmax(worst, diff / fmax(scale, 1e-30));
    }
    free(one);
    if (worst > 1e-4) fail_msg("batch vs one-at-a-time prefill: relative difference %g > 1e-4", worst);
}

static void run_case(const golden_model *gmd, const gen_model *gm, runner *r, json_t *cs, size_t ci,
                     int64_t n_vocab, model_tally *tally) {
    json_t *jt = json_object_get(cs, "tokens"), *jg = json_object_get(cs, "greedy");
    int64_t n = (int64_t)json_array_size(jt);
    bool all = !strcmp(json_string_value(json_object_get(cs, "logits_positions")), "all");
    assert_true(n > 0 && n + N_GREEDY <= MAX_POS && json_array_size(jg) == N_GREEDY);
    int32_t tokens[MAX_POS], seq[MAX_POS], ref_greedy[N_GREEDY];
    for (int64_t i = 0; i < n; i++) tokens[i] = (int32_t)json_integer_value(json_array_get(jt, i));
    for (int i = 0; i < N_GREEDY; i++) ref_greedy[i] = (int32_t)json_integer_value(json_array_get(jg, i));
    check_tokens(gm, json_string_value(json_object_get(cs, "prompt")), tokens, (size_t)n, ci);

    int64_t rows = all ? n : 1;
    float *ref = read_rows(gmd->name, json_string_value(json_object_get(cs, "logits_file")), ci, rows, n_vocab);
    float *ours = malloc((size_t)((n + N_GREEDY) * n_vocab) * sizeof(float));
    run_greedy(r, tokens, n, N_GREEDY, ours, seq);

    double max_kl = 0;
    int top1 = 0, nan_rows = 0;
    for (int64_t i = 0; i < rows; i++) {
        const float *mine = ours + (all ? i : n - 1) * n_vocab, *theirs = ref + i * n_vocab;
        double kl = kl_div(theirs, mine, n_vocab);
        if (isnan(kl)) {
            nan_rows++;
            continue;
        }
        max_kl = fmax(max_kl, kl);
        top1 += argmax_f(theirs, n_vocab) == argmax_f(mine, n_vocab);
        tally->rows++;
    }
    tally->top1 += top1;
    int greedy_same = 0;
    while (greedy_same < N_GREEDY && seq[n + greedy_same] == ref_greedy[greedy_same]) greedy_same++;
    printf("%-20s case %zu: %3lld tokens, max KL vs reference %.3g over %lld rows%s, top-1 %d, greedy %d/%d\n",
           gmd->name, ci, (long long)n, max_kl, (long long)(rows - nan_rows),
           nan_rows ? " (reference has NaN rows)" : "", top1, greedy_same, N_GREEDY);

    if (gmd->oracle) {
        float *exact = oracle_logits(gm->file, model_hp(r->m), seq, n + N_GREEDY - 1);
        double okl = 0;
        for (int64_t i = 0; i < n + N_GREEDY - 1; i++) {
            const float *ex = exact + i * n_vocab, *mine = ours + i * n_vocab;
            okl = fmax(okl, kl_div(ex, mine, n_vocab));
            if (i >= n - 1) { /* greedy step: our pick must be the oracle's best (or tied within 1e-4) */
                int32_t pick = seq[i + 1], best = argmax_f(ex, n_vocab);
                if (ex[best] - ex[pick] > 1e-4)
                    fail_msg("case %zu step %lld: picked %d (exact logit %g), exact best %d (%g)", ci,
                             (long long)(i - n + 1), pick, ex[pick], best, ex[best]);
            }
        }
        printf("%-20s case %zu: max KL vs float64 oracle %.3g over %lld positions (prompt + greedy)\n", gmd->name,
               ci, okl, (long long)(n + N_GREEDY - 1));
        if (okl > 1e-4) fail_msg("case %zu: KL vs the float64 oracle %g > 1e-4", ci, okl);
        free(exact);
    } else if (!gmd->quantized) {
        if (max_kl > 1e-4) fail_msg("case %zu: max KL %g > 1e-4", ci, max_kl);
        if (greedy_same != N_GREEDY) fail_msg("case %zu: greedy token %d differs", ci, greedy_same);
    } else if (max_kl > 5e-2) {
        fail_msg("case %zu: max KL %g > 5e-2", ci, max_kl);
    }
    if (!gmd->oracle && nan_rows) fail_msg("case %zu: the reference has %d NaN rows", ci, nan_rows);
    tally->max_kl = fmax(tally->max_kl, max_kl);
    if (all) check_batch_equals_sequential(r, tokens, n, ours);
    free(ref);
    free(ours);
}

static void test_model(void **state) {
    const golden_model *gmd = *state;
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s.gguf", gmd->name);
    hearth_err err;
    gen_model *gm = NULL;
    if (gen_model_open(fixture_path(rel), &gm, &err)) fail_msg("%s", err.msg);
    snprintf(rel, sizeof rel, "ref/%s/ref.json", gmd->name);
    json_error_t jerr;
    json_t *root = json_load_file(fixture_path(rel), 0, &jerr);
    if (!root) fail_msg("%s: %s", rel, jerr.text);
    int64_t n_vocab = json_integer_value(json_object_get(root, "n_vocab"));
    assert_int_equal(n_vocab, model_hp(gm->model)->n_vocab);

    runner r;
    runner_init(&r, gm->model);
    model_tally tally = {0};
    json_t *cases = json_object_get(root, "cases");
    for (size_t ci = 0; ci < json_array_size(cases); ci++)
        run_case(gmd, gm, &r, json_array_get(cases, ci), ci, n_vocab, &tally);
    printf("%-20s max KL vs reference %.3g, top-1 agreement %d/%d rows\n", gmd->name, tally.max_kl, tally.top1,
           tally.rows);
    if (gmd->quantized && tally.top1 * 10 < tally.rows * 9)
        fail_msg("%s: top-1 agreement %d/%d < 90%%", gmd->name, tally.top1, tally.rows);
    runner_free(&r);
    json_decref(root);
    gen_model_close(gm);
}

int main(void) {
    if (!fixtures_available()) return 0;
    struct CMUnitTest tests[sizeof models / sizeof models[0]];
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        tests[i] = (struct CMUnitTest){models[i].name, test_model, NULL, NULL, (void *)&models[i]};
    return _cmocka_run_group_tests("golden_logits", tests, sizeof models / sizeof models[0], NULL, NULL);
}
