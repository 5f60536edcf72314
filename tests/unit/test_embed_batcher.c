/* The embedding batcher over a small generated bert: inputs of several tickets held back
 * and released go through one forward pass and each gets the vector embed_batch gives it
 * alone; a full queue refuses at once (BUSY); a freed ticket's queued inputs leave the
 * queue; bad inputs are refused naming their index; many threads submitting at once all
 * get their own results. */
#include "testutil.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "engine/embed_batcher.h"
#include "engine/generate.h"
#include "synth/synth.h"

typedef struct fixture {
    char path[64];
    gen_model *gm;
    int64_t dim;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->path, sizeof f->path, "/tmp/hearth-batcher-%d.gguf", (int)getpid());
    synth_params p = {.arch = SYNTH_BERT, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 4, .n_ff = 128,
                      .n_vocab = 600, .n_ctx = 64, .seed = 3, .scheme = quant_scheme_find("f32")};
    hearth_err err = {0};
    if (synth_write_model(&p, NULL, f->path, &err)) fail_msg("synth_write_model: %s", err.msg);
    if (gen_model_open(f->path, &f->gm, &err)) fail_msg("%s", err.msg);
    f->dim = model_hp(f->gm->model)->n_embd;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    gen_model_close(f->gm);
    unlink(f->path);
    free(f);
    return 0;
}

static embed_batcher *new_batcher(fixture *f, int64_t max_queue) {
    embed_batcher_config c = {.n_ctx = 64, .batch_tokens = 256, .max_seq = 16, .max_queue = max_queue, .n_threads = 1};
    embed_batcher *b = NULL;
    hearth_err err = {0};
    if (embed_batcher_new(f->gm->model, &c, &b, &err)) fail_msg("embed_batcher_new: %s", err.msg);
    return b;
}

/* Tokens of input i: lengths 3..12, ids from a fixed pattern inside the vocabulary. */
static void tokens_of(int i, int32_t *ids, size_t *n) {
    *n = (size_t)(3 + i % 10);
    for (size_t k = 0; k < *n; k++) ids[k] = (int32_t)(104 + (i * 37 + (int)k * 11) % 490);
}

static double cosine(const float *a, const float *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

/* The vector of input i computed alone with embed_batch. */
static void alone(fixture *f, int i, float *out) {
    int32_t ids[16];
    size_t n;
    tokens_of(i, ids, &n);
    embed_config ec = {.n_ctx = 64, .n_threads = 1};
    embed_ctx *e = NULL;
    hearth_err err = {0};
    if (embed_ctx_new(f->gm->model, &ec, &e, &err)) fail_msg("%s", err.msg);
    embed_input in = {ids, n};
    embed_opts o;
    embed_opts_default(&o);
    if (embed_batch(e, &in, 1, &o, out, 1, &err)) fail_msg("%s", err.msg);
    embed_ctx_free(e);
}

static void test_held_inputs_share_one_pass(void **state) {
    fixture *f = *state;
    embed_batcher *b = new_batcher(f, 100);
    enum { TICKETS = 4, PER = 2 };
    int32_t ids[TICKETS * PER][16];
    embed_input in[TICKETS][PER];
    float *out = calloc(TICKETS * PER, (size_t)f->dim * sizeof(float));
    embed_ticket *t[TICKETS];
    embed_opts o;
    embed_opts_default(&o);
    hearth_err err = {0};
    embed_batcher_hold(b, true);
    for (int k = 0; k < TICKETS; k++) {
        for (int j = 0; j < PER; j++) {
            int i = k * PER + j;
            tokens_of(i, ids[i], &in[k][j].n);
            in[k][j].tokens = ids[i];
        }
        if (embed_batcher_submit(b, in[k], PER, &o, out + (size_t)(k * PER) * (size_t)f->dim, &t[k], &err))
            fail_msg("submit %d: %s", k, err.msg);
    }
    embed_batcher_stats st;
    embed_batcher_get_stats(b, &st);
    assert_int_equal(st.queued, TICKETS * PER);
    assert_int_equal(st.passes, 0);
    embed_batcher_hold(b, false);
    for (int k = 0; k < TICKETS; k++) {
        while (!embed_ticket_wait(t[k], 1000)) {}
        assert_int_equal(embed_ticket_status(t[k], &err), HEARTH_OK);
        embed_ticket_free(t[k]);
    }
    embed_batcher_get_stats(b, &st);
    if (st.passes != 1 || st.max_pass_inputs != TICKETS * PER)
        fail_msg("%llu passes, largest %llu inputs; want 1 pass of %d", (unsigned long long)st.passes,
                 (unsigned long long)st.max_pass_inputs, TICKETS * PER);
    float *ref = malloc((size_t)f->dim * sizeof(float));
    for (int i = 0; i < TICKETS * PER; i++) {
        alone(f, i, ref);
        double c = cosine(out + (size_t)i * (size_t)f->dim, ref, f->dim);
        if (c < 1 - 1e-5) fail_msg("input %d: cosine %.8f between batched and alone", i, c);
    }
    free(ref);
    free(out);
    embed_batcher_free(b);
}

static void test_full_queue_and_cancel(void **state) {
    fixture *f = *state;
    embed_batcher *b = new_batcher(f, 4);
    int32_t ids[16];
    size_t n;
    tokens_of(1, ids, &n);
    embed_input in[3] = {{ids, n}, {ids, n}, {ids, n}};
    float *out = calloc(6, (size_t)f->dim * sizeof(float));
    embed_opts o;
    embed_opts_default(&o);
    hearth_err err = {0};
    embed_ticket *a = NULL, *c = NULL;
    embed_batcher_hold(b, true);
    assert_int_equal(embed_batcher_submit(b, in, 3, &o, out, &a, &err), HEARTH_OK);
    assert_int_equal(embed_batcher_submit(b, in, 2, &o, out + 3 * f->dim, &c, &err), HEARTH_ERR_BUSY);
    assert_null(c);
    assert_non_null(strstr(err.msg, "queued"));
    embed_ticket_free(a); /* cancels its three queued inputs */
    embed_batcher_stats st;
    embed_batcher_get_stats(b, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(embed_batcher_submit(b, in, 2, &o, out, &c, &err), HEARTH_OK);
    embed_batcher_hold(b, false);
    while (!embed_ticket_wait(c, 1000)) {}
    assert_int_equal(embed_ticket_status(c, &err), HEARTH_OK);
    embed_ticket_free(c);
    embed_batcher_get_stats(b, &st);
    assert_int_equal(st.inputs, 2);
    free(out);
    embed_batcher_free(b);
}

static void test_bad_inputs_named(void **state) {
    fixture *f = *state;
    embed_batcher *b = new_batcher(f, 100);
    int32_t ok[3] = {101, 200, 102}, bad[3] = {101, 600, 102}, longer[80];
    for (int i = 0; i < 80; i++) longer[i] = 200;
    float out[3 * 64];
    embed_opts o;
    embed_opts_default(&o);
    embed_ticket *t = NULL;
    hearth_err err = {0};
    embed_input in[3] = {{ok, 3}, {bad, 3}, {ok, 3}};
    assert_int_equal(embed_batcher_submit(b, in, 3, &o, out, &t, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "input 1"));
    in[1] = (embed_input){longer, 80};
    assert_int_equal(embed_batcher_submit(b, in, 3, &o, out, &t, &err), HEARTH_ERR_RANGE);
    if (!strstr(err.msg, "input 1") || !strstr(err.msg, "80") || !strstr(err.msg, "64")) fail_msg("message: %s", err.msg);
    in[1] = (embed_input){ok, 0};
    assert_int_equal(embed_batcher_submit(b, in, 3, &o, out, &t, &err), HEARTH_ERR_INVALID);
    o.pooling = EMBED_POOL_NONE;
    in[1] = (embed_input){ok, 3};
    assert_int_equal(embed_batcher_submit(b, in, 3, &o, out, &t, &err), HEARTH_ERR_INVALID);
    assert_null(t);
    embed_batcher_free(b);
}

typedef struct worker {
    embed_batcher *b;
    int index;
    float *out;
    hearth_status st;
} worker;

static void *submit_one(void *arg) {
    worker *w = arg;
    int32_t ids[16];
    size_t n;
    tokens_of(w->index, ids, &n);
    embed_input in = {ids, n};
    embed_opts o;
    embed_opts_default(&o);
    embed_ticket *t = NULL;
    hearth_err err = {0};
    w->st = embed_batcher_submit(w->b, &in, 1, &o, w->out, &t, &err);
    if (w->st) return NULL;
    while (!embed_ticket_wait(t, 1000)) {}
    w->st = embed_ticket_status(t, &err);
    embed_ticket_free(t);
    return NULL;
}

static void test_concurrent_submitters(void **state) {
    fixture *f = *state;
    embed_batcher *b = new_batcher(f, 1000);
    enum { N = 16 };
    worker w[N];
    pthread_t th[N];
    float *out = calloc(N, (size_t)f->dim * sizeof(float)), *ref = malloc((size_t)f->dim * sizeof(float));
    for (int i = 0; i < N; i++) {
        w[i] = (worker){.b = b, .index = i, .out = out + (size_t)i * (size_t)f->dim};
        assert_int_equal(pthread_create(&th[i], NULL, submit_one, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].st, HEARTH_OK);
        alone(f, i, ref);
        double c = cosine(w[i].out, ref, f->dim);
        if (c < 1 - 1e-5) fail_msg("thread %d: cosine %.8f with its input embedded alone", i, c);
    }
    embed_batcher_stats st;
    embed_batcher_get_stats(b, &st);
    assert_int_equal(st.inputs, N);
    printf("%d submitters: %llu passes, largest %llu inputs\n", N, (unsigned long long)st.passes,
           (unsigned long long)st.max_pass_inputs);
    free(ref);
    free(out);
    embed_batcher_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held_inputs_share_one_pass),
        cmocka_unit_test(test_full_queue_and_cancel),
        cmocka_unit_test(test_bad_inputs_named),
        cmocka_unit_test(test_concurrent_submitters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
