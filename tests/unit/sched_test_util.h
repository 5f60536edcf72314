/* Helpers for the scheduler tests: the fixture model, prompts, single-sequence reference
 * runs through gen_generate, and collecting a scheduled sequence's events. */
#ifndef TESTS_SCHED_TEST_UTIL_H
#define TESTS_SCHED_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "engine/generate.h"
#include "engine/sched.h"

#define ST_MAX_TOKENS 2100
#define ST_WAIT_MS 120000 /* a hang fails the test instead of blocking CTest */

static gen_model *st_model;

static inline int st_open(const char *rel) {
    if (!fixtures_available()) return 0;
    hearth_err err = {0};
    if (gen_model_open(fixture_path(rel), &st_model, &err)) fail_msg("%s", err.msg);
    return 0;
}

static inline int st_close(void **state) {
    gen_model_close(st_model);
    st_model = NULL;
    return 0;
}

#define ST_NEED_MODEL()                                                  \
    do {                                                                 \
        if (!st_model) {                                                 \
            printf("fixtures absent: scheduler test skipped\n");         \
            return;                                                      \
        }                                                                \
    } while (0)

/* A prompt of n tokens: BOS, then ids from a seeded generator. */
static inline void st_prompt(int32_t *out, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 12345u;
    out[0] = 1;
    for (size_t i = 1; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        out[i] = (int32_t)(3 + (x >> 8) % 31000);
    }
}

static sched *st_sched(int32_t n_slots, int32_t max_queue, int32_t step_tokens, int64_t n_ctx) {
    sched_params p;
    sched_params_default(&p);
    p.n_slots = n_slots;
    p.max_queue = max_queue;
    p.step_tokens = step_tokens;
    p.n_ctx = n_ctx;
    p.n_threads = 2;
    sched *s = NULL;
    hearth_err err = {0};
    if (sched_new(st_model->model, st_model->vocab, &p, &s, &err)) fail_msg("sched_new: %s", err.msg);
    return s;
}

static inline void st_request(sched_request *r, const int32_t *prompt, size_t n, int32_t max_tokens) {
    memset(r, 0, sizeof *r);
    r->prompt = prompt;
    r->n_prompt = n;
    r->max_tokens = max_tokens;
    sampler_params_default(&r->sampling);
    r->sampling.temperature = 0.0f;
    r->n_logprobs = -1;
}

/* What a run produced: tokens, text and how it ended. */
typedef struct st_result {
    int32_t tokens[ST_MAX_TOKENS];
    int n_tokens;
    char text[16384];
    size_t len;
    sched_finish finish;
    int64_t prompt_tokens, completion_tokens, cached_tokens;
    int events;
    hearth_err err;
} st_result;

/* Reference: the single-sequence loop. */
typedef struct st_gen_ud {
    st_result *res;
} st_gen_ud;

static inline bool st_piece(void *ud, int32_t token, const char *text, size_t len) {
    st_result *r = ud;
    if (token >= 0 && r->n_tokens < ST_MAX_TOKENS) r->tokens[r->n_tokens++] = token;
    if (r->len + len < sizeof r->text) {
        memcpy(r->text + r->len, text, len);
        r->len += len;
        r->text[r->len] = '\0';
    }
    return true;
}

static inline void st_reference(const sched_request *q, int64_t n_ctx, st_result *out) {
    memset(out, 0, sizeof *out);
    gen_config cfg = {.n_ctx = n_ctx, .n_batch = 64, .n_threads = 2};
    gen_engine *e = NULL;
    hearth_err err = {0};
    if (gen_engine_new(st_model->model, st_model->vocab, &cfg, &e, &err)) fail_msg("gen_engine_new: %s", err.msg);
    gen_request gr = {.prompt = q->prompt, .n_prompt = q->n_prompt, .n_predict = q->max_tokens,
                      .sampling = &q->sampling};
    gen_stats stats;
    if (gen_generate(e, &gr, st_piece, out, &stats, &err)) fail_msg("gen_generate: %s", err.msg);
    out->completion_tokens = stats.n_generated;
    out->finish = stats.stop == GEN_STOP_EOG ? SCHED_FINISH_STOP : SCHED_FINISH_LENGTH;
    gen_engine_free(e);
}

/* Reads events until the last one; checks logprob rows when asked for. */
static inline void st_collect(sched_seq *q, int n_logprobs, st_result *out) {
    memset(out, 0, sizeof *out);
    sched_event ev;
    for (;;) {
        if (!sched_next(q, &ev, ST_WAIT_MS)) fail_msg("no event within %d ms", ST_WAIT_MS);
        out->events++;
        for (int32_t i = 0; i < ev.n_tokens && out->n_tokens < ST_MAX_TOKENS; i++) {
            out->tokens[out->n_tokens++] = ev.tokens[i];
            if (n_logprobs < 0) continue;
            if (!ev.logprobs) fail_msg("logprobs asked for but missing");
            if (!(ev.logprobs[i] <= 0.0f)) fail_msg("logprob %g is not <= 0", ev.logprobs[i]);
            if (n_logprobs > 0 && !ev.top) fail_msg("top logprobs asked for but missing");
            for (int k = 1; k < n_logprobs; k++)
                if (ev.top[i * n_logprobs + k].logprob > ev.top[i * n_logprobs + k - 1].logprob)
                    fail_msg("top logprobs out of order at token %d", i);
        }
        if (out->len + ev.len >= sizeof out->text) fail_msg("output longer than the test buffer");
        memcpy(out->text + out->len, ev.text, ev.len);
        out->len += ev.len;
        out->text[out->len] = '\0';
        if (ev.finish != SCHED_FINISH_NONE) {
            out->finish = ev.finish;
            out->prompt_tokens = ev.prompt_tokens;
            out->completion_tokens = ev.completion_tokens;
            out->cached_tokens = ev.cached_tokens;
            out->err = ev.err;
            break;
        }
    }
    if (sched_next(q, &ev, 0)) fail_msg("an event after the last one");
}

static inline void st_expect_same(const st_result *want, const st_result *got, const char *what) {
    if (want->n_tokens != got->n_tokens)
        fail_msg("%s: %d tokens from the single-sequence loop, %d from the scheduler", what, want->n_tokens,
                 got->n_tokens);
    for (int i = 0; i < want->n_tokens; i++)
        if (want->tokens[i] != got->tokens[i])
            fail_msg("%s: token %d differs: %d single, %d scheduled", what, i, want->tokens[i], got->tokens[i]);
    if (want->len != got->len || memcmp(want->text, got->text, want->len) != 0)
        fail_msg("%s: text differs:\n single:    [%s]\n scheduled: [%s]", what, want->text, got->text);
    if (want->finish != got->finish) fail_msg("%s: finish %d single, %d scheduled", what, want->finish, got->finish);
    if (want->completion_tokens != got->completion_tokens)
        fail_msg("%s: completion tokens %lld single, %lld scheduled", what, (long long)want->completion_tokens,
                 (long long)got->completion_tokens);
}

static sched_seq *st_submit(sched *s, const sched_request *r) {
    sched_seq *q = NULL;
    hearth_err err = {0};
    if (sched_submit(s, r, &q, &err)) fail_msg("sched_submit: %s", err.msg);
    return q;
}

#endif
