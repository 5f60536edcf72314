/* Paged key/value cache. Keys and values are stored as F16 in fixed-size pages handed
 * out from one pool; each sequence has a page table mapping its positions to pages, so
 * many sequences can share the pool and (through kv_seq_fork) share prefix pages, which
 * are reference counted. Positions of a sequence always form the prefix [0, len).
 * This file depends only on base: the model writes and reads rows through the accessors;
 * the cache never interprets them. It never grows past the sizes given at creation. */
#ifndef ENGINE_KV_CACHE_H
#define ENGINE_KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

typedef struct kv_config {
    int32_t n_layer;
    int32_t k_dim;       /* key elements per position per layer (kv heads * key head dim) */
    int32_t v_dim;       /* value elements per position per layer */
    int32_t page_size;   /* positions per page */
    int64_t n_ctx;       /* most positions one sequence may hold */
    int32_t n_seq;       /* sequence ids are 0 .. n_seq-1 */
    int64_t n_pages;     /* pages in the pool (0: enough for every sequence to be full) */
} kv_config;

#define KV_DEFAULT_PAGE_SIZE 32

typedef struct kv_cache kv_cache;

/* Allocates the pool. INVALID for a bad configuration, NOMEM. */
hearth_status kv_cache_new(const kv_config *cfg, kv_cache **out, hearth_err *err);
void kv_cache_free(kv_cache *kv); /* accepts NULL */
const kv_config *kv_cache_config(const kv_cache *kv);

/* Positions sequence seq holds. */
int64_t kv_seq_len(const kv_cache *kv, int32_t seq);

/* Makes room for positions [len, len + n) of seq and extends its length by n; the new
 * rows are uninitialised until written. RANGE ("context full") when the sequence would
 * pass n_ctx or the pool has too few free pages; nothing changes then. Pages shared with
 * another sequence are never written: the last page is copied first if it is shared. */
hearth_status kv_seq_append(kv_cache *kv, int32_t seq, int64_t n, hearth_err *err);

/* Free pages in the pool; pages a request of n more positions for seq would take. */
int64_t kv_free_pages(const kv_cache *kv);
int64_t kv_pages_needed(const kv_cache *kv, int32_t seq, int64_t n);

/* Shortens seq to len positions (len <= current), releasing pages no longer used. */
void kv_seq_truncate(kv_cache *kv, int32_t seq, int64_t len);
void kv_seq_clear(kv_cache *kv, int32_t seq);

/* Makes dst (which is cleared first) hold the first n positions of src, sharing src's
 * pages instead of copying them. RANGE if n > kv_seq_len(src). */
hearth_status kv_seq_fork(kv_cache *kv, int32_t src, int32_t dst, int64_t n, hearth_err *err);

/* Rows of position pos (< kv_seq_len) of seq in layer: k_dim (v_dim) F16 values. */
uint16_t *kv_k_row(kv_cache *kv, int32_t layer, int32_t seq, int64_t pos);
uint16_t *kv_v_row(kv_cache *kv, int32_t layer, int32_t seq, int64_t pos);

/* The run of positions [pos, pos + *n) of seq stored contiguously in one page, starting
 * at pos: keys (values) are *n rows of k_dim (v_dim) F16 values. *n counts to the end of
 * the page or of the sequence, whichever is first. */
const uint16_t *kv_k_run(const kv_cache *kv, int32_t layer, int32_t seq, int64_t pos, int64_t *n);
const uint16_t *kv_v_run(const kv_cache *kv, int32_t layer, int32_t seq, int64_t pos, int64_t *n);

#endif
