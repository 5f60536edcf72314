/* The embedding cache (see embed_cache.h): a chained hash table (FNV-1a over the whole
 * key, then a full-key compare) and a doubly linked recency list, both under one mutex.
 * Each entry is one allocation holding its key bytes and vector. Never prints. */
#include "engine/embed_cache.h"

#include <pthread.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"

#define MAX_BUCKETS ((size_t)1 << 20)

typedef struct entry {
    struct entry *hnext;          /* bucket chain */
    struct entry *prev, *next;    /* recency: head is the most recent */
    uint64_t hash, model;
    int32_t pooling;
    uint8_t flags;
    size_t len, dim;
    int64_t n_tokens;
    uint64_t born_ns;
    float *vec;                   /* points after the key bytes */
    unsigned char key[];          /* len bytes, then padding, then dim floats */
} entry;

struct embed_cache {
    pthread_mutex_t mu;
    embed_cache_config cfg;
    entry **buckets;
    size_t n_buckets;             /* a power of two */
    entry *head, *tail;
    embed_cache_stats st;
};

static uint64_t default_now(void *ud) {
    (void)ud;
    return clock_mono_ns();
}

static uint64_t hash_key(const embed_cache_key *k) {
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned char head[13];
    memcpy(head, &k->model, 8);
    memcpy(head + 8, &k->pooling, 4);
    head[12] = k->flags;
    for (size_t i = 0; i < sizeof head; i++) h = (h ^ head[i]) * 0x100000001b3ULL;
    const unsigned char *d = k->data;
    for (size_t i = 0; i < k->len; i++) h = (h ^ d[i]) * 0x100000001b3ULL;
    return h;
}

static size_t key_room(size_t len) { return (len + 7) & ~(size_t)7; }

int64_t embed_cache_entry_bytes(size_t len, size_t dim) {
    return (int64_t)(sizeof(entry) + key_room(len) + dim * sizeof(float));
}

hearth_status embed_cache_new(const embed_cache_config *cfg, embed_cache **out, hearth_err *err) {
    *out = NULL;
    if (cfg->max_entries <= 0 || cfg->max_bytes <= 0)
        return err_set(err, HEARTH_ERR_INVALID, "embedding cache: max_entries and max_bytes must be above 0");
    embed_cache *c = mem_calloc(1, sizeof *c);
    if (!c) return err_set(err, HEARTH_ERR_NOMEM, "embedding cache: out of memory");
    c->cfg = *cfg;
    if (!c->cfg.now_ns) c->cfg.now_ns = default_now;
    c->n_buckets = 64;
    while (c->n_buckets < MAX_BUCKETS && (int64_t)c->n_buckets < c->cfg.max_entries) c->n_buckets *= 2;
    if (!(c->buckets = mem_calloc(c->n_buckets, sizeof *c->buckets))) {
        mem_free(c);
        return err_set(err, HEARTH_ERR_NOMEM, "embedding cache: out of memory");
    }
    pthread_mutex_init(&c->mu, NULL);
    *out = c;
    return HEARTH_OK;
}

void embed_cache_free(embed_cache *c) {
    if (!c) return;
    for (entry *e = c->head, *n; e; e = n) {
        n = e->next;
        mem_free(e);
    }
    pthread_mutex_destroy(&c->mu);
    mem_free(c->buckets);
    mem_free(c);
}

static bool same_key(const entry *e, uint64_t h, const embed_cache_key *k) {
    return e->hash == h && e->model == k->model && e->pooling == k->pooling && e->flags == k->flags &&
           e->len == k->len && (k->len == 0 || !memcmp(e->key, k->data, k->len));
}

static entry **find_slot(embed_cache *c, uint64_t h, const embed_cache_key *k) {
    entry **p = &c->buckets[h & (c->n_buckets - 1)];
    while (*p && !same_key(*p, h, k)) p = &(*p)->hnext;
    return p;
}

static void unlink_lru(embed_cache *c, entry *e) {
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(embed_cache *c, entry *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

/* Removes e from both structures and frees it. */
static void drop(embed_cache *c, entry *e) {
    entry **p = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*p != e) p = &(*p)->hnext;
    *p = e->hnext;
    unlink_lru(c, e);
    c->st.entries--;
    c->st.bytes -= embed_cache_entry_bytes(e->len, e->dim);
    mem_free(e);
}

static bool expired(const embed_cache *c, const entry *e, uint64_t now) {
    return c->cfg.ttl_s > 0 && (double)(now - e->born_ns) >= c->cfg.ttl_s * 1e9;
}

bool embed_cache_get(embed_cache *c, const embed_cache_key *k, float *out, size_t dim, int64_t *n_tokens) {
    uint64_t h = hash_key(k);
    pthread_mutex_lock(&c->mu);
    entry *e = *find_slot(c, h, k);
    if (e && expired(c, e, c->cfg.now_ns(c->cfg.clock_ud))) {
        drop(c, e);
        c->st.expired++;
        e = NULL;
    }
    bool hit = e && e->dim == dim;
    if (hit) {
        memcpy(out, e->vec, dim * sizeof(float));
        *n_tokens = e->n_tokens;
        unlink_lru(c, e);
        push_front(c, e);
        c->st.hits++;
    } else {
        c->st.misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void embed_cache_put(embed_cache *c, const embed_cache_key *k, const float *v, size_t dim, int64_t n_tokens) {
    int64_t bytes = embed_cache_entry_bytes(k->len, dim);
    if (bytes > c->cfg.max_bytes) return;
    entry *n = mem_alloc(sizeof(entry) + key_room(k->len) + dim * sizeof(float));
    if (!n) return;
    uint64_t h = hash_key(k);
    *n = (entry){.hash = h, .model = k->model, .pooling = k->pooling, .flags = k->flags, .len = k->len, .dim = dim,
                 .n_tokens = n_tokens};
    if (k->len) memcpy(n->key, k->data, k->len);
    n->vec = (float *)(void *)(n->key + key_room(k->len));
    memcpy(n->vec, v, dim * sizeof(float));
    pthread_mutex_lock(&c->mu);
    n->born_ns = c->cfg.now_ns(c->cfg.clock_ud);
    entry *old = *find_slot(c, h, k);
    if (old) drop(c, old);
    while (c->tail && (c->st.entries + 1 > c->cfg.max_entries || c->st.bytes + bytes > c->cfg.max_bytes)) {
        drop(c, c->tail);
        c->st.evictions++;
    }
    entry **slot = &c->buckets[h & (c->n_buckets - 1)];
    n->hnext = *slot;
    *slot = n;
    push_front(c, n);
    c->st.entries++;
    c->st.bytes += bytes;
    pthread_mutex_unlock(&c->mu);
}

void embed_cache_get_stats(embed_cache *c, embed_cache_stats *out) {
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    pthread_mutex_unlock(&c->mu);
}
