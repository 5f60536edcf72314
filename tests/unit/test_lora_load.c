/* LoRA adapter loading and selection on the tiny llama fixture: a well-formed adapter
 * (written here with the GGUF writer) loads with its rank, alpha and targets; every bad
 * one (wrong architecture, missing pair half, shape mismatch, unknown or non-adaptable
 * target, rank mismatch, a plain model, another adapter type, alpha NaN / 0 / negative /
 * not a number, unsupported tensor type, NaN weights, no tensors) is refused with the
 * right status and a message naming the problem, and the base model's logits are
 * bit-identical afterwards. Also: every allocation failure while loading ends in NOMEM,
 * an adapter of another model or a non-finite scale is refused before the cache changes,
 * references keep an adapter alive, large low-rank products on the thread pool equal the
 * single-thread result, and `hearth logits --lora` reports a bad adapter on
 * one error line. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "engine/generate.h"
#include "gguf/writer.h"
#include "kernels/kernels.h"
#include "model/lora.h"

#define TINY "models/llama-2-tiny-random.gguf"
#define MAX_T 6

typedef struct spec_tensor {
    const char *name;
    uint32_t type;
    int64_t ne0, ne1;
} spec_tensor;

typedef struct adapter_spec {
    const char *arch, *gtype, *atype; /* NULL: key left out */
    const char *alpha_str;            /* alpha written as a string instead */
    double alpha;                     /* NAN allowed; 0 with no_alpha: key left out */
    bool no_alpha;
    bool nan_weight;                  /* first element of the first tensor is NaN */
    spec_tensor t[MAX_T];             /* until name == NULL */
} adapter_spec;

static const adapter_spec good = {
    "llama", "adapter", "lora", NULL, 8.0, false, false,
    {{"blk.0.attn_q.weight.lora_a", GGML_F32, 8, 4},
     {"blk.0.attn_q.weight.lora_b", GGML_F32, 4, 8},
     {"blk.0.ffn_down.weight.lora_a", GGML_F32, 32, 4},
     {"blk.0.ffn_down.weight.lora_b", GGML_F32, 4, 8},
     {"output.weight.lora_a", GGML_F16, 8, 4},
     {"output.weight.lora_b", GGML_F32, 4, 32000}},
};

static gguf_file *base_file;
static model *base;

static int setup(void **state) {
    hearth_err err;
    if (gguf_open(fixture_path(TINY), &base_file, &err) || model_new(base_file, &base, &err))
        fail_msg("%s", err.msg);
    return 0;
}

static int teardown(void **state) {
    model_free(base);
    gguf_close(base_file);
    return 0;
}

/* Writes spec into a memory GGUF file (release with mem_free). */
static void *write_adapter(const adapter_spec *s, size_t *size) {
    hearth_err err;
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    if (s->arch) assert_int_equal(gguf_writer_set_str(w, "general.architecture", s->arch, &err), HEARTH_OK);
    if (s->gtype) assert_int_equal(gguf_writer_set_str(w, "general.type", s->gtype, &err), HEARTH_OK);
    if (s->atype) assert_int_equal(gguf_writer_set_str(w, "adapter.type", s->atype, &err), HEARTH_OK);
    if (s->alpha_str) assert_int_equal(gguf_writer_set_str(w, "adapter.lora.alpha", s->alpha_str, &err), HEARTH_OK);
    else if (!s->no_alpha)
        assert_int_equal(gguf_writer_set_float(w, "adapter.lora.alpha", GGUF_V_FLOAT32, s->alpha, &err), HEARTH_OK);
    void *data[MAX_T] = {0};
    for (int i = 0; i < MAX_T && s->t[i].name; i++) {
        const spec_tensor *t = &s->t[i];
        int64_t ne[2] = {t->ne0, t->ne1}, n = t->ne0 * t->ne1;
        uint64_t bytes;
        assert_true(gguf_tensor_bytes(t->type, 2, ne, &bytes));
        data[i] = calloc(1, (size_t)bytes);
        for (int64_t k = 0; k < n && (t->type == GGML_F32 || t->type == GGML_F16); k++) {
            float v = (float)((k * 7 + i) % 13) * 0.01f - 0.06f;
            if (t->type == GGML_F32) ((float *)data[i])[k] = v;
            else ((uint16_t *)data[i])[k] = kern_f32_to_f16(v);
        }
        if (s->nan_weight && i == 0) ((float *)data[i])[0] = NAN;
        assert_int_equal(gguf_writer_add_tensor(w, t->name, t->type, 2, ne, data[i], &err), HEARTH_OK);
    }
    void *buf = NULL;
    assert_int_equal(gguf_writer_write_memory(w, &buf, size, &err), HEARTH_OK);
    gguf_writer_free(w);
    for (int i = 0; i < MAX_T; i++) free(data[i]);
    return buf;
}

static hearth_status load_spec(const adapter_spec *s, model_lora **out, hearth_err *err) {
    size_t size;
    void *buf = write_adapter(s, &size);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(buf, size, "adapter.gguf", &f, err), HEARTH_OK);
    hearth_status st = model_lora_new(base, f, out, err);
    if (st) assert_null(*out);
    gguf_close(f);
    mem_free(buf);
    return st;
}

/* Logits of a fixed 5-token batch of the base model, no adapter: [5][n_vocab]. */
static float *base_logits(void) {
    hearth_err err;
    int64_t nv = model_hp(base)->n_vocab;
    model_ctx *c = NULL;
    kv_cache *kv = NULL;
    model_batch b;
    model_ctx_params cp = {.n_batch = 8, .n_outputs = 8, .n_ctx = 16};
    kv_config kc = model_kv_config(base, 16, 1);
    assert_int_equal(model_ctx_new(base, &cp, NULL, &c, &err), HEARTH_OK);
    assert_int_equal(kv_cache_new(&kc, &kv, &err), HEARTH_OK);
    assert_int_equal(model_batch_init(&b, 8, &err), HEARTH_OK);
    const int32_t toks[5] = {1, 450, 7483, 310, 3444};
    for (int i = 0; i < 5; i++) model_batch_add(&b, toks[i], i, 0, true);
    assert_int_equal(model_forward(c, kv, &b, &err), HEARTH_OK);
    float *out = malloc((size_t)(5 * nv) * sizeof(float));
    for (int i = 0; i < 5; i++) memcpy(out + i * nv, model_logits(c, i), (size_t)nv * sizeof(float));
    model_batch_free(&b);
    kv_cache_free(kv);
    model_ctx_free(c);
    return out;
}

static void test_good_adapter(void **state) {
    hearth_err err = {0};
    model_lora *a = NULL;
    if (load_spec(&good, &a, &err)) fail_msg("good adapter refused: %s", err.msg);
    assert_int_equal(model_lora_rank(a), 4);
    assert_float_equal(model_lora_alpha(a), 8.0f, 0.0f);
    assert_int_equal(model_lora_n_targets(a), 3);
    assert_string_equal(model_lora_name(a), "adapter");
    model_lora_release(a);

    adapter_spec no_alpha = good;
    no_alpha.no_alpha = true;
    if (load_spec(&no_alpha, &a, &err)) fail_msg("adapter without alpha refused: %s", err.msg);
    assert_float_equal(model_lora_alpha(a), 4.0f, 0.0f); /* alpha = rank: no extra scaling */
    model_lora_release(a);
}

static void expect_refused(const adapter_spec *s, hearth_status want, const char *needle) {
    hearth_err err = {0};
    model_lora *a = NULL;
    hearth_status st = load_spec(s, &a, &err);
    printf("  refused (%d): %s\n", st, err.msg);
    if (st != want || !strstr(err.msg, needle))
        fail_msg("status %d (want %d), message '%s' (want it to contain '%s')", st, want, err.msg, needle);
}

static void test_bad_adapters(void **state) {
    float *before = base_logits();
    adapter_spec s;

    s = good, s.arch = "qwen2";
    expect_refused(&s, HEARTH_ERR_INVALID, "adapter is for another architecture: 'general.architecture' is 'qwen2'");
    s = good, s.arch = NULL;
    expect_refused(&s, HEARTH_ERR_FORMAT, "malformed adapter: 'general.architecture' is missing");
    s = good, s.gtype = "model";
    expect_refused(&s, HEARTH_ERR_FORMAT, "not a LoRA adapter: 'general.type' is 'model'");
    s = good, s.gtype = NULL;
    expect_refused(&s, HEARTH_ERR_FORMAT, "not a LoRA adapter: 'general.type' is missing");
    s = good, s.atype = "ia3";
    expect_refused(&s, HEARTH_ERR_UNSUPPORTED, "'adapter.type' is 'ia3', expected 'lora'");

    s = good, s.alpha = NAN;
    expect_refused(&s, HEARTH_ERR_FORMAT, "'adapter.lora.alpha' = nan must be a finite number > 0");
    s = good, s.alpha = 0.0;
    expect_refused(&s, HEARTH_ERR_FORMAT, "'adapter.lora.alpha' = 0 must be");
    s = good, s.alpha = -2.0;
    expect_refused(&s, HEARTH_ERR_FORMAT, "'adapter.lora.alpha' = -2 must be");
    s = good, s.alpha = INFINITY;
    expect_refused(&s, HEARTH_ERR_FORMAT, "'adapter.lora.alpha' = inf must be");
    s = good, s.alpha_str = "16";
    expect_refused(&s, HEARTH_ERR_FORMAT, "'adapter.lora.alpha' is not a number");

    s = good, s.t[1] = s.t[5], s.t[5] = (spec_tensor){0}; /* attn_q without its lora_b */
    expect_refused(&s, HEARTH_ERR_FORMAT, "tensor 'blk.0.attn_q.weight.lora_a' has no partner '.lora_b'");
    s = good, s.t[0] = s.t[5], s.t[5] = (spec_tensor){0}; /* attn_q without its lora_a */
    expect_refused(&s, HEARTH_ERR_FORMAT, "tensor 'blk.0.attn_q.weight.lora_b' has no partner '.lora_a'");

    s = good, s.t[2].ne0 = 8; /* ffn_down's input is n_ff = 32 wide */
    expect_refused(&s, HEARTH_ERR_INVALID,
                   "tensor 'blk.0.ffn_down.weight.lora_a' has shape [8, 4, 1, 1], expected [32, 4]");
    s = good, s.t[3].ne1 = 32; /* ffn_down's output is n_embd = 8 wide */
    expect_refused(&s, HEARTH_ERR_INVALID,
                   "tensor 'blk.0.ffn_down.weight.lora_b' has shape [4, 32, 1, 1], expected [4, 8]");

    s = good, s.t[0].name = "blk.0.attn_qq.weight.lora_a", s.t[1].name = "blk.0.attn_qq.weight.lora_b";
    expect_refused(&s, HEARTH_ERR_INVALID, "targets 'blk.0.attn_qq.weight', which is not an adaptable matrix");
    s = good, s.t[0].name = "blk.1.attn_q.weight.lora_a", s.t[1].name = "blk.1.attn_q.weight.lora_b";
    expect_refused(&s, HEARTH_ERR_INVALID, "targets 'blk.1.attn_q.weight'"); /* the model has one layer */
    s = good, s.t[0].name = "blk.0.attn_norm.weight.lora_a", s.t[1].name = "blk.0.attn_norm.weight.lora_b";
    expect_refused(&s, HEARTH_ERR_INVALID, "targets 'blk.0.attn_norm.weight'");
    s = good, s.t[0].name = "token_embd.weight.lora_a", s.t[1].name = "token_embd.weight.lora_b";
    expect_refused(&s, HEARTH_ERR_INVALID, "targets 'token_embd.weight'");
    s = good, s.t[0].name = "blk.0.attn_q.weight.lora_c";
    expect_refused(&s, HEARTH_ERR_FORMAT, "unknown tensor 'blk.0.attn_q.weight.lora_c'");
    s = good, s.t[0].name = "blk.00.attn_q.weight.lora_a", s.t[1].name = "blk.00.attn_q.weight.lora_b";
    expect_refused(&s, HEARTH_ERR_INVALID, "targets 'blk.00.attn_q.weight'");

    s = good, s.t[1].ne0 = 2; /* a has rank 4, b rank 2 */
    expect_refused(&s, HEARTH_ERR_FORMAT, "rank mismatch: 'blk.0.attn_q.weight.lora_a' has rank 4 but "
                                          "'blk.0.attn_q.weight.lora_b' has 2");
    s = good, s.t[2].ne1 = 2, s.t[3].ne0 = 2; /* ffn_down pair has rank 2, attn_q rank 4 */
    expect_refused(&s, HEARTH_ERR_FORMAT, "rank mismatch: 'blk.0.ffn_down.weight.lora_a' has rank 2 but "
                                          "'blk.0.attn_q.weight.lora_a' has 4");

    s = good, s.t[0].type = GGML_I32;
    expect_refused(&s, HEARTH_ERR_UNSUPPORTED, "tensor 'blk.0.attn_q.weight.lora_a' has type I32");
    s = good, s.nan_weight = true;
    expect_refused(&s, HEARTH_ERR_FORMAT, "tensor 'blk.0.attn_q.weight.lora_a' holds a non-finite value at element 0");
    s = good, s.t[0] = (spec_tensor){0};
    expect_refused(&s, HEARTH_ERR_FORMAT, "adapter has no tensors");

    hearth_err err = {0};
    model_lora *a = NULL;
    hearth_status st = model_lora_new(base, base_file, &a, &err); /* a plain model as the adapter */
    printf("  refused (%d): %s\n", st, err.msg);
    if (st != HEARTH_ERR_FORMAT || !strstr(err.msg, "not a LoRA adapter: 'general.type' is"))
        fail_msg("plain model as adapter: status %d, message '%s'", st, err.msg);
    assert_null(a);

    float *after = base_logits();
    int64_t n = 5 * model_hp(base)->n_vocab;
    for (int64_t i = 0; i < n; i++)
        if (before[i] != after[i])
            fail_msg("base logits changed at %lld: %g then %g", (long long)i, before[i], after[i]);
    free(before);
    free(after);
}

/* Every allocation of a load can fail; each failure is NOMEM and leaves nothing behind. */
static void test_load_out_of_memory(void **state) {
    size_t size;
    void *buf = write_adapter(&good, &size);
    gguf_file *f = NULL;
    hearth_err err;
    assert_int_equal(gguf_open_memory(buf, size, "adapter.gguf", &f, &err), HEARTH_OK);
    int failures = 0;
    for (long k = 1;; k++) {
        model_lora *a = NULL;
        mem_fail_at(k);
        hearth_status st = model_lora_new(base, f, &a, &err);
        mem_fail_at(0);
        if (!st) {
            model_lora_release(a);
            break;
        }
        if (st != HEARTH_ERR_NOMEM) fail_msg("allocation %ld failed: status %d (%s), want NOMEM", k, st, err.msg);
        assert_null(a);
        failures++;
    }
    assert_true(failures >= 3);
    gguf_close(f);
    mem_free(buf);
}

/* Selections checked before the cache changes; references keep an adapter alive. */
static void test_selection(void **state) {
    hearth_err err;
    model_lora *a = NULL;
    assert_int_equal(load_spec(&good, &a, &err), HEARTH_OK);
    model *other = NULL;
    assert_int_equal(model_new(base_file, &other, &err), HEARTH_OK);
    model_ctx *c = NULL;
    kv_cache *kv = NULL;
    model_batch b;
    model_ctx_params cp = {.n_batch = 4, .n_outputs = 4, .n_ctx = 8};
    kv_config kc = model_kv_config(other, 8, 1);
    assert_int_equal(model_ctx_new(other, &cp, NULL, &c, &err), HEARTH_OK);
    assert_int_equal(kv_cache_new(&kc, &kv, &err), HEARTH_OK);
    assert_int_equal(model_batch_init(&b, 4, &err), HEARTH_OK);
    model_batch_add(&b, 1, 0, 0, true);

    model_lora_use use = {a, 1.0f};
    model_lora_set set = {1, &use};
    model_lora_map map = {1, &set};
    assert_int_equal(model_forward_lora(c, kv, &b, &map, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "was loaded for another model"));
    assert_int_equal(kv_seq_len(kv, 0), 0);
    model_ctx_free(c);
    c = NULL;

    assert_int_equal(model_ctx_new(base, &cp, NULL, &c, &err), HEARTH_OK);
    use.scale = NAN;
    assert_int_equal(model_forward_lora(c, kv, &b, &map, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "scale nan is not finite"));
    assert_int_equal(kv_seq_len(kv, 0), 0);

    use.scale = 2.0f; /* one reference released, the other still holds the adapter */
    model_lora_retain(a);
    model_lora_release(a);
    assert_int_equal(model_forward_lora(c, kv, &b, &map, &err), HEARTH_OK);
    assert_int_equal(kv_seq_len(kv, 0), 1);
    model_lora_release(a);

    model_batch_free(&b);
    kv_cache_free(kv);
    model_ctx_free(c);
    model_free(other);
}

/* Logits of 12 tokens with the good adapter (its logits pair is large enough to use the
 * pool) on a context with the given pool: [12][n_vocab]. */
static float *adapted_logits(model_lora *a, kern_pool *pool, float scale) {
    hearth_err err;
    int64_t nv = model_hp(base)->n_vocab;
    model_ctx *c = NULL;
    kv_cache *kv = NULL;
    model_batch b;
    model_ctx_params cp = {.n_batch = 12, .n_outputs = 12, .n_ctx = 16};
    kv_config kc = model_kv_config(base, 16, 1);
    assert_int_equal(model_ctx_new(base, &cp, pool, &c, &err), HEARTH_OK);
    assert_int_equal(kv_cache_new(&kc, &kv, &err), HEARTH_OK);
    assert_int_equal(model_batch_init(&b, 12, &err), HEARTH_OK);
    for (int i = 0; i < 12; i++) model_batch_add(&b, 100 + 37 * i, i, 0, true);
    model_lora_use use = {a, scale};
    model_lora_set set = {1, &use};
    model_lora_map map = {1, &set};
    if (model_forward_lora(c, kv, &b, &map, &err)) fail_msg("%s", err.msg);
    float *out = malloc((size_t)(12 * nv) * sizeof(float));
    for (int i = 0; i < 12; i++) memcpy(out + i * nv, model_logits(c, i), (size_t)nv * sizeof(float));
    model_batch_free(&b);
    kv_cache_free(kv);
    model_ctx_free(c);
    return out;
}

/* Large low-rank products run on the pool; the result equals the single-thread one. */
static void test_pool_equals_single_thread(void **state) {
    hearth_err err;
    model_lora *a = NULL;
    assert_int_equal(load_spec(&good, &a, &err), HEARTH_OK);
    kern_pool *pool = kern_pool_new(2);
    assert_non_null(pool);
    float *one = adapted_logits(a, NULL, 1.0f), *two = adapted_logits(a, pool, 1.0f);
    float *off = adapted_logits(a, pool, 0.0f);
    int64_t n = 12 * model_hp(base)->n_vocab;
    double diff = 0, effect = 0;
    for (int64_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)one[i] - two[i]));
        effect = fmax(effect, fabs((double)one[i] - off[i]));
    }
    printf("  2 threads vs 1: max |diff| %g; adapter vs scale 0: max |diff| %g\n", diff, effect);
    if (diff > 1e-6) fail_msg("pool and single-thread adapter results differ by %g", diff);
    if (effect < 1e-3) fail_msg("the adapter changed the logits by only %g", effect);
    free(one);
    free(two);
    free(off);
    kern_pool_free(pool);
    model_lora_release(a);
}

/* A bad adapter on the command line: exit 1 and one error line naming file and problem. */
static void test_cli_bad_adapter(void **state) {
    adapter_spec s = good;
    s.arch = "qwen2";
    size_t size;
    void *buf = write_adapter(&s, &size);
    char path[64], out_path[64], args[2048];
    snprintf(path, sizeof path, "/tmp/hearth-lora-bad-%d.gguf", (int)getpid());
    snprintf(out_path, sizeof out_path, "/tmp/hearth-lora-bad-%d.f32", (int)getpid());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, size, f), size);
    fclose(f);
    mem_free(buf);
    snprintf(args, sizeof args, "logits -m '%s' -p hi -o %s --lora %s:0.5", fixture_path(TINY), out_path, path);
    char *out = NULL, *errout = NULL;
    int code = run_hearth(args, &out, &errout);
    unlink(path);
    printf("  hearth %s -> %d: %s", args, code, errout);
    assert_int_equal(code, 1);
    assert_non_null(strstr(errout, "hearth: error: "));
    assert_non_null(strstr(errout, path));
    assert_non_null(strstr(errout, "another architecture"));
    assert_ptr_equal(strchr(errout, '\n'), errout + strlen(errout) - 1); /* one line */
    assert_int_equal(access(out_path, F_OK), -1);
    free(out);
    free(errout);

    snprintf(args, sizeof args, "logits -m '%s' -p hi -o %s --lora :0.5", fixture_path(TINY), out_path);
    code = run_hearth(args, &out, &errout);
    assert_int_equal(code, 2);
    assert_non_null(strstr(errout, "--lora expects ADAPTER.gguf[:SCALE]"));
    free(out);
    free(errout);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_adapter),       cmocka_unit_test(test_bad_adapters),
        cmocka_unit_test(test_load_out_of_memory), cmocka_unit_test(test_selection),
        cmocka_unit_test(test_pool_equals_single_thread),
        cmocka_unit_test(test_cli_bad_adapter),
    };
    if (!fixtures_available()) return 0;
    return cmocka_run_group_tests(tests, setup, teardown);
}
