/* Small models written with the GGUF writer (see tiny_model.h). */
#include "tiny_model.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "gguf/writer.h"
#include "kernels/kernels.h"

void tiny_spec_default(tiny_spec *s, const char *arch) {
    memset(s, 0, sizeof *s);
    s->arch = arch;
    s->n_embd = 32;
    s->n_layer = 1;
    s->n_ff = 64;
    s->n_head = 4;
    s->n_head_kv = 2;
    s->head_dim = 8;
    s->n_vocab = 48;
    s->weight_type = GGML_F32;
    /* llama derives the head size from embedding_length / head_count */
    if (strcmp(arch, "qwen3") != 0) s->key_mode[TINY_K_KEY_LEN] = s->key_mode[TINY_K_VAL_LEN] = TINY_KEY_ABSENT;
    s->key_mode[TINY_K_ROPE_FACTOR] = TINY_KEY_ABSENT;
}

typedef struct fill_ctx {
    uint32_t type;
    uint32_t seed;
    bool norm;      /* values near 1 */
} fill_ctx;

static float next_uniform(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) - 0.5f; /* [-0.5, 0.5) */
}

/* Values repeat with this period (a prime, so rows of power-of-two widths differ): only
 * one period is computed, the rest is copied, which keeps large test models cheap. */
#define FILL_PERIOD 4099

static hearth_status fill_tensor(void *vctx, void *dst, uint64_t size, hearth_err *err) {
    fill_ctx *c = vctx;
    uint32_t st = c->seed;
    size_t esize = c->type == GGML_F32 ? 4 : c->type == GGML_F16 || c->type == GGML_BF16 ? 2 : 0;
    if (!esize) {
        /* quantized blocks: every f16 scale 0x1111 (about 5e-4) and every quant 0x11: finite values */
        memset(dst, 0x11, size);
        return HEARTH_OK;
    }
    uint64_t n = size / esize, period = n < FILL_PERIOD ? n : FILL_PERIOD;
    for (uint64_t i = 0; i < period; i++) {
        float v = (c->norm ? 1.0f : 0.0f) + next_uniform(&st);
        if (esize == 4) ((float *)dst)[i] = v;
        else ((uint16_t *)dst)[i] = c->type == GGML_F16 ? kern_f32_to_f16(v) : kern_f32_to_bf16(v);
    }
    for (uint64_t done = period; done < n;) { /* each copy doubles the filled prefix */
        uint64_t k = done < n - done ? done : n - done;
        memcpy((char *)dst + done * esize, dst, k * esize);
        done += k;
    }
    return HEARTH_OK;
}

typedef struct builder {
    const tiny_spec *s;
    gguf_writer *w;
    fill_ctx fills[TINY_MAX_TENSORS];
    int n_tensors;
    bool ok;
} builder;

static void add(builder *b, const char *name, uint32_t type, int64_t ne0, int64_t ne1, int n_dims) {
    if (!b->ok) return;
    int idx = b->n_tensors++;
    if (idx >= TINY_MAX_TENSORS) {
        b->ok = false;
        return;
    }
    uint8_t mode = b->s->tensor_mode[idx] % TINY_T_MODES;
    int64_t ne[2] = {ne0, ne1};
    if (mode == TINY_T_MISSING) return;
    if (mode == TINY_T_GROW) ne[n_dims - 1] += 1;
    if (mode == TINY_T_SWAP && n_dims == 2) ne[0] = ne1, ne[1] = ne0;
    if (mode == TINY_T_SWAP && n_dims == 1) n_dims = 2, ne[1] = 1 + (ne0 & 1);
    if (mode == TINY_T_RETYPE) type = b->s->retype[idx] % GGML_TYPE_LIMIT;
    b->fills[idx] = (fill_ctx){.type = type, .seed = 0x9e3779b9u * (uint32_t)(idx + 1), .norm = n_dims == 1};
    hearth_err err;
    if (gguf_writer_add_tensor_fn(b->w, name, type, (uint32_t)n_dims, ne, fill_tensor, &b->fills[idx], &err))
        b->ok = false;
}

static void set_key(builder *b, int k, const char *suffix, int64_t true_val, bool is_float, double true_f) {
    if (!b->ok) return;
    char key[96];
    snprintf(key, sizeof key, "%s.%s", b->s->arch, suffix);
    hearth_err err;
    hearth_status st = HEARTH_OK;
    switch (b->s->key_mode[k] % TINY_KEY_MODES) {
    case TINY_KEY_TRUE:
        st = is_float ? gguf_writer_set_float(b->w, key, GGUF_V_FLOAT32, true_f, &err)
                      : gguf_writer_set_int(b->w, key, GGUF_V_UINT32, true_val, &err);
        break;
    case TINY_KEY_ABSENT:
        break;
    case TINY_KEY_RAW:
        st = is_float ? gguf_writer_set_float(b->w, key, GGUF_V_FLOAT64, b->s->key_raw_f[k], &err)
                      : gguf_writer_set_int(b->w, key, GGUF_V_INT64, b->s->key_raw[k], &err);
        break;
    default:
        st = is_float ? gguf_writer_set_str(b->w, key, "10000", &err)
                      : gguf_writer_set_float(b->w, key, GGUF_V_FLOAT32, (double)true_val, &err);
        break;
    }
    if (st) b->ok = false;
}

int tiny_tensor_count(const tiny_spec *s) {
    int per_layer = 9 + (!strcmp(s->arch, "qwen2") ? 3 : 0) + (!strcmp(s->arch, "qwen3") ? 2 : 0);
    return 3 + (int)s->n_layer * per_layer;
}

/* An SPM vocabulary: <unk>, <s>, </s>, pieces that spell " hi", then fillers. */
static bool add_tokenizer(gguf_writer *w, int64_t n) {
    static const char *const head[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "h", "i",
                                       "\xe2\x96\x81h", "hi", "\xe2\x96\x81hi"};
    const int64_t n_head = (int64_t)(sizeof head / sizeof head[0]);
    if (n < n_head || n > 100000) return false;
    const char **texts = mem_calloc((size_t)n, sizeof *texts);
    char *fill = mem_calloc((size_t)n, 16);
    float *scores = mem_calloc((size_t)n, sizeof *scores);
    int32_t *types = mem_calloc((size_t)n, sizeof *types);
    bool ok = texts && fill && scores && types;
    for (int64_t i = 0; ok && i < n; i++) {
        if (i < n_head) texts[i] = head[i];
        else snprintf(fill + 16 * i, 16, "t%lld", (long long)i), texts[i] = fill + 16 * i;
        scores[i] = -(float)i;
        types[i] = i == 0 ? 2 : i < 3 ? 3 : 1; /* unknown, control, normal */
    }
    hearth_err err;
    ok = ok && !gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", &err) &&
         !gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", texts, (uint64_t)n, &err) &&
         !gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_V_FLOAT32, scores, (uint64_t)n, &err) &&
         !gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_V_INT32, types, (uint64_t)n, &err) &&
         !gguf_writer_set_int(w, "tokenizer.ggml.bos_token_id", GGUF_V_UINT32, 1, &err) &&
         !gguf_writer_set_int(w, "tokenizer.ggml.eos_token_id", GGUF_V_UINT32, 2, &err) &&
         !gguf_writer_set_int(w, "tokenizer.ggml.unknown_token_id", GGUF_V_UINT32, 0, &err);
    mem_free(texts);
    mem_free(fill);
    mem_free(scores);
    mem_free(types);
    return ok;
}

bool tiny_build(const tiny_spec *s, void **buf, size_t *size) {
    const int64_t e = s->n_embd, hd = s->head_dim, ff = s->n_ff, nv = s->n_vocab;
    const int64_t q_dim = s->n_head * hd, kv_dim = s->n_head_kv * hd;
    if (e < 1 || e > 4096 || s->n_layer < 1 || s->n_layer > 4 || ff < 1 || ff > 4096 || s->n_head < 1 ||
        s->n_head > 64 || s->n_head_kv < 1 || s->n_head_kv > 64 || hd < 1 || hd > 256 || nv < 1 || nv > 4096)
        return false;
    builder b = {.s = s, .w = gguf_writer_new(), .ok = true};
    if (!b.w) return false;
    hearth_err err;
    if (gguf_writer_set_str(b.w, "general.architecture", s->arch, &err) ||
        gguf_writer_set_int(b.w, "general.alignment", GGUF_V_UINT32, 32, &err) ||
        (s->tokenizer && !add_tokenizer(b.w, nv + s->extra_tokens)))
        b.ok = false;
    set_key(&b, TINY_K_CTX, "context_length", 64, false, 0);
    set_key(&b, TINY_K_EMBD, "embedding_length", e, false, 0);
    set_key(&b, TINY_K_LAYERS, "block_count", s->n_layer, false, 0);
    set_key(&b, TINY_K_FF, "feed_forward_length", ff, false, 0);
    set_key(&b, TINY_K_HEADS, "attention.head_count", s->n_head, false, 0);
    set_key(&b, TINY_K_HEADS_KV, "attention.head_count_kv", s->n_head_kv, false, 0);
    set_key(&b, TINY_K_KEY_LEN, "attention.key_length", hd, false, 0);
    set_key(&b, TINY_K_VAL_LEN, "attention.value_length", hd, false, 0);
    set_key(&b, TINY_K_ROT, "rope.dimension_count", hd, false, 0);
    set_key(&b, TINY_K_EPS, "attention.layer_norm_rms_epsilon", 0, true, 1e-5);
    set_key(&b, TINY_K_ROPE_BASE, "rope.freq_base", 0, true, 10000.0);
    set_key(&b, TINY_K_ROPE_FACTOR, "rope.scaling.factor", 0, true, 1.0);

    uint32_t wt = s->weight_type;
    add(&b, "token_embd.weight", wt, e, nv, 2);
    add(&b, "output_norm.weight", GGML_F32, e, 0, 1);
    add(&b, "output.weight", wt, e, nv, 2);
    for (int64_t il = 0; il < s->n_layer; il++) {
        char name[64];
#define BLK(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, (int)il), name)
        add(&b, BLK("attn_norm.weight"), GGML_F32, e, 0, 1);
        add(&b, BLK("attn_q.weight"), wt, e, q_dim, 2);
        add(&b, BLK("attn_k.weight"), wt, e, kv_dim, 2);
        add(&b, BLK("attn_v.weight"), wt, e, kv_dim, 2);
        add(&b, BLK("attn_output.weight"), wt, q_dim, e, 2);
        add(&b, BLK("ffn_norm.weight"), GGML_F32, e, 0, 1);
        add(&b, BLK("ffn_gate.weight"), wt, e, ff, 2);
        add(&b, BLK("ffn_up.weight"), wt, e, ff, 2);
        add(&b, BLK("ffn_down.weight"), wt, ff, e, 2);
        if (!strcmp(s->arch, "qwen2")) {
            add(&b, BLK("attn_q.bias"), GGML_F32, q_dim, 0, 1);
            add(&b, BLK("attn_k.bias"), GGML_F32, kv_dim, 0, 1);
            add(&b, BLK("attn_v.bias"), GGML_F32, kv_dim, 0, 1);
        }
        if (!strcmp(s->arch, "qwen3")) {
            add(&b, BLK("attn_q_norm.weight"), GGML_F32, hd, 0, 1);
            add(&b, BLK("attn_k_norm.weight"), GGML_F32, hd, 0, 1);
        }
#undef BLK
    }
    bool ok = b.ok && gguf_writer_write_memory(b.w, buf, size, &err) == HEARTH_OK;
    gguf_writer_free(b.w);
    return ok;
}
