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

/* ---- per-token work fused into the matmul passes ------------------------------
 * A layer is four matmul passes (kern_matmul_fused); the per-token work each needs
 * first runs inside its conversion run, the biases (and GELU) right after its outputs:
 *   q,k,v = [x = embed (layer 0) or LayerNorm(x + xn)] Wqkv + b
 *   xn    = [att = attention(q, k, v)] Wo + bo
 *   up    = gelu([x = LayerNorm(x + xn)] Wup + bup)
 *   xn    = up Wdown + bdown
 * and the last layer's output norm runs on its own. */

typedef struct enc_step {
    model_ctx *c;
    const model_batch *b;
    const float *norm_w, *norm_b;   /* the LayerNorm of x + xn; NULL in layer 0: embed instead */
} enc_step;

/* x[t] = LayerNorm(tok_embd[token] + type_embd[0] + pos_embd[pos]); xn[t] is scratch. */
static void embed_rows(void *ctx, int ith, int64_t t0, int64_t t1) {
    (void)ith;
    const enc_step *s = ctx;
    const model *m = s->c->m;
    int64_t e = m->hp.n_embd;
    for (int64_t t = t0; t < t1; t++) {
        float *x = s->c->x + t * e, *row = s->c->xn + t * e;
        kern_get_row(&m->tok_embd, s->b->token[t], x);
        kern_get_row(&m->type_embd, 0, row);
        kern_add(x, row, e);
        kern_get_row(&m->pos_embd, s->b->pos[t], row);
        kern_add(x, row, e);
        kern_layernorm(x, m->embd_norm, m->embd_norm_b, e, m->hp.norm_eps, x);
    }
}

/* x[t] = LayerNorm(x[t] + xn[t]): the post-norm residual. */
static void add_norm_rows(void *ctx, int ith, int64_t t0, int64_t t1) {
    (void)ith;
    const enc_step *s = ctx;
    int64_t e = s->c->m->hp.n_embd;
    for (int64_t t = t0; t < t1; t++) {
        float *x = s->c->x + t * e;
        kern_add(x, s->c->xn + t * e, e);
        kern_layernorm(x, s->norm_w, s->norm_b, e, s->c->m->hp.norm_eps, x);
    }
}

/* att[t] for every head of tokens [t0, t1). Per input and key head, thread ith
 * transposes the input's keys into its workspace once, then the range's queries, a few
 * at a time, meet 16 keys per vector: softmax(q·K / sqrt(d)) · V over the tokens of
 * their input (one query at a time, up to itself, when causal). An input starts pos[t]
 * tokens before t and ends before the next token at position 0 (check_batch made inputs
 * contiguous). */
static void attend_rows(void *ctx, int ith, int64_t t0, int64_t t1) {
    const enc_step *st = ctx;
    const model_ctx *c = st->c;
    const model_batch *b = st->b;
    const model_hparams *hp = &c->m->hp;
    int64_t dk = hp->head_dim_k, dv = hp->head_dim_v, group = hp->n_head / hp->n_head_kv;
    int64_t q_dim = hp->n_head * dk, k_dim = hp->n_head_kv * dk, v_dim = hp->n_head_kv * dv;
    float *scores = c->scores + (size_t)ith * (size_t)c->p.n_ctx * (size_t)(KERN_ATTEND_QUERIES + dk);
    float *kt = scores + (size_t)c->p.n_ctx * KERN_ATTEND_QUERIES;
    float scale = 1.0f / sqrtf((float)dk);
    for (int64_t s0 = t0; s0 < t1;) {
        int64_t start = s0 - b->pos[s0], end = s0 + 1;
        while (end < b->n && b->pos[end] != 0) end++;
        int64_t s1 = end < t1 ? end : t1, len = end - start;
        for (int64_t h = 0, kvh = -1; h < hp->n_head; h++) {
            if (h / group != kvh) {
                kvh = h / group;
                const float *k = c->k + (size_t)start * (size_t)k_dim + (size_t)(kvh * dk);
                for (int64_t j = 0; j < len; j++)
                    for (int64_t d = 0; d < dk; d++) kt[d * len + j] = k[j * k_dim + d];
            }
            const float *v = c->v + (size_t)start * (size_t)v_dim + (size_t)(kvh * dv);
            for (int64_t t = s0, nq; t < s1; t += nq) {
                nq = hp->causal ? 1 : s1 - t < KERN_ATTEND_QUERIES ? s1 - t : KERN_ATTEND_QUERIES;
                int64_t n_keys = hp->causal ? t + 1 - start : len;
                kern_attend_cols((int)nq, c->q + (size_t)t * (size_t)q_dim + (size_t)(h * dk), (size_t)q_dim, kt,
                                 (size_t)len, dk, n_keys, scale, v, (size_t)v_dim, dv, scores,
                                 c->att + (size_t)t * (size_t)(hp->n_head * dv) + (size_t)(h * dv),
                                 (size_t)(hp->n_head * dv));
            }
        }
        s0 = s1;
    }
}

static void final_norm_worker(void *ctx, int ith, int nth) {
    const enc_step *s = ctx;
    int64_t n = s->b->n, t0 = n * ith / nth, t1 = n * (ith + 1) / nth;
    for (int64_t t = t0; t < t1; t++)
        if (s->b->logits[t]) add_norm_rows(ctx, ith, t, t + 1);
}

/* ---- layers --------------------------------------------------------------------- */

static hearth_status matmul(model_ctx *c, int n, const kern_matrix *const *w, const float *x, float *const *y,
                            const kern_mm_fuse *f, int64_t n_tok, hearth_err *err) {
    int64_t ldy[KERN_MATMUL_GROUP];
    for (int i = 0; i < n; i++) ldy[i] = w[i]->rows;
    hearth_status st = kern_matmul_fused(c->pool, n, w, x, n_tok, y, ldy, f);
    if (st)
        return err_set(err, st, "matmul of %lld x %lld weights over %lld tokens failed: %s", (long long)w[0]->rows,
                       (long long)w[0]->cols, (long long)n_tok, hearth_strerror(st));
    return HEARTH_OK;
}

static hearth_status layer(model_ctx *c, const model_batch *b, int32_t il, hearth_err *err) {
    const model_layer *L = &c->m->layers[il], *prev = il > 0 ? &c->m->layers[il - 1] : NULL;
    int64_t n = b->n;
    hearth_status st;
    enc_step in = {c, b, prev ? prev->ffn_norm : NULL, prev ? prev->ffn_norm_b : NULL};
    const kern_matrix *qkv[3] = {&L->wq, &L->wk, &L->wv};
    float *qkv_out[3] = {c->q, c->k, c->v};
    kern_mm_fuse f = {.prepare = prev ? add_norm_rows : embed_rows, .ctx = &in, .bias = {L->bq, L->bk, L->bv}};
    if ((st = matmul(c, 3, qkv, c->x, qkv_out, &f, n, err))) return st;

    enc_step att = {c, b, NULL, NULL};
    f = (kern_mm_fuse){.prepare = attend_rows, .ctx = &att, .bias = {L->bo}};
    const kern_matrix *wo = &L->wo;
    if ((st = matmul(c, 1, &wo, c->att, &c->xn, &f, n, err))) return st;

    enc_step mid = {c, b, L->attn_norm, L->attn_norm_b};
    f = (kern_mm_fuse){.prepare = add_norm_rows, .ctx = &mid, .bias = {L->b_up}, .gelu = true};
    const kern_matrix *up = &L->w_up;
    if ((st = matmul(c, 1, &up, c->x, &c->up, &f, n, err))) return st;

    f = (kern_mm_fuse){.bias = {L->b_down}};
    const kern_matrix *down = &L->w_down;
    return matmul(c, 1, &down, c->up, &c->xn, &f, n, err);
}

hearth_status model_encode(model_ctx *c, const model_batch *b, hearth_err *err) {
    hearth_status st = check_batch(c, b, err);
    if (st) return st;
    c->n_out = 0;
    int32_t n_layer = c->m->hp.n_layer;
    for (int32_t il = 0; il < n_layer; il++)
        if ((st = layer(c, b, il, err))) return st;
    const model_layer *last = &c->m->layers[n_layer - 1];
    enc_step out = {c, b, last->ffn_norm, last->ffn_norm_b};
    kern_pool_run(c->pool, final_norm_worker, &out);
    int64_t e = c->m->hp.n_embd;
    int32_t n_out = 0;
    for (int32_t t = 0; t < b->n; t++)
        if (b->logits[t])
            memcpy(c->out_x + (size_t)(n_out++) * (size_t)e, c->x + (size_t)t * (size_t)e, (size_t)e * sizeof(float));
    c->n_out = n_out;
    return HEARTH_OK;
}
