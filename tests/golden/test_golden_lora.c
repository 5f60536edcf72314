/* Golden test of LoRA adapters against ../shared/fixtures/ref/lora-r8-s1 and lora-r8-s05
 * (adapters/lora-llama-spm-r8.gguf on models/llama-spm-f16.gguf, exact float64 reference):
 * every logits row within KL 1e-4 and all 12 greedy tokens identical, decoding one token
 * at a time through the KV cache. Also: scale 0 gives exactly the base model's logits;
 * three sequences with different selections (scale 1, scale 0.5, no adapter) in ONE
 * batch, prefill and decode, each match their single-sequence runs; and `hearth logits
 * --lora` writes the reference's rows. Prints the max KL per case for the record. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/generate.h"
#include "model/lora.h"
#include "model/model.h"

#define MODEL "models/llama-spm-f16.gguf"
#define ADAPTER "adapters/lora-llama-spm-r8.gguf"
#define N_GREEDY 12
#define MAX_POS 128
#define N_SEQ 3

static gen_model *gm;
static model_lora *adapter;
static int64_t n_vocab;

static int setup(void **state) {
    hearth_err err;
    if (gen_model_open(fixture_path(MODEL), &gm, &err)) fail_msg("%s", err.msg);
    if (model_lora_open(gm->model, fixture_path(ADAPTER), &adapter, &err)) fail_msg("%s", err.msg);
    n_vocab = model_hp(gm->model)->n_vocab;
    return 0;
}

static int teardown(void **state) {
    model_lora_release(adapter);
    gen_model_close(gm);
    return 0;
}

static double kl_div(const float *a, const float *b, int64_t n) {
    double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0, kl = 0;
    for (int64_t i = 0; i < n; i++) {
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

static double max_abs_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* ---- a model context with N_SEQ sequences --------------------------------------- */

typedef struct runner {
    model_ctx *ctx;
    kv_cache *kv;
    model_batch batch;
    model_lora_use use[N_SEQ];
    model_lora_set set[N_SEQ];
    model_lora_map map;
} runner;

/* scale[s] < 0 means sequence s runs without an adapter. */
static void runner_init(runner *r, const float scale[N_SEQ]) {
    hearth_err err;
    model_ctx_params cp = {.n_batch = MAX_POS, .n_outputs = MAX_POS, .n_ctx = MAX_POS};
    kv_config kc = model_kv_config(gm->model, MAX_POS, N_SEQ);
    assert_int_equal(model_ctx_new(gm->model, &cp, NULL, &r->ctx, &err), HEARTH_OK);
    assert_int_equal(kv_cache_new(&kc, &r->kv, &err), HEARTH_OK);
    assert_int_equal(model_batch_init(&r->batch, MAX_POS, &err), HEARTH_OK);
    for (int s = 0; s < N_SEQ; s++) {
        r->use[s] = (model_lora_use){adapter, scale[s]};
        r->set[s] = (model_lora_set){scale[s] >= 0 ? 1 : 0, &r->use[s]};
    }
    r->map = (model_lora_map){N_SEQ, r->set};
}

static void runner_free(runner *r) {
    model_batch_free(&r->batch);
    kv_cache_free(r->kv);
    model_ctx_free(r->ctx);
}

static void forward(runner *r, float *out) {
    hearth_err err;
    if (model_forward_lora(r->ctx, r->kv, &r->batch, &r->map, &err)) fail_msg("forward: %s", err.msg);
    for (int32_t i = 0; i < model_n_outputs(r->ctx); i++)
        memcpy(out + i * n_vocab, model_logits(r->ctx, i), (size_t)n_vocab * sizeof(float));
}

/* Sequence seq: prefill tokens[0..n) in one batch then n_greedy argmax steps; all_rows
 * gets every position's logits, greedy the chosen tokens. */
static void run_greedy(runner *r, int32_t seq, const int32_t *tokens, int64_t n, int n_greedy, float *all_rows,
                       int32_t *greedy) {
    model_batch_clear(&r->batch);
    for (int64_t i = 0; i < n; i++) model_batch_add(&r->batch, tokens[i], (int32_t)i, seq, true);
    forward(r, all_rows);
    for (int i = 0; i < n_greedy; i++) {
        greedy[i] = argmax_f(all_rows + (n + i - 1) * n_vocab, n_vocab);
        if (i + 1 == n_greedy) break;
        model_batch_clear(&r->batch);
        model_batch_add(&r->batch, greedy[i], (int32_t)(n + i), seq, true);
        forward(r, all_rows + (n + i) * n_vocab);
    }
}

/* ---- the references -------------------------------------------------------------- */

static json_t *load_ref(const char *dir) {
    char rel[128];
    snprintf(rel, sizeof rel, "ref/%s/ref.json", dir);
    json_error_t jerr;
    json_t *root = json_load_file(fixture_path(rel), 0, &jerr);
    if (!root) fail_msg("%s: %s", rel, jerr.text);
    assert_int_equal(json_integer_value(json_object_get(root, "n_vocab")), n_vocab);
    return root;
}

static float *read_rows(const char *dir, size_t ci, int64_t rows) {
    char rel[128];
    size_t len;
    snprintf(rel, sizeof rel, "ref/%s/ref.case%zu.f32", dir, ci);
    char *buf = read_file(fixture_path(rel), &len);
    if (!buf || len != (size_t)(rows * n_vocab) * sizeof(float))
        fail_msg("%s: missing or %zu bytes, expected %lld rows", rel, buf ? len : 0, (long long)rows);
    return (float *)buf;
}

static int64_t case_tokens(json_t *cs, int32_t *tokens) {
    json_t *jt = json_object_get(cs, "tokens");
    int64_t n = (int64_t)json_array_size(jt);
    assert_true(n > 0 && n + N_GREEDY <= MAX_POS);
    for (int64_t i = 0; i < n; i++) tokens[i] = (int32_t)json_integer_value(json_array_get(jt, i));
    return n;
}

static void check_reference(const char *dir, float scale) {
    json_t *root = load_ref(dir), *cases = json_object_get(root, "cases");
    assert_true(json_array_size(cases) > 0);
    double worst = 0;
    for (size_t ci = 0; ci < json_array_size(cases); ci++) {
        json_t *cs = json_array_get(cases, ci), *jg = json_object_get(cs, "greedy");
        int32_t tokens[MAX_POS], greedy[N_GREEDY];
        int64_t n = case_tokens(cs, tokens);
        assert_int_equal(json_array_size(jg), N_GREEDY);
        bool all = !strcmp(json_string_value(json_object_get(cs, "logits_positions")), "all");
        int64_t rows = all ? n : 1;
        runner r;
        runner_init(&r, (float[N_SEQ]){scale, -1, -1});
        float *ours = malloc((size_t)((n + N_GREEDY) * n_vocab) * sizeof(float));
        run_greedy(&r, 0, tokens, n, N_GREEDY, ours, greedy);
        float *ref = read_rows(dir, ci, rows);
        double max_kl = 0;
        for (int64_t i = 0; i < rows; i++)
            max_kl = fmax(max_kl, kl_div(ref + i * n_vocab, ours + (all ? i : n - 1) * n_vocab, n_vocab));
        int same = 0;
        while (same < N_GREEDY && greedy[same] == json_integer_value(json_array_get(jg, same))) same++;
        printf("%s case %zu: %3lld tokens, max KL %.3g over %lld rows, greedy %d/%d\n", dir, ci, (long long)n, max_kl,
               (long long)rows, same, N_GREEDY);
        if (max_kl > 1e-4) fail_msg("%s case %zu: max KL %g > 1e-4", dir, ci, max_kl);
        if (same != N_GREEDY)
            fail_msg("%s case %zu: greedy token %d is %d, reference %lld", dir, ci, same, greedy[same],
                     (long long)json_integer_value(json_array_get(jg, same)));
        worst = fmax(worst, max_kl);
        free(ref);
        free(ours);
        runner_free(&r);
    }
    printf("%s: max KL %.3g\n", dir, worst);
    json_decref(root);
}

static void test_scale_1(void **state) { check_reference("lora-r8-s1", 1.0f); }
static void test_scale_05(void **state) { check_reference("lora-r8-s05", 0.5f); }

/* ---- scale 0 and mixed batches ---------------------------------------------------- */

static const int32_t prompt_a[] = {1, 450, 7483, 310, 3444, 338};
static const int32_t prompt_b[] = {1, 9038, 2501, 263, 931, 29892, 727, 471, 263};
static const int32_t prompt_c[] = {1, 15043, 3186, 29991};

/* Scale 0 skips the adapter entirely: bit-identical to running without a map. */
static void test_scale_zero_is_base(void **state) {
    int64_t n = sizeof prompt_b / sizeof prompt_b[0];
    float *base = malloc((size_t)(n * n_vocab) * sizeof(float)), *zero = malloc((size_t)(n * n_vocab) * sizeof(float));
    runner r;
    runner_init(&r, (float[N_SEQ]){0.0f, -1, -1});
    for (int64_t i = 0; i < n; i++) model_batch_add(&r.batch, prompt_b[i], (int32_t)i, 0, true);
    forward(&r, zero);
    hearth_err err;
    kv_seq_clear(r.kv, 0);
    assert_int_equal(model_forward(r.ctx, r.kv, &r.batch, &err), HEARTH_OK);
    for (int64_t i = 0; i < n; i++) memcpy(base + i * n_vocab, model_logits(r.ctx, (int32_t)i), (size_t)n_vocab * 4);
    double d = max_abs_diff(base, zero, n * n_vocab);
    printf("scale 0 vs base: max |diff| %g over %lld rows\n", d, (long long)n);
    if (d != 0) fail_msg("scale 0 differs from the base model by %g", d);
    free(base);
    free(zero);
    runner_free(&r);
}

typedef struct seq_case {
    const int32_t *prompt;
    int64_t n;
} seq_case;

/* Three sequences with scale 1, scale 0.5 and no adapter, prefilled together in one batch,
 * then two decode steps of one token each, also batched; every row equals the same
 * sequence run alone. */
static void test_mixed_batch(void **state) {
    const float scales[N_SEQ] = {1.0f, 0.5f, -1.0f};
    const seq_case seqs[N_SEQ] = {{prompt_a, sizeof prompt_a / 4}, {prompt_b, sizeof prompt_b / 4},
                                  {prompt_c, sizeof prompt_c / 4}};
    enum { STEPS = 3 };
    float *alone[N_SEQ], *mixed = malloc((size_t)(MAX_POS * n_vocab) * sizeof(float));
    int32_t next[N_SEQ][STEPS];
    for (int s = 0; s < N_SEQ; s++) {
        runner r;
        runner_init(&r, scales);
        alone[s] = malloc((size_t)((seqs[s].n + STEPS) * n_vocab) * sizeof(float));
        run_greedy(&r, s, seqs[s].prompt, seqs[s].n, STEPS, alone[s], next[s]);
        runner_free(&r);
    }
    runner r;
    runner_init(&r, scales);
    model_batch_clear(&r.batch); /* interleaved: token i of every sequence, then i + 1 */
    for (int64_t i = 0; i < MAX_POS; i++)
        for (int s = 0; s < N_SEQ; s++)
            if (i < seqs[s].n) model_batch_add(&r.batch, seqs[s].prompt[i], (int32_t)i, s, true);
    forward(&r, mixed);
    double worst = 0;
    int32_t row = 0;
    for (int64_t i = 0; i < MAX_POS; i++)
        for (int s = 0; s < N_SEQ; s++)
            if (i < seqs[s].n)
                worst = fmax(worst, max_abs_diff(mixed + row++ * n_vocab, alone[s] + i * n_vocab, n_vocab));
    for (int step = 0; step + 1 < STEPS; step++) {
        model_batch_clear(&r.batch);
        for (int s = N_SEQ - 1; s >= 0; s--)
            model_batch_add(&r.batch, next[s][step], (int32_t)(seqs[s].n + step), s, true);
        forward(&r, mixed);
        for (int s = N_SEQ - 1, k = 0; s >= 0; s--, k++)
            worst = fmax(worst, max_abs_diff(mixed + k * n_vocab, alone[s] + (seqs[s].n + step) * n_vocab, n_vocab));
    }
    printf("mixed batch (scale 1, scale 0.5, none) vs alone: max |diff| %g\n", worst);
    if (worst > 1e-4) fail_msg("a sequence in the mixed batch differs from its run alone by %g", worst);
    for (int s = 0; s < N_SEQ; s++) { /* each sequence really ran with its own selection */
        runner b;
        runner_init(&b, (float[N_SEQ]){-1, -1, -1});
        float *base = malloc((size_t)((seqs[s].n + STEPS) * n_vocab) * sizeof(float));
        int32_t unused[STEPS];
        run_greedy(&b, s, seqs[s].prompt, seqs[s].n, 1, base, unused);
        double d = max_abs_diff(base + (seqs[s].n - 1) * n_vocab, alone[s] + (seqs[s].n - 1) * n_vocab, n_vocab);
        printf("sequence %d (%s, scale %g): last prompt row differs from the base model by %g\n", s,
               scales[s] < 0 ? "no adapter" : "adapter", scales[s] < 0 ? 0.0 : scales[s], d);
        if (scales[s] > 0 ? d < 1e-2 : d != 0) fail_msg("sequence %d: the adapter selection had no effect", s);
        free(base);
        runner_free(&b);
    }
    runner_free(&r);
    for (int s = 0; s < N_SEQ; s++) free(alone[s]);
    free(mixed);
}

/* ---- the CLI ------------------------------------------------------------------------ */

static void test_cli(void **state) {
    json_t *root = load_ref("lora-r8-s05"), *cs = NULL;
    size_t ci;
    json_array_foreach(json_object_get(root, "cases"), ci, cs)
        if (!strcmp(json_string_value(json_object_get(cs, "logits_positions")), "all")) break;
    assert_non_null(cs);
    int32_t tokens[MAX_POS];
    int64_t n = case_tokens(cs, tokens);
    char out_path[64], model_q[1100], args[4096];
    snprintf(out_path, sizeof out_path, "/tmp/hearth-lora-%d.f32", (int)getpid());
    snprintf(model_q, sizeof model_q, "'%s'", fixture_path(MODEL));
    snprintf(args, sizeof args, "logits -m %s --all -t 1 -o %s --lora '%s:0.5' -p '%s'", model_q, out_path,
             fixture_path(ADAPTER), json_string_value(json_object_get(cs, "prompt")));
    char *out = NULL, *errout = NULL;
    int code = run_hearth(args, &out, &errout);
    if (code != 0) fail_msg("hearth %s: exit %d, stderr: %s", args, code, errout);
    size_t len;
    float *ours = (float *)read_file(out_path, &len);
    unlink(out_path);
    assert_non_null(ours);
    assert_int_equal(len, (size_t)(n * n_vocab) * sizeof(float));
    float *ref = read_rows("lora-r8-s05", ci, n);
    double max_kl = 0;
    for (int64_t i = 0; i < n; i++) max_kl = fmax(max_kl, kl_div(ref + i * n_vocab, ours + i * n_vocab, n_vocab));
    printf("hearth logits --lora ...:0.5 case %zu: max KL %.3g over %lld rows\n", ci, max_kl, (long long)n);
    if (max_kl > 1e-4) fail_msg("CLI with --lora: max KL %g > 1e-4", max_kl);
    free(ref);
    free(ours);
    free(out);
    free(errout);
    json_decref(root);
}

int main(void) {
    if (!fixtures_available()) return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scale_1),          cmocka_unit_test(test_scale_05),
        cmocka_unit_test(test_scale_zero_is_base), cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
