/* libFuzzer target: model loading. The input describes a small decoder model (architecture,
 * true sizes, weight type, and for every metadata key and tensor whether it is written
 * as is, left out, or broken: raw 64-bit values, wrong types, NaN floats, grown or
 * swapped shapes, other tensor types; 256-wide rows only for k-quant weights). The model
 * is written with the GGUF writer and loaded; model_new must refuse it with a message or
 * load it, and a loaded model must run a three-token forward pass to finite logits or
 * refuse it. */
#include <math.h>
#include <string.h>

#include "base/mem.h"
#include "engine/kv_cache.h"
#include "fz_util.h"
#include "tiny_model.h"
#include "gguf/gguf.h"
#include "model/model.h"

static const char *const arches[] = {"llama", "mistral", "qwen2", "qwen3", "gpt2"};
static const uint32_t weight_types[] = {GGML_F32, GGML_F16, GGML_BF16, GGML_Q8_0, GGML_Q4_0, GGML_Q4_1,
                                        GGML_Q5_0, GGML_Q5_1, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K};

/* Reads the spec off the input: sizes first, then per key and per tensor a mode byte. */
static void read_spec(fz_in *in, tiny_spec *s) {
    tiny_spec_default(s, arches[fz_u8(in) % (sizeof arches / sizeof arches[0])]);
    uint8_t sizes = fz_u8(in);
    if (sizes & 1) {
        s->n_head = 1 + fz_u8(in) % 8;
        s->n_head_kv = 1 + fz_u8(in) % 8;
        s->head_dim = 2 * (1 + fz_u8(in) % 16);
        s->n_embd = s->n_head * s->head_dim;
        if (sizes & 2) s->n_embd = 1 + fz_u8(in) % 128;
        s->n_ff = 1 + fz_u8(in) % 128;
        s->n_layer = 1 + fz_u8(in) % 2;
        s->n_vocab = 1 + fz_u8(in) % 64;
    }
    if (sizes & 4) s->weight_type = weight_types[fz_u8(in) % (sizeof weight_types / sizeof weight_types[0])];
    /* k-quant weights: the smallest model whose rows hold whole 256-element blocks. Other
     * types are not widened: their blocks fit the sizes above, and a 256-wide float model
     * (2 MB written, packed and freed per input) made this target five times slower. */
    bool k_quant = s->weight_type == GGML_Q4_K || s->weight_type == GGML_Q5_K || s->weight_type == GGML_Q6_K;
    if ((sizes & 8) && k_quant) {
        s->n_embd = s->n_ff = 256;
        s->n_head = s->n_head_kv = 2;
        s->head_dim = 128;
    }
    for (int k = 0; k < TINY_K_COUNT; k++) {
        uint8_t mode = fz_u8(in);
        if (mode < 0x80) continue; /* half the time: the default */
        s->key_mode[k] = mode % TINY_KEY_MODES;
        if (s->key_mode[k] == TINY_KEY_RAW) {
            s->key_raw[k] = (int64_t)fz_u64(in);
            s->key_raw_f[k] = fz_f64(in);
        }
    }
    uint8_t n_broken = fz_u8(in) % 4;
    for (uint8_t i = 0; i < n_broken; i++) {
        uint8_t idx = fz_u8(in) % TINY_MAX_TENSORS;
        s->tensor_mode[idx] = fz_u8(in) % TINY_T_MODES;
        s->retype[idx] = fz_u8(in);
    }
}

static void run_forward(const model *m, fz_in *in) {
    hearth_err err = {0};
    model_ctx *c = NULL;
    kv_cache *kv = NULL;
    model_batch b = {0};
    model_ctx_params cp = {.n_batch = 4, .n_outputs = 4, .n_ctx = 8};
    if (model_ctx_new(m, &cp, NULL, &c, &err)) goto done;
    kv_config kc = model_kv_config(m, 8, 1);
    if (kv_cache_new(&kc, &kv, &err) || model_batch_init(&b, 4, &err)) goto done;
    int64_t n_vocab = model_hp(m)->n_vocab;
    for (int i = 0; i < 3; i++) model_batch_add(&b, (int32_t)(fz_u8(in) % n_vocab), i, 0, true);
    if (model_forward(c, kv, &b, &err)) {
        if (!err.msg[0]) fz_fail("forward refused without a message");
        goto done;
    }
    for (int32_t o = 0; o < model_n_outputs(c); o++) {
        const float *l = model_logits(c, o);
        for (int64_t t = 0; t < n_vocab; t++)
            if (!isfinite(l[t])) fz_fail("logit %lld of output %d is %g", (long long)t, o, l[t]);
    }
done:
    model_batch_free(&b);
    kv_cache_free(kv);
    model_ctx_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    tiny_spec s;
    read_spec(&in, &s);
    void *buf = NULL;
    size_t len = 0;
    if (!tiny_build(&s, &buf, &len)) return 0;
    gguf_file *f = NULL;
    model *m = NULL;
    hearth_err err = {0};
    if (gguf_open_memory(buf, len, "fuzz-model.gguf", &f, &err)) fz_fail("the writer's file is refused: %s", err.msg);
    hearth_status st = model_new(f, &m, &err);
    if (st) {
        if (m || !err.msg[0]) fz_fail("refusal without a message, or with a model");
    } else {
        run_forward(m, &in);
    }
    model_free(m);
    gguf_close(f);
    mem_free(buf);
    return 0;
}
