/* Allocation-failure injection across whole operations: for every N from 1 until the
 * operation succeeds, the N-th allocation fails (mem_fail_at); the operation must then
 * end with HEARTH_ERR_NOMEM, free what it had (run under `make test-asan` to see leaks)
 * and never crash. Covered: GGUF open, model load + run state + KV cache + a forward
 * pass, model open + generation (two threads) with sampling and streaming, the three
 * tokenizer kinds (load, encode, decode, stream), a real chat template (compile +
 * render), the sampler and the KV cache. Uses the smallest fixture model; each path's allocations are counted
 * first (from 5 for the sampler to about 250 for a real chat template). */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "chat/chat.h"
#include "engine/generate.h"
#include "engine/kv_cache.h"
#include "engine/sampler.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#define TINY "models/llama-2-tiny-random.gguf"

typedef hearth_status (*op_fn)(const void *arg, hearth_err *err);

/* Runs op once to count its allocations, then once per allocation with that one failing.
 * Returns the number of injected failures. */
static long inject_each(const char *what, op_fn op, const void *arg) {
    hearth_err err = {0};
    mem_fail_at(0);
    hearth_status st = op(arg, &err);
    long total = mem_fail_at(0);
    if (st) fail_msg("%s: fails without injection: %s", what, err.msg);
    for (long n = 1;; n++) {
        err = (hearth_err){0};
        mem_fail_at(n);
        st = op(arg, &err);
        long made = mem_fail_at(0);
        if (st == HEARTH_OK) {
            if (n <= total)
                fail_msg("%s: allocation %ld of %ld failed but the operation succeeded", what, n, total);
            break;
        }
        if (st != HEARTH_ERR_NOMEM)
            fail_msg("%s: allocation %ld of %ld failed: status %s (%s), want %s", what, n, total,
                     hearth_strerror(st), err.msg, hearth_strerror(HEARTH_ERR_NOMEM));
        if (made < n) fail_msg("%s: NOMEM after only %ld allocations, injection was at %ld", what, made, n);
        if (!err.msg[0]) fail_msg("%s: NOMEM at allocation %ld without a message", what, n);
    }
    printf("%s: %ld allocations, each failure ended with NOMEM\n", what, total);
    return total;
}

/* ---- GGUF -------------------------------------------------------------------------- */
static hearth_status op_gguf_open(const void *arg, hearth_err *err) {
    gguf_file *f = NULL;
    hearth_status st = gguf_open(arg, &f, err);
    gguf_close(f);
    return st;
}

static void test_gguf_open(void **state) {
    if (!fixtures_available()) return;
    assert_true(inject_each("gguf_open", op_gguf_open, fixture_path(TINY)) > 0);
}

/* ---- model + run state + KV cache + one forward pass --------------------------------- */
static hearth_status op_model_forward(const void *arg, hearth_err *err) {
    gguf_file *f = NULL;
    model *m = NULL;
    model_ctx *c = NULL;
    kv_cache *kv = NULL;
    model_batch b = {0};
    hearth_status st = gguf_open(arg, &f, err);
    if (!st) st = model_new(f, &m, err);
    model_ctx_params cp = {.n_batch = 4, .n_outputs = 1, .n_ctx = 16};
    if (!st) st = model_ctx_new(m, &cp, NULL, &c, err);
    if (!st) {
        kv_config kc = model_kv_config(m, 16, 1);
        st = kv_cache_new(&kc, &kv, err);
    }
    if (!st) st = model_batch_init(&b, 4, err);
    if (!st) {
        static const int32_t prompt[] = {1, 15043, 3186};
        for (int i = 0; i < 3; i++) model_batch_add(&b, prompt[i], i, 0, i == 2);
        st = model_forward(c, kv, &b, err);
    }
    model_batch_free(&b);
    kv_cache_free(kv);
    model_ctx_free(c);
    model_free(m);
    gguf_close(f);
    return st;
}

static void test_model_forward(void **state) {
    if (!fixtures_available()) return;
    inject_each("model_new + model_ctx_new + kv_cache_new + model_forward", op_model_forward, fixture_path(TINY));
}

/* ---- model file + tokenizer + generation with sampling -------------------------------- */
static bool keep_going(void *ud, int32_t token, const char *text, size_t len) { return true; }

static hearth_status op_generate(const void *arg, hearth_err *err) {
    gen_model *gm = NULL;
    gen_engine *e = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    hearth_status st = gen_model_open(arg, &gm, err);
    if (!st) st = tok_encode(gm->vocab, "Hello world", 11, true, false, &ids, &n, err);
    gen_config cfg = {.n_ctx = 32, .n_threads = 2};
    if (!st) st = gen_engine_new(gm->model, gm->vocab, &cfg, &e, err);
    if (!st) {
        sampler_params sp;
        sampler_params_default(&sp);
        sp.repeat_penalty = 1.1f;
        sp.seed = 7;
        gen_request r = {.prompt = ids, .n_prompt = n, .n_predict = 4, .sampling = &sp};
        gen_stats stats;
        st = gen_generate(e, &r, keep_going, NULL, &stats, err);
    }
    gen_engine_free(e);
    mem_free(ids);
    gen_model_close(gm);
    return st;
}

static void test_generate(void **state) {
    if (!fixtures_available()) return;
    inject_each("gen_model_open + tok_encode + gen_engine_new + gen_generate", op_generate, fixture_path(TINY));
}

/* ---- tokenizers --------------------------------------------------------------------- */
static const char TOK_TEXT[] = " Hello, world! <s> [CLS] <|endoftext|> caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd 12345\n\n";

static hearth_status op_tokenizer(const void *arg, hearth_err *err) {
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    tok_stream *s = NULL;
    int32_t *ids = NULL;
    char *text = NULL;
    size_t n = 0, len = 0;
    hearth_status st = gguf_open(arg, &f, err);
    if (!st) st = tok_load(f, &v, err);
    if (!st) st = tok_encode(v, TOK_TEXT, sizeof TOK_TEXT - 1, true, true, &ids, &n, err);
    if (!st) st = tok_decode(v, ids, n, true, &text, &len, err);
    if (!st && !(s = tok_stream_new(v, NULL, 0))) st = err_set(err, HEARTH_ERR_NOMEM, "tok_stream_new: out of memory");
    for (size_t i = 0; !st && i < n; i++) {
        char *out;
        size_t k;
        st = tok_stream_push(s, ids[i], &out, &k, err);
    }
    if (!st) {
        char *out;
        size_t k;
        st = tok_stream_flush(s, &out, &k, err);
    }
    tok_stream_free(s);
    mem_free(text);
    mem_free(ids);
    tok_free(v);
    gguf_close(f);
    return st;
}

static void test_tokenizers(void **state) {
    if (!fixtures_available()) return;
    static const char *const vocabs[] = {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-gpt-2.gguf",
                                         "vocab/ggml-vocab-bert-bge.gguf"};
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
        char what[160];
        snprintf(what, sizeof what, "%s: tok_load + encode + decode + stream", vocabs[i]);
        char *path = strdup(fixture_path(vocabs[i]));
        inject_each(what, op_tokenizer, path);
        free(path);
    }
}

/* ---- chat template -------------------------------------------------------------------- */
typedef struct chat_case {
    const char *src;
    size_t len;
    const json_t *ctx;
} chat_case;

static hearth_status op_chat(const void *arg, hearth_err *err) {
    const chat_case *c = arg;
    chat_template *t = NULL;
    char *out = NULL;
    hearth_status st = chat_template_new(c->src, c->len, &t, err);
    if (!st) st = chat_template_render(t, c->ctx, NULL, &out, NULL, err);
    mem_free(out);
    chat_template_free(t);
    return st;
}

static void test_chat_template(void **state) {
    if (!fixtures_available()) return;
    const char *dir = "templates/meta-llama-Llama-3.1-8B-Instruct";
    char path[512];
    snprintf(path, sizeof path, "%s/template.jinja", dir);
    chat_case c = {0};
    char *src = read_file(fixture_path(path), &c.len);
    snprintf(path, sizeof path, "%s/tools.input.json", dir);
    json_t *ctx = json_load_file(fixture_path(path), 0, NULL);
    assert_non_null(src);
    assert_non_null(ctx);
    c.src = src;
    c.ctx = ctx;
    setenv("HEARTH_NOW", "2026-11-23 12:00:00", 1);
    inject_each("chat_template_new + render (Llama 3.1, tools)", op_chat, &c);
    json_decref(ctx);
    free(src);
}

/* ---- sampler and KV cache -------------------------------------------------------------- */
static hearth_status op_sampler(const void *arg, hearth_err *err) {
    enum { N = 500 };
    static float logits[N];
    sampler_bias bias[] = {{3, 1.5f}, {7, -INFINITY}};
    sampler_params p;
    sampler_params_default(&p);
    p.repeat_penalty = 1.3f;
    p.frequency_penalty = 0.2f;
    p.repeat_last_n = -1;
    p.bias = bias;
    p.n_bias = 2;
    sampler *s = sampler_new(&p, N, err);
    if (!s) return err->status;
    for (int step = 0; step < 5; step++) {
        for (int i = 0; i < N; i++) logits[i] = (float)((i * 37 + step * 11) % 101) / 10.0f;
        sampler_accept(s, sampler_sample(s, logits));
    }
    sampler_free(s);
    return HEARTH_OK;
}

static void test_sampler(void **state) { inject_each("sampler_new + sample", op_sampler, NULL); }

static hearth_status op_kv(const void *arg, hearth_err *err) {
    kv_config c = {.n_layer = 2, .k_dim = 8, .v_dim = 8, .page_size = 4, .n_ctx = 32, .n_seq = 3};
    kv_cache *kv = NULL;
    hearth_status st = kv_cache_new(&c, &kv, err);
    if (!st) st = kv_seq_append(kv, 0, 6, err);
    if (!st) st = kv_seq_fork(kv, 0, 1, 6, err);
    if (!st) st = kv_seq_append(kv, 1, 5, err); /* copies the shared last page first */
    if (!st) st = kv_seq_fork(kv, 1, 2, 9, err);
    kv_cache_free(kv);
    return st;
}

static void test_kv_cache(void **state) { inject_each("kv_cache_new + append + fork", op_kv, NULL); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gguf_open),    cmocka_unit_test(test_model_forward),
        cmocka_unit_test(test_generate),     cmocka_unit_test(test_tokenizers),
        cmocka_unit_test(test_chat_template), cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_kv_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
