/* LoRA adapters in the scheduler (fixtures/adapters/lora-llama-spm-r8.gguf on
 * llama-spm-f16.gguf): sequences with the adapter at scale 1, at scale 0.5 and without
 * one, submitted together so they share steps (prefill chunks next to decodes), each
 * produce exactly the greedy tokens and text of the single-sequence loop run with the
 * same selection; the adapter changes the output; the scheduler keeps its own
 * references (the caller releases the adapter right after submitting); and cached prefix
 * pages are only reused by a prompt run with the same adapters and scales. */
#include "testutil.h"

#include "model/lora.h"
#include "sched_test_util.h"

#define ADAPTER "adapters/lora-llama-spm-r8.gguf"
#define N_CTX 256

static model_lora *adapter;

static int setup(void **state) {
    st_open("models/llama-spm-f16.gguf");
    if (!st_model) return 0;
    hearth_err err = {0};
    if (model_lora_open(st_model->model, fixture_path(ADAPTER), &adapter, &err)) fail_msg("%s", err.msg);
    return 0;
}

static int teardown(void **state) {
    model_lora_release(adapter);
    adapter = NULL;
    return st_close(state);
}

/* The single-sequence loop with adapter a at scale (a NULL: none). */
static void reference(const sched_request *q, model_lora *a, float scale, st_result *out) {
    memset(out, 0, sizeof *out);
    gen_config cfg = {.n_ctx = N_CTX, .n_batch = 64, .n_threads = 2};
    gen_engine *e = NULL;
    hearth_err err = {0};
    if (gen_engine_new(st_model->model, st_model->vocab, &cfg, &e, &err)) fail_msg("gen_engine_new: %s", err.msg);
    model_lora_use use = {a, scale};
    if (a && gen_set_lora(e, &use, 1, &err)) fail_msg("gen_set_lora: %s", err.msg);
    gen_request gr = {.prompt = q->prompt, .n_prompt = q->n_prompt, .n_predict = q->max_tokens, .sampling = &q->sampling};
    gen_stats stats;
    if (gen_generate(e, &gr, st_piece, out, &stats, &err)) fail_msg("gen_generate: %s", err.msg);
    out->completion_tokens = stats.n_generated;
    out->finish = stats.stop == GEN_STOP_EOG ? SCHED_FINISH_STOP : SCHED_FINISH_LENGTH;
    gen_engine_free(e);
}

static bool same_tokens(const st_result *a, const st_result *b) {
    return a->n_tokens == b->n_tokens && memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof *a->tokens) == 0;
}

static st_result want[3], got[3];

static void test_mixed_adapters_in_one_batch(void **state) {
    ST_NEED_MODEL();
    static int32_t prompts[3][80];
    static const size_t lens[3] = {70, 23, 41};
    static const float scales[3] = {1.0f, 0.5f, 0.0f};
    model_lora_use use[3];
    sched_request req[3];
    for (int i = 0; i < 3; i++) {
        st_prompt(prompts[i], lens[i], 40 + (uint32_t)i);
        st_request(&req[i], prompts[i], lens[i], 16);
        req[i].sampling.temperature = 0.0f;
        req[i].n_logprobs = -1;
        use[i] = (model_lora_use){adapter, scales[i]};
        if (i < 2) req[i].lora = (model_lora_set){1, &use[i]};
        reference(&req[i], i < 2 ? adapter : NULL, scales[i], &want[i]);
    }
    /* the first prompt's adapter-free run differs from its adapter run */
    st_result base;
    reference(&req[0], NULL, 0, &base);
    if (same_tokens(&base, &want[0])) fail_msg("the adapter does not change the greedy tokens of prompt 0");

    /* a private reference, released right after submitting: the scheduler holds its own */
    model_lora *mine = NULL;
    hearth_err err = {0};
    if (model_lora_open(st_model->model, fixture_path(ADAPTER), &mine, &err)) fail_msg("%s", err.msg);
    use[0].adapter = mine;
    /* 24-token steps: prompts are chunked and run next to the others' decodes */
    sched *s = st_sched(3, 4, 24, N_CTX);
    sched_seq *q[3];
    for (int i = 0; i < 3; i++) q[i] = st_submit(s, &req[i]);
    model_lora_release(mine);
    for (int i = 0; i < 3; i++) {
        st_collect(q[i], -1, &got[i]);
        sched_release(q[i]);
    }
    static const char *const what[3] = {"adapter at scale 1", "adapter at scale 0.5", "no adapter"};
    for (int i = 0; i < 3; i++) st_expect_same(&want[i], &got[i], what[i]);
    sched_free(s);
}

static void test_bad_adapter_set_refused(void **state) {
    ST_NEED_MODEL();
    int32_t prompt[4] = {1, 5, 6, 7};
    sched_request r;
    st_request(&r, prompt, 4, 2);
    model_lora_use use = {adapter, NAN};
    r.lora = (model_lora_set){1, &use};
    sched *s = st_sched(1, 1, 8, 64);
    sched_seq *q = NULL;
    hearth_err err = {0};
    hearth_status st = sched_submit(s, &r, &q, &err);
    if (st != HEARTH_ERR_INVALID) fail_msg("a NaN scale gave status %d (%s), want INVALID", st, err.msg);
    use.adapter = NULL;
    use.scale = 1;
    st = sched_submit(s, &r, &q, &err);
    if (st != HEARTH_ERR_INVALID) fail_msg("a NULL adapter gave status %d (%s), want INVALID", st, err.msg);
    sched_free(s);
}

/* Runs r alone through s and returns its result in *out. */
static void run_one(sched *s, const sched_request *r, st_result *out) {
    sched_seq *q = st_submit(s, r);
    st_collect(q, -1, out);
    sched_release(q);
}

static st_result res, ref_base, ref_lora, ref_half;

static void test_prefix_not_shared_across_adapter_sets(void **state) {
    ST_NEED_MODEL();
    static int32_t prompt[100];
    st_prompt(prompt, 100, 77);
    sched_request plain, with, half;
    st_request(&plain, prompt, 100, 8);
    with = half = plain;
    model_lora_use u1 = {adapter, 1.0f}, u05 = {adapter, 0.5f};
    with.lora = (model_lora_set){1, &u1};
    half.lora = (model_lora_set){1, &u05};
    reference(&plain, NULL, 0, &ref_base);
    reference(&with, adapter, 1.0f, &ref_lora);
    reference(&half, adapter, 0.5f, &ref_half);
    sched *s = st_sched(2, 4, 64, N_CTX);

    run_one(s, &plain, &res);
    st_expect_same(&ref_base, &res, "base, first run");
    run_one(s, &with, &res);
    if (res.cached_tokens != 0)
        fail_msg("an adapter sequence reused %lld tokens of a base-model prefix", (long long)res.cached_tokens);
    st_expect_same(&ref_lora, &res, "adapter after a base run of the same prompt");
    run_one(s, &half, &res);
    if (res.cached_tokens != 0)
        fail_msg("a scale-0.5 sequence reused %lld tokens computed at scale 1", (long long)res.cached_tokens);
    st_expect_same(&ref_half, &res, "scale 0.5 after scale 1");
    run_one(s, &with, &res);
    if (res.cached_tokens != 99)
        fail_msg("the same prompt with the same adapter reused %lld tokens, want 99", (long long)res.cached_tokens);
    st_expect_same(&ref_lora, &res, "adapter from its own cached prefix");
    run_one(s, &plain, &res);
    if (res.cached_tokens != 99)
        fail_msg("the base prompt again reused %lld tokens, want 99", (long long)res.cached_tokens);
    st_expect_same(&ref_base, &res, "base from its own cached prefix");
    sched_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_adapters_in_one_batch),
        cmocka_unit_test(test_bad_adapter_set_refused),
        cmocka_unit_test(test_prefix_not_shared_across_adapter_sets),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
