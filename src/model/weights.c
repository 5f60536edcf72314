/* Weight binding: finds every tensor the architecture needs by name, checks its shape
 * against the hyper-parameters and its type against what the kernels compute, and
 * converts norm weights and biases to float32. Matrices stay in the mapping. A missing
 * tensor or wrong shape is FORMAT, an uncomputable type UNSUPPORTED; never reads a
 * tensor before checking it. */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "model/model_impl.h"

#define MAX_VOCAB ((int64_t)1 << 24)

static const char *type_name(uint32_t type) {
    const ggml_type_info *ti = ggml_type_get(type);
    return ti && ti->name ? ti->name : "unknown";
}

/* Finds name and checks it has exactly the dims ne[0..n_dims) (fastest first) and a
 * computable type whose blocks tile each row. */
static hearth_status find_checked(const gguf_file *f, const char *name, int n_dims, const int64_t *ne,
                                  const gguf_tensor **out, hearth_err *err) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    *out = t;
    if (!t) return err_set(err, HEARTH_ERR_FORMAT, "missing tensor '%s'", name);
    bool ok = true;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) ok = ok && t->ne[d] == (d < n_dims ? ne[d] : 1);
    if (!ok) {
        char want[64], got[96];
        if (n_dims == 1) snprintf(want, sizeof want, "[%lld]", (long long)ne[0]);
        else snprintf(want, sizeof want, "[%lld, %lld]", (long long)ne[0], (long long)ne[1]);
        snprintf(got, sizeof got, "[%lld, %lld, %lld, %lld]", (long long)t->ne[0], (long long)t->ne[1],
                 (long long)t->ne[2], (long long)t->ne[3]);
        return err_set(err, HEARTH_ERR_FORMAT, "tensor '%s' has shape %s, expected %s", name, got, want);
    }
    const kern_type_traits *tr = kern_traits(t->type);
    if (!tr)
        return err_set(err, HEARTH_ERR_UNSUPPORTED, "tensor '%s' has type %s, which Hearth does not support",
                       name, type_name(t->type));
    if (ne[0] % tr->block_elems != 0)
        return err_set(err, HEARTH_ERR_FORMAT, "tensor '%s': row length %lld is not a multiple of the %s block (%u)",
                       name, (long long)ne[0], tr->name, tr->block_elems);
    return HEARTH_OK;
}

static hearth_status bind_matrix(const gguf_file *f, const char *name, int64_t rows, int64_t cols,
                                 kern_matrix *out, hearth_err *err) {
    const gguf_tensor *t;
    int64_t ne[2] = {cols, rows};
    hearth_status st = find_checked(f, name, 2, ne, &t, err);
    if (st) return st;
    *out = (kern_matrix){.type = t->type, .rows = rows, .cols = cols,
                         .row_bytes = kern_row_bytes(t->type, cols), .data = t->data};
    return HEARTH_OK;
}

static hearth_status bind_vector(const gguf_file *f, const char *name, int64_t n, f32_arena *a,
                                 float **out, hearth_err *err) {
    const gguf_tensor *t;
    hearth_status st = find_checked(f, name, 1, &n, &t, err);
    if (st || !a->next) return st;
    if ((size_t)n > a->left) return err_set(err, HEARTH_ERR_INTERNAL, "model: norm arena too small at '%s'", name);
    kern_traits(t->type)->to_float(t->data, a->next, n);
    *out = a->next;
    a->next += n;
    a->left -= (size_t)n;
    return HEARTH_OK;
}

hearth_status model_bind_matrix(const gguf_file *f, const char *name, int64_t rows, int64_t cols,
                                kern_matrix *out, hearth_err *err) {
    return bind_matrix(f, name, rows, cols, out, err);
}

hearth_status model_bind_vector(const gguf_file *f, const char *name, int64_t n, f32_arena *a, float **out,
                                hearth_err *err) {
    return bind_vector(f, name, n, a, out, err);
}

/* Floats needed for every norm weight and bias of the architecture. */
static size_t arena_floats(const model_hparams *hp) {
    if (hp->arch == MODEL_ARCH_BERT) return model_bert_arena_floats(hp);
    size_t per_layer = 2 * (size_t)hp->n_embd;
    if (hp->arch == MODEL_ARCH_QWEN2)
        per_layer += (size_t)((hp->n_head + 2 * hp->n_head_kv) * hp->head_dim_k);
    if (hp->arch == MODEL_ARCH_QWEN3) per_layer += 2 * (size_t)hp->head_dim_k;
    return per_layer * (size_t)hp->n_layer + (size_t)hp->n_embd;
}

static hearth_status bind_layer(const gguf_file *f, const model_hparams *hp, int il, f32_arena *a,
                                model_layer *L, hearth_err *err) {
    char name[96];
    hearth_status st;
    int64_t e = hp->n_embd, q_dim = hp->n_head * hp->head_dim_k, k_dim = hp->n_head_kv * hp->head_dim_k,
            v_dim = hp->n_head_kv * hp->head_dim_v, o_in = hp->n_head * hp->head_dim_v;
#define BLK(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, il), name)
    if ((st = bind_vector(f, BLK("attn_norm.weight"), e, a, &L->attn_norm, err)) ||
        (st = bind_matrix(f, BLK("attn_q.weight"), q_dim, e, &L->wq, err)) ||
        (st = bind_matrix(f, BLK("attn_k.weight"), k_dim, e, &L->wk, err)) ||
        (st = bind_matrix(f, BLK("attn_v.weight"), v_dim, e, &L->wv, err)) ||
        (st = bind_matrix(f, BLK("attn_output.weight"), e, o_in, &L->wo, err)) ||
        (st = bind_vector(f, BLK("ffn_norm.weight"), e, a, &L->ffn_norm, err)) ||
        (st = bind_matrix(f, BLK("ffn_gate.weight"), hp->n_ff, e, &L->w_gate, err)) ||
        (st = bind_matrix(f, BLK("ffn_up.weight"), hp->n_ff, e, &L->w_up, err)) ||
        (st = bind_matrix(f, BLK("ffn_down.weight"), e, hp->n_ff, &L->w_down, err)))
        return st;
    if (hp->arch == MODEL_ARCH_QWEN2 &&
        ((st = bind_vector(f, BLK("attn_q.bias"), q_dim, a, &L->bq, err)) ||
         (st = bind_vector(f, BLK("attn_k.bias"), k_dim, a, &L->bk, err)) ||
         (st = bind_vector(f, BLK("attn_v.bias"), v_dim, a, &L->bv, err))))
        return st;
    if (hp->arch == MODEL_ARCH_QWEN3 &&
        ((st = bind_vector(f, BLK("attn_q_norm.weight"), hp->head_dim_k, a, &L->q_norm, err)) ||
         (st = bind_vector(f, BLK("attn_k_norm.weight"), hp->head_dim_k, a, &L->k_norm, err))))
        return st;
#undef BLK
    return HEARTH_OK;
}

static hearth_status bind_embeddings(const gguf_file *f, model *m, hearth_err *err) {
    model_hparams *hp = &m->hp;
    const gguf_tensor *t = gguf_find_tensor(f, "token_embd.weight");
    if (!t) return err_set(err, HEARTH_ERR_FORMAT, "missing tensor 'token_embd.weight'");
    if (t->ne[1] < 1 || t->ne[1] > MAX_VOCAB)
        return err_set(err, HEARTH_ERR_FORMAT, "tensor 'token_embd.weight' has %lld rows (vocabulary size)",
                       (long long)t->ne[1]);
    hp->n_vocab = t->ne[1];
    hearth_status st = bind_matrix(f, "token_embd.weight", hp->n_vocab, hp->n_embd, &m->tok_embd, err);
    if (st) return st;
    if (!gguf_find_tensor(f, "output.weight")) {
        m->output = m->tok_embd;
        return HEARTH_OK;
    }
    return bind_matrix(f, "output.weight", hp->n_vocab, hp->n_embd, &m->output, err);
}

static hearth_status bind_all(const gguf_file *f, model *m, f32_arena *a, hearth_err *err) {
    hearth_status st = bind_embeddings(f, m, err);
    if (st) return st;
    if (m->hp.arch == MODEL_ARCH_BERT) return model_bert_bind(f, m, a, err);
    for (int il = 0; il < m->hp.n_layer; il++)
        if ((st = bind_layer(f, &m->hp, il, a, &m->layers[il], err))) return st;
    return bind_vector(f, "output_norm.weight", m->hp.n_embd, a, &m->output_norm, err);
}

/* Checks every tensor first, so a malformed file is refused before the norm arena (sized
 * from metadata alone) is allocated; then converts the vectors. */
hearth_status model_bind_weights(const gguf_file *f, model *m, hearth_err *err) {
    m->layers = mem_calloc((size_t)m->hp.n_layer, sizeof *m->layers);
    if (!m->layers) return err_set(err, HEARTH_ERR_NOMEM, "model: out of memory for %lld layers",
                                   (long long)m->hp.n_layer);
    f32_arena probe = {NULL, 0};
    hearth_status st = bind_all(f, m, &probe, err);
    if (st) return st;
    size_t floats = arena_floats(&m->hp);
    m->f32_arena = mem_alloc_array(floats, sizeof(float));
    if (!m->f32_arena) return err_set(err, HEARTH_ERR_NOMEM, "model: out of memory for norm weights");
    f32_arena a = {m->f32_arena, floats};
    return bind_all(f, m, &a, err);
}
