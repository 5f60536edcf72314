/* Each architecture's forward pass against the float64 oracle on small synthetic models
 * with random F32 weights written here: qwen3 (explicit head size larger than the
 * residual width allows, per-head q/k norms, NEOX RoPE, tied output), qwen2 (q/k/v biases,
 * NEOX), llama with GQA and linear RoPE scaling. Needs no fixtures. A control check makes
 * sure the test would notice a wrong RoPE pairing. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "gguf/writer.h"
#include "model/model.h"
#include "oracle.h"

#define N_VOCAB 48
#define N_TOK 12

typedef struct synth {
    const char *arch;
    int64_t embd, layers, ff, heads, heads_kv, key_len; /* key_len 0: not written */
    bool biases, head_norms;
    float rope_base, rope_linear; /* rope_linear 0: no scaling keys */
} synth;

static uint64_t rng_state = 42;

static float rnd(float scale) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return scale * ((float)(rng_state >> 40) / (float)(1 << 24) * 2.0f - 1.0f);
}

typedef struct tensor_store {
    float *bufs[64];
    int n;
} tensor_store;

static void add(gguf_writer *w, tensor_store *ts, const char *name, int64_t ne0, int64_t ne1, float scale,
                float center) {
    hearth_err err;
    int64_t ne[2] = {ne0, ne1};
    float *data = malloc((size_t)(ne0 * ne1) * sizeof(float));
    for (int64_t i = 0; i < ne0 * ne1; i++) data[i] = center + rnd(scale);
    ts->bufs[ts->n++] = data;
    assert_int_equal(gguf_writer_add_tensor(w, name, GGML_F32, ne1 > 1 ? 2 : 1, ne, data, &err), HEARTH_OK);
}

static void set_int(gguf_writer *w, const synth *s, const char *suffix, int64_t v) {
    char key[128];
    hearth_err err;
    snprintf(key, sizeof key, "%s.%s", s->arch, suffix);
    assert_int_equal(gguf_writer_set_int(w, key, GGUF_V_UINT32, v, &err), HEARTH_OK);
}

static void set_float(gguf_writer *w, const synth *s, const char *suffix, double v) {
    char key[128];
    hearth_err err;
    snprintf(key, sizeof key, "%s.%s", s->arch, suffix);
    assert_int_equal(gguf_writer_set_float(w, key, GGUF_V_FLOAT32, v, &err), HEARTH_OK);
}

static void *build(const synth *s, size_t *size) {
    hearth_err err;
    gguf_writer *w = gguf_writer_new();
    tensor_store ts = {0};
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", s->arch, &err), HEARTH_OK);
    set_int(w, s, "context_length", 64);
    set_int(w, s, "embedding_length", s->embd);
    set_int(w, s, "block_count", s->layers);
    set_int(w, s, "feed_forward_length", s->ff);
    set_int(w, s, "attention.head_count", s->heads);
    set_int(w, s, "attention.head_count_kv", s->heads_kv);
    if (s->key_len) {
        set_int(w, s, "attention.key_length", s->key_len);
        set_int(w, s, "attention.value_length", s->key_len);
    }
    set_float(w, s, "attention.layer_norm_rms_epsilon", 1e-6);
    set_float(w, s, "rope.freq_base", s->rope_base);
    if (s->rope_linear > 0) {
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", s->arch);
        assert_int_equal(gguf_writer_set_str(w, key, "linear", &err), HEARTH_OK);
        set_float(w, s, "rope.scaling.factor", s->rope_linear);
    }
    int64_t hd = s->key_len ? s->key_len : s->embd / s->heads;
    int64_t q = s->heads * hd, kv = s->heads_kv * hd;
    add(w, &ts, "token_embd.weight", s->embd, N_VOCAB, 1.0f, 0.0f);
    for (int64_t il = 0; il < s->layers; il++) {
        char n[64];
#define T(suffix) (snprintf(n, sizeof n, "blk.%lld." suffix, (long long)il), n)
        add(w, &ts, T("attn_norm.weight"), s->embd, 1, 0.2f, 1.0f);
        add(w, &ts, T("attn_q.weight"), s->embd, q, 0.6f, 0.0f);
        add(w, &ts, T("attn_k.weight"), s->embd, kv, 0.6f, 0.0f);
        add(w, &ts, T("attn_v.weight"), s->embd, kv, 0.6f, 0.0f);
        add(w, &ts, T("attn_output.weight"), q, s->embd, 0.4f, 0.0f);
        if (s->biases) {
            add(w, &ts, T("attn_q.bias"), q, 1, 0.2f, 0.0f);
            add(w, &ts, T("attn_k.bias"), kv, 1, 0.2f, 0.0f);
            add(w, &ts, T("attn_v.bias"), kv, 1, 0.2f, 0.0f);
        }
        if (s->head_norms) {
            add(w, &ts, T("attn_q_norm.weight"), hd, 1, 0.3f, 1.0f);
            add(w, &ts, T("attn_k_norm.weight"), hd, 1, 0.3f, 1.0f);
        }
        add(w, &ts, T("ffn_norm.weight"), s->embd, 1, 0.2f, 1.0f);
        add(w, &ts, T("ffn_gate.weight"), s->embd, s->ff, 0.5f, 0.0f);
        add(w, &ts, T("ffn_up.weight"), s->embd, s->ff, 0.5f, 0.0f);
        add(w, &ts, T("ffn_down.weight"), s->ff, s->embd, 0.5f, 0.0f);
#undef T
    }
    add(w, &ts, "output_norm.weight", s->embd, 1, 0.2f, 1.0f);
    void *buf = NULL;
    assert_int_equal(gguf_writer_write_memory(w, &buf, size, &err), HEARTH_OK);
    gguf_writer_free(w);
    for (int i = 0; i < ts.n; i++) free(ts.bufs[i]);
    return buf;
}

static double kl(const float *p, const float *q, int64_t n) {
    double mp = -INFINITY, mq = -INFINITY, sp = 0, sq = 0, k = 0;
    for (int64_t i = 0; i < n; i++) mp = fmax(mp, p[i]), mq = fmax(mq, q[i]);
    for (int64_t i = 0; i < n; i++) sp += exp(p[i] - mp), sq += exp(q[i] - mq);
    for (int64_t i = 0; i < n; i++) {
        double lp = p[i] - mp - log(sp), lq = q[i] - mq - log(sq);
        k += exp(lp) * (lp - lq);
    }
    return k;
}

static double max_kl(const float *a, const float *b) {
    double worst = 0;
    for (int t = 0; t < N_TOK; t++) worst = fmax(worst, kl(a + t * N_VOCAB, b + t * N_VOCAB, N_VOCAB));
    return worst;
}

static void check_arch(const synth *s, model_arch want_arch) {
    size_t size;
    void *buf = build(s, &size);
    hearth_err err;
    gguf_file *f = NULL;
    model *m = NULL;
    model_ctx *c = NULL;
    kv_cache *kv = NULL;
    model_batch b;
    assert_int_equal(gguf_open_memory(buf, size, s->arch, &f, &err), HEARTH_OK);
    if (model_new(f, &m, &err)) fail_msg("%s: %s", s->arch, err.msg);
    const model_hparams *hp = model_hp(m);
    assert_int_equal(hp->arch, want_arch);
    model_ctx_params cp = {.n_batch = N_TOK, .n_outputs = N_TOK, .n_ctx = 64};
    kv_config kc = model_kv_config(m, 64, 1);
    assert_int_equal(model_ctx_new(m, &cp, NULL, &c, &err), HEARTH_OK);
    assert_int_equal(kv_cache_new(&kc, &kv, &err), HEARTH_OK);
    assert_int_equal(model_batch_init(&b, N_TOK, &err), HEARTH_OK);

    int32_t tokens[N_TOK];
    for (int i = 0; i < N_TOK; i++) tokens[i] = (i * 7 + 3) % N_VOCAB;
    /* first 5 tokens as one batch, the rest one at a time: both paths are covered */
    float ours[N_TOK * N_VOCAB];
    for (int i = 0; i < N_TOK;) {
        int end = i == 0 ? 5 : i + 1;
        model_batch_clear(&b);
        for (int t = i; t < end; t++) model_batch_add(&b, tokens[t], t, 0, true);
        if (model_forward(c, kv, &b, &err)) fail_msg("%s: %s", s->arch, err.msg);
        for (int t = i; t < end; t++)
            memcpy(ours + t * N_VOCAB, model_logits(c, t - i), N_VOCAB * sizeof(float));
        i = end;
    }
    float *exact = oracle_logits(f, hp, tokens, N_TOK);
    double d = max_kl(exact, ours);
    model_hparams wrong = *hp;
    wrong.rope_neox = !wrong.rope_neox;
    float *control = oracle_logits(f, &wrong, tokens, N_TOK);
    double dc = max_kl(control, ours);
    printf("%s: max KL vs float64 oracle %.3g; vs an oracle with the other RoPE pairing %.3g\n", s->arch, d, dc);
    if (d > 1e-4) fail_msg("%s: max KL %g > 1e-4", s->arch, d);
    if (dc < 1e-2) fail_msg("%s: the wrong RoPE pairing is not detectable (KL %g)", s->arch, dc);
    free(exact);
    free(control);
    model_batch_free(&b);
    kv_cache_free(kv);
    model_ctx_free(c);
    model_free(m);
    gguf_close(f);
    mem_free(buf);
}

static void test_qwen3(void **state) {
    synth s = {"qwen3", 32, 2, 48, 4, 2, 16, false, true, 1e6f, 0};
    check_arch(&s, MODEL_ARCH_QWEN3);
}

static void test_qwen2(void **state) {
    synth s = {"qwen2", 32, 2, 48, 4, 2, 0, true, false, 1e6f, 0};
    check_arch(&s, MODEL_ARCH_QWEN2);
}

static void test_llama_scaled_rope(void **state) {
    synth s = {"llama", 32, 2, 48, 4, 1, 0, false, false, 10000.0f, 4.0f};
    check_arch(&s, MODEL_ARCH_LLAMA);
}

static void test_mistral(void **state) {
    synth s = {"mistral", 32, 1, 48, 4, 4, 0, false, false, 10000.0f, 0};
    check_arch(&s, MODEL_ARCH_LLAMA);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen3),
        cmocka_unit_test(test_qwen2),
        cmocka_unit_test(test_llama_scaled_rope),
        cmocka_unit_test(test_mistral),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
