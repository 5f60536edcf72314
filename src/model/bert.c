/* The bert encoder: weight binding and the forward pass over a batch of whole inputs.
 *   x = LayerNorm(tok_embd[token] + type_embd[0] + pos_embd[pos])
 *   per layer: x = LayerNorm(x + Wo · attention(Wq·x + bq, Wk·x + bk, Wv·x + bv) + bo)
 *              x = LayerNorm(x + Wdown · gelu(Wup·x + bup) + bdown)
 *   output: x of the flagged tokens (no final norm, no logits).
 * Attention is bidirectional over the token's own input (causal when the file says so)
 * and computed in float32 from the batch's own keys and values: there is no cache, an
 * input is always run whole. Every matmul takes all the batch's tokens at once.
 * This file never allocates during a forward and never validates model data (loading
 * did); it does validate the batch. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "gguf/gguf.h"
#include "model/model_impl.h"

#define MAX_TOKEN_TYPES 65536

/* ---- binding -------------------------------------------------------------------- */

size_t model_bert_arena_floats(const model_hparams *hp) {
    size_t e = (size_t)hp->n_embd;
    size_t per_layer = (size_t)((hp->n_head + 2 * hp->n_head_kv) * hp->head_dim_k) /* q/k/v biases */
                       + e                                                         /* output bias */
                       + 4 * e                                                     /* two LayerNorms */
                       + (size_t)hp->n_ff + e;                                     /* ffn biases */
    return per_layer * (size_t)hp->n_layer + 2 * e;
}

static hearth_status bind_layer(const gguf_file *f, const model_hparams *hp, int il, f32_arena *a, model_layer *L,
                                hearth_err *err) {
    char name[96];
    hearth_status st;
    int64_t e = hp->n_embd, q_dim = hp->n_head * hp->head_dim_k, k_dim = hp->n_head_kv * hp->head_dim_k,
            v_dim = hp->n_head_kv * hp->head_dim_v, o_in = hp->n_head * hp->head_dim_v;
#define BLK(suffix) (snprintf(name, sizeof name, "blk.%d." suffix, il), name)
    if ((st = model_bind_matrix(f, BLK("attn_q.weight"), q_dim, e, &L->wq, err)) ||
        (st = model_bind_vector(f, BLK("attn_q.bias"), q_dim, a, &L->bq, err)) ||
        (st = model_bind_matrix(f, BLK("attn_k.weight"), k_dim, e, &L->wk, err)) ||
        (st = model_bind_vector(f, BLK("attn_k.bias"), k_dim, a, &L->bk, err)) ||
        (st = model_bind_matrix(f, BLK("attn_v.weight"), v_dim, e, &L->wv, err)) ||
        (st = model_bind_vector(f, BLK("attn_v.bias"), v_dim, a, &L->bv, err)) ||
        (st = model_bind_matrix(f, BLK("attn_output.weight"), e, o_in, &L->wo, err)) ||
        (st = model_bind_vector(f, BLK("attn_output.bias"), e, a, &L->bo, err)) ||
        (st = model_bind_vector(f, BLK("attn_output_norm.weight"), e, a, &L->attn_norm, err)) ||
        (st = model_bind_vector(f, BLK("attn_output_norm.bias"), e, a, &L->attn_norm_b, err)) ||
        (st = model_bind_matrix(f, BLK("ffn_up.weight"), hp->n_ff, e, &L->w_up, err)) ||
        (st = model_bind_vector(f, BLK("ffn_up.bias"), hp->n_ff, a, &L->b_up, err)) ||
        (st = model_bind_matrix(f, BLK("ffn_down.weight"), e, hp->n_ff, &L->w_down, err)) ||
        (st = model_bind_vector(f, BLK("ffn_down.bias"), e, a, &L->b_down, err)) ||
        (st = model_bind_vector(f, BLK("layer_output_norm.weight"), e, a, &L->ffn_norm, err)) ||
        (st = model_bind_vector(f, BLK("layer_output_norm.bias"), e, a, &L->ffn_norm_b, err)))
        return st;
#undef BLK
    return HEARTH_OK;
}

/* token_embd is already bound (weights.c); the position and token-type tables, the
 * embedding norm and every layer follow. bert has no output head: output stays empty. */
hearth_status model_bert_bind(const gguf_file *f, model *m, f32_arena *a, hearth_err *err) {
    const model_hparams *hp = &m->hp;
    m->output = (kern_matrix){0};
    const gguf_tensor *types = gguf_find_tensor(f, "token_types.weight");
    if (!types) return err_set(err, HEARTH_ERR_FORMAT, "missing tensor 'token_types.weight'");
    if (types->ne[1] < 1 || types->ne[1] > MAX_TOKEN_TYPES)
        return err_set(err, HEARTH_ERR_FORMAT, "tensor 'token_types.weight' has %lld rows (token types)",
                       (long long)types->ne[1]);
    hearth_status st;
    if ((st = model_bind_matrix(f, "token_types.weight", types->ne[1], hp->n_embd, &m->type_embd, err)) ||
        (st = model_bind_matrix(f, "position_embd.weight", hp->n_ctx_train, hp->n_embd, &m->pos_embd, err)) ||
        (st = model_bind_vector(f, "token_embd_norm.weight", hp->n_embd, a, &m->embd_norm, err)) ||
        (st = model_bind_vector(f, "token_embd_norm.bias", hp->n_embd, a, &m->embd_norm_b, err)))
        return st;
    for (int il = 0; il < hp->n_layer; il++)
        if ((st = bind_layer(f, hp, il, a, &m->layers[il], err))) return st;
    return HEARTH_OK;
}

/* ---- batch validation ----------------------------------------------------------- */

static hearth_status check_batch(const model_ctx *c, const model_batch *b, hearth_err *err) {
    const model_hparams *hp = &c->m->hp;
    if (!model_is_encoder(c->m))
        return err_set(err, HEARTH_ERR_INVALID, "%s is a decoder: run it with model_forward", hp->arch_name);
    if (b->n <= 0 || b->n > c->p.n_batch)
        return err_set(err, HEARTH_ERR_INVALID, "batch of %d tokens (capacity %d)", b->n, c->p.n_batch);
    int64_t n_ctx = c->p.n_ctx < hp->n_ctx_train ? c->p.n_ctx : hp->n_ctx_train;
    int32_t n_out = 0;
    for (int32_t i = 0; i < b->n; i++) {
        if (b->token[i] < 0 || b->token[i] >= hp->n_vocab)
            return err_set(err, HEARTH_ERR_INVALID, "token id %d is outside the vocabulary (%lld)", b->token[i],
                           (long long)hp->n_vocab);
        bool continues = i > 0 && b->seq[i] == b->seq[i - 1] && b->pos[i] == b->pos[i - 1] + 1;
        if (b->pos[i] != 0 && !continues)
            return err_set(err, HEARTH_ERR_INVALID,
                           "batch token %d (sequence %d, position %d) neither starts an input nor continues the "
                           "token before it", i, b->seq[i], b->pos[i]);
        if (b->pos[i] >= n_ctx)
            return err_set(err, HEARTH_ERR_RANGE, "input too long: position %d does not fit a context of %lld",
                           b->pos[i], (long long)n_ctx);
        n_out += b->logits[i];
    }
    if (n_out > c->p.n_outputs)
        return err_set(err, HEARTH_ERR_INVALID, "batch asks for %d outputs (capacity %d)", n_out, c->p.n_outputs);
    return HEARTH_OK;
}

/* ---- attention ------------------------------------------------------------------ */

typedef struct enc_attn_job {
    model_ctx *c;
    const model_batch *b;
} enc_attn_job;

/* One (token, head): softmax(q·K / sqrt(d)) · V over the tokens of t's input (those up
 * to t when causal). The input starts pos[t] tokens before t and ends before the next
 * token at position 0 (check_batch made inputs contiguous). */
static void attend_one(const enc_attn_job *job, int32_t t, int64_t h, float *scores) {
    const model_ctx *c = job->c;
    const model_batch *b = job->b;
    const model_hparams *hp = &c->m->hp;
    int64_t dk = hp->head_dim_k, dv = hp->head_dim_v, kvh = h / (hp->n_head / hp->n_head_kv);
    int64_t q_dim = hp->n_head * dk, k_dim = hp->n_head_kv * dk, v_dim = hp->n_head_kv * dv;
    int32_t start = t - b->pos[t], end = t + 1;
    if (!hp->causal)
        while (end < b->n && b->pos[end] != 0) end++;
    const float *q = c->q + (size_t)t * (size_t)q_dim + (size_t)(h * dk);
    float scale = 1.0f / sqrtf((float)dk);
    kern_dot_rows(q, c->k + (size_t)start * (size_t)k_dim + (size_t)(kvh * dk), (size_t)k_dim, end - start, dk, scale,
                  scores);
    kern_softmax(scores, end - start);
    float *out = c->att + (size_t)t * (size_t)(hp->n_head * dv) + (size_t)(h * dv);
    kern_weighted_rows(scores, c->v + (size_t)start * (size_t)v_dim + (size_t)(kvh * dv), (size_t)v_dim, end - start,
                       dv, out);
}

static void attn_worker(void *ctx, int ith, int nth) {
    const enc_attn_job *job = ctx;
    int64_t n_head = job->c->m->hp.n_head, items = (int64_t)job->b->n * n_head;
    float *scores = job->c->scores + (size_t)ith * (size_t)job->c->p.n_ctx;
    for (int64_t i = ith; i < items; i += nth) attend_one(job, (int32_t)(i / n_head), i % n_head, scores);
}

/* ---- layers --------------------------------------------------------------------- */

typedef struct gelu_job {
    float *x;
    int64_t n;
} gelu_job;

/* GELU (tanh form) on a thread's share: 0.5 v (1 + tanh z) = v / (1 + e^(-2z)). */
static void gelu_worker(void *ctx, int ith, int nth) {
    const gelu_job *j = ctx;
    int64_t per = (j->n + nth - 1) / nth, lo = per * ith, hi = lo + per < j->n ? lo + per : j->n;
    if (lo < hi) kern_gelu(j->x + lo, hi - lo);
}

/* Per-token work split over the pool: each thread takes a contiguous range of tokens. */
typedef struct rows_job {
    float *y;             /* [n][width] */
    const float *other;   /* bias [width] (add_bias) or residual input [n][width] (add_norm) */
    const float *w, *b;   /* LayerNorm weight and bias (add_norm) */
    int64_t n, width;
    float eps;
} rows_job;

static void token_range(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi) {
    int64_t per = (n + nth - 1) / nth;
    *lo = per * ith < n ? per * ith : n;
    *hi = *lo + per < n ? *lo + per : n;
}

static void bias_worker(void *ctx, int ith, int nth) {
    const rows_job *j = ctx;
    int64_t lo, hi;
    token_range(j->n, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) kern_add(j->y + t * j->width, j->other, j->width);
}

/* y = LayerNorm(y + other) per token (the post-norm residual). */
static void norm_worker(void *ctx, int ith, int nth) {
    const rows_job *j = ctx;
    int64_t lo, hi;
    token_range(j->n, ith, nth, &lo, &hi);
    for (int64_t t = lo; t < hi; t++) {
        float *x = j->y + t * j->width;
        kern_add(x, j->other + t * j->width, j->width);
        kern_layernorm(x, j->w, j->b, j->width, j->eps, x);
    }
}

/* y = W·x + bias over n tokens. */
static hearth_status linear(model_ctx *c, const kern_matrix *w, const float *bias, const float *x, int64_t n, float *y,
                            hearth_err *err) {
    hearth_status st = kern_matmul(c->pool, w, x, n, y, w->rows);
    if (st)
        return err_set(err, st, "matmul of %lld x %lld weights over %lld tokens failed: %s", (long long)w->rows,
                       (long long)w->cols, (long long)n, hearth_strerror(st));
    rows_job j = {.y = y, .other = bias, .n = n, .width = w->rows};
    kern_pool_run(c->pool, bias_worker, &j);
    return HEARTH_OK;
}

/* x = LayerNorm(x + y) per token. */
static void add_norm(model_ctx *c, float *x, const float *y, const float *w, const float *bias, int64_t n, int64_t e,
                     float eps) {
    rows_job j = {.y = x, .other = y, .w = w, .b = bias, .n = n, .width = e, .eps = eps};
    kern_pool_run(c->pool, norm_worker, &j);
}

static hearth_status layer(model_ctx *c, const model_batch *b, int32_t il, hearth_err *err) {
    const model_hparams *hp = &c->m->hp;
    const model_layer *L = &c->m->layers[il];
    int64_t n = b->n, e = hp->n_embd;
    hearth_status st;
    if ((st = linear(c, &L->wq, L->bq, c->x, n, c->q, err)) || (st = linear(c, &L->wk, L->bk, c->x, n, c->k, err)) ||
        (st = linear(c, &L->wv, L->bv, c->x, n, c->v, err)))
        return st;
    enc_attn_job job = {c, b};
    kern_pool_run(c->pool, attn_worker, &job);
    if ((st = linear(c, &L->wo, L->bo, c->att, n, c->xn, err))) return st;
    add_norm(c, c->x, c->xn, L->attn_norm, L->attn_norm_b, n, e, hp->norm_eps);
    if ((st = linear(c, &L->w_up, L->b_up, c->x, n, c->up, err))) return st;
    gelu_job gj = {c->up, n * hp->n_ff};
    kern_pool_run(c->pool, gelu_worker, &gj);
    if ((st = linear(c, &L->w_down, L->b_down, c->up, n, c->xn, err))) return st;
    add_norm(c, c->x, c->xn, L->ffn_norm, L->ffn_norm_b, n, e, hp->norm_eps);
    return HEARTH_OK;
}

static void embed_tokens(model_ctx *c, const model_batch *b) {
    const model *m = c->m;
    int64_t e = m->hp.n_embd;
    float *row = c->xn;
    for (int32_t t = 0; t < b->n; t++) {
        float *x = c->x + (size_t)t * (size_t)e;
        kern_get_row(&m->tok_embd, b->token[t], x);
        kern_get_row(&m->type_embd, 0, row);
        kern_add(x, row, e);
        kern_get_row(&m->pos_embd, b->pos[t], row);
        kern_add(x, row, e);
        kern_layernorm(x, m->embd_norm, m->embd_norm_b, e, m->hp.norm_eps, x);
    }
}

hearth_status model_encode(model_ctx *c, const model_batch *b, hearth_err *err) {
    hearth_status st = check_batch(c, b, err);
    if (st) return st;
    c->n_out = 0;
    embed_tokens(c, b);
    for (int32_t il = 0; il < c->m->hp.n_layer; il++)
        if ((st = layer(c, b, il, err))) return st;
    int64_t e = c->m->hp.n_embd;
    int32_t n_out = 0;
    for (int32_t t = 0; t < b->n; t++)
        if (b->logits[t])
            memcpy(c->out_x + (size_t)(n_out++) * (size_t)e, c->x + (size_t)t * (size_t)e, (size_t)e * sizeof(float));
    c->n_out = n_out;
    return HEARTH_OK;
}
