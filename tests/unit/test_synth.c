/* Synthetic models: same seed gives identical bytes whatever the thread count, another
 * seed other bytes; every architecture's metadata and tensors; the scheme's per-tensor
 * types; the generated vocabulary (exact size, byte tokens, merges, specials) loads in
 * our tokenizer and round-trips text, and at a real model's size it gives English about as
 * many tokens as a real vocabulary (common words whole); a copied vocabulary sets the vocabulary size; bad
 * parameters are refused with a message naming them; each architecture loads in the
 * model layer and gives finite, non-degenerate logits. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "model/model.h"
#include "synth/synth.h"
#include "tokenizer/tokenizer.h"

static synth_params small(synth_arch arch, const char *type, uint64_t seed) {
    return (synth_params){.arch = arch, .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 512,
                          .n_vocab = 1000, .n_ctx = 512, .seed = seed, .scheme = quant_scheme_find(type)};
}

/* Writes p to a fresh temporary path (returned in a static buffer per slot). */
static const char *write_model(const synth_params *p, int threads, int slot) {
    static char paths[4][64];
    snprintf(paths[slot], sizeof paths[slot], "/tmp/hearth-synth-%d-%d.gguf", (int)getpid(), slot);
    kern_pool *pool = threads > 1 ? kern_pool_new(threads) : NULL;
    hearth_err err = {0};
    hearth_status st = synth_write_model(p, pool, paths[slot], &err);
    kern_pool_free(pool);
    if (st) fail_msg("synth_write_model: %s", err.msg);
    return paths[slot];
}

static void test_determinism(void **state) {
    synth_params p = small(SYNTH_LLAMA, "q4_k_m", 7);
    const char *a = write_model(&p, 1, 0), *b = write_model(&p, 2, 1);
    p.seed = 8;
    const char *c = write_model(&p, 2, 2);
    size_t na, nb, nc;
    char *da = read_file(a, &na), *db = read_file(b, &nb), *dc = read_file(c, &nc);
    assert_non_null(da);
    assert_non_null(db);
    assert_non_null(dc);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    free(da), free(db), free(dc);
    /* another seed: other weights (and another vocabulary, so the sizes may differ) */
    gguf_file *fa = NULL, *fc = NULL;
    hearth_err err = {0};
    if (gguf_open(a, &fa, &err) || gguf_open(c, &fc, &err)) fail_msg("%s", err.msg);
    const gguf_tensor *ta = gguf_find_tensor(fa, "blk.0.ffn_up.weight"), *tc = gguf_find_tensor(fc, "blk.0.ffn_up.weight");
    assert_int_equal(ta->size, tc->size);
    size_t differing = 0;
    for (size_t i = 0; i < ta->size; i++) differing += ((const char *)ta->data)[i] != ((const char *)tc->data)[i];
    if (differing < ta->size / 2) fail_msg("seeds 7 and 8 differ in only %zu of %llu bytes", differing,
                                           (unsigned long long)ta->size);
    gguf_close(fa);
    gguf_close(fc);
    unlink(a), unlink(b), unlink(c);
}

static uint64_t get_u(const gguf_file *f, const char *key) {
    uint64_t v = 0;
    if (!gguf_get_uint(f, key, &v)) fail_msg("missing key %s", key);
    return v;
}

static void test_arch_metadata(void **state) {
    const char *arches[] = {"llama", "qwen2", "qwen3"};
    for (int a = 0; a < 3; a++) {
        synth_arch arch;
        assert_true(synth_arch_from_name(arches[a], &arch));
        synth_params p = small(arch, "q8_0", 1);
        const char *path = write_model(&p, 1, 0);
        gguf_file *f = NULL;
        hearth_err err = {0};
        if (gguf_open(path, &f, &err)) fail_msg("%s", err.msg);
        gguf_str s;
        assert_true(gguf_get_str(f, "general.architecture", &s));
        assert_true(gguf_str_eq(s, arches[a]));
        char key[96];
        snprintf(key, sizeof key, "%s.embedding_length", arches[a]), assert_int_equal(get_u(f, key), 256);
        snprintf(key, sizeof key, "%s.block_count", arches[a]), assert_int_equal(get_u(f, key), 2);
        snprintf(key, sizeof key, "%s.attention.head_count_kv", arches[a]), assert_int_equal(get_u(f, key), 2);
        snprintf(key, sizeof key, "%s.context_length", arches[a]), assert_int_equal(get_u(f, key), 512);
        double base = 0;
        snprintf(key, sizeof key, "%s.rope.freq_base", arches[a]);
        assert_true(gguf_get_float(f, key, &base));
        assert_true(base == (a == 0 ? 10000.0 : 1000000.0));
        assert_int_equal(get_u(f, "general.file_type"), 7);
        assert_int_equal(gguf_find_tensor(f, "blk.1.attn_q.bias") != NULL, a == 1);
        assert_int_equal(gguf_find_tensor(f, "blk.1.attn_k_norm.weight") != NULL, a == 2);
        snprintf(key, sizeof key, "%s.attention.key_length", arches[a]);
        if (a == 2) assert_int_equal(get_u(f, key), 64);
        const gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
        assert_non_null(emb);
        assert_int_equal(emb->ne[0], 256);
        assert_int_equal(emb->ne[1], 1000);
        assert_int_equal(emb->type, GGML_Q8_0);
        assert_int_equal(gguf_find_tensor(f, "blk.0.attn_norm.weight")->type, GGML_F32);
        gguf_close(f);
        unlink(path);
    }
}

/* --type q4_k_m applies the mix, as quantize would: layer 1 of 2 gets Q6_K. */
static void test_scheme_types(void **state) {
    synth_params p = small(SYNTH_LLAMA, "Q4_K_M", 1);
    const char *path = write_model(&p, 2, 0);
    gguf_file *f = NULL;
    hearth_err err = {0};
    if (gguf_open(path, &f, &err)) fail_msg("%s", err.msg);
    assert_int_equal(gguf_find_tensor(f, "blk.0.attn_v.weight")->type, GGML_Q4_K);
    assert_int_equal(gguf_find_tensor(f, "blk.1.attn_v.weight")->type, GGML_Q6_K);
    assert_int_equal(gguf_find_tensor(f, "blk.1.ffn_down.weight")->type, GGML_Q6_K);
    assert_int_equal(gguf_find_tensor(f, "output.weight")->type, GGML_Q6_K);
    assert_int_equal(gguf_find_tensor(f, "token_embd.weight")->type, GGML_Q4_K);
    assert_int_equal(get_u(f, "general.file_type"), 15);
    assert_int_equal(get_u(f, "general.quantization_version"), 2);
    gguf_close(f);
    unlink(path);
}

static gguf_file *vocab_file(int64_t n_vocab, uint64_t seed, void **buf) {
    gguf_writer *w = gguf_writer_new();
    hearth_err err = {0};
    size_t size;
    if (synth_vocab_write(w, n_vocab, seed, &err) || gguf_writer_write_memory(w, buf, &size, &err))
        fail_msg("vocab: %s", err.msg);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    if (gguf_open_memory(*buf, size, "vocab", &f, &err)) fail_msg("%s", err.msg);
    return f;
}

static void test_vocab_structure(void **state) {
    void *buf;
    gguf_file *f = vocab_file(3000, 5, &buf);
    const gguf_arr *tokens, *merges, *types;
    assert_true(gguf_get_arr(f, "tokenizer.ggml.tokens", &tokens));
    assert_true(gguf_get_arr(f, "tokenizer.ggml.merges", &merges));
    assert_true(gguf_get_arr(f, "tokenizer.ggml.token_type", &types));
    assert_int_equal(tokens->n, 3000);
    assert_int_equal(merges->n, 3000 - 258);
    assert_int_equal(types->n, 3000);
    /* bytes in GPT-2 form: 'A' is itself, space is U+0120, newline U+010A */
    assert_true(gguf_str_eq(tokens->strs['A'], "A"));
    assert_true(gguf_str_eq(tokens->strs[' '], "\xc4\xa0"));
    assert_true(gguf_str_eq(tokens->strs['\n'], "\xc4\x8a"));
    assert_int_equal(get_u(f, "tokenizer.ggml.bos_token_id"), 2998);
    assert_int_equal(get_u(f, "tokenizer.ggml.eos_token_id"), 2999);
    int64_t t;
    assert_true(gguf_arr_int(types, 2999, &t));
    assert_int_equal(t, 3);
    assert_true(gguf_arr_int(types, 500, &t));
    assert_int_equal(t, 1);
    gguf_str tok_model, pre;
    assert_true(gguf_get_str(f, "tokenizer.ggml.model", &tok_model) && gguf_str_eq(tok_model, "gpt2"));
    assert_true(gguf_get_str(f, "tokenizer.ggml.pre", &pre) && gguf_str_eq(pre, "gpt-2"));
    /* every merge joins two tokens into a token of the vocabulary, and all tokens differ */
    for (uint64_t i = 0; i < merges->n; i++) {
        gguf_str m = merges->strs[i], joined = tokens->strs[256 + i];
        const char *sp = memchr(m.ptr, ' ', m.len);
        assert_non_null(sp);
        size_t nl = (size_t)(sp - m.ptr);
        if (joined.len != m.len - 1 || memcmp(joined.ptr, m.ptr, nl) || memcmp(joined.ptr + nl, sp + 1, m.len - nl - 1))
            fail_msg("merge %llu '%.*s' does not make token '%.*s'", (unsigned long long)i, (int)m.len, m.ptr,
                     (int)joined.len, joined.ptr);
    }
    gguf_close(f);
    mem_free(buf);
}

static void test_vocab_roundtrip(void **state) {
    void *buf;
    gguf_file *f = vocab_file(4096, 9, &buf);
    tok_vocab *v = NULL;
    hearth_err err = {0};
    if (tok_load(f, &v, &err)) fail_msg("tok_load: %s", err.msg);
    assert_int_equal(tok_n_vocab(v), 4096);
    assert_int_equal(tok_bos(v), 4094);
    assert_int_equal(tok_eos(v), 4095);
    const char *texts[] = {
        "the quick brown fox jumps over the lazy dog",
        "Hello, world!\n\tTabs and  double  spaces   ",
        "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 emoji",
        "numbers 12345 and symbols <|> @#$%^&*()",
        "<|endoftext|> stays text when specials are not parsed",
    };
    size_t total_tokens = 0, total_bytes = 0;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0, len = 0;
        char *out = NULL;
        if (tok_encode(v, texts[i], strlen(texts[i]), false, false, &ids, &n, &err)) fail_msg("%s", err.msg);
        if (tok_decode(v, ids, n, false, &out, &len, &err)) fail_msg("%s", err.msg);
        if (len != strlen(texts[i]) || memcmp(out, texts[i], len))
            fail_msg("round trip of '%s' gave '%s'", texts[i], out);
        if (i == 0) {
            total_tokens = n;
            total_bytes = strlen(texts[i]);
        }
        mem_free(out);
        mem_free(ids);
    }
    /* merges make plain English shorter than its bytes */
    if (total_tokens * 10 > total_bytes * 8)
        fail_msg("%zu tokens for %zu bytes of English: the merges do not apply", total_tokens, total_bytes);
    tok_free(v);
    gguf_close(f);
    mem_free(buf);
}

/* At TinyLlama's size, common English words are whole tokens and plain prose takes about
 * as many tokens as a real vocabulary of that size gives it (1.2-1.4 per word). */
static void test_vocab_english_density(void **state) {
    void *buf;
    gguf_file *f = vocab_file(32000, 1, &buf);
    tok_vocab *v = NULL;
    hearth_err err = {0};
    if (tok_load(f, &v, &err)) fail_msg("tok_load: %s", err.msg);
    const char *whole[] = {" the", " people", " because", " government", "However", " Another"};
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (tok_encode(v, whole[i], strlen(whole[i]), false, false, &ids, &n, &err)) fail_msg("%s", err.msg);
        if (n != 1) fail_msg("'%s' takes %zu tokens, expected one", whole[i], n);
        mem_free(ids);
    }
    const char *prose =
        "When the new bridge opened last spring, most people in the town were surprised by how much "
        "shorter their journey to work had become. Before that, the only road across the river was "
        "a narrow one near the old mill, and in winter it was often closed for days at a time. Now "
        "children walk to school in a few minutes, and the small shops along the water have more "
        "customers than ever.";
    int32_t *ids = NULL;
    size_t n = 0, words = 1;
    for (const char *c = prose; *c; c++) words += *c == ' ';
    if (tok_encode(v, prose, strlen(prose), false, false, &ids, &n, &err)) fail_msg("%s", err.msg);
    if (n * 10 > words * 14) fail_msg("%zu tokens for %zu words of plain English (expected at most 1.4 per word)", n, words);
    mem_free(ids);
    tok_free(v);
    gguf_close(f);
    mem_free(buf);
}

static void test_vocab_from(void **state) {
    if (!fixtures_available()) return;
    gguf_file *vf = NULL;
    hearth_err err = {0};
    if (gguf_open(fixture_path("models/llama-spm-f16.gguf"), &vf, &err)) fail_msg("%s", err.msg);
    synth_params p = small(SYNTH_QWEN2, "f16", 3);
    p.n_vocab = 5; /* ignored: the copied vocabulary decides */
    p.vocab_from = vf;
    const char *path = write_model(&p, 1, 0);
    gguf_file *f = NULL;
    if (gguf_open(path, &f, &err)) fail_msg("%s", err.msg);
    assert_int_equal(gguf_find_tensor(f, "token_embd.weight")->ne[1], 32000);
    assert_int_equal(gguf_find_tensor(f, "output.weight")->ne[1], 32000);
    gguf_str tok_model;
    assert_true(gguf_get_str(f, "tokenizer.ggml.model", &tok_model) && gguf_str_eq(tok_model, "llama"));
    const gguf_arr *scores;
    assert_true(gguf_get_arr(f, "tokenizer.ggml.scores", &scores));
    assert_int_equal(scores->n, 32000);
    gguf_close(f);
    gguf_close(vf);
    unlink(path);
}

static void expect_invalid(synth_params p, const char *needle) {
    hearth_err err = {0};
    char path[64];
    snprintf(path, sizeof path, "/tmp/hearth-synth-bad-%d.gguf", (int)getpid());
    hearth_status st = synth_write_model(&p, NULL, path, &err);
    if (st != HEARTH_ERR_INVALID) fail_msg("status %d (%s), want INVALID", (int)st, err.msg);
    if (!strstr(err.msg, needle)) fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_bad_params(void **state) {
    synth_params p = small(SYNTH_LLAMA, "f16", 1);
    p.n_head_kv = 3;
    expect_invalid(p, "KV heads");
    p = small(SYNTH_LLAMA, "f16", 1);
    p.n_head = 5;
    expect_invalid(p, "head size");
    p = small(SYNTH_LLAMA, "f16", 1);
    p.n_vocab = 100;
    expect_invalid(p, "vocabulary");
    p = small(SYNTH_LLAMA, "f16", 1);
    p.n_layer = 0;
    expect_invalid(p, "n_layer");
}

#define N_TOK 24

/* The model runs: finite logits with a trained model's spread (std in (2, 8)), rows
 * that differ between positions, a next-token distribution neither flat nor one-hot. */
static void check_arch(synth_arch arch, const char *type) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/hearth-synthlog-%d.gguf", (int)getpid());
    synth_params p = {.arch = arch, .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 512,
                      .n_vocab = 2000, .n_ctx = 256, .seed = 21, .scheme = quant_scheme_find(type)};
    hearth_err err = {0};
    if (synth_write_model(&p, NULL, path, &err)) fail_msg("%s", err.msg);
    gguf_file *f = NULL;
    if (gguf_open(path, &f, &err)) fail_msg("%s", err.msg);
    unlink(path);
    model *m = NULL;
    if (model_new(f, &m, &err)) fail_msg("%s: %s", synth_arch_name(arch), err.msg);
    model_ctx *ctx = NULL;
    kv_cache *kv = NULL;
    model_batch b;
    model_ctx_params cp = {.n_batch = N_TOK, .n_outputs = N_TOK, .n_ctx = N_TOK};
    kv_config kc = model_kv_config(m, N_TOK, 1);
    if (model_ctx_new(m, &cp, NULL, &ctx, &err) || kv_cache_new(&kc, &kv, &err) || model_batch_init(&b, N_TOK, &err))
        fail_msg("%s", err.msg);
    for (int i = 0; i < N_TOK; i++) model_batch_add(&b, (i * 7919 + 13) % 2000, i, 0, true);
    if (model_forward(ctx, kv, &b, &err)) fail_msg("%s", err.msg);
    double mean_top = 0;
    for (int r = 0; r < N_TOK; r++) {
        const float *x = model_logits(ctx, r);
        double s = 0, ss = 0, mx = -INFINITY, z = 0;
        for (int i = 0; i < 2000; i++) {
            if (!isfinite(x[i])) fail_msg("%s row %d: logit %d is %g", synth_arch_name(arch), r, i, x[i]);
            s += x[i], ss += (double)x[i] * x[i], mx = fmax(mx, x[i]);
        }
        for (int i = 0; i < 2000; i++) z += exp(x[i] - mx);
        double sd = sqrt(ss / 2000 - (s / 2000) * (s / 2000));
        if (!(sd > 2 && sd < 8)) fail_msg("%s row %d: logit std %.3f, want within (2, 8)", synth_arch_name(arch), r, sd);
        mean_top += 1.0 / z / N_TOK;
        if (r > 0) {
            const float *prev = model_logits(ctx, r - 1);
            double diff = 0;
            for (int i = 0; i < 2000; i++) diff += fabs(x[i] - prev[i]);
            if (!(diff / 2000 > 0.5)) fail_msg("%s rows %d and %d nearly equal", synth_arch_name(arch), r - 1, r);
        }
    }
    printf("%s %s: mean top-1 probability %.3f\n", synth_arch_name(arch), type, mean_top);
    if (!(mean_top > 0.05 && mean_top < 0.95)) fail_msg("mean top-1 probability %.3f", mean_top);
    model_batch_free(&b);
    kv_cache_free(kv);
    model_ctx_free(ctx);
    model_free(m);
    gguf_close(f);
}

static void test_runs_llama(void **state) { check_arch(SYNTH_LLAMA, "q8_0"); }
static void test_runs_qwen2(void **state) { check_arch(SYNTH_QWEN2, "q4_k_m"); }
static void test_runs_qwen3(void **state) { check_arch(SYNTH_QWEN3, "f16"); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_determinism),     cmocka_unit_test(test_arch_metadata),
        cmocka_unit_test(test_scheme_types),    cmocka_unit_test(test_vocab_structure),
        cmocka_unit_test(test_vocab_roundtrip), cmocka_unit_test(test_vocab_english_density),
        cmocka_unit_test(test_vocab_from),
        cmocka_unit_test(test_bad_params),      cmocka_unit_test(test_runs_llama),
        cmocka_unit_test(test_runs_qwen2),      cmocka_unit_test(test_runs_qwen3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
