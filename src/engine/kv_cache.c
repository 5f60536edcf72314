/* Paged F16 key/value cache (see kv_cache.h). One allocation holds every page; a page
 * holds, for each layer, page_size key rows followed by page_size value rows. Pages are
 * reference counted so forks share prefixes; a shared page is copied before a sequence
 * writes into it. Never writes outside a page the writing sequence owns alone. */
#include "engine/kv_cache.h"

#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"

struct kv_cache {
    kv_config cfg;
    size_t page_elems;     /* F16 values per page per layer: page_size * (k_dim + v_dim) */
    int64_t pages_per_seq; /* table width: ceil(n_ctx / page_size) */
    uint16_t *data;        /* [n_pages][n_layer][page_elems] */
    int32_t *refs;         /* [n_pages] sequences using each page */
    int32_t *free_pages;   /* stack of unused page ids */
    int64_t n_free;
    int32_t *table;        /* [n_seq][pages_per_seq] page ids */
    int64_t *len;          /* [n_seq] positions held */
};

static int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

hearth_status kv_cache_new(const kv_config *cfg, kv_cache **out, hearth_err *err) {
    *out = NULL;
    kv_config c = *cfg;
    if (c.n_layer <= 0 || c.k_dim <= 0 || c.v_dim <= 0 || c.page_size <= 0 || c.n_ctx <= 0 ||
        c.n_seq <= 0 || c.n_pages < 0)
        return err_set(err, HEARTH_ERR_INVALID, "kv cache: invalid configuration");
    int64_t per_seq = div_up(c.n_ctx, c.page_size);
    if (c.n_pages == 0 && !ck_mul(per_seq, (int64_t)c.n_seq, &c.n_pages))
        return err_set(err, HEARTH_ERR_INVALID, "kv cache: too many pages");
    size_t page_elems, all_elems, table_n;
    if (c.n_pages > INT32_MAX ||
        !ck_mul((size_t)c.page_size, (size_t)c.k_dim + (size_t)c.v_dim, &page_elems) ||
        !ck_mul(page_elems, (size_t)c.n_layer, &all_elems) ||
        !ck_mul(all_elems, (size_t)c.n_pages, &all_elems) ||
        !ck_mul((size_t)per_seq, (size_t)c.n_seq, &table_n))
        return err_set(err, HEARTH_ERR_INVALID, "kv cache: size overflows");

    kv_cache *kv = mem_calloc(1, sizeof *kv);
    if (!kv) return err_set(err, HEARTH_ERR_NOMEM, "kv cache: out of memory");
    kv->cfg = c;
    kv->page_elems = page_elems;
    kv->pages_per_seq = per_seq;
    kv->data = mem_alloc_array(all_elems, sizeof(uint16_t));
    kv->refs = mem_calloc((size_t)c.n_pages, sizeof(int32_t));
    kv->free_pages = mem_alloc_array((size_t)c.n_pages, sizeof(int32_t));
    kv->table = mem_alloc_array(table_n, sizeof(int32_t));
    kv->len = mem_calloc((size_t)c.n_seq, sizeof(int64_t));
    if (!kv->data || !kv->refs || !kv->free_pages || !kv->table || !kv->len) {
        kv_cache_free(kv);
        return err_set(err, HEARTH_ERR_NOMEM, "kv cache: out of memory for %lld pages of %zu bytes",
                       (long long)c.n_pages, page_elems * (size_t)c.n_layer * sizeof(uint16_t));
    }
    for (int64_t i = 0; i < c.n_pages; i++) kv->free_pages[i] = (int32_t)(c.n_pages - 1 - i);
    kv->n_free = c.n_pages;
    *out = kv;
    return HEARTH_OK;
}

void kv_cache_free(kv_cache *kv) {
    if (!kv) return;
    mem_free(kv->data);
    mem_free(kv->refs);
    mem_free(kv->free_pages);
    mem_free(kv->table);
    mem_free(kv->len);
    mem_free(kv);
}

const kv_config *kv_cache_config(const kv_cache *kv) { return &kv->cfg; }

int64_t kv_seq_len(const kv_cache *kv, int32_t seq) { return kv->len[seq]; }

int64_t kv_free_pages(const kv_cache *kv) { return kv->n_free; }

static int32_t *seq_table(const kv_cache *kv, int32_t seq) {
    return kv->table + (size_t)seq * (size_t)kv->pages_per_seq;
}

static uint16_t *page_layer(const kv_cache *kv, int32_t page, int32_t layer) {
    return kv->data + ((size_t)page * (size_t)kv->cfg.n_layer + (size_t)layer) * kv->page_elems;
}

static void page_release(kv_cache *kv, int32_t page) {
    if (--kv->refs[page] == 0) kv->free_pages[kv->n_free++] = page;
}

static int32_t page_take(kv_cache *kv) {
    int32_t page = kv->free_pages[--kv->n_free];
    kv->refs[page] = 1;
    return page;
}

/* True when appending to seq would write into a page another sequence also uses. */
static bool last_page_shared(const kv_cache *kv, int32_t seq) {
    int64_t len = kv->len[seq];
    if (len % kv->cfg.page_size == 0) return false;
    return kv->refs[seq_table(kv, seq)[len / kv->cfg.page_size]] > 1;
}

int64_t kv_pages_needed(const kv_cache *kv, int32_t seq, int64_t n) {
    int64_t len = kv->len[seq], ps = kv->cfg.page_size;
    if (n <= 0) return 0;
    return div_up(len + n, ps) - div_up(len, ps) + (last_page_shared(kv, seq) ? 1 : 0);
}

hearth_status kv_seq_append(kv_cache *kv, int32_t seq, int64_t n, hearth_err *err) {
    if (seq < 0 || seq >= kv->cfg.n_seq || n < 0)
        return err_set(err, HEARTH_ERR_INVALID, "kv cache: bad sequence %d or count", seq);
    int64_t len = kv->len[seq];
    if (n > kv->cfg.n_ctx - len)
        return err_set(err, HEARTH_ERR_RANGE,
                       "context full: sequence holds %lld of %lld positions, %lld more do not fit",
                       (long long)len, (long long)kv->cfg.n_ctx, (long long)n);
    int64_t need = kv_pages_needed(kv, seq, n);
    if (need > kv->n_free)
        return err_set(err, HEARTH_ERR_RANGE,
                       "context full: the cache has %lld free pages, %lld needed",
                       (long long)kv->n_free, (long long)need);
    if (n == 0) return HEARTH_OK;
    int32_t *tab = seq_table(kv, seq);
    int64_t ps = kv->cfg.page_size;
    if (last_page_shared(kv, seq)) {
        int32_t old = tab[len / ps], fresh = page_take(kv);
        memcpy(page_layer(kv, fresh, 0), page_layer(kv, old, 0),
               kv->page_elems * (size_t)kv->cfg.n_layer * sizeof(uint16_t));
        page_release(kv, old);
        tab[len / ps] = fresh;
    }
    for (int64_t p = div_up(len, ps); p < div_up(len + n, ps); p++) tab[p] = page_take(kv);
    kv->len[seq] = len + n;
    return HEARTH_OK;
}

void kv_seq_truncate(kv_cache *kv, int32_t seq, int64_t len) {
    if (seq < 0 || seq >= kv->cfg.n_seq || len < 0 || len >= kv->len[seq]) return;
    int32_t *tab = seq_table(kv, seq);
    int64_t ps = kv->cfg.page_size;
    for (int64_t p = div_up(len, ps); p < div_up(kv->len[seq], ps); p++) page_release(kv, tab[p]);
    kv->len[seq] = len;
}

void kv_seq_clear(kv_cache *kv, int32_t seq) { kv_seq_truncate(kv, seq, 0); }

hearth_status kv_seq_fork(kv_cache *kv, int32_t src, int32_t dst, int64_t n, hearth_err *err) {
    if (src < 0 || src >= kv->cfg.n_seq || dst < 0 || dst >= kv->cfg.n_seq || src == dst)
        return err_set(err, HEARTH_ERR_INVALID, "kv cache: bad fork %d -> %d", src, dst);
    if (n < 0 || n > kv->len[src])
        return err_set(err, HEARTH_ERR_RANGE, "kv cache: fork of %lld positions from a sequence of %lld",
                       (long long)n, (long long)kv->len[src]);
    kv_seq_clear(kv, dst);
    const int32_t *from = seq_table(kv, src);
    int32_t *to = seq_table(kv, dst);
    for (int64_t p = 0; p < div_up(n, kv->cfg.page_size); p++) {
        to[p] = from[p];
        kv->refs[from[p]]++;
    }
    kv->len[dst] = n;
    return HEARTH_OK;
}

static uint16_t *row_at(const kv_cache *kv, int32_t layer, int32_t seq, int64_t pos, bool value) {
    int64_t ps = kv->cfg.page_size;
    uint16_t *base = page_layer(kv, seq_table(kv, seq)[pos / ps], layer);
    if (value) return base + (size_t)ps * (size_t)kv->cfg.k_dim + (size_t)(pos % ps) * (size_t)kv->cfg.v_dim;
    return base + (size_t)(pos % ps) * (size_t)kv->cfg.k_dim;
}

uint16_t *kv_k_row(kv_cache *kv, int32_t layer, int32_t seq, int64_t pos) {
    return row_at(kv, layer, seq, pos, false);
}

uint16_t *kv_v_row(kv_cache *kv, int32_t layer, int32_t seq, int64_t pos) {
    return row_at(kv, layer, seq, pos, true);
}

static int64_t run_len(const kv_cache *kv, int32_t seq, int64_t pos) {
    int64_t ps = kv->cfg.page_size, to_page_end = ps - pos % ps, to_end = kv->len[seq] - pos;
    return to_page_end < to_end ? to_page_end : to_end;
}

const uint16_t *kv_k_run(const kv_cache *kv, int32_t layer, int32_t seq, int64_t pos, int64_t *n) {
    *n = run_len(kv, seq, pos);
    return row_at(kv, layer, seq, pos, false);
}

const uint16_t *kv_v_run(const kv_cache *kv, int32_t layer, int32_t seq, int64_t pos, int64_t *n) {
    *n = run_len(kv, seq, pos);
    return row_at(kv, layer, seq, pos, true);
}
