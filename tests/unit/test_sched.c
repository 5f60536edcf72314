/* Continuous-batching scheduler, outputs: every sequence batched with others (prompts of
 * different lengths prefilled in chunks next to decodes, submitted from several threads)
 * produces exactly what the single-sequence loop produces, greedy and sampled; a prompt
 * sharing a prefix with an earlier one reuses its pages and still gives the same output;
 * logprobs, stop strings across tokens, ignore_eos, a full context, the per-step prefill
 * budget (steps a long prompt takes), and decode steps stopped for arriving prompts. */
#include "testutil.h"

#include <pthread.h>
#include <unistd.h>

#include "sched_test_util.h"

#define N_CONC 8

typedef struct conc_job {
    sched *s;
    sched_request req;
    int32_t prompt[200];
    st_result got, want;
} conc_job;

static conc_job jobs[N_CONC];

static void *conc_thread(void *arg) {
    conc_job *j = arg;
    sched_seq *q = st_submit(j->s, &j->req);
    st_collect(q, j->req.n_logprobs, &j->got);
    sched_release(q);
    return NULL;
}

/* Runs jobs[0..n) concurrently through s and compares each with its reference. */
static void run_concurrent(sched *s, int n, int64_t n_ctx, const char *what) {
    for (int i = 0; i < n; i++) st_reference(&jobs[i].req, n_ctx, &jobs[i].want);
    pthread_t th[N_CONC];
    for (int i = 0; i < n; i++) {
        jobs[i].s = s;
        assert_int_equal(pthread_create(&th[i], NULL, conc_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s sequence %d", what, i);
        st_expect_same(&jobs[i].want, &jobs[i].got, name);
        assert_int_equal(jobs[i].got.prompt_tokens, (int64_t)jobs[i].req.n_prompt);
    }
}

static void test_greedy_batched_equals_single(void **state) {
    ST_NEED_MODEL();
    static const size_t lens[N_CONC] = {5, 37, 12, 90, 2, 64, 150, 23};
    static const int32_t max_tok[N_CONC] = {24, 9, 30, 16, 20, 12, 8, 28};
    for (int i = 0; i < N_CONC; i++) {
        st_prompt(jobs[i].prompt, lens[i], 100 + (uint32_t)i);
        st_request(&jobs[i].req, jobs[i].prompt, lens[i], max_tok[i]);
        jobs[i].req.n_logprobs = i % 3 == 0 ? 3 : -1;
    }
    /* a step of 48 tokens: long prompts are chunked and share steps with decodes */
    sched *s = st_sched(N_CONC, 8, 48, 512);
    run_concurrent(s, N_CONC, 512, "greedy");
    sched_stats st;
    sched_get_stats(s, &st);
    assert_int_equal(st.running, 0);
    assert_int_equal(st.queued, 0);
    assert_true(st.steps > 0);
    assert_true(st.decode_tps > 0 && st.prefill_tps > 0);
    sched_free(s);
}

static void test_sampled_batched_equals_single(void **state) {
    ST_NEED_MODEL();
    for (int i = 0; i < N_CONC; i++) {
        size_t n = 3 + (size_t)i * 11;
        st_prompt(jobs[i].prompt, n, 300 + (uint32_t)i);
        st_request(&jobs[i].req, jobs[i].prompt, n, 20);
        jobs[i].req.sampling.temperature = 0.9f;
        jobs[i].req.sampling.seed = 1000 + (uint64_t)i;
        jobs[i].req.sampling.repeat_penalty = i % 2 ? 1.3f : 1.0f;
    }
    /* fewer slots than sequences: some wait in the queue */
    sched *s = st_sched(3, 8, 32, 256);
    run_concurrent(s, N_CONC, 256, "sampled");
    sched_free(s);
}

static st_result res_a, res_b, ref_b;

static void test_prefix_reuse_same_output(void **state) {
    ST_NEED_MODEL();
    static int32_t a[140], b[150];
    st_prompt(a, 140, 7);
    memcpy(b, a, 120 * sizeof *b);
    st_prompt(b + 120, 30, 8);
    sched *s = st_sched(2, 4, 64, 512);
    sched_request ra, rb;
    st_request(&ra, a, 140, 10);
    st_request(&rb, b, 150, 12);
    sched_seq *q = st_submit(s, &ra);
    st_collect(q, -1, &res_a);
    sched_release(q);
    assert_int_equal(res_a.cached_tokens, 0);

    q = st_submit(s, &rb);
    st_collect(q, -1, &res_b);
    sched_release(q);
    int64_t first_reuse = res_b.cached_tokens;
    if (res_b.cached_tokens < 96 || res_b.cached_tokens > 120)
        fail_msg("second prompt shares 120 tokens; %lld were reused", (long long)res_b.cached_tokens);
    st_reference(&rb, 512, &ref_b);
    st_expect_same(&ref_b, &res_b, "prefix reuse");

    /* the same prompt again reuses all but its last token */
    q = st_submit(s, &rb);
    st_collect(q, -1, &res_b);
    sched_release(q);
    assert_int_equal(res_b.cached_tokens, 149);
    st_expect_same(&ref_b, &res_b, "whole-prompt reuse");
    sched_stats st;
    sched_get_stats(s, &st);
    assert_int_equal(st.prefix_hits_tokens, first_reuse + 149);
    sched_free(s);
}

static void test_logprobs_greedy_top_is_chosen(void **state) {
    ST_NEED_MODEL();
    int32_t p[20];
    st_prompt(p, 20, 55);
    sched *s = st_sched(1, 1, 32, 128);
    sched_request r;
    st_request(&r, p, 20, 6);
    r.n_logprobs = 4;
    sched_seq *q = st_submit(s, &r);
    sched_event ev;
    int seen = 0;
    while (sched_next(q, &ev, ST_WAIT_MS)) {
        for (int32_t i = 0; i < ev.n_tokens; i++, seen++) {
            assert_non_null(ev.logprobs);
            assert_non_null(ev.top);
            if (ev.top[i * 4].token != ev.tokens[i] || ev.top[i * 4].logprob != ev.logprobs[i])
                fail_msg("greedy token %d (logprob %g) is not the top entry %d (%g)", ev.tokens[i], ev.logprobs[i],
                         ev.top[i * 4].token, ev.top[i * 4].logprob);
        }
        if (ev.finish) break;
    }
    assert_int_equal(seen, 6);
    sched_release(q);
    sched_free(s);
}

static st_result res_stop;

static void test_stop_string_across_tokens(void **state) {
    ST_NEED_MODEL();
    int32_t p[12];
    st_prompt(p, 12, 77);
    sched_request r;
    st_request(&r, p, 12, 40);
    st_reference(&r, 256, &ref_b);
    /* a stop string made of the end of one token's text and the start of the next */
    char stop[4] = {0};
    size_t at = 0;
    for (int i = 0; i + 1 < ref_b.n_tokens && !stop[0]; i++) {
        char piece[64];
        at += tok_piece(st_model->vocab, ref_b.tokens[i], false, piece, sizeof piece);
        if (i >= 2 && at + 2 <= ref_b.len) {
            const char *c = ref_b.text + at - 1;
            if (c[0] > ' ' && c[0] < 127 && c[1] > ' ' && c[1] < 127 && c[2] > ' ' && c[2] < 127) memcpy(stop, c, 3);
        }
    }
    if (!stop[0]) fail_msg("no ASCII token boundary in the reference output [%s]", ref_b.text);
    const char *stops[1] = {stop};
    r.stop = stops;
    r.n_stop = 1;
    sched *s = st_sched(2, 2, 32, 256);
    sched_seq *q = st_submit(s, &r);
    st_collect(q, -1, &res_stop);
    sched_release(q);
    sched_free(s);
    const char *first = strstr(ref_b.text, stop);
    assert_non_null(first);
    size_t want = (size_t)(first - ref_b.text);
    if (res_stop.finish != SCHED_FINISH_STOP || res_stop.len != want || memcmp(res_stop.text, ref_b.text, want))
        fail_msg("stop [%s]: want %zu bytes [%.*s] and STOP, got %zu bytes [%s] finish %d", stop, want, (int)want,
                 ref_b.text, res_stop.len, res_stop.text, res_stop.finish);
}

static void test_ignore_eos_and_eog_stop(void **state) {
    ST_NEED_MODEL();
    int32_t p[8];
    st_prompt(p, 8, 5);
    int32_t eos = tok_eos(st_model->vocab);
    sampler_bias bias = {eos, 1000.0f};
    sched_request r;
    st_request(&r, p, 8, 5);
    r.sampling.bias = &bias;
    r.sampling.n_bias = 1;
    sched *s = st_sched(2, 2, 32, 256);
    sched_seq *q = st_submit(s, &r);
    st_collect(q, -1, &res_a);
    sched_release(q);
    assert_int_equal(res_a.finish, SCHED_FINISH_STOP);
    assert_int_equal(res_a.n_tokens, 0);
    assert_int_equal(res_a.completion_tokens, 0);

    r.ignore_eos = true;
    q = st_submit(s, &r);
    st_collect(q, -1, &res_a);
    sched_release(q);
    assert_int_equal(res_a.finish, SCHED_FINISH_LENGTH);
    assert_int_equal(res_a.n_tokens, 5);
    for (int i = 0; i < 5; i++) assert_int_equal(res_a.tokens[i], eos);
    sched_free(s);
}

static void test_context_full_is_length(void **state) {
    ST_NEED_MODEL();
    int32_t p[64];
    st_prompt(p, 64, 9);
    sched *s = st_sched(2, 2, 32, 64);
    sched_request r;
    st_request(&r, p, 60, 100);
    r.ignore_eos = true;
    sched_seq *q = st_submit(s, &r);
    st_collect(q, -1, &res_a);
    sched_release(q);
    /* the last sampled token needs no room: 64 - 60 positions, plus one */
    assert_int_equal(res_a.finish, SCHED_FINISH_LENGTH);
    assert_int_equal(res_a.completion_tokens, 5);
    st_reference(&r, 64, &ref_b);
    st_expect_same(&ref_b, &res_a, "full context");

    hearth_err err = {0};
    st_request(&r, p, 64, 1);
    assert_int_equal(sched_submit(s, &r, &q, &err), HEARTH_OK);
    st_collect(q, -1, &res_a);
    sched_release(q);
    assert_int_equal(res_a.completion_tokens, 1);
    int32_t longer[65];
    st_prompt(longer, 65, 9);
    st_request(&r, longer, 65, 1);
    assert_int_equal(sched_submit(s, &r, &q, &err), HEARTH_ERR_RANGE);
    assert_non_null(strstr(err.msg, "65"));
    assert_null(q);
    sched_free(s);
}

static void test_bad_requests(void **state) {
    ST_NEED_MODEL();
    sched *s = st_sched(1, 0, 16, 64);
    int32_t p[4] = {1, 2, 3, 40000};
    sched_request r;
    sched_seq *q;
    hearth_err err = {0};
    st_request(&r, p, 4, 4);
    assert_int_equal(sched_submit(s, &r, &q, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "40000"));
    st_request(&r, p, 3, 0);
    assert_int_equal(sched_submit(s, &r, &q, &err), HEARTH_ERR_INVALID);
    st_request(&r, p, 3, 4);
    r.n_logprobs = 21;
    assert_int_equal(sched_submit(s, &r, &q, &err), HEARTH_ERR_INVALID);
    st_request(&r, p, 3, 4);
    r.sampling.top_p = -1.0f;
    assert_int_equal(sched_submit(s, &r, &q, &err), HEARTH_ERR_INVALID);
    st_request(&r, p, 0, 4);
    assert_int_equal(sched_submit(s, &r, &q, &err), HEARTH_ERR_INVALID);
    sched_free(s);

    sched_params sp;
    sched_params_default(&sp);
    sp.step_tokens = 4;
    assert_int_equal(sched_new(st_model->model, st_model->vocab, &sp, &s, &err), HEARTH_ERR_INVALID);
    sched_params_default(&sp);
    sp.n_ctx = 4096;
    assert_int_equal(sched_new(st_model->model, st_model->vocab, &sp, &s, &err), HEARTH_ERR_RANGE);
}

static int setup(void **state) { return st_open("models/llama-spm-f16.gguf"); }

/* Steps a 100-token prompt takes with the given prefill budget (step_tokens 64). The
 * sequence's last event can arrive before its step is counted, so this waits (at most a
 * minute; no time is asserted) for the count to reach want; it never grows past the final
 * count, as nothing runs after the only sequence ended. */
static int64_t prefill_steps(int32_t prefill_tokens, int64_t want) {
    sched_params p;
    sched_params_default(&p);
    p.n_slots = 2;
    p.step_tokens = 64;
    p.prefill_tokens = prefill_tokens;
    p.n_ctx = 256;
    p.n_threads = 2;
    sched *s = NULL;
    hearth_err err = {0};
    if (sched_new(st_model->model, st_model->vocab, &p, &s, &err)) fail_msg("sched_new: %s", err.msg);
    int32_t prompt[100];
    st_prompt(prompt, 100, 77);
    sched_request r;
    st_request(&r, prompt, 100, 1);
    sched_seq *q = st_submit(s, &r);
    static st_result res;
    st_collect(q, -1, &res);
    sched_release(q);
    assert_int_equal(res.completion_tokens, 1);
    sched_stats st;
    sched_get_stats(s, &st);
    for (int i = 0; i < 600 && st.steps < want; i++) {
        usleep(100 * 1000);
        sched_get_stats(s, &st);
    }
    sched_free(s);
    return st.steps;
}

/* The prefill budget caps the prompt tokens of a step: 100 tokens take ceil(100 / 16) = 7
 * steps at 16, ceil(100 / 64) = 2 when only step_tokens (64) bounds them. */
static void test_prefill_budget(void **state) {
    ST_NEED_MODEL();
    int64_t small = prefill_steps(16, 7), whole = prefill_steps(0, 2);
    if (small != 7 || whole != 2) fail_msg("steps for a 100-token prompt: %lld at budget 16 (want 7), %lld at 0 (want 2)",
                                           (long long)small, (long long)whole);
}

/* Prompts arriving one after another while a long sequence decodes: each may stop the
 * decode step in flight (redone with the prompt). Every output still equals the
 * single-sequence loop's, the long sampled one included. */
static void test_arrivals_during_decode_same_output(void **state) {
    ST_NEED_MODEL();
    conc_job *a = &jobs[0];
    st_prompt(a->prompt, 20, 500);
    st_request(&a->req, a->prompt, 20, 160);
    a->req.sampling.temperature = 0.8f;
    a->req.sampling.seed = 77;
    a->req.ignore_eos = true;
    st_reference(&a->req, 512, &a->want);
    sched *s = st_sched(2, 0, 64, 512);
    a->s = s;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, conc_thread, a), 0);
    for (int i = 1; i < N_CONC; i++) {
        conc_job *b = &jobs[i];
        st_prompt(b->prompt, 4 + (size_t)i * 5, 600 + (uint32_t)i);
        st_request(&b->req, b->prompt, 4 + (size_t)i * 5, 3);
        st_reference(&b->req, 512, &b->want);
        sched_seq *q = st_submit(s, &b->req);
        st_collect(q, -1, &b->got);
        sched_release(q);
        char name[64];
        snprintf(name, sizeof name, "arrival %d", i);
        st_expect_same(&b->want, &b->got, name);
    }
    pthread_join(th, NULL);
    st_expect_same(&a->want, &a->got, "the decoding sequence");
    sched_stats st;
    sched_get_stats(s, &st);
    printf("%lld of %lld steps interrupted by arrivals\n", (long long)st.steps_interrupted, (long long)st.steps);
    sched_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_batched_equals_single),
        cmocka_unit_test(test_prefill_budget),
        cmocka_unit_test(test_sampled_batched_equals_single),
        cmocka_unit_test(test_prefix_reuse_same_output),
        cmocka_unit_test(test_logprobs_greedy_top_is_chosen),
        cmocka_unit_test(test_stop_string_across_tokens),
        cmocka_unit_test(test_ignore_eos_and_eog_stop),
        cmocka_unit_test(test_context_full_is_length),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_arrivals_during_decode_same_output),
    };
    return cmocka_run_group_tests(tests, setup, st_close);
}
