/* Model lifecycle and batches: model_new reads hyper-parameters and binds weights (every
 * check happens here, before any compute), model_batch holds the tokens of one forward
 * pass. Never computes and never owns the GGUF mapping it borrows. */
#include "model/model_impl.h"

#include <string.h>

#include "base/err.h"
#include "base/mem.h"

/* The matrices the forward pass multiplies (token_embd is only read by rows), for
   kern_matrix_prepare / kern_matrix_release. A tied output is its own copy. */
static void for_each_matmul_weight(model *m, void (*fn)(kern_matrix *w, void *ctx), void *ctx) {
    for (int64_t l = 0; m->layers && l < m->hp.n_layer; l++) {
        model_layer *L = &m->layers[l];
        kern_matrix *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) fn(ws[i], ctx);
    }
    fn(&m->output, ctx);
}

typedef struct {
    hearth_status st;
    size_t bytes;
} prepare_state;

static void prepare_one(kern_matrix *w, void *ctx) {
    prepare_state *ps = ctx;
    size_t bytes = 0;
    if (!ps->st && w->data) ps->st = kern_matrix_prepare(w, &bytes);
    ps->bytes += bytes;
}

static void release_one(kern_matrix *w, void *ctx) { kern_matrix_release(w); }

hearth_status model_new(const gguf_file *f, model **out, hearth_err *err) {
    *out = NULL;
    model *m = mem_calloc(1, sizeof *m);
    if (!m) return err_set(err, HEARTH_ERR_NOMEM, "model: out of memory");
    hearth_status st = model_read_hparams(f, &m->hp, err);
    if (!st) st = model_bind_weights(f, m, err);
    if (!st) {   /* weights repacked once for the CPU's tiled matmul, where it has one */
        prepare_state ps = {HEARTH_OK, 0};
        for_each_matmul_weight(m, prepare_one, &ps);
        m->packed_bytes = ps.bytes;
        if (ps.st) st = err_set(err, ps.st, "model: repacking weights: %s", hearth_strerror(ps.st));
    }
    if (st) {
        model_free(m);
        return st;
    }
    *out = m;
    return HEARTH_OK;
}

void model_free(model *m) {
    if (!m) return;
    for_each_matmul_weight(m, release_one, NULL);
    mem_free(m->layers);
    mem_free(m->f32_arena);
    mem_free(m);
}

const model_hparams *model_hp(const model *m) { return &m->hp; }

bool model_is_encoder(const model *m) { return m->hp.arch == MODEL_ARCH_BERT; }

kv_config model_kv_config(const model *m, int64_t n_ctx, int32_t n_seq) {
    const model_hparams *hp = &m->hp;
    return (kv_config){
        .n_layer = (int32_t)hp->n_layer,
        .k_dim = (int32_t)(hp->n_head_kv * hp->head_dim_k),
        .v_dim = (int32_t)(hp->n_head_kv * hp->head_dim_v),
        .page_size = KV_DEFAULT_PAGE_SIZE,
        .n_ctx = n_ctx,
        .n_seq = n_seq,
        .n_pages = 0,
    };
}

hearth_status model_batch_init(model_batch *b, int32_t cap, hearth_err *err) {
    memset(b, 0, sizeof *b);
    if (cap <= 0) return err_set(err, HEARTH_ERR_INVALID, "batch capacity %d must be positive", cap);
    b->token = mem_alloc_array((size_t)cap, sizeof(int32_t));
    b->pos = mem_alloc_array((size_t)cap, sizeof(int32_t));
    b->seq = mem_alloc_array((size_t)cap, sizeof(int32_t));
    b->logits = mem_alloc_array((size_t)cap, sizeof(bool));
    if (!b->token || !b->pos || !b->seq || !b->logits) {
        model_batch_free(b);
        return err_set(err, HEARTH_ERR_NOMEM, "batch: out of memory for %d tokens", cap);
    }
    b->cap = cap;
    return HEARTH_OK;
}

void model_batch_free(model_batch *b) {
    mem_free(b->token);
    mem_free(b->pos);
    mem_free(b->seq);
    mem_free(b->logits);
    memset(b, 0, sizeof *b);
}

void model_batch_clear(model_batch *b) { b->n = 0; }

bool model_batch_add(model_batch *b, int32_t token, int32_t pos, int32_t seq, bool logits) {
    if (b->n >= b->cap) return false;
    b->token[b->n] = token;
    b->pos[b->n] = pos;
    b->seq[b->n] = seq;
    b->logits[b->n] = logits;
    b->n++;
    return true;
}
