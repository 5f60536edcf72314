/* Prompt evaluation and the generation loop for one sequence (see generate.h). All
 * buffers are allocated when the engine is made; a generation allocates only its
 * sampler and detokenizer stream. Never prints and never blocks on anything but compute. */
#include "engine/generate.h"

#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"

#define GEN_SEQ 0

struct gen_engine {
    const model *m;
    const tok_vocab *v;
    gen_config cfg;        /* with defaults resolved */
    kern_pool *pool;
    model_ctx *ctx;
    kv_cache *kv;
    model_batch batch;
    float *logits;         /* [n_vocab] copy the sampler may modify */
    model_lora_use *lora;  /* [lora_set.n] adapters of the sequence, one reference each */
    model_lora_set lora_set;
};

hearth_status gen_engine_new(const model *m, const tok_vocab *v, const gen_config *cfg, gen_engine **out,
                             hearth_err *err) {
    *out = NULL;
    const model_hparams *hp = model_hp(m);
    gen_config c = *cfg;
    if (c.n_ctx <= 0) c.n_ctx = hp->n_ctx_train < GEN_DEFAULT_CTX ? hp->n_ctx_train : GEN_DEFAULT_CTX;
    if (c.n_ctx > hp->n_ctx_train)
        return err_set(err, HEARTH_ERR_RANGE, "context of %lld positions exceeds the model's %lld",
                       (long long)c.n_ctx, (long long)hp->n_ctx_train);
    if (c.n_batch <= 0) c.n_batch = GEN_DEFAULT_BATCH;
    if (c.n_batch > c.n_ctx) c.n_batch = (int32_t)c.n_ctx;

    gen_engine *e = mem_calloc(1, sizeof *e);
    if (!e) return err_set(err, HEARTH_ERR_NOMEM, "engine: out of memory");
    e->m = m;
    e->v = v;
    e->cfg = c;
    hearth_status st = HEARTH_OK;
    e->pool = kern_pool_new(c.n_threads);
    e->logits = mem_alloc_array((size_t)hp->n_vocab, sizeof(float));
    if (!e->pool || !e->logits) st = err_set(err, HEARTH_ERR_NOMEM, "engine: out of memory for threads and logits");
    model_ctx_params mp = {.n_batch = c.n_batch, .n_outputs = c.all_logits ? c.n_batch : 1, .n_ctx = c.n_ctx};
    kv_config kc = model_kv_config(m, c.n_ctx, 1);
    if (!st) st = model_ctx_new(m, &mp, e->pool, &e->ctx, err);
    if (!st) st = kv_cache_new(&kc, &e->kv, err);
    if (!st) st = model_batch_init(&e->batch, c.n_batch, err);
    if (st) {
        gen_engine_free(e);
        return st;
    }
    *out = e;
    return HEARTH_OK;
}

void gen_engine_free(gen_engine *e) {
    if (!e) return;
    model_batch_free(&e->batch);
    kv_cache_free(e->kv);
    model_ctx_free(e->ctx);
    kern_pool_free(e->pool);
    mem_free(e->logits);
    for (int32_t i = 0; i < e->lora_set.n; i++) model_lora_release(e->lora[i].adapter);
    mem_free(e->lora);
    mem_free(e);
}

int64_t gen_n_ctx(const gen_engine *e) { return e->cfg.n_ctx; }

int gen_n_threads(const gen_engine *e) { return kern_pool_size(e->pool); }

hearth_status gen_set_lora(gen_engine *e, const model_lora_use *uses, int32_t n, hearth_err *err) {
    if (n < 0 || (n > 0 && !uses)) return err_set(err, HEARTH_ERR_INVALID, "adapters: bad list of %d", n);
    model_lora_set set = {n, uses};
    hearth_status st = model_lora_check_set(e->m, &set, err);
    if (st) return st;
    model_lora_use *copy = NULL;
    if (n > 0 && !(copy = mem_alloc_array((size_t)n, sizeof *copy)))
        return err_set(err, HEARTH_ERR_NOMEM, "adapters: out of memory");
    for (int32_t i = 0; i < n; i++) copy[i] = (model_lora_use){model_lora_retain(uses[i].adapter), uses[i].scale};
    for (int32_t i = 0; i < e->lora_set.n; i++) model_lora_release(e->lora[i].adapter);
    mem_free(e->lora);
    e->lora = copy;
    e->lora_set = (model_lora_set){n, copy};
    return HEARTH_OK;
}

void gen_reset(gen_engine *e) { kv_seq_clear(e->kv, GEN_SEQ); }

hearth_status gen_eval(gen_engine *e, const int32_t *tokens, size_t n, bool all, gen_rows_fn fn, void *ud,
                       hearth_err *err) {
    int64_t len = kv_seq_len(e->kv, GEN_SEQ), n_vocab = model_hp(e->m)->n_vocab;
    if (n == 0) return err_set(err, HEARTH_ERR_INVALID, "nothing to evaluate: the prompt has no tokens");
    if (all && !e->cfg.all_logits)
        return err_set(err, HEARTH_ERR_INVALID, "engine was not configured for every position's logits");
    if ((int64_t)n > e->cfg.n_ctx - len)
        return err_set(err, HEARTH_ERR_RANGE, "prompt of %zu tokens does not fit the context (%lld positions, %lld used)",
                       n, (long long)e->cfg.n_ctx, (long long)len);
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return err_set(err, HEARTH_ERR_INVALID, "token %zu (id %d) is outside the vocabulary (%lld)", i,
                           tokens[i], (long long)n_vocab);
    for (size_t start = 0; start < n; start += (size_t)e->cfg.n_batch) {
        size_t end = n - start > (size_t)e->cfg.n_batch ? start + (size_t)e->cfg.n_batch : n;
        model_batch_clear(&e->batch);
        for (size_t i = start; i < end; i++)
            model_batch_add(&e->batch, tokens[i], (int32_t)(len + (int64_t)i), GEN_SEQ, all || i == n - 1);
        model_lora_map map = {1, &e->lora_set};
        hearth_status st = model_forward_lora(e->ctx, e->kv, &e->batch, e->lora_set.n ? &map : NULL, err);
        if (st) return st;
        int32_t row = 0;
        for (size_t i = start; i < end; i++) {
            if (!(all || i == n - 1)) continue;
            if ((st = fn(ud, (int64_t)i, model_logits(e->ctx, row++), n_vocab, err))) return st;
        }
    }
    return HEARTH_OK;
}

static hearth_status copy_row(void *ud, int64_t index, const float *logits, int64_t n_vocab, hearth_err *err) {
    memcpy(ud, logits, (size_t)n_vocab * sizeof(float));
    return HEARTH_OK;
}

/* Per-generation state: the sampler and the detokenizer stream. */
typedef struct gen_run {
    gen_engine *e;
    sampler *smp;
    tok_stream *stream;
} gen_run;

static hearth_status run_open(gen_run *g, gen_engine *e, const gen_request *r, hearth_err *err) {
    memset(g, 0, sizeof *g);
    g->e = e;
    sampler_params greedy;
    const sampler_params *sp = r->sampling;
    if (!sp) {
        sampler_params_default(&greedy);
        greedy.temperature = 0.0f;
        sp = &greedy;
    }
    g->smp = sampler_new(sp, (int32_t)model_hp(e->m)->n_vocab, err);
    if (!g->smp) return err ? err->status : HEARTH_ERR_INVALID;
    g->stream = tok_stream_new(e->v, NULL, 0);
    if (!g->stream) return err_set(err, HEARTH_ERR_NOMEM, "generation: out of memory for the detokenizer");
    return HEARTH_OK;
}

static void run_close(gen_run *g) {
    sampler_free(g->smp);
    tok_stream_free(g->stream);
}

/* Samples the next token from e->logits and hands its text to fn. Sets stats->stop when
 * the loop should end, else *next to the token to decode. */
static hearth_status step(gen_run *g, const gen_request *r, gen_piece_fn fn, void *ud, gen_stats *stats,
                          int32_t *next, hearth_err *err) {
    gen_engine *e = g->e;
    int32_t tok = sampler_sample(g->smp, e->logits);
    if (tok == SAMPLER_NO_TOKEN)
        return err_set(err, HEARTH_ERR_INTERNAL, "no token could be sampled: every logit is -inf or NaN");
    sampler_accept(g->smp, tok);
    if (tok_is_eog(e->v, tok)) {
        stats->stop = GEN_STOP_EOG;
        return HEARTH_OK;
    }
    char *text;
    size_t len;
    hearth_status st = tok_stream_push(g->stream, tok, &text, &len, err);
    if (st) return st;
    stats->n_generated++;
    *next = tok;
    if (!fn(ud, tok, text, len)) stats->stop = GEN_STOP_CALLER;
    else if (r->n_predict > 0 && stats->n_generated >= r->n_predict) stats->stop = GEN_STOP_LENGTH;
    else if (kv_seq_len(e->kv, GEN_SEQ) >= e->cfg.n_ctx) stats->stop = GEN_STOP_CONTEXT;
    return HEARTH_OK;
}

static hearth_status generate_loop(gen_run *g, const gen_request *r, gen_piece_fn fn, void *ud, gen_stats *stats,
                                   hearth_err *err) {
    gen_engine *e = g->e;
    double t0 = clock_mono_s();
    for (size_t i = 0; i < r->n_prompt; i++) sampler_accept(g->smp, r->prompt[i]);
    hearth_status st = gen_eval(e, r->prompt, r->n_prompt, false, copy_row, e->logits, err);
    if (st) return st;
    double t1 = clock_mono_s();
    stats->prompt_s = t1 - t0;
    for (;;) {
        int32_t tok;
        if ((st = step(g, r, fn, ud, stats, &tok, err)) || stats->stop) break;
        if ((st = gen_eval(e, &tok, 1, false, copy_row, e->logits, err))) break;
    }
    stats->gen_s = clock_mono_s() - t1;
    if (st) return st;
    char *text;
    size_t len;
    if ((st = tok_stream_flush(g->stream, &text, &len, err))) return st;
    if (len > 0) fn(ud, -1, text, len);
    return HEARTH_OK;
}

hearth_status gen_generate(gen_engine *e, const gen_request *r, gen_piece_fn fn, void *ud, gen_stats *stats,
                           hearth_err *err) {
    memset(stats, 0, sizeof *stats);
    stats->n_prompt = (int64_t)r->n_prompt;
    gen_reset(e);
    if (r->n_prompt == 0) return err_set(err, HEARTH_ERR_INVALID, "the prompt has no tokens");
    if ((int64_t)r->n_prompt > e->cfg.n_ctx)
        return err_set(err, HEARTH_ERR_RANGE, "prompt of %zu tokens is longer than the context (%lld positions)",
                       r->n_prompt, (long long)e->cfg.n_ctx);
    gen_run g;
    hearth_status st = run_open(&g, e, r, err);
    if (!st) st = generate_loop(&g, r, fn, ud, stats, err);
    run_close(&g);
    return st;
}
