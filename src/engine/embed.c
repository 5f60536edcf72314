/* Embedding of tokenized inputs (see embed.h): packs inputs into forward passes, runs the
 * encoder (model_encode) or the decoder over a cache cleared every pass (model_forward),
 * and pools the hidden states. All buffers are allocated with the context; a call never
 * allocates. Never prints. */
#include "engine/embed.h"

#include <math.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "engine/kv_cache.h"

struct embed_ctx {
    const model *m;
    embed_config cfg; /* with defaults resolved */
    kern_pool *pool;
    model_ctx *ctx;
    kv_cache *kv;     /* decoders only: room for one pass */
    model_batch batch;
};

static const char *const pool_names[] = {"none", "mean", "cls", "last"};

bool embed_pooling_parse(const char *s, embed_pooling *out) {
    if (!strcmp(s, "default")) {
        *out = EMBED_POOL_DEFAULT;
        return true;
    }
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, pool_names[i])) {
            *out = (embed_pooling)i;
            return true;
        }
    return false;
}

const char *embed_pooling_name(embed_pooling p) {
    return p >= EMBED_POOL_NONE && p <= EMBED_POOL_LAST ? pool_names[p] : "default";
}

embed_pooling embed_model_pooling(const model *m) {
    int32_t p = model_hp(m)->pooling;
    if (p >= EMBED_POOL_NONE && p <= EMBED_POOL_LAST) return (embed_pooling)p;
    return model_is_encoder(m) ? EMBED_POOL_MEAN : EMBED_POOL_LAST;
}

void embed_opts_default(embed_opts *o) { *o = (embed_opts){.pooling = EMBED_POOL_DEFAULT, .normalize = true}; }

/* Decoders keep keys and values of one pass: a page per KV_DEFAULT_PAGE_SIZE tokens plus
 * one partly filled page per input. */
static hearth_status new_cache(embed_ctx *e, hearth_err *err) {
    kv_config kc = model_kv_config(e->m, e->cfg.n_ctx, e->cfg.n_seq);
    kc.n_pages = (e->cfg.n_batch + kc.page_size - 1) / kc.page_size + e->cfg.n_seq;
    return kv_cache_new(&kc, &e->kv, err);
}

hearth_status embed_ctx_new(const model *m, const embed_config *cfg, embed_ctx **out, hearth_err *err) {
    *out = NULL;
    const model_hparams *hp = model_hp(m);
    embed_config c = *cfg;
    if (c.n_ctx <= 0) c.n_ctx = hp->n_ctx_train < EMBED_DEFAULT_CTX ? hp->n_ctx_train : EMBED_DEFAULT_CTX;
    if (c.n_ctx > hp->n_ctx_train)
        return err_set(err, HEARTH_ERR_RANGE, "context of %lld positions exceeds the model's %lld",
                       (long long)c.n_ctx, (long long)hp->n_ctx_train);
    if (c.n_batch < c.n_ctx) c.n_batch = (int32_t)c.n_ctx;
    if (c.n_seq <= 0) c.n_seq = EMBED_DEFAULT_SEQ;
    if (c.n_seq > c.n_batch) c.n_seq = c.n_batch;

    embed_ctx *e = mem_calloc(1, sizeof *e);
    if (!e) return err_set(err, HEARTH_ERR_NOMEM, "embeddings: out of memory");
    e->m = m;
    e->cfg = c;
    hearth_status st = HEARTH_OK;
    if (!(e->pool = kern_pool_new(c.n_threads)))
        st = err_set(err, HEARTH_ERR_NOMEM, "embeddings: out of memory for threads");
    model_ctx_params mp = {.n_batch = c.n_batch, .n_outputs = c.n_batch, .n_ctx = c.n_ctx, .embeddings = true};
    if (!st) st = model_ctx_new(m, &mp, e->pool, &e->ctx, err);
    if (!st && !model_is_encoder(m)) st = new_cache(e, err);
    if (!st) st = model_batch_init(&e->batch, c.n_batch, err);
    if (st) {
        embed_ctx_free(e);
        return st;
    }
    *out = e;
    return HEARTH_OK;
}

void embed_ctx_free(embed_ctx *e) {
    if (!e) return;
    model_batch_free(&e->batch);
    kv_cache_free(e->kv);
    model_ctx_free(e->ctx);
    kern_pool_free(e->pool);
    mem_free(e);
}

int64_t embed_n_embd(const embed_ctx *e) { return model_hp(e->m)->n_embd; }

int64_t embed_n_ctx(const embed_ctx *e) { return e->cfg.n_ctx; }

/* Tokens of in that are embedded: all, or the first n_ctx when truncating. */
static size_t used_len(const embed_ctx *e, const embed_input *in, const embed_opts *o) {
    return o->truncate && in->n > (size_t)e->cfg.n_ctx ? (size_t)e->cfg.n_ctx : in->n;
}

size_t embed_rows(const embed_ctx *e, const embed_input *in, size_t n_in, const embed_opts *o) {
    embed_pooling p = o->pooling == EMBED_POOL_DEFAULT ? embed_model_pooling(e->m) : o->pooling;
    if (p != EMBED_POOL_NONE) return n_in;
    size_t rows = 0;
    for (size_t i = 0; i < n_in; i++) rows += used_len(e, &in[i], o);
    return rows;
}

static hearth_status check_inputs(const embed_ctx *e, const embed_input *in, size_t n_in, const embed_opts *o,
                                  hearth_err *err) {
    int64_t n_vocab = model_hp(e->m)->n_vocab;
    if (n_in == 0) return err_set(err, HEARTH_ERR_INVALID, "embeddings: no inputs");
    if (o->pooling < EMBED_POOL_DEFAULT || o->pooling > EMBED_POOL_LAST)
        return err_set(err, HEARTH_ERR_INVALID, "embeddings: unknown pooling type %d", (int)o->pooling);
    for (size_t i = 0; i < n_in; i++) {
        if (in[i].n == 0 || !in[i].tokens) return err_set(err, HEARTH_ERR_INVALID, "input %zu has no tokens", i);
        if (in[i].n > (size_t)e->cfg.n_ctx && !o->truncate)
            return err_set(err, HEARTH_ERR_RANGE, "input %zu has %zu tokens, more than the context (%lld)", i, in[i].n,
                           (long long)e->cfg.n_ctx);
        size_t n = used_len(e, &in[i], o);
        for (size_t t = 0; t < n; t++)
            if (in[i].tokens[t] < 0 || in[i].tokens[t] >= n_vocab)
                return err_set(err, HEARTH_ERR_INVALID, "input %zu: token %zu (id %d) is outside the vocabulary (%lld)",
                               i, t, in[i].tokens[t], (long long)n_vocab);
    }
    return HEARTH_OK;
}

static bool wants_output(embed_pooling p, size_t pos, size_t len) {
    if (p == EMBED_POOL_CLS) return pos == 0;
    if (p == EMBED_POOL_LAST) return pos == len - 1;
    return true;
}

static void normalize(float *row, int64_t n) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)row[i] * row[i];
    if (ss <= 0.0) return;
    float inv = (float)(1.0 / sqrt(ss));
    for (int64_t i = 0; i < n; i++) row[i] *= inv;
}

/* Runs inputs in[0..n) as one forward pass and writes their rows to out; *rows gets the
 * number written. The caller checked every input and that they fit the pass. */
static hearth_status run_pass(embed_ctx *e, const embed_input *in, size_t n, const embed_opts *o, embed_pooling p,
                              float *out, size_t *rows, hearth_err *err) {
    int64_t dim = model_hp(e->m)->n_embd;
    model_batch_clear(&e->batch);
    for (size_t j = 0; j < n; j++) {
        size_t len = used_len(e, &in[j], o);
        for (size_t t = 0; t < len; t++)
            model_batch_add(&e->batch, in[j].tokens[t], (int32_t)t, (int32_t)j, wants_output(p, t, len));
    }
    hearth_status st;
    if (e->kv) {
        for (size_t j = 0; j < n; j++) kv_seq_clear(e->kv, (int32_t)j);
        st = model_forward(e->ctx, e->kv, &e->batch, err);
    } else {
        st = model_encode(e->ctx, &e->batch, err);
    }
    if (st) return st;
    int32_t src = 0;
    size_t w = 0;
    for (size_t j = 0; j < n; j++) {
        size_t len = used_len(e, &in[j], o);
        size_t n_rows = p == EMBED_POOL_NONE ? len : 1;
        if (p == EMBED_POOL_MEAN) {
            float *row = out + w * (size_t)dim;
            memset(row, 0, (size_t)dim * sizeof(float));
            for (size_t t = 0; t < len; t++) kern_add(row, model_embedding(e->ctx, src++), dim);
            for (int64_t d = 0; d < dim; d++) row[d] /= (float)len;
        } else {
            for (size_t r = 0; r < n_rows; r++)
                memcpy(out + (w + r) * (size_t)dim, model_embedding(e->ctx, src++), (size_t)dim * sizeof(float));
        }
        if (o->normalize)
            for (size_t r = 0; r < n_rows; r++) normalize(out + (w + r) * (size_t)dim, dim);
        w += n_rows;
    }
    *rows = w;
    return HEARTH_OK;
}

hearth_status embed_batch(embed_ctx *e, const embed_input *in, size_t n_in, const embed_opts *o, float *out,
                          size_t out_rows, hearth_err *err) {
    hearth_status st = check_inputs(e, in, n_in, o, err);
    if (st) return st;
    embed_pooling p = o->pooling == EMBED_POOL_DEFAULT ? embed_model_pooling(e->m) : o->pooling;
    size_t need = embed_rows(e, in, n_in, o);
    if (out_rows < need)
        return err_set(err, HEARTH_ERR_INVALID, "embeddings: output has room for %zu rows, %zu needed", out_rows, need);
    size_t dim = (size_t)model_hp(e->m)->n_embd, row = 0;
    for (size_t i = 0; i < n_in;) {
        size_t start = i, tokens = 0, max_seq = (size_t)e->cfg.n_seq, max_tok = (size_t)e->cfg.n_batch;
        while (i < n_in && i - start < max_seq && tokens + used_len(e, &in[i], o) <= max_tok)
            tokens += used_len(e, &in[i++], o);
        size_t rows;
        if ((st = run_pass(e, in + start, i - start, o, p, out + row * dim, &rows, err))) return st;
        row += rows;
    }
    return HEARTH_OK;
}
