/* The forward pass of the llama family (llama, mistral, qwen2 with q/k/v biases, qwen3
 * with per-head q/k norms) over a batch of tokens from any number of sequences:
 *   x = embed(token)
 *   per layer: x += Wo · attention(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x)) ;
 *              x += Wdown · (silu(Wgate·n(x)) * Wup·n(x))
 *   logits = Wout · n(x), only for tokens that asked for them (or n(x) itself when the
 *   context was made for embeddings).
 * Every matmul takes all the batch's tokens at once and is followed by the LoRA hook
 * (lora_apply.c: the low-rank paths of the adapters the batch's sequences selected).
 * Attention is causal within each
 * sequence and reads keys/values back from the F16 paged cache, so prefill and decode
 * are the same code. This file never allocates during a forward and never validates
 * model data (loading did); it does validate the batch. */
#include <math.h>
#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"
#include "model/lora_impl.h"
#include "model/model_impl.h"

static float *alloc_floats(int64_t a, int64_t b, bool *ok) {
    size_t n;
    if (!ck_mul((size_t)a, (size_t)b, &n)) {
        *ok = false;
        return NULL;
    }
    float *p = mem_alloc_array(n, sizeof(float));
    if (!p) *ok = false;
    return p;
}

hearth_status model_ctx_new(const model *m, const model_ctx_params *p, kern_pool *pool,
                            model_ctx **out, hearth_err *err) {
    *out = NULL;
    const model_hparams *hp = &m->hp;
    if (p->n_batch <= 0 || p->n_outputs <= 0 || p->n_outputs > p->n_batch || p->n_ctx <= 0)
        return err_set(err, HEARTH_ERR_INVALID, "model context: bad sizes (batch %d, outputs %d, ctx %lld)",
                       p->n_batch, p->n_outputs, (long long)p->n_ctx);
    if (model_is_encoder(m) && !p->embeddings)
        return err_set(err, HEARTH_ERR_INVALID, "model context: %s is an encoder; it computes embeddings, not logits",
                       hp->arch_name);
    model_ctx *c = mem_calloc(1, sizeof *c);
    if (!c) return err_set(err, HEARTH_ERR_NOMEM, "model context: out of memory");
    c->m = m;
    c->pool = pool;
    c->p = *p;
    c->n_threads = pool ? kern_pool_size(pool) : 1;
    int64_t nb = p->n_batch;
    bool ok = true;
    c->x = alloc_floats(nb, hp->n_embd, &ok);
    c->xn = alloc_floats(nb, hp->n_embd, &ok);
    c->q = alloc_floats(nb, hp->n_head * hp->head_dim_k, &ok);
    c->k = alloc_floats(nb, hp->n_head_kv * hp->head_dim_k, &ok);
    c->v = alloc_floats(nb, hp->n_head_kv * hp->head_dim_v, &ok);
    c->att = alloc_floats(nb, hp->n_head * hp->head_dim_v, &ok);
    c->gate = alloc_floats(nb, hp->n_ff, &ok);
    c->up = alloc_floats(nb, hp->n_ff, &ok);
    c->scores = alloc_floats(c->n_threads, p->n_ctx, &ok);
    c->out_x = alloc_floats(p->n_outputs, hp->n_embd, &ok);
    if (!p->embeddings) c->logits = alloc_floats(p->n_outputs, hp->n_vocab, &ok);
    if (!ok) {
        model_ctx_free(c);
        return err_set(err, HEARTH_ERR_NOMEM, "model context: out of memory for a batch of %d", p->n_batch);
    }
    *out = c;
    return HEARTH_OK;
}

void model_ctx_free(model_ctx *c) {
    if (!c) return;
    float *bufs[] = {c->x, c->xn, c->q, c->k, c->v, c->att, c->gate, c->up, c->scores, c->out_x, c->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mem_free(bufs[i]);
    model_lora_run_free(&c->lora);
    mem_free(c);
}

const float *model_logits(const model_ctx *c, int32_t i) {
    return c->logits + (size_t)i * (size_t)c->m->hp.n_vocab;
}

const float *model_embedding(const model_ctx *c, int32_t i) {
    return c->out_x + (size_t)i * (size_t)c->m->hp.n_embd;
}

int32_t model_n_outputs(const model_ctx *c) { return c->n_out; }

/* ---- batch validation --------------------------------------------------------- */

/* Index of the last token before i in the same sequence, or -1. */
static int32_t prev_in_seq(const model_batch *b, int32_t i) {
    for (int32_t j = i - 1; j >= 0; j--)
        if (b->seq[j] == b->seq[i]) return j;
    return -1;
}

/* Checks every token, then reserves cache room for all sequences at once. */
static hearth_status reserve_batch(model_ctx *c, kv_cache *kv, const model_batch *b, hearth_err *err) {
    const kv_config *kc = kv_cache_config(kv);
    const model_hparams *hp = &c->m->hp;
    if (kc->n_layer != hp->n_layer || kc->k_dim != hp->n_head_kv * hp->head_dim_k ||
        kc->v_dim != hp->n_head_kv * hp->head_dim_v)
        return err_set(err, HEARTH_ERR_INVALID, "kv cache does not match the model's layers and heads");
    if (b->n <= 0 || b->n > c->p.n_batch)
        return err_set(err, HEARTH_ERR_INVALID, "batch of %d tokens (capacity %d)", b->n, c->p.n_batch);
    int32_t n_out = 0;
    int64_t pages = 0;
    for (int32_t i = 0; i < b->n; i++) {
        int32_t s = b->seq[i];
        if (b->token[i] < 0 || b->token[i] >= hp->n_vocab)
            return err_set(err, HEARTH_ERR_INVALID, "token id %d is outside the vocabulary (%lld)", b->token[i],
                           (long long)hp->n_vocab);
        if (s < 0 || s >= kc->n_seq)
            return err_set(err, HEARTH_ERR_INVALID, "sequence id %d out of range (%d)", s, kc->n_seq);
        int32_t j = prev_in_seq(b, i);
        int64_t want = j >= 0 ? (int64_t)b->pos[j] + 1 : kv_seq_len(kv, s);
        if (b->pos[i] != want)
            return err_set(err, HEARTH_ERR_INVALID, "sequence %d: token at position %d, expected %lld", s,
                           b->pos[i], (long long)want);
        if (b->pos[i] >= c->p.n_ctx || b->pos[i] >= kc->n_ctx)
            return err_set(err, HEARTH_ERR_RANGE, "context full: position %d does not fit a context of %lld",
                           b->pos[i], (long long)(c->p.n_ctx < kc->n_ctx ? c->p.n_ctx : kc->n_ctx));
        n_out += b->logits[i];
        if (j < 0) {
            int32_t count = 0;
            for (int32_t t = i; t < b->n; t++) count += b->seq[t] == s;
            pages += kv_pages_needed(kv, s, count);
        }
    }
    if (n_out > c->p.n_outputs)
        return err_set(err, HEARTH_ERR_INVALID, "batch asks for %d logits rows (capacity %d)", n_out,
                       c->p.n_outputs);
    if (pages > kv_free_pages(kv))
        return err_set(err, HEARTH_ERR_RANGE, "context full: the cache has %lld free pages, the batch needs %lld",
                       (long long)kv_free_pages(kv), (long long)pages);
    for (int32_t i = 0; i < b->n; i++) {
        if (prev_in_seq(b, i) >= 0) continue;
        int32_t count = 0;
        for (int32_t t = i; t < b->n; t++) count += b->seq[t] == b->seq[i];
        hearth_status st = kv_seq_append(kv, b->seq[i], count, err);
        if (st) return st;
    }
    return HEARTH_OK;
}

/* ---- attention ------------------------------------------------------------------ */

typedef struct attn_job {
    model_ctx *c;
    kv_cache *kv;
    const model_batch *b;
    int32_t layer;
} attn_job;

static float dot_f16(const float *q, const uint16_t *k, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += q[i] * kern_f16_to_f32(k[i]);
    return s;
}

static void axpy_f16(float *out, float a, const uint16_t *v, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] += a * kern_f16_to_f32(v[i]);
}

/* One (token, head): softmax(q·K / sqrt(d)) · V over positions [0, pos] of its sequence. */
static void attend_one(const attn_job *job, int32_t t, int64_t h, float *scores) {
    const model_hparams *hp = &job->c->m->hp;
    const kv_config *kc = kv_cache_config(job->kv);
    int64_t dk = hp->head_dim_k, dv = hp->head_dim_v, kvh = h / (hp->n_head / hp->n_head_kv);
    int32_t seq = job->b->seq[t];
    int64_t n_pos = (int64_t)job->b->pos[t] + 1, run;
    const float *q = job->c->q + (size_t)t * (size_t)(hp->n_head * dk) + (size_t)(h * dk);
    float scale = 1.0f / sqrtf((float)dk);
    for (int64_t p = 0; p < n_pos; p += run) {
        const uint16_t *k = kv_k_run(job->kv, job->layer, seq, p, &run);
        if (run > n_pos - p) run = n_pos - p;
        for (int64_t r = 0; r < run; r++) scores[p + r] = scale * dot_f16(q, k + r * kc->k_dim + kvh * dk, dk);
    }
    kern_softmax(scores, n_pos);
    float *out = job->c->att + (size_t)t * (size_t)(hp->n_head * dv) + (size_t)(h * dv);
    memset(out, 0, (size_t)dv * sizeof(float));
    for (int64_t p = 0; p < n_pos; p += run) {
        const uint16_t *v = kv_v_run(job->kv, job->layer, seq, p, &run);
        if (run > n_pos - p) run = n_pos - p;
        for (int64_t r = 0; r < run; r++) axpy_f16(out, scores[p + r], v + r * kc->v_dim + kvh * dv, dv);
    }
}

static void attn_worker(void *ctx, int ith, int nth) {
    const attn_job *job = ctx;
    int64_t n_head = job->c->m->hp.n_head, items = (int64_t)job->b->n * n_head;
    float *scores = job->c->scores + (size_t)ith * (size_t)job->c->p.n_ctx;
    for (int64_t i = ith; i < items; i += nth) attend_one(job, (int32_t)(i / n_head), i % n_head, scores);
}

/* ---- layers --------------------------------------------------------------------- */

static void add_bias(float *y, const float *bias, int64_t n_tok, int64_t dim) {
    if (!bias) return;
    for (int64_t t = 0; t < n_tok; t++) kern_add(y + t * dim, bias, dim);
}

/* RMS-normalises each head of each token in place with a per-head weight (qwen3). */
static void head_norm(float *y, const float *w, int64_t n_tok, int64_t n_heads, int64_t dim, float eps) {
    if (!w) return;
    for (int64_t i = 0; i < n_tok * n_heads; i++) kern_rmsnorm(y + i * dim, w, dim, eps, y + i * dim);
}

static void store_kv(model_ctx *c, kv_cache *kv, const model_batch *b, int32_t layer) {
    const kv_config *kc = kv_cache_config(kv);
    for (int32_t t = 0; t < b->n; t++) {
        uint16_t *kr = kv_k_row(kv, layer, b->seq[t], b->pos[t]);
        uint16_t *vr = kv_v_row(kv, layer, b->seq[t], b->pos[t]);
        const float *ks = c->k + (size_t)t * (size_t)kc->k_dim, *vs = c->v + (size_t)t * (size_t)kc->v_dim;
        for (int32_t i = 0; i < kc->k_dim; i++) kr[i] = kern_f32_to_f16(ks[i]);
        for (int32_t i = 0; i < kc->v_dim; i++) vr[i] = kern_f32_to_f16(vs[i]);
    }
}

static hearth_status matmul(model_ctx *c, const kern_matrix *w, const float *x, int64_t n, float *y,
                            int64_t ldy, hearth_err *err) {
    hearth_status st = kern_matmul(c->pool, w, x, n, y, ldy);
    if (st) return err_set(err, st, "matmul of %lld x %lld weights over %lld tokens failed: %s",
                           (long long)w->rows, (long long)w->cols, (long long)n, hearth_strerror(st));
    return model_lora_apply(&c->lora, c->pool, w, x, n, y, ldy, err);
}

static hearth_status attention_block(model_ctx *c, kv_cache *kv, const model_batch *b, int32_t il,
                                     hearth_err *err) {
    const model_hparams *hp = &c->m->hp;
    const model_layer *L = &c->m->layers[il];
    int64_t n = b->n, e = hp->n_embd;
    int64_t q_dim = hp->n_head * hp->head_dim_k, k_dim = hp->n_head_kv * hp->head_dim_k,
            v_dim = hp->n_head_kv * hp->head_dim_v;
    for (int64_t t = 0; t < n; t++) kern_rmsnorm(c->x + t * e, L->attn_norm, e, hp->norm_eps, c->xn + t * e);
    hearth_status st;
    if ((st = matmul(c, &L->wq, c->xn, n, c->q, q_dim, err)) || (st = matmul(c, &L->wk, c->xn, n, c->k, k_dim, err)) ||
        (st = matmul(c, &L->wv, c->xn, n, c->v, v_dim, err)))
        return st;
    add_bias(c->q, L->bq, n, q_dim);
    add_bias(c->k, L->bk, n, k_dim);
    add_bias(c->v, L->bv, n, v_dim);
    head_norm(c->q, L->q_norm, n, hp->n_head, hp->head_dim_k, hp->norm_eps);
    head_norm(c->k, L->k_norm, n, hp->n_head_kv, hp->head_dim_k, hp->norm_eps);
    for (int64_t t = 0; t < n; t++) {
        kern_rope(c->q + t * q_dim, (int)hp->n_head, (int)hp->head_dim_k, (int)hp->n_rot, b->pos[t],
                  hp->rope_base, hp->rope_scale, hp->rope_neox);
        kern_rope(c->k + t * k_dim, (int)hp->n_head_kv, (int)hp->head_dim_k, (int)hp->n_rot, b->pos[t],
                  hp->rope_base, hp->rope_scale, hp->rope_neox);
    }
    store_kv(c, kv, b, il);
    attn_job job = {c, kv, b, il};
    kern_pool_run(c->pool, attn_worker, &job);
    if ((st = matmul(c, &L->wo, c->att, n, c->xn, e, err))) return st;
    kern_add(c->x, c->xn, n * e);
    return HEARTH_OK;
}

static hearth_status ffn_block(model_ctx *c, int64_t n, int32_t il, hearth_err *err) {
    const model_hparams *hp = &c->m->hp;
    const model_layer *L = &c->m->layers[il];
    int64_t e = hp->n_embd;
    for (int64_t t = 0; t < n; t++) kern_rmsnorm(c->x + t * e, L->ffn_norm, e, hp->norm_eps, c->xn + t * e);
    hearth_status st;
    if ((st = matmul(c, &L->w_gate, c->xn, n, c->gate, hp->n_ff, err)) ||
        (st = matmul(c, &L->w_up, c->xn, n, c->up, hp->n_ff, err)))
        return st;
    kern_silu_mul(c->gate, c->up, n * hp->n_ff, c->gate);
    if ((st = matmul(c, &L->w_down, c->gate, n, c->xn, e, err))) return st;
    kern_add(c->x, c->xn, n * e);
    return HEARTH_OK;
}

/* Returns the batch's sequences to the lengths they had before it (a failed pass). */
static void rollback(kv_cache *kv, const model_batch *b) {
    for (int32_t i = 0; i < b->n; i++)
        if (prev_in_seq(b, i) < 0) kv_seq_truncate(kv, b->seq[i], b->pos[i]);
}

static hearth_status run_layers(model_ctx *c, kv_cache *kv, const model_batch *b, hearth_err *err) {
    const model *m = c->m;
    int64_t e = m->hp.n_embd;
    hearth_status st;
    for (int32_t t = 0; t < b->n; t++) kern_get_row(&m->tok_embd, b->token[t], c->x + (size_t)t * (size_t)e);
    for (int32_t il = 0; il < m->hp.n_layer; il++)
        if ((st = attention_block(c, kv, b, il, err)) || (st = ffn_block(c, b->n, il, err))) return st;
    int32_t n_out = 0;
    for (int32_t t = 0; t < b->n; t++) {
        if (!b->logits[t]) continue;
        kern_rmsnorm(c->x + (size_t)t * (size_t)e, m->output_norm, e, m->hp.norm_eps,
                     c->out_x + (size_t)n_out * (size_t)e);
        n_out++;
    }
    model_lora_use_output_rows(&c->lora);
    if (n_out > 0 && !c->p.embeddings &&
        (st = matmul(c, &m->output, c->out_x, n_out, c->logits, m->hp.n_vocab, err)))
        return st;
    c->n_out = n_out;
    return HEARTH_OK;
}

hearth_status model_forward(model_ctx *c, kv_cache *kv, const model_batch *b, hearth_err *err) {
    return model_forward_lora(c, kv, b, NULL, err);
}

hearth_status model_forward_lora(model_ctx *c, kv_cache *kv, const model_batch *b, const model_lora_map *map,
                                 hearth_err *err) {
    if (model_is_encoder(c->m))
        return err_set(err, HEARTH_ERR_INVALID, "%s is an encoder: run it with model_encode", c->m->hp.arch_name);
    hearth_status st = model_lora_prepare(&c->lora, c->m, &c->p, b, map, err);
    if (!st) st = reserve_batch(c, kv, b, err);
    if (st) return st;
    c->n_out = 0;
    if ((st = run_layers(c, kv, b, err))) rollback(kv, b);
    return st;
}
