/* A bounded cache of finished embeddings: key = model instance + pooling + normalize +
 * the input (its text, or its token ids), value = the vector and the input's token count.
 * Least-recently-used eviction under a bound on entries and on bytes, and a time to live
 * after which an entry is never served. Thread-safe (one mutex); lookups copy the vector
 * out, so nothing handed out can be evicted under a reader. The clock is injectable for
 * tests. Never prints. */
#ifndef ENGINE_EMBED_CACHE_H
#define ENGINE_EMBED_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

typedef struct embed_cache_config {
    int64_t max_entries;             /* > 0 */
    int64_t max_bytes;               /* > 0: key, vector and bookkeeping of every entry */
    double ttl_s;                    /* <= 0: entries never expire */
    uint64_t (*now_ns)(void *ud);    /* NULL: clock_mono_ns */
    void *clock_ud;
} embed_cache_config;

typedef struct embed_cache_key {
    uint64_t model;                  /* the loaded model instance (a new load: a new id) */
    int32_t pooling;                 /* the resolved pooling */
    uint8_t flags;                   /* EMBED_CACHE_* bits */
    const void *data;                /* text bytes, or int32 token ids */
    size_t len;                      /* bytes of data */
} embed_cache_key;

enum { EMBED_CACHE_NORMALIZE = 1, EMBED_CACHE_TOKENS = 2, EMBED_CACHE_TRUNCATE = 4 };

typedef struct embed_cache_stats {
    uint64_t hits, misses, evictions, expired;
    int64_t entries, bytes;
} embed_cache_stats;

typedef struct embed_cache embed_cache;

/* INVALID for a non-positive bound, NOMEM. */
hearth_status embed_cache_new(const embed_cache_config *cfg, embed_cache **out, hearth_err *err);
void embed_cache_free(embed_cache *c); /* accepts NULL */

/* Copies the cached vector of k (exactly dim floats) into out and its token count into
 * *n_tokens; counts a hit. False (a miss) when absent, expired (then removed) or of
 * another dimension. */
bool embed_cache_get(embed_cache *c, const embed_cache_key *k, float *out, size_t dim, int64_t *n_tokens);

/* Stores a copy (replacing an entry of the same key), evicting the least recently used
 * entries until both bounds hold. An entry larger than max_bytes alone is not stored.
 * Allocation failure only means the value is not cached. */
void embed_cache_put(embed_cache *c, const embed_cache_key *k, const float *v, size_t dim, int64_t n_tokens);

void embed_cache_get_stats(embed_cache *c, embed_cache_stats *out);

/* Bytes an entry of key length len and dim floats is charged. */
int64_t embed_cache_entry_bytes(size_t len, size_t dim);

#endif
