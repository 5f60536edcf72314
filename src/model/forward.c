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
 * are the same code. A caller's interrupt check (model_ctx_set_interrupt) may stop a
 * pass between layers or output pieces; the cache is then rolled back as on any failure.
 * This file never allocates during a forward and never validates model data (loading
 * did); it does validate the batch. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"
#include "model/lora_impl.h"
#include "model/model_impl.h"

#define OUTPUT_PIECES 8 /* pieces of the output projection when it may be interrupted */

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
    /* bert.c: the score rows of a few queries and one input's keys of one head */
    c->scores = alloc_floats(c->n_threads,
                             p->n_ctx * (model_is_encoder(m) ? KERN_ATTEND_QUERIES + hp->head_dim_k : 1), &ok);
    c->attn_ws_floats = (kern_attn_workspace_floats(hp->head_dim_k, hp->head_dim_v) + 15) & ~(size_t)15;
    c->attn_ws_raw = alloc_floats(c->n_threads * (int64_t)c->attn_ws_floats + 16, 1, &ok);
    c->attn_ws = c->attn_ws_raw ? (float *)(((uintptr_t)c->attn_ws_raw + 63) & ~(uintptr_t)63) : NULL;
    c->rope_cs = alloc_floats(nb, hp->n_rot, &ok);
    c->order = mem_alloc_array((size_t)nb, sizeof *c->order);
    c->blocks = mem_alloc_array((size_t)nb, sizeof *c->blocks);
    ok = ok && c->order && c->blocks && c->attn_ws_floats > 0;
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
    float *bufs[] = {c->x, c->xn, c->q, c->k, c->v, c->att, c->gate, c->up, c->scores, c->attn_ws_raw,
                     c->rope_cs, c->out_x, c->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mem_free(bufs[i]);
    mem_free(c->order);
    mem_free(c->blocks);
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

/* Groups the batch by sequence and cuts each sequence's tokens into blocks that fill
   the attention kernel's rows: with G query heads per KV head, a block holds
   rows/G tokens (at least one) and a work item is (block, KV head, slice of heads). */
static void plan_attention(model_ctx *c, const model_batch *b) {
    const model_hparams *hp = &c->m->hp;
    kern_cpu_level level = kern_cpu_level_active();
    int rows = kern_attn_rows(level);
    int64_t group = hp->n_head / hp->n_head_kv;
    c->attn_level = (int)level;
    c->attn_heads = group < rows ? (int)group : rows;
    int32_t per_block = rows / c->attn_heads, n = 0;
    c->n_blocks = 0;
    for (int32_t i = 0; i < b->n; i++) {
        if (prev_in_seq(b, i) >= 0) continue;
        int32_t in_block = per_block;   /* a sequence starts a new block */
        for (int32_t t = i; t < b->n; t++) {
            if (b->seq[t] != b->seq[i]) continue;
            if (in_block == per_block) {
                c->blocks[c->n_blocks++] = (attn_block){n, 0};
                in_block = 0;
            }
            c->blocks[c->n_blocks - 1].n++;
            in_block++;
            c->order[n++] = t;
        }
    }
}

typedef struct attn_job {
    model_ctx *c;
    kv_cache *kv;
    const model_batch *b;
    int32_t layer;
    int64_t slices;        /* head slices per KV head */
    int64_t items;
    atomic_llong next;     /* work items are taken in turn: their costs differ */
} attn_job;

/* Item i: blocks from the last (in a prompt, the longest contexts) to the first. */
static void attend_item(attn_job *job, int64_t item, float *ws) {
    model_ctx *c = job->c;
    const model_hparams *hp = &c->m->hp;
    const kv_config *kc = kv_cache_config(job->kv);
    int64_t per_block = hp->n_head_kv * job->slices, dk = hp->head_dim_k, dv = hp->head_dim_v;
    int64_t group = hp->n_head / hp->n_head_kv;
    const attn_block *blk = &c->blocks[c->n_blocks - 1 - item / per_block];
    int64_t kvh = item % per_block / job->slices, h0 = kvh * group + item % job->slices * c->attn_heads;
    int64_t h1 = h0 + c->attn_heads < (kvh + 1) * group ? h0 + c->attn_heads : (kvh + 1) * group;
    const float *q[KERN_ATTN_ROWS];
    float *out[KERN_ATTN_ROWS];
    int32_t n_vis[KERN_ATTN_ROWS], max_vis = 0;
    int n_rows = 0;
    for (int32_t i = 0; i < blk->n; i++) {
        int32_t t = c->order[blk->first + i];
        for (int64_t h = h0; h < h1; h++, n_rows++) {
            q[n_rows] = c->q + (size_t)t * (size_t)(hp->n_head * dk) + (size_t)(h * dk);
            out[n_rows] = c->att + (size_t)t * (size_t)(hp->n_head * dv) + (size_t)(h * dv);
            n_vis[n_rows] = job->b->pos[t] + 1;
        }
        if (job->b->pos[t] + 1 > max_vis) max_vis = job->b->pos[t] + 1;
    }
    int32_t seq = job->b->seq[c->order[blk->first]];
    kern_attn a;
    kern_attn_begin(&a, (kern_cpu_level)c->attn_level, ws, dk, dv, n_rows, q, n_vis, 1.0f / sqrtf((float)dk));
    int64_t run;
    for (int64_t p = 0; p < max_vis; p += run) {
        const uint16_t *k = kv_k_run(job->kv, job->layer, seq, p, &run);
        const uint16_t *v = kv_v_run(job->kv, job->layer, seq, p, &run);
        if (run > max_vis - p) run = max_vis - p;
        kern_attn_keys(&a, k + kvh * dk, (size_t)kc->k_dim, v + kvh * dv, (size_t)kc->v_dim, p, run);
    }
    kern_attn_end(&a, out);
}

static void attn_worker(void *ctx, int ith, int nth) {
    attn_job *job = ctx;
    float *ws = job->c->attn_ws + (size_t)ith * job->c->attn_ws_floats;
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);
        if (i >= job->items) break;
        attend_item(job, i, ws);
    }
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

/* Per token, after the q/k/v matmuls: biases, per-head norms, RoPE, and the token's
   keys and values into the cache as F16. Tokens are split evenly across the pool. */
typedef struct qkv_job {
    model_ctx *c;
    kv_cache *kv;
    const model_batch *b;
    int32_t layer;
} qkv_job;

static void qkv_worker(void *ctx, int ith, int nth) {
    const qkv_job *j = ctx;
    model_ctx *c = j->c;
    const model_hparams *hp = &c->m->hp;
    const model_layer *L = &c->m->layers[j->layer];
    const kv_config *kc = kv_cache_config(j->kv);
    const kern_type_traits *f16 = kern_traits(GGML_F16);
    int64_t q_dim = hp->n_head * hp->head_dim_k, k_dim = kc->k_dim, v_dim = kc->v_dim;
    int32_t t0 = (int32_t)((int64_t)j->b->n * ith / nth), t1 = (int32_t)((int64_t)j->b->n * (ith + 1) / nth);
    for (int32_t t = t0; t < t1; t++) {
        float *q = c->q + (size_t)t * (size_t)q_dim, *k = c->k + (size_t)t * (size_t)k_dim,
              *v = c->v + (size_t)t * (size_t)v_dim;
        add_bias(q, L->bq, 1, q_dim);
        add_bias(k, L->bk, 1, k_dim);
        add_bias(v, L->bv, 1, v_dim);
        head_norm(q, L->q_norm, 1, hp->n_head, hp->head_dim_k, hp->norm_eps);
        head_norm(k, L->k_norm, 1, hp->n_head_kv, hp->head_dim_k, hp->norm_eps);
        const float *cs = c->rope_cs + (size_t)t * (size_t)hp->n_rot;
        kern_rope_apply(q, (int)hp->n_head, (int)hp->head_dim_k, (int)hp->n_rot, cs, hp->rope_neox);
        kern_rope_apply(k, (int)hp->n_head_kv, (int)hp->head_dim_k, (int)hp->n_rot, cs, hp->rope_neox);
        f16->from_float(k, kv_k_row(j->kv, j->layer, j->b->seq[t], j->b->pos[t]), k_dim);
        f16->from_float(v, kv_v_row(j->kv, j->layer, j->b->seq[t], j->b->pos[t]), v_dim);
    }
}

/* RoPE angles of every token's position, shared by all layers. */
static void rope_worker(void *ctx, int ith, int nth) {
    const qkv_job *j = ctx;
    const model_hparams *hp = &j->c->m->hp;
    int32_t t0 = (int32_t)((int64_t)j->b->n * ith / nth), t1 = (int32_t)((int64_t)j->b->n * (ith + 1) / nth);
    for (int32_t t = t0; t < t1; t++)
        kern_rope_angles((int)hp->n_rot, j->b->pos[t], hp->rope_base, hp->rope_scale,
                         j->c->rope_cs + (size_t)t * (size_t)hp->n_rot);
}

/* Runs fn over the batch's tokens on the pool, or on this thread alone when the batch is
   too small for a second thread to pay off. */
static void run_tokens(model_ctx *c, int32_t n_tok, void (*fn)(void *, int, int), void *ctx) {
    if (n_tok < 4) fn(ctx, 0, 1);
    else kern_pool_run(c->pool, fn, ctx);
}

/* Token-wise steps between matmuls, split evenly over the batch's tokens. */
typedef struct tok_job {
    model_ctx *c;
    int32_t n;
    const float *norm;   /* next sub-layer's norm weight, or NULL */
} tok_job;

static void tok_range(const tok_job *j, int ith, int nth, int32_t *t0, int32_t *t1) {
    *t0 = (int32_t)((int64_t)j->n * ith / nth);
    *t1 = (int32_t)((int64_t)j->n * (ith + 1) / nth);
}

/* xn = norm(x) */
static void norm_worker(void *ctx, int ith, int nth) {
    const tok_job *j = ctx;
    const model_hparams *hp = &j->c->m->hp;
    int32_t t0, t1;
    tok_range(j, ith, nth, &t0, &t1);
    for (size_t t = (size_t)t0; t < (size_t)t1; t++)
        kern_rmsnorm(j->c->x + t * (size_t)hp->n_embd, j->norm, hp->n_embd, hp->norm_eps,
                     j->c->xn + t * (size_t)hp->n_embd);
}

/* x += xn (a sub-layer's output); then xn = norm(x) for the next sub-layer, if any */
static void residual_worker(void *ctx, int ith, int nth) {
    const tok_job *j = ctx;
    int64_t e = j->c->m->hp.n_embd;
    int32_t t0, t1;
    tok_range(j, ith, nth, &t0, &t1);
    for (size_t t = (size_t)t0; t < (size_t)t1; t++) {
        float *x = j->c->x + t * (size_t)e, *xn = j->c->xn + t * (size_t)e;
        kern_add(x, xn, e);
        if (j->norm) kern_rmsnorm(x, j->norm, e, j->c->m->hp.norm_eps, xn);
    }
}

static void residual_norm(model_ctx *c, int32_t n, const float *norm) {
    tok_job j = {c, n, norm};
    run_tokens(c, n, residual_worker, &j);
}

/* gate = silu(gate) * up */
static void silu_worker(void *ctx, int ith, int nth) {
    const tok_job *j = ctx;
    int64_t f = j->c->m->hp.n_ff;
    int32_t t0, t1;
    tok_range(j, ith, nth, &t0, &t1);
    if (t1 > t0)
        kern_silu_mul(j->c->gate + (size_t)t0 * (size_t)f, j->c->up + (size_t)t0 * (size_t)f, (t1 - t0) * f,
                      j->c->gate + (size_t)t0 * (size_t)f);
}

static hearth_status matmul(model_ctx *c, const kern_matrix *w, const float *x, int64_t n, float *y,
                            int64_t ldy, hearth_err *err) {
    hearth_status st = kern_matmul(c->pool, w, x, n, y, ldy);
    if (st) return err_set(err, st, "matmul of %lld x %lld weights over %lld tokens failed: %s",
                           (long long)w->rows, (long long)w->cols, (long long)n, hearth_strerror(st));
    return model_lora_apply(&c->lora, c->pool, w, x, n, y, ldy, err);
}

/* Matrices sharing the input x (q, k, v; gate, up): one pass when their formats allow,
   then each one's LoRA hook. */
static hearth_status matmul_group(model_ctx *c, int n, const kern_matrix *const *w, const float *x, int64_t n_tok,
                                  float *const *y, const int64_t *ldy, hearth_err *err) {
    hearth_status st = kern_matmul_group(c->pool, n, w, x, n_tok, y, ldy);
    if (st) return err_set(err, st, "matmul of %d matrices of %lld columns over %lld tokens failed: %s", n,
                           (long long)w[0]->cols, (long long)n_tok, hearth_strerror(st));
    for (int i = 0; i < n; i++)
        if ((st = model_lora_apply(&c->lora, c->pool, w[i], x, n_tok, y[i], ldy[i], err))) return st;
    return HEARTH_OK;
}

static hearth_status attention_block(model_ctx *c, kv_cache *kv, const model_batch *b, int32_t il,
                                     hearth_err *err) {
    const model_hparams *hp = &c->m->hp;
    const model_layer *L = &c->m->layers[il];
    int64_t n = b->n, e = hp->n_embd;
    int64_t q_dim = hp->n_head * hp->head_dim_k, k_dim = hp->n_head_kv * hp->head_dim_k,
            v_dim = hp->n_head_kv * hp->head_dim_v;
    hearth_status st;   /* c->xn holds attn_norm(x) (the previous block's residual step) */
    const kern_matrix *wqkv[3] = {&L->wq, &L->wk, &L->wv};
    float *yqkv[3] = {c->q, c->k, c->v};
    int64_t lqkv[3] = {q_dim, k_dim, v_dim};
    if ((st = matmul_group(c, 3, wqkv, c->xn, n, yqkv, lqkv, err))) return st;
    qkv_job qj = {c, kv, b, il};
    run_tokens(c, b->n, qkv_worker, &qj);
    attn_job job = {c, kv, b, il, (hp->n_head / hp->n_head_kv + c->attn_heads - 1) / c->attn_heads, 0, 0};
    job.items = (int64_t)c->n_blocks * hp->n_head_kv * job.slices;
    kern_pool_run(c->pool, attn_worker, &job);
    if ((st = matmul(c, &L->wo, c->att, n, c->xn, e, err))) return st;
    residual_norm(c, b->n, L->ffn_norm);
    return HEARTH_OK;
}

static hearth_status ffn_block(model_ctx *c, int64_t n, int32_t il, hearth_err *err) {
    const model_hparams *hp = &c->m->hp;
    const model_layer *L = &c->m->layers[il];
    int64_t e = hp->n_embd;
    hearth_status st;   /* c->xn holds ffn_norm(x) */
    const kern_matrix *wgu[2] = {&L->w_gate, &L->w_up};
    float *ygu[2] = {c->gate, c->up};
    int64_t lgu[2] = {hp->n_ff, hp->n_ff};
    if ((st = matmul_group(c, 2, wgu, c->xn, n, ygu, lgu, err))) return st;
    tok_job sj = {c, (int32_t)n, NULL};
    run_tokens(c, sj.n, silu_worker, &sj);
    if ((st = matmul(c, &L->w_down, c->gate, n, c->xn, e, err))) return st;
    residual_norm(c, (int32_t)n, il + 1 < hp->n_layer ? c->m->layers[il + 1].attn_norm : NULL);
    return HEARTH_OK;
}

/* Returns the batch's sequences to the lengths they had before it (a failed pass). */
static void rollback(kv_cache *kv, const model_batch *b) {
    for (int32_t i = 0; i < b->n; i++)
        if (prev_in_seq(b, i) < 0) kv_seq_truncate(kv, b->seq[i], b->pos[i]);
}

void model_ctx_set_interrupt(model_ctx *c, model_interrupt_fn fn, void *arg) {
    c->interrupt = fn;
    c->interrupt_arg = arg;
}

static hearth_status interrupted(const model_ctx *c, hearth_err *err) {
    if (!c->interrupt || !c->interrupt(c->interrupt_arg)) return HEARTH_OK;
    return err_set(err, HEARTH_ERR_CANCELLED, "the forward pass was interrupted");
}

/* logits = Wout · out_x. With an interrupt check, in OUTPUT_PIECES pieces of rows with a
   check before each (the projection of a small model's large vocabulary can be most of
   a decode step); each row's result is the same either way. */
static hearth_status project_output(model_ctx *c, int32_t n_out, hearth_err *err) {
    const kern_matrix *w = &c->m->output;
    int64_t rows = w->rows, ldy = c->m->hp.n_vocab;
    int64_t piece = c->interrupt ? (rows + OUTPUT_PIECES - 1) / OUTPUT_PIECES : rows;
    piece = (piece + KERN_SLICE_ROWS - 1) / KERN_SLICE_ROWS * KERN_SLICE_ROWS;
    hearth_status st;
    for (int64_t r0 = 0; r0 < rows; r0 += piece) {
        if ((st = interrupted(c, err))) return st;
        kern_matrix part;
        int64_t n = rows - r0 < piece ? rows - r0 : piece;
        if (!(st = kern_matrix_slice(w, r0, n, &part))) st = kern_matmul(c->pool, &part, c->out_x, n_out, c->logits + r0, ldy);
        if (st) return err_set(err, st, "output matmul of %lld x %lld weights over %d tokens failed: %s",
                               (long long)rows, (long long)w->cols, n_out, hearth_strerror(st));
    }
    return model_lora_apply(&c->lora, c->pool, w, c->out_x, n_out, c->logits, ldy, err);
}

static hearth_status run_layers(model_ctx *c, kv_cache *kv, const model_batch *b, hearth_err *err) {
    const model *m = c->m;
    int64_t e = m->hp.n_embd;
    hearth_status st;
    for (int32_t t = 0; t < b->n; t++) kern_get_row(&m->tok_embd, b->token[t], c->x + (size_t)t * (size_t)e);
    plan_attention(c, b);
    qkv_job rj = {c, kv, b, 0};
    run_tokens(c, b->n, rope_worker, &rj);
    tok_job nj = {c, b->n, m->layers[0].attn_norm};
    run_tokens(c, b->n, norm_worker, &nj);
    for (int32_t il = 0; il < m->hp.n_layer; il++)
        if ((st = interrupted(c, err)) || (st = attention_block(c, kv, b, il, err)) ||
            (st = ffn_block(c, b->n, il, err)))
            return st;
    int32_t n_out = 0;
    for (int32_t t = 0; t < b->n; t++) {
        if (!b->logits[t]) continue;
        kern_rmsnorm(c->x + (size_t)t * (size_t)e, m->output_norm, e, m->hp.norm_eps,
                     c->out_x + (size_t)n_out * (size_t)e);
        n_out++;
    }
    model_lora_use_output_rows(&c->lora);
    if (n_out > 0 && !c->p.embeddings && (st = project_output(c, n_out, err))) return st;
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
