/* Model lifecycle and batches: model_new reads hyper-parameters and binds weights (every
 * check happens here, before any compute), model_batch holds the tokens of one forward
 * pass. Never computes and never owns the GGUF mapping it borrows. */
#include "model/model_impl.h"

#include <string.h>

#include "base/err.h"
#include "base/mem.h"

hearth_status model_new(const gguf_file *f, model **out, hearth_err *err) {
    *out = NULL;
    model *m = mem_calloc(1, sizeof *m);
    if (!m) return err_set(err, HEARTH_ERR_NOMEM, "model: out of memory");
    hearth_status st = model_read_hparams(f, &m->hp, err);
    if (!st) st = model_bind_weights(f, m, err);
    if (st) {
        model_free(m);
        return st;
    }
    *out = m;
    return HEARTH_OK;
}

void model_free(model *m) {
    if (!m) return;
    mem_free(m->layers);
    mem_free(m->f32_arena);
    mem_free(m);
}

const model_hparams *model_hp(const model *m) { return &m->hp; }

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
