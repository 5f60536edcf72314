/* An interrupted forward pass (model_ctx_set_interrupt) must leave no trace: stopped at
 * each of its checks in turn (before every layer, before every piece of the output
 * projection), it returns CANCELLED with the cache as it was, and the pass redone gives
 * bit for bit the logits of a pass that was never interrupted; so does a pass whose
 * check never fires (the output projection then runs in pieces). Covers a prompt and a
 * decode token after it. Uses the F16 fixture model (its output matrix is tiled on
 * AVX-512). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kv_cache.h"
#include "gguf/gguf.h"
#include "model/model.h"

#define MODEL "models/llama-spm-f16.gguf"
#define N_PROMPT 6

typedef struct check_count {
    int calls, stop_at; /* stop_at: the call (from 1) that returns true; 0: never */
} check_count;

static bool count_checks(void *arg) {
    check_count *cc = arg;
    return ++cc->calls == cc->stop_at;
}

typedef struct runner {
    const model *m;
    model_ctx *c;
    kv_cache *kv;
    model_batch b;
    int64_t n_vocab;
} runner;

static void runner_init(runner *r, const model *m) {
    hearth_err err;
    r->m = m;
    r->n_vocab = model_hp(m)->n_vocab;
    model_ctx_params cp = {.n_batch = N_PROMPT, .n_outputs = 1, .n_ctx = 64};
    kv_config kc = model_kv_config(m, 64, 1);
    assert_int_equal(model_ctx_new(m, &cp, NULL, &r->c, &err), HEARTH_OK);
    assert_int_equal(kv_cache_new(&kc, &r->kv, &err), HEARTH_OK);
    assert_int_equal(model_batch_init(&r->b, N_PROMPT, &err), HEARTH_OK);
}

static void runner_free(runner *r) {
    model_batch_free(&r->b);
    kv_cache_free(r->kv);
    model_ctx_free(r->c);
}

static const int32_t prompt[N_PROMPT] = {1, 450, 4996, 17354, 1701, 29916};
#define NEXT_TOKEN 432

/* The prompt (step 0) or the decode token after it (step 1) as the next batch. */
static void fill(runner *r, int step) {
    model_batch_clear(&r->b);
    if (step == 0)
        for (int t = 0; t < N_PROMPT; t++) model_batch_add(&r->b, prompt[t], t, 0, t == N_PROMPT - 1);
    else
        model_batch_add(&r->b, NEXT_TOKEN, N_PROMPT, 0, true);
}

static void run_ok(runner *r, int step, float *logits) {
    hearth_err err;
    fill(r, step);
    if (model_forward(r->c, r->kv, &r->b, &err)) fail_msg("step %d: %s", step, err.msg);
    memcpy(logits, model_logits(r->c, 0), (size_t)r->n_vocab * sizeof(float));
}

static void expect_same(const float *got, const float *want, int64_t n, const char *what, int step, int stop_at) {
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof got[i]) != 0)
            fail_msg("%s, step %d, stopped at check %d: logit %lld is %.9g, uninterrupted %.9g", what, step, stop_at,
                     (long long)i, got[i], want[i]);
}

static void test_interrupted_pass_leaves_no_trace(void **state) {
    (void)state;
    if (!fixtures_available()) return;
    hearth_err err;
    gguf_file *f = NULL;
    model *m = NULL;
    assert_int_equal(gguf_open(fixture_path(MODEL), &f, &err), HEARTH_OK);
    assert_int_equal(model_new(f, &m, &err), HEARTH_OK);
    runner ref;
    runner_init(&ref, m);
    int64_t nv = ref.n_vocab;
    float *want[2] = {malloc(sizeof(float) * (size_t)nv), malloc(sizeof(float) * (size_t)nv)};
    float *got = malloc(sizeof(float) * (size_t)nv);
    assert_non_null(want[0]);
    assert_non_null(want[1]);
    assert_non_null(got);
    run_ok(&ref, 0, want[0]);
    run_ok(&ref, 1, want[1]);

    /* a check that never fires: the pieces of the output give the same logits */
    runner quiet;
    runner_init(&quiet, m);
    check_count never = {0, 0};
    model_ctx_set_interrupt(quiet.c, count_checks, &never);
    run_ok(&quiet, 0, got);
    expect_same(got, want[0], nv, "never fired", 0, 0);
    int checks = never.calls;
    assert_true(checks >= (int)model_hp(m)->n_layer + 2); /* the layers and at least two output pieces */
    runner_free(&quiet);

    for (int step = 0; step < 2; step++)
        for (int k = 1; k <= checks; k++) {
            runner r;
            runner_init(&r, m);
            if (step == 1) run_ok(&r, 0, got);
            int64_t len = kv_seq_len(r.kv, 0);
            check_count cc = {0, k};
            model_ctx_set_interrupt(r.c, count_checks, &cc);
            fill(&r, step);
            hearth_status st = model_forward(r.c, r.kv, &r.b, &err);
            if (st != HEARTH_ERR_CANCELLED)
                fail_msg("step %d, check %d of %d: status %d, want CANCELLED", step, k, checks, (int)st);
            assert_int_equal(cc.calls, k);
            assert_int_equal(kv_seq_len(r.kv, 0), len);
            model_ctx_set_interrupt(r.c, NULL, NULL);
            run_ok(&r, step, got);
            expect_same(got, want[step], nv, "redone", step, k);
            runner_free(&r);
        }
    free(want[0]);
    free(want[1]);
    free(got);
    runner_free(&ref);
    model_free(m);
    gguf_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interrupted_pass_leaves_no_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
