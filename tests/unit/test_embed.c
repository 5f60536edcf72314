/* Embeddings beyond the golden values: several inputs in one pass equal each alone (and
 * packing into several passes changes nothing); 1, 2 and 3 threads give the same bits; the pooling types agree with the per-token
 * states; a Q8_0 copy of the bert fixture (quantized here with the kernels' from_float)
 * stays within cosine 0.999 of F16; decoder embeddings (llama, mean and last pooling) are
 * finite, unit-norm, deterministic and batch-independent; too-long inputs are refused
 * naming their index (or truncated when asked); malformed bert files are refused with the
 * culprit named; encoders cannot be used for logits; a failed allocation while making a
 * context ends cleanly; `hearth embed` reports errors on one line with exit 1/2. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "engine/embed.h"
#include "engine/generate.h"
#include "gguf/writer.h"
#include "gguf_edit.h"
#include "kernels/kernels.h"

#define BERT "models/bert-wpm-f16.gguf"
#define LLAMA "models/llama-spm-f16.gguf"

static const char *const texts[] = {
    "Once upon a time, there was a little fox who lived in the forest.",
    "The capital of France is Paris.",
    "what is machine learning?",
    "Embeddings map text to vectors; similar texts land close together, which makes search easy.",
};
#define N_TEXTS 4

typedef struct inputs {
    int32_t *ids[N_TEXTS];
    size_t n[N_TEXTS];
    embed_input in[N_TEXTS];
} inputs;

static void tokenize_all(const gen_model *gm, inputs *x) {
    hearth_err err = {0};
    for (int i = 0; i < N_TEXTS; i++) {
        assert_int_equal(tok_encode(gm->vocab, texts[i], strlen(texts[i]), true, false, &x->ids[i], &x->n[i], &err),
                         HEARTH_OK);
        x->in[i] = (embed_input){x->ids[i], x->n[i]};
    }
}

static void free_inputs(inputs *x) {
    for (int i = 0; i < N_TEXTS; i++) mem_free(x->ids[i]);
}

static double cosine(const float *a, const float *b, int64_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static embed_ctx *new_ctx(const model *m, int32_t n_seq) {
    embed_ctx *e = NULL;
    hearth_err err = {0};
    embed_config cfg = {.n_seq = n_seq, .n_threads = 2};
    if (embed_ctx_new(m, &cfg, &e, &err)) fail_msg("embed_ctx_new: %s", err.msg);
    return e;
}

/* Embeds in[0..n) with pooling p (normalised) into a malloc'd [rows][dim] buffer. */
static float *embed(embed_ctx *e, const embed_input *in, size_t n, embed_pooling p, bool normalize, size_t *rows) {
    embed_opts o = {.pooling = p, .normalize = normalize};
    size_t r = embed_rows(e, in, n, &o);
    float *out = malloc(r * (size_t)embed_n_embd(e) * sizeof(float));
    hearth_err err = {0};
    if (embed_batch(e, in, n, &o, out, r, &err)) fail_msg("embed_batch: %s", err.msg);
    if (rows) *rows = r;
    return out;
}

static void expect_close(const float *a, const float *b, int64_t dim, double min_cos, const char *what, int i) {
    double c = cosine(a, b, dim);
    if (!(c >= min_cos)) fail_msg("%s, input %d: cosine %.8f, want >= %.6f", what, i, c, min_cos);
}

/* Batched equals alone, in one pass and in passes of two inputs, for pooling p. */
static void check_batching(const gen_model *gm, embed_pooling p) {
    inputs x;
    tokenize_all(gm, &x);
    embed_ctx *e = new_ctx(gm->model, 0), *e2 = new_ctx(gm->model, 2);
    int64_t dim = embed_n_embd(e);
    float *all = embed(e, x.in, N_TEXTS, p, true, NULL), *pairs = embed(e2, x.in, N_TEXTS, p, true, NULL);
    for (int i = 0; i < N_TEXTS; i++) {
        float *alone = embed(e, &x.in[i], 1, p, true, NULL);
        expect_close(all + i * dim, alone, dim, 0.99999, "batch of 4 vs alone", i);
        expect_close(pairs + i * dim, alone, dim, 0.99999, "passes of 2 vs alone", i);
        free(alone);
    }
    free(all);
    free(pairs);
    embed_ctx_free(e);
    embed_ctx_free(e2);
    free_inputs(&x);
}

static gen_model *open_model(const char *rel) {
    gen_model *gm = NULL;
    hearth_err err = {0};
    if (gen_model_open(fixture_path(rel), &gm, &err)) fail_msg("%s", err.msg);
    return gm;
}

static void test_bert_batching(void **state) {
    if (!fixtures_available()) return;
    gen_model *gm = open_model(BERT);
    check_batching(gm, EMBED_POOL_MEAN);
    check_batching(gm, EMBED_POOL_CLS);
    gen_model_close(gm);
}

/* The pass splits tokens, attention and matmul outputs across threads in ways that
   depend on their number; the vectors must not. */
static void test_bert_threads_identical(void **state) {
    if (!fixtures_available()) return;
    gen_model *gm = open_model(BERT);
    inputs x;
    tokenize_all(gm, &x);
    float *ref = NULL;
    for (int th = 1; th <= 3; th++) {
        embed_ctx *e = NULL;
        hearth_err err = {0};
        embed_config cfg = {.n_threads = th};
        if (embed_ctx_new(gm->model, &cfg, &e, &err)) fail_msg("embed_ctx_new: %s", err.msg);
        int64_t dim = embed_n_embd(e);
        float *v = embed(e, x.in, N_TEXTS, EMBED_POOL_MEAN, true, NULL);
        if (!ref) ref = v;
        else {
            for (int64_t k = 0; k < N_TEXTS * dim; k++)
                if (memcmp(&v[k], &ref[k], sizeof(float)) != 0)
                    fail_msg("%d threads: input %lld value %lld is %.9g, with 1 thread %.9g", th, (long long)(k / dim),
                             (long long)(k % dim), v[k], ref[k]);
            free(v);
        }
        embed_ctx_free(e);
    }
    free(ref);
    free_inputs(&x);
    gen_model_close(gm);
}

static void normalize(float *v, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)v[i] * v[i];
    for (int64_t i = 0; i < n; i++) v[i] = (float)(v[i] / sqrt(ss));
}

/* cls/last/mean equal the first/last/average of the per-token states. */
static void test_pooling_types(void **state) {
    if (!fixtures_available()) return;
    gen_model *gm = open_model(BERT);
    inputs x;
    tokenize_all(gm, &x);
    embed_ctx *e = new_ctx(gm->model, 0);
    int64_t dim = embed_n_embd(e);
    assert_int_equal(embed_model_pooling(gm->model), EMBED_POOL_MEAN); /* bert.pooling_type = 1 */
    for (int i = 0; i < N_TEXTS; i++) {
        size_t rows;
        float *tok = embed(e, &x.in[i], 1, EMBED_POOL_NONE, false, &rows);
        assert_int_equal(rows, x.n[i]);
        float *cls = embed(e, &x.in[i], 1, EMBED_POOL_CLS, true, NULL);
        float *last = embed(e, &x.in[i], 1, EMBED_POOL_LAST, true, NULL);
        float *mean = embed(e, &x.in[i], 1, EMBED_POOL_MEAN, false, NULL);
        float *avg = calloc((size_t)dim, sizeof(float));
        for (size_t t = 0; t < rows; t++)
            for (int64_t d = 0; d < dim; d++) avg[d] += tok[t * (size_t)dim + (size_t)d] / (float)rows;
        expect_close(cls, tok, dim, 0.999999, "cls vs first token", i);
        expect_close(last, tok + (rows - 1) * (size_t)dim, dim, 0.999999, "last vs last token", i);
        for (int64_t d = 0; d < dim; d++)
            if (fabsf(mean[d] - avg[d]) > 1e-5f)
                fail_msg("mean[%lld] = %g, average of tokens %g", (long long)d, mean[d], avg[d]);
        normalize(avg, dim);
        float *mean_n = embed(e, &x.in[i], 1, EMBED_POOL_DEFAULT, true, NULL);
        double ss = 0;
        for (int64_t d = 0; d < dim; d++) ss += (double)mean_n[d] * mean_n[d];
        if (fabs(ss - 1.0) > 1e-5) fail_msg("normalised embedding has squared norm %.8f", ss);
        expect_close(mean_n, avg, dim, 0.999999, "default (mean) vs average", i);
        free(tok), free(cls), free(last), free(mean), free(avg), free(mean_n);
    }
    embed_ctx_free(e);
    free_inputs(&x);
    gen_model_close(gm);
}

/* ---- quantized copy -------------------------------------------------------------- */

typedef struct q8_copy {
    void *bufs[64];
    int n_bufs;
} q8_copy;

/* The bert fixture with every F16 matrix re-encoded as Q8_0 (through float), in memory. */
static void *quantize_bert(size_t *size, int *n_quantized) {
    hearth_err err = {0};
    gguf_file *f = NULL;
    assert_int_equal(gguf_open(fixture_path(BERT), &f, &err), HEARTH_OK);
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.ptr);
        assert_int_equal(gguf_writer_set(w, key, &kv->val, &err), HEARTH_OK);
    }
    q8_copy keep = {0};
    *n_quantized = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        uint32_t type = t->type;
        const void *data = t->data;
        if (t->type == GGML_F16 && t->n_dims == 2) {
            int64_t n = t->ne[0] * t->ne[1];
            float *tmp = malloc((size_t)n * sizeof(float));
            kern_traits(GGML_F16)->to_float(t->data, tmp, n);
            size_t row_bytes = kern_row_bytes(GGML_Q8_0, t->ne[0]);
            char *q = malloc(row_bytes * (size_t)t->ne[1]);
            for (int64_t r = 0; r < t->ne[1]; r++)
                kern_traits(GGML_Q8_0)->from_float(tmp + r * t->ne[0], q + (size_t)r * row_bytes, t->ne[0]);
            free(tmp);
            assert_true(keep.n_bufs < 64);
            data = keep.bufs[keep.n_bufs++] = q;
            type = GGML_Q8_0;
            (*n_quantized)++;
        }
        assert_int_equal(gguf_writer_add_tensor(w, name, type, t->n_dims, t->ne, data, &err), HEARTH_OK);
    }
    void *buf = NULL;
    assert_int_equal(gguf_writer_write_memory(w, &buf, size, &err), HEARTH_OK);
    for (int i = 0; i < keep.n_bufs; i++) free(keep.bufs[i]);
    gguf_writer_free(w);
    gguf_close(f);
    return buf;
}

static void test_bert_q8_0(void **state) {
    if (!fixtures_available()) return;
    size_t size;
    int n_quantized;
    void *buf = quantize_bert(&size, &n_quantized);
    assert_int_equal(n_quantized, 13); /* token_embd + 6 matrices per layer */
    hearth_err err = {0};
    gguf_file *qf = NULL;
    model *qm = NULL;
    assert_int_equal(gguf_open_memory(buf, size, "bert-q8_0.gguf", &qf, &err), HEARTH_OK);
    if (model_new(qf, &qm, &err)) fail_msg("%s", err.msg);
    gen_model *gm = open_model(BERT);
    inputs x;
    tokenize_all(gm, &x);
    embed_ctx *ef = new_ctx(gm->model, 0), *eq = new_ctx(qm, 0);
    int64_t dim = embed_n_embd(ef);
    float *f16 = embed(ef, x.in, N_TEXTS, EMBED_POOL_MEAN, true, NULL);
    float *q8 = embed(eq, x.in, N_TEXTS, EMBED_POOL_MEAN, true, NULL);
    for (int i = 0; i < N_TEXTS; i++) {
        printf("Q8_0 vs F16, input %d: cosine %.6f\n", i, cosine(q8 + i * dim, f16 + i * dim, dim));
        expect_close(q8 + i * dim, f16 + i * dim, dim, 0.999, "Q8_0 vs F16", i);
    }
    free(f16), free(q8);
    embed_ctx_free(ef);
    embed_ctx_free(eq);
    free_inputs(&x);
    gen_model_close(gm);
    model_free(qm);
    gguf_close(qf);
    mem_free(buf);
}

/* ---- decoders -------------------------------------------------------------------- */

static void check_decoder(const gen_model *gm, embed_pooling p) {
    inputs x;
    tokenize_all(gm, &x);
    embed_ctx *e = new_ctx(gm->model, 0);
    int64_t dim = embed_n_embd(e);
    float *a = embed(e, x.in, N_TEXTS, p, true, NULL), *b = embed(e, x.in, N_TEXTS, p, true, NULL);
    assert_memory_equal(a, b, (size_t)(N_TEXTS * dim) * sizeof(float));
    for (int i = 0; i < N_TEXTS; i++) {
        double ss = 0;
        for (int64_t d = 0; d < dim; d++) {
            if (!isfinite(a[i * dim + d]))
                fail_msg("%s pooling, input %d: value %lld is %g", embed_pooling_name(p), i, (long long)d, a[i * dim + d]);
            ss += (double)a[i * dim + d] * a[i * dim + d];
        }
        if (fabs(ss - 1.0) > 1e-5) fail_msg("%s pooling, input %d: squared norm %.8f", embed_pooling_name(p), i, ss);
        float *alone = embed(e, &x.in[i], 1, p, true, NULL);
        expect_close(a + i * dim, alone, dim, 0.99999, "decoder batch vs alone", i);
        free(alone);
    }
    /* Different texts give clearly different vectors. */
    double c01 = cosine(a, a + dim, dim);
    if (c01 > 0.9999) fail_msg("%s pooling: inputs 0 and 1 have cosine %.6f", embed_pooling_name(p), c01);
    free(a), free(b);
    embed_ctx_free(e);
    free_inputs(&x);
}

static void test_decoder(void **state) {
    if (!fixtures_available()) return;
    gen_model *gm = open_model(LLAMA);
    assert_int_equal(embed_model_pooling(gm->model), EMBED_POOL_LAST); /* no pooling_type key */
    check_decoder(gm, EMBED_POOL_MEAN);
    check_decoder(gm, EMBED_POOL_LAST);
    gen_model_close(gm);
}

/* ---- refusals -------------------------------------------------------------------- */

static void test_too_long(void **state) {
    if (!fixtures_available()) return;
    gen_model *gm = open_model(BERT);
    inputs x;
    tokenize_all(gm, &x);
    embed_ctx *e = NULL;
    hearth_err err = {0};
    embed_config cfg = {.n_ctx = 12, .n_threads = 1};
    assert_int_equal(embed_ctx_new(gm->model, &cfg, &e, &err), HEARTH_OK);
    int64_t dim = embed_n_embd(e);
    embed_opts o = {.pooling = EMBED_POOL_MEAN, .normalize = true};
    float *out = malloc((size_t)(N_TEXTS * dim) * sizeof(float));
    /* input 0 has 18 tokens, input 1 has 9 */
    hearth_status st = embed_batch(e, x.in, N_TEXTS, &o, out, N_TEXTS, &err);
    if (st != HEARTH_ERR_RANGE || !strstr(err.msg, "input 0 has 18 tokens"))
        fail_msg("status %d, message '%s'", st, err.msg);
    st = embed_batch(e, &x.in[1], 3, &o, out, 3, &err);
    if (st != HEARTH_ERR_RANGE || !strstr(err.msg, "input 2 has"))
        fail_msg("status %d, message '%s' (want input 2 named)", st, err.msg);
    /* Truncation when asked: the first 12 tokens. */
    o.truncate = true;
    assert_int_equal(embed_batch(e, x.in, 1, &o, out, 1, &err), HEARTH_OK);
    embed_input first12 = {x.ids[0], 12};
    o.truncate = false;
    float *ref = embed(e, &first12, 1, EMBED_POOL_MEAN, true, NULL);
    expect_close(out, ref, dim, 0.999999, "truncated vs first 12 tokens", 0);
    /* Other bad inputs. */
    embed_input bad[2] = {x.in[1], {x.ids[1], 0}};
    st = embed_batch(e, bad, 2, &o, out, 2, &err);
    if (st != HEARTH_ERR_INVALID || !strstr(err.msg, "input 1 has no tokens")) fail_msg("status %d, '%s'", st, err.msg);
    int32_t oov[2] = {101, 999999};
    embed_input bad2 = {oov, 2};
    st = embed_batch(e, &bad2, 1, &o, out, 1, &err);
    if (st != HEARTH_ERR_INVALID || !strstr(err.msg, "input 0: token 1")) fail_msg("status %d, '%s'", st, err.msg);
    st = embed_batch(e, x.in + 1, 2, &o, out, 1, &err);
    if (st != HEARTH_ERR_INVALID || !strstr(err.msg, "room for 1 rows")) fail_msg("status %d, '%s'", st, err.msg);
    free(ref);
    free(out);
    embed_ctx_free(e);
    cfg.n_ctx = 513;
    assert_int_equal(embed_ctx_new(gm->model, &cfg, &e, &err), HEARTH_ERR_RANGE);
    free_inputs(&x);
    gen_model_close(gm);
}

static void expect_refused(const gguf_edit *ed, hearth_status want, const char *needle) {
    void *buf = NULL;
    size_t size = 0;
    assert_int_equal(gguf_edit_copy(fixture_path(BERT), ed, NULL, &buf, &size), 0);
    hearth_err err = {0};
    gguf_file *f = NULL;
    model *m = NULL;
    assert_int_equal(gguf_open_memory(buf, size, "edited.gguf", &f, &err), HEARTH_OK);
    hearth_status st = model_new(f, &m, &err);
    if (st != want || !strstr(err.msg, needle))
        fail_msg("status %d (want %d), message '%s' (want it to contain '%s')", st, want, err.msg, needle);
    assert_null(m);
    gguf_close(f);
    mem_free(buf);
}

static void test_malformed_bert(void **state) {
    if (!fixtures_available()) return;
    expect_refused(&(gguf_edit){.drop_tensor = "blk.1.ffn_up.bias"}, HEARTH_ERR_FORMAT,
                   "missing tensor 'blk.1.ffn_up.bias'");
    expect_refused(&(gguf_edit){.drop_tensor = "position_embd.weight"}, HEARTH_ERR_FORMAT, "'position_embd.weight'");
    expect_refused(&(gguf_edit){.drop_tensor = "token_types.weight"}, HEARTH_ERR_FORMAT, "'token_types.weight'");
    expect_refused(&(gguf_edit){.drop_tensor = "blk.0.layer_output_norm.bias"}, HEARTH_ERR_FORMAT,
                   "blk.0.layer_output_norm.bias");
    expect_refused(&(gguf_edit){.reshape_tensor = "blk.0.ffn_up.weight"}, HEARTH_ERR_FORMAT,
                   "tensor 'blk.0.ffn_up.weight' has shape [512, 256, 1, 1], expected [256, 512]");
    expect_refused(&(gguf_edit){.set_int_key = "bert.context_length", .set_int_val = 1024}, HEARTH_ERR_FORMAT,
                   "'position_embd.weight' has shape");
    expect_refused(&(gguf_edit){.set_int_key = "bert.pooling_type", .set_int_val = 4}, HEARTH_ERR_UNSUPPORTED,
                   "pooling_type' = 4");
    expect_refused(&(gguf_edit){.set_int_key = "bert.pooling_type", .set_int_val = 7}, HEARTH_ERR_FORMAT,
                   "bert.pooling_type");
    expect_refused(&(gguf_edit){.set_str_key = "bert.attention.causal", .set_str_val = "no"}, HEARTH_ERR_FORMAT,
                   "'bert.attention.causal' is not a bool");
}

/* An encoder runs only through model_encode with embeddings. */
static void test_encoder_not_for_logits(void **state) {
    if (!fixtures_available()) return;
    gen_model *gm = open_model(BERT);
    assert_true(model_is_encoder(gm->model));
    hearth_err err = {0};
    gen_engine *ge = NULL;
    gen_config gc = {.n_threads = 1};
    hearth_status st = gen_engine_new(gm->model, gm->vocab, &gc, &ge, &err);
    if (st != HEARTH_ERR_INVALID || !strstr(err.msg, "encoder")) fail_msg("status %d, '%s'", st, err.msg);
    assert_null(ge);
    model_ctx *c = NULL;
    model_ctx_params p = {.n_batch = 8, .n_outputs = 8, .n_ctx = 8, .embeddings = true};
    assert_int_equal(model_ctx_new(gm->model, &p, NULL, &c, &err), HEARTH_OK);
    model_batch b;
    assert_int_equal(model_batch_init(&b, 8, &err), HEARTH_OK);
    model_batch_add(&b, 101, 0, 0, true);
    model_batch_add(&b, 102, 2, 0, true); /* skips position 1 */
    st = model_encode(c, &b, &err);
    if (st != HEARTH_ERR_INVALID || !strstr(err.msg, "batch token 1")) fail_msg("status %d, '%s'", st, err.msg);
    model_batch_clear(&b);
    for (int i = 0; i < 8; i++) model_batch_add(&b, 101, i, 0, true);
    p.n_ctx = 4;
    model_ctx_free(c);
    assert_int_equal(model_ctx_new(gm->model, &p, NULL, &c, &err), HEARTH_OK);
    st = model_encode(c, &b, &err);
    if (st != HEARTH_ERR_RANGE || !strstr(err.msg, "position 4")) fail_msg("status %d, '%s'", st, err.msg);
    model_batch_free(&b);
    model_ctx_free(c);
    gen_model_close(gm);
}

/* Every allocation of embed_ctx_new may fail: NOMEM, nothing returned, nothing leaked. */
static void test_alloc_failures(void **state) {
    if (!fixtures_available()) return;
    const char *models[] = {BERT, LLAMA};
    for (int k = 0; k < 2; k++) {
        gen_model *gm = open_model(models[k]);
        embed_config cfg = {.n_threads = 1};
        hearth_err err = {0};
        for (long n = 1;; n++) {
            embed_ctx *e = NULL;
            mem_fail_at(n);
            hearth_status st = embed_ctx_new(gm->model, &cfg, &e, &err);
            mem_fail_at(0);
            if (st == HEARTH_OK) {
                embed_ctx_free(e);
                break;
            }
            if (st != HEARTH_ERR_NOMEM || e) fail_msg("%s, allocation %ld failing: status %d", models[k], n, st);
        }
        gen_model_close(gm);
    }
}

static void expect_cli(const char *args, int want_rc, const char *needle) {
    char *out = NULL, *errout = NULL;
    int rc = run_hearth(args, &out, &errout);
    const char *nl = errout ? strchr(errout, '\n') : NULL;
    bool one_line = nl && nl[1] == '\0';
    if (rc != want_rc || !errout || !strstr(errout, needle) || !one_line || (out && *out))
        fail_msg("hearth %s: exit %d (want %d), stderr '%s' (want one line with '%s'), stdout '%.80s'", args, rc,
                 want_rc, errout ? errout : "", needle, out ? out : "");
    free(out);
    free(errout);
}

static void test_cli(void **state) {
    if (!fixtures_available()) return;
    char args[2048];
    const char *m = fixture_path(BERT);
    expect_cli("embed 'text'", 2, "-m FILE is required");
    snprintf(args, sizeof args, "embed -m '%s' --pooling max 'text'", m);
    expect_cli(args, 2, "--pooling expects none, mean, cls or last");
    snprintf(args, sizeof args, "embed -m '%s'", m);
    expect_cli(args, 2, "exactly one of TEXT and --stdin");
    snprintf(args, sizeof args, "embed -m '%s' --ctx 4 'a fairly long text'", m);
    expect_cli(args, 1, "input 0 has 6 tokens, more than the context (4)");
    expect_cli("embed -m /nonexistent.gguf 'x'", 1, "/nonexistent.gguf");
    /* Plain output: one line of n_embd numbers; none: one line per token. */
    snprintf(args, sizeof args, "embed -m '%s' -t 1 'what is machine learning?'", m);
    char *out = NULL;
    assert_int_equal(run_hearth(args, &out, NULL), 0);
    int fields = 0, lines = 0;
    for (char *tok = strtok(out, " \n"); tok; tok = strtok(NULL, " \n")) fields++;
    free(out);
    assert_int_equal(fields, 256);
    snprintf(args, sizeof args, "embed -m '%s' -t 1 --pooling none --no-normalize 'what is machine learning?'", m);
    assert_int_equal(run_hearth(args, &out, NULL), 0);
    for (char *p = out; *p; p++) lines += *p == '\n';
    free(out);
    assert_int_equal(lines, 7); /* [CLS] what is machine learning ? [SEP] */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert_batching),
        cmocka_unit_test(test_bert_threads_identical),   cmocka_unit_test(test_pooling_types),
        cmocka_unit_test(test_bert_q8_0),       cmocka_unit_test(test_decoder),
        cmocka_unit_test(test_too_long),        cmocka_unit_test(test_malformed_bert),
        cmocka_unit_test(test_encoder_not_for_logits), cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
