/* Synthetic model files (see synth.h). Every tensor is a seeded normal distribution whose
 * scale is chosen from the layer's fan-in so the forward pass stays in a realistic range:
 * the residual stream has RMS around one, query-key scores have a standard deviation near
 * 3 (attention is peaked, not uniform), each sub-layer adds a contribution comparable to
 * the residual, and the logits have a standard deviation near 4. Row r of tensor i comes
 * from its own generator stream (seed, i, r), so the bytes do not depend on threads. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "synth/synth.h"
#include "synth/synth_rng.h"

#define MAX_WIDTH (1 << 16)
#define MAX_LAYERS 512
#define MAX_CTX (1 << 24)

/* Standard deviations of the query/key projections: score std ~ QK_SCALE^2 over heads. */
#define QK_SCALE 1.8
#define LOGIT_STD 4.0

typedef struct synth_tensor {
    char name[64];
    uint32_t n_dims;
    int64_t ne[2];
    double mean, std;
    uint64_t stream; /* generator stream id */
    uint64_t seed;
} synth_tensor;

typedef struct tensor_list {
    synth_tensor *t;
    uint64_t n, cap;
} tensor_list;

static const char *arch_names[] = {"llama", "qwen2", "qwen3", "bert"};

bool synth_arch_from_name(const char *name, synth_arch *out) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, arch_names[i])) {
            *out = (synth_arch)i;
            return true;
        }
    return false;
}

const char *synth_arch_name(synth_arch a) { return arch_names[a]; }

static void add(tensor_list *l, const synth_params *p, const char *name, int64_t ne0, int64_t ne1, double mean,
                double std) {
    synth_tensor *t = &l->t[l->n];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_dims = ne1 ? 2 : 1;
    t->ne[0] = ne0;
    t->ne[1] = ne1 ? ne1 : 1;
    t->mean = mean;
    t->std = std;
    t->stream = ++l->n;
    t->seed = p->seed;
}

/* bert: post-LayerNorm encoder with biases everywhere; embeddings of token, position and
 * token type summed, then normalised. */
static void list_bert_tensors(const synth_params *p, tensor_list *l) {
    int64_t e = p->n_embd, f = p->n_ff;
    double in_e = 1.0 / sqrt((double)e), in_f = 1.0 / sqrt((double)f);
    char name[64];
    add(l, p, "token_embd.weight", e, p->n_vocab, 0.0, 1.0);
    add(l, p, "position_embd.weight", e, p->n_ctx, 0.0, 0.5);
    add(l, p, "token_types.weight", e, 2, 0.0, 0.5);
    add(l, p, "token_embd_norm.weight", e, 0, 1.0, 0.2);
    add(l, p, "token_embd_norm.bias", e, 0, 0.0, 0.1);
    for (int64_t il = 0; il < p->n_layer; il++) {
#define BLK(suffix) (snprintf(name, sizeof name, "blk.%lld." suffix, (long long)il), name)
        add(l, p, BLK("attn_q.weight"), e, e, 0.0, QK_SCALE * in_e);
        add(l, p, BLK("attn_q.bias"), e, 0, 0.0, 0.1);
        add(l, p, BLK("attn_k.weight"), e, e, 0.0, QK_SCALE * in_e);
        add(l, p, BLK("attn_k.bias"), e, 0, 0.0, 0.1);
        add(l, p, BLK("attn_v.weight"), e, e, 0.0, in_e);
        add(l, p, BLK("attn_v.bias"), e, 0, 0.0, 0.1);
        add(l, p, BLK("attn_output.weight"), e, e, 0.0, in_e);
        add(l, p, BLK("attn_output.bias"), e, 0, 0.0, 0.1);
        add(l, p, BLK("attn_output_norm.weight"), e, 0, 1.0, 0.2);
        add(l, p, BLK("attn_output_norm.bias"), e, 0, 0.0, 0.1);
        add(l, p, BLK("ffn_up.weight"), e, f, 0.0, 1.5 * in_e);
        add(l, p, BLK("ffn_up.bias"), f, 0, 0.0, 0.1);
        add(l, p, BLK("ffn_down.weight"), f, e, 0.0, 1.5 * in_f);
        add(l, p, BLK("ffn_down.bias"), e, 0, 0.0, 0.1);
        add(l, p, BLK("layer_output_norm.weight"), e, 0, 1.0, 0.2);
        add(l, p, BLK("layer_output_norm.bias"), e, 0, 0.0, 0.1);
#undef BLK
    }
}

/* All tensors in the order the reference converters write them. */
static void list_tensors(const synth_params *p, tensor_list *l) {
    if (p->arch == SYNTH_BERT) {
        list_bert_tensors(p, l);
        return;
    }
    int64_t e = p->n_embd, hd = e / p->n_head, q_dim = p->n_head * hd, kv_dim = p->n_head_kv * hd, f = p->n_ff;
    double in_e = 1.0 / sqrt((double)e), in_q = 1.0 / sqrt((double)q_dim), in_f = 1.0 / sqrt((double)f);
    /* with per-head q/k norms (qwen3) the norm weights set the score scale instead */
    double qk_std = p->arch == SYNTH_QWEN3 ? in_e : QK_SCALE * in_e;
    char name[64];
    add(l, p, "token_embd.weight", e, p->n_vocab, 0.0, 1.0);
    for (int64_t il = 0; il < p->n_layer; il++) {
#define BLK(suffix) (snprintf(name, sizeof name, "blk.%lld." suffix, (long long)il), name)
        add(l, p, BLK("attn_norm.weight"), e, 0, 1.0, 0.2);
        add(l, p, BLK("attn_q.weight"), e, q_dim, 0.0, qk_std);
        add(l, p, BLK("attn_k.weight"), e, kv_dim, 0.0, qk_std);
        add(l, p, BLK("attn_v.weight"), e, kv_dim, 0.0, in_e);
        if (p->arch == SYNTH_QWEN2) {
            add(l, p, BLK("attn_q.bias"), q_dim, 0, 0.0, 0.5);
            add(l, p, BLK("attn_k.bias"), kv_dim, 0, 0.0, 0.5);
            add(l, p, BLK("attn_v.bias"), kv_dim, 0, 0.0, 0.5);
        }
        if (p->arch == SYNTH_QWEN3) {
            add(l, p, BLK("attn_q_norm.weight"), hd, 0, QK_SCALE, 0.2);
            add(l, p, BLK("attn_k_norm.weight"), hd, 0, QK_SCALE, 0.2);
        }
        add(l, p, BLK("attn_output.weight"), q_dim, e, 0.0, in_q);
        add(l, p, BLK("ffn_norm.weight"), e, 0, 1.0, 0.2);
        add(l, p, BLK("ffn_gate.weight"), e, f, 0.0, 1.5 * in_e);
        add(l, p, BLK("ffn_up.weight"), e, f, 0.0, in_e);
        add(l, p, BLK("ffn_down.weight"), f, e, 0.0, 1.5 * in_f);
#undef BLK
    }
    add(l, p, "output_norm.weight", e, 0, 1.0, 0.2);
    add(l, p, "output.weight", e, p->n_vocab, 0.0, LOGIT_STD * in_e);
}

static void gen_row(void *ctx, int64_t row, float *out, int64_t n) {
    const synth_tensor *t = ctx;
    synth_rng r = synth_rng_for(t->seed, t->stream, (uint64_t)row);
    synth_normals(&r, out, n, t->mean, t->std);
}

typedef struct fill_ctx {
    const synth_tensor *t;
    uint32_t type;
    kern_pool *pool;
} fill_ctx;

static hearth_status fill(void *ctx, void *dst, uint64_t size, hearth_err *err) {
    const fill_ctx *fc = ctx;
    hearth_status st = quant_rows(fc->pool, gen_row, (void *)fc->t, fc->type, fc->t->ne[0], fc->t->ne[1], dst, err);
    if (st) err_prefix(err, "tensor '%s'", fc->t->name);
    return st;
}

static hearth_status check_params(const synth_params *p, hearth_err *err) {
#define RANGE(field, lo, hi)                                                                                      \
    if (p->field < (lo) || p->field > (hi))                                                                      \
        return err_set(err, HEARTH_ERR_INVALID, "mkmodel: %s = %lld is out of range [%lld, %lld]", #field,        \
                       (long long)p->field, (long long)(lo), (long long)(hi));
    RANGE(n_embd, 2, MAX_WIDTH)
    RANGE(n_layer, 1, MAX_LAYERS)
    RANGE(n_head, 1, p->n_embd)
    RANGE(n_head_kv, 1, p->n_head)
    RANGE(n_ff, 1, 4 * MAX_WIDTH)
    RANGE(n_ctx, 1, MAX_CTX)
#undef RANGE
    if (p->n_embd % p->n_head != 0 || (p->n_embd / p->n_head) % 2 != 0)
        return err_set(err, HEARTH_ERR_INVALID, "mkmodel: width %lld over %lld heads must give an even head size",
                       (long long)p->n_embd, (long long)p->n_head);
    if (p->arch == SYNTH_BERT && p->n_head_kv != p->n_head)
        return err_set(err, HEARTH_ERR_INVALID, "mkmodel: bert has as many KV heads as heads (%lld, not %lld)",
                       (long long)p->n_head, (long long)p->n_head_kv);
    if (p->n_head % p->n_head_kv != 0)
        return err_set(err, HEARTH_ERR_INVALID, "mkmodel: %lld KV heads do not divide %lld heads",
                       (long long)p->n_head_kv, (long long)p->n_head);
    return HEARTH_OK;
}

static hearth_status copy_vocab(const gguf_file *from, gguf_writer *w, int64_t *n_vocab, hearth_err *err) {
    const gguf_arr *tokens;
    if (!gguf_get_arr(from, "tokenizer.ggml.tokens", &tokens) || tokens->type != GGUF_V_STRING || tokens->n < 1 ||
        tokens->n > SYNTH_VOCAB_MAX)
        return err_set(err, HEARTH_ERR_FORMAT, "%s: no usable tokenizer.ggml.tokens array", gguf_path(from));
    *n_vocab = (int64_t)tokens->n;
    hearth_status st = HEARTH_OK;
    for (uint64_t i = 0; i < gguf_kv_count(from) && !st; i++) {
        const gguf_kv *kv = gguf_kv_at(from, i);
        if (kv->key.len < 10 || memcmp(kv->key.ptr, "tokenizer.", 10) != 0) continue;
        char *key = mem_strndup(kv->key.ptr, (size_t)kv->key.len);
        if (!key) return err_set(err, HEARTH_ERR_NOMEM, "mkmodel: out of memory copying the vocabulary");
        st = gguf_writer_set(w, key, &kv->val, err);
        mem_free(key);
    }
    return st;
}

static hearth_status set_bert_hparams(gguf_writer *w, const synth_params *p, const char *name, hearth_err *err) {
    hearth_status st;
    if ((st = gguf_writer_set_str(w, "general.architecture", "bert", err)) ||
        (st = gguf_writer_set_str(w, "general.name", name, err)) ||
        (st = gguf_writer_set_int(w, "bert.context_length", GGUF_V_UINT32, p->n_ctx, err)) ||
        (st = gguf_writer_set_int(w, "bert.embedding_length", GGUF_V_UINT32, p->n_embd, err)) ||
        (st = gguf_writer_set_int(w, "bert.block_count", GGUF_V_UINT32, p->n_layer, err)) ||
        (st = gguf_writer_set_int(w, "bert.feed_forward_length", GGUF_V_UINT32, p->n_ff, err)) ||
        (st = gguf_writer_set_int(w, "bert.attention.head_count", GGUF_V_UINT32, p->n_head, err)) ||
        (st = gguf_writer_set_float(w, "bert.attention.layer_norm_epsilon", GGUF_V_FLOAT32, 1e-12, err)) ||
        (st = gguf_writer_set_bool(w, "bert.attention.causal", false, err)) ||
        (st = gguf_writer_set_int(w, "bert.pooling_type", GGUF_V_UINT32, 2, err)) || /* cls, as BGE */
        (st = gguf_writer_set_int(w, "tokenizer.ggml.token_type_count", GGUF_V_UINT32, 2, err)))
        return st;
    return HEARTH_OK;
}

static hearth_status set_hparams(gguf_writer *w, const synth_params *p, hearth_err *err) {
    const char *arch = synth_arch_name(p->arch);
    int64_t hd = p->n_embd / p->n_head;
    char key[96], name[96];
    hearth_status st;
    snprintf(name, sizeof name, "synthetic-%s-%lldx%lld-seed%llu", arch, (long long)p->n_embd, (long long)p->n_layer,
             (unsigned long long)p->seed);
    if (p->arch == SYNTH_BERT && (st = set_bert_hparams(w, p, name, err))) return st;
#define SET_U32(suffix, v) \
    (snprintf(key, sizeof key, "%s." suffix, arch), gguf_writer_set_int(w, key, GGUF_V_UINT32, (v), err))
#define SET_F32(suffix, v) \
    (snprintf(key, sizeof key, "%s." suffix, arch), gguf_writer_set_float(w, key, GGUF_V_FLOAT32, (v), err))
    if (p->arch != SYNTH_BERT &&
        ((st = gguf_writer_set_str(w, "general.architecture", arch, err)) ||
        (st = gguf_writer_set_str(w, "general.name", name, err)) ||
        (st = SET_U32("context_length", p->n_ctx)) || (st = SET_U32("embedding_length", p->n_embd)) ||
        (st = SET_U32("block_count", p->n_layer)) || (st = SET_U32("feed_forward_length", p->n_ff)) ||
        (st = SET_U32("attention.head_count", p->n_head)) || (st = SET_U32("attention.head_count_kv", p->n_head_kv)) ||
        (st = SET_U32("rope.dimension_count", hd)) || (st = SET_U32("vocab_size", p->n_vocab)) ||
        (st = SET_F32("rope.freq_base", p->arch == SYNTH_LLAMA ? 10000.0 : 1000000.0)) ||
        (st = SET_F32("attention.layer_norm_rms_epsilon", p->arch == SYNTH_LLAMA ? 1e-5 : 1e-6))))
        return st;
    if (p->arch == SYNTH_QWEN3 &&
        ((st = SET_U32("attention.key_length", hd)) || (st = SET_U32("attention.value_length", hd))))
        return st;
#undef SET_U32
#undef SET_F32
    if ((st = gguf_writer_set_int(w, "general.file_type", GGUF_V_UINT32, p->scheme->ftype, err))) return st;
    if (p->scheme->base_type != GGML_F32 && p->scheme->base_type != GGML_F16 && p->scheme->base_type != GGML_BF16)
        st = gguf_writer_set_int(w, "general.quantization_version", GGUF_V_UINT32, 2, err);
    return st;
}

static hearth_status add_tensors(gguf_writer *w, const synth_params *p, kern_pool *pool, tensor_list *l,
                                 fill_ctx *fills, quant_tensor_desc *descs, quant_tensor_plan *plans,
                                 hearth_err *err) {
    for (uint64_t i = 0; i < l->n; i++)
        descs[i] = (quant_tensor_desc){.name = l->t[i].name, .n_dims = l->t[i].n_dims, .ne = l->t[i].ne,
                                       .src_type = GGML_F32};
    quant_plan_file(p->scheme, descs, l->n, plans);
    for (uint64_t i = 0; i < l->n; i++) {
        fills[i] = (fill_ctx){.t = &l->t[i], .type = plans[i].type, .pool = pool};
        hearth_status st = gguf_writer_add_tensor_fn(w, l->t[i].name, plans[i].type, l->t[i].n_dims, l->t[i].ne,
                                                     fill, &fills[i], err);
        if (st) return st;
    }
    return HEARTH_OK;
}

hearth_status synth_write_model(const synth_params *params, kern_pool *pool, const char *path, hearth_err *err) {
    synth_params p = *params;
    gguf_writer *w = gguf_writer_new();
    if (!w) return err_set(err, HEARTH_ERR_NOMEM, "mkmodel: out of memory");
    hearth_status st = check_params(&p, err);
    if (!st) st = p.vocab_from ? copy_vocab(p.vocab_from, w, &p.n_vocab, err)
                  : p.arch == SYNTH_BERT ? synth_wpm_vocab_write(w, p.n_vocab, p.seed, err)
                                         : synth_vocab_write(w, p.n_vocab, p.seed, err);
    if (!st) st = set_hparams(w, &p, err);
    uint64_t cap = 6 + 16 * (uint64_t)p.n_layer;
    tensor_list l = {.t = mem_calloc(cap, sizeof *l.t), .cap = cap};
    fill_ctx *fills = mem_calloc(cap, sizeof *fills);
    quant_tensor_desc *descs = mem_calloc(cap, sizeof *descs);
    quant_tensor_plan *plans = mem_calloc(cap, sizeof *plans);
    if (!st && (!l.t || !fills || !descs || !plans)) st = err_set(err, HEARTH_ERR_NOMEM, "mkmodel: out of memory");
    if (!st) {
        list_tensors(&p, &l);
        st = add_tensors(w, &p, pool, &l, fills, descs, plans, err);
    }
    if (!st) st = gguf_writer_write_file(w, path, err);
    mem_free(plans);
    mem_free(descs);
    mem_free(fills);
    mem_free(l.t);
    gguf_writer_free(w);
    return st;
}
