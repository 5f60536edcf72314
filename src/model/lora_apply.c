/* Applying LoRA adapters inside a forward pass: before it, the per-sequence selection is
 * checked and turned into one coefficient per (adapter, token); after each matmul of an
 * adapted matrix, the rows of the tokens that use the adapter are gathered, sent through
 * A then B (two small matmuls) and added back. The base weights are never written, and
 * tokens without the adapter cost nothing. Allocates only in prepare, and only to grow. */
#include <math.h>
#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"
#include "model/lora_impl.h"

/* Below this many multiply-adds a low-rank product runs on the calling thread: waking the
 * pool twice would cost more than the work (a decode token's pair is ~10^4-10^5). The
 * result does not depend on the choice (kern_matmul is thread-count independent). */
#define POOL_MIN_MACS ((int64_t)1 << 20)

void model_lora_run_free(model_lora_run *r) {
    mem_free(r->act);
    mem_free(r->coef);
    mem_free(r->out_tok);
    mem_free(r->rows);
    mem_free(r->xg);
    mem_free(r->h);
    mem_free(r->yg);
    memset(r, 0, sizeof *r);
}

/* Grows *p to at least a x b elements of elem bytes (keeping it on failure). */
static bool grow(void **p, size_t *cap, size_t a, size_t b, size_t elem) {
    size_t need;
    if (!ck_mul(a, b, &need)) return false;
    if (need <= *cap) return true;
    void *q = mem_realloc_array(*p, need, elem);
    if (!q) return false;
    *p = q;
    *cap = need;
    return true;
}

hearth_status model_lora_check_set(const model *m, const model_lora_set *set, hearth_err *err) {
    if (set->n < 0 || (set->n > 0 && !set->use))
        return err_set(err, HEARTH_ERR_INVALID, "adapter list of %d entries without a table", set->n);
    for (int32_t i = 0; i < set->n; i++) {
        const model_lora_use *u = &set->use[i];
        if (!u->adapter) return err_set(err, HEARTH_ERR_INVALID, "adapter list: entry %d has no adapter", i);
        if (u->adapter->m != m)
            return err_set(err, HEARTH_ERR_INVALID, "adapter '%s' was loaded for another model", u->adapter->name);
        if (!isfinite(u->scale))
            return err_set(err, HEARTH_ERR_INVALID, "adapter '%s': scale %g is not finite", u->adapter->name,
                           (double)u->scale);
    }
    return HEARTH_OK;
}

/* Checks every set of map; *n_uses gets the number of (adapter, scale) entries. */
static hearth_status check_map(const model *m, const model_lora_map *map, size_t *n_uses, hearth_err *err) {
    *n_uses = 0;
    if (map->n_seq < 0 || (map->n_seq > 0 && !map->seq))
        return err_set(err, HEARTH_ERR_INVALID, "adapter map: %d sequences without a table", map->n_seq);
    for (int32_t s = 0; s < map->n_seq; s++) {
        hearth_status st = model_lora_check_set(m, &map->seq[s], err);
        if (st) {
            err_prefix(err, "sequence %d", s);
            return st;
        }
        *n_uses += (size_t)map->seq[s].n;
    }
    return HEARTH_OK;
}

static const model_lora_set *set_of(const model_lora_map *map, int32_t seq) {
    return seq >= 0 && seq < map->n_seq ? &map->seq[seq] : NULL;
}

/* The distinct adapters with a nonzero scale among the batch's sequences, into r->act. */
static void collect_adapters(model_lora_run *r, const model_batch *b, const model_lora_map *map) {
    for (int32_t t = 0; t < b->n; t++) {
        const model_lora_set *set = set_of(map, b->seq[t]);
        for (int32_t i = 0; set && i < set->n; i++) {
            if (set->use[i].scale == 0.0f) continue;
            int32_t k = 0;
            while (k < r->n_act && r->act[k] != set->use[i].adapter) k++;
            if (k == r->n_act) r->act[r->n_act++] = set->use[i].adapter;
        }
    }
}

static void fill_coefs(model_lora_run *r, const model_batch *b, const model_lora_map *map) {
    for (int32_t k = 0; k < r->n_act; k++) {
        const model_lora *a = r->act[k];
        for (int32_t t = 0; t < b->n; t++) {
            const model_lora_set *set = set_of(map, b->seq[t]);
            float s = 0.0f;
            for (int32_t i = 0; set && i < set->n; i++)
                if (set->use[i].adapter == a) s += set->use[i].scale;
            r->coef[(size_t)k * (size_t)b->n + (size_t)t] = s * a->alpha / (float)a->rank;
        }
    }
    int32_t n_out = 0;
    for (int32_t t = 0; t < b->n; t++)
        if (b->logits[t]) r->out_tok[n_out++] = t;
}

/* Scratch for the widest pair of the adapters in use, at the context's batch sizes. */
static bool grow_scratch(model_lora_run *r, const model_ctx_params *p, const model_batch *b) {
    int64_t in = 0, rank = 0, out = 0, logits = 0;
    for (int32_t k = 0; k < r->n_act; k++) {
        const model_lora *a = r->act[k];
        if (a->max_in > in) in = a->max_in;
        if (a->rank > rank) rank = a->rank;
        if (a->max_out > out) out = a->max_out;
        if (a->logits_out > logits) logits = a->logits_out;
    }
    size_t nb = (size_t)p->n_batch, ny, nl;
    if (!ck_mul(nb, (size_t)out, &ny) || !ck_mul((size_t)p->n_outputs, (size_t)logits, &nl)) return false;
    size_t tok = (size_t)b->n > nb ? (size_t)b->n : nb;
    return grow((void **)&r->coef, &r->cap_coef, (size_t)r->n_act, (size_t)b->n, sizeof(float)) &&
           grow((void **)&r->out_tok, &r->cap_tok, tok, 1, sizeof(int32_t)) &&
           grow((void **)&r->rows, &r->cap_rows, tok, 1, sizeof(int32_t)) &&
           grow((void **)&r->xg, &r->cap_xg, nb, (size_t)in, sizeof(float)) &&
           grow((void **)&r->h, &r->cap_h, nb, (size_t)rank, sizeof(float)) &&
           grow((void **)&r->yg, &r->cap_yg, ny > nl ? ny : nl, 1, sizeof(float));
}

hearth_status model_lora_prepare(model_lora_run *r, const model *m, const model_ctx_params *p,
                                 const model_batch *b, const model_lora_map *map, hearth_err *err) {
    r->active = false;
    r->output_rows = false;
    r->n_act = 0;
    r->b = b;
    if (!map) return HEARTH_OK;
    size_t n_uses;
    hearth_status st = check_map(m, map, &n_uses, err);
    if (st || n_uses == 0) return st;
    if (!grow((void **)&r->act, &r->cap_act, n_uses, 1, sizeof *r->act))
        return err_set(err, HEARTH_ERR_NOMEM, "adapters: out of memory for %zu selections", n_uses);
    collect_adapters(r, b, map);
    if (r->n_act == 0) return HEARTH_OK;
    if (!grow_scratch(r, p, b)) {
        r->n_act = 0;
        return err_set(err, HEARTH_ERR_NOMEM, "adapters: out of memory for the scratch of a batch of %d", p->n_batch);
    }
    fill_coefs(r, b, map);
    r->active = true;
    return HEARTH_OK;
}

void model_lora_use_output_rows(model_lora_run *r) { r->output_rows = true; }

static const lora_pair *pair_for(const model_lora *a, const kern_matrix *w) {
    for (int64_t i = 0; i < a->n_pairs; i++)
        if (a->pairs[i].base == w) return &a->pairs[i];
    return NULL;
}

static hearth_status low_rank(model_lora_run *r, kern_pool *pool, const lora_pair *lp, const float *coef,
                              const float *x, int64_t n, float *y, int64_t ldy, hearth_err *err) {
    int64_t ng = 0, in = lp->a.cols, rank = lp->a.rows, out = lp->b.rows;
    for (int64_t i = 0; i < n; i++)
        if (coef[r->output_rows ? r->out_tok[i] : i] != 0.0f) r->rows[ng++] = (int32_t)i;
    if (ng == 0) return HEARTH_OK;
    if (ng * rank * (in + out) < POOL_MIN_MACS) pool = NULL;
    const float *xin = x;
    if (ng < n) {
        for (int64_t j = 0; j < ng; j++)
            memcpy(r->xg + j * in, x + (int64_t)r->rows[j] * in, (size_t)in * sizeof(float));
        xin = r->xg;
    }
    hearth_status st = kern_matmul(pool, &lp->a, xin, ng, r->h, rank);
    if (st) return err_set(err, st, "adapter matmul (rank %lld x %lld) failed: %s", (long long)rank, (long long)in,
                           hearth_strerror(st));
    for (int64_t j = 0; j < ng; j++) {
        float c = coef[r->output_rows ? r->out_tok[r->rows[j]] : r->rows[j]];
        for (int64_t k = 0; k < rank; k++) r->h[j * rank + k] *= c;
    }
    if ((st = kern_matmul(pool, &lp->b, r->h, ng, r->yg, out)))
        return err_set(err, st, "adapter matmul (%lld x rank %lld) failed: %s", (long long)out, (long long)rank,
                       hearth_strerror(st));
    for (int64_t j = 0; j < ng; j++) kern_add(y + (int64_t)r->rows[j] * ldy, r->yg + j * out, out);
    return HEARTH_OK;
}

hearth_status model_lora_apply(model_lora_run *r, kern_pool *pool, const kern_matrix *w, const float *x,
                               int64_t n, float *y, int64_t ldy, hearth_err *err) {
    if (!r->active) return HEARTH_OK;
    for (int32_t k = 0; k < r->n_act; k++) {
        const lora_pair *lp = pair_for(r->act[k], w);
        if (!lp) continue;
        hearth_status st = low_rank(r, pool, lp, r->coef + (size_t)k * (size_t)r->b->n, x, n, y, ldy, err);
        if (st) return st;
    }
    return HEARTH_OK;
}
