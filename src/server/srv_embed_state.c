/* The embeddings state of the server (see srv_embed.h): a small registry of batchers
 * keyed by the fleet attachment of the loaded model they serve, the cache, and the
 * metric families that show both. A batcher is created outside the registry lock (it
 * allocates a context and starts threads): the first request of a model leaves a
 * placeholder slot that later requests of the same model wait on, while other models'
 * requests and /metrics go on. Never touches HTTP. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "server/srv_embed.h"

typedef struct batcher_slot {
    struct batcher_slot *next;
    const void *key;         /* the fleet attachment of the loaded model */
    char name[CFG_NAME_MAX + 1];
    uint64_t instance;
    embed_batcher *b;        /* NULL while its first request creates it */
} batcher_slot;

struct srv_embed {
    pthread_mutex_t mu;
    pthread_cond_t created;  /* a placeholder slot was filled or removed */
    batcher_slot *slots;
    uint64_t next_instance;
    embed_cache *cache;
    obs_family *hits, *misses, *evictions, *expired, *entries, *bytes, *passes, *inputs, *tokens;
};

hearth_status srv_embed_new(const cfg_embeddings *cfg, obs *o, srv_embed **out, hearth_err *err) {
    *out = NULL;
    srv_embed *e = mem_calloc(1, sizeof *e);
    if (!e) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->created, NULL);
    if (cfg->cache) {
        embed_cache_config cc = {.max_entries = cfg->cache_max_entries, .max_bytes = cfg->cache_max_bytes,
                                 .ttl_s = cfg->cache_ttl_s};
        hearth_status st = embed_cache_new(&cc, &e->cache, err);
        if (st) {
            srv_embed_free(e);
            return st;
        }
    }
    obs_registry *r = o ? obs_metrics_registry(o) : NULL;
    if (r) {
        static const char *const model_label[] = {"model", NULL};
        e->hits = obs_family_new(r, OBS_COUNTER, "hearth_embedding_cache_hits_total",
                                 "Embedding inputs served from the cache.", NULL, NULL, 0);
        e->misses = obs_family_new(r, OBS_COUNTER, "hearth_embedding_cache_misses_total",
                                   "Embedding inputs looked up in the cache and not found.", NULL, NULL, 0);
        e->evictions = obs_family_new(r, OBS_COUNTER, "hearth_embedding_cache_evictions_total",
                                      "Cache entries evicted to keep within max_entries or max_bytes.", NULL, NULL, 0);
        e->expired = obs_family_new(r, OBS_COUNTER, "hearth_embedding_cache_expired_total",
                                    "Cache entries dropped because their TTL passed.", NULL, NULL, 0);
        e->entries = obs_family_new(r, OBS_GAUGE, "hearth_embedding_cache_entries", "Entries in the embedding cache.",
                                    NULL, NULL, 0);
        e->bytes = obs_family_new(r, OBS_GAUGE, "hearth_embedding_cache_bytes",
                                  "Bytes charged to the embedding cache.", NULL, NULL, 0);
        e->passes = obs_family_new(r, OBS_COUNTER, "hearth_embedding_forward_passes_total",
                                   "Forward passes run for embeddings since the model loaded.", model_label, NULL, 0);
        e->inputs = obs_family_new(r, OBS_COUNTER, "hearth_embedding_inputs_total",
                                   "Inputs embedded by forward passes since the model loaded.", model_label, NULL, 0);
        e->tokens = obs_family_new(r, OBS_COUNTER, "hearth_embedding_tokens_total",
                                   "Tokens embedded by forward passes since the model loaded.", model_label, NULL, 0);
    }
    *out = e;
    return HEARTH_OK;
}

void srv_embed_free(srv_embed *e) {
    if (!e) return;
    for (batcher_slot *s = e->slots, *n; s; s = n) {
        n = s->next;
        embed_batcher_free(s->b);
        mem_free(s);
    }
    embed_cache_free(e->cache);
    pthread_cond_destroy(&e->created);
    pthread_mutex_destroy(&e->mu);
    mem_free(e);
}

embed_cache *srv_embed_cache(srv_embed *e) { return e->cache; }

static batcher_slot *find(srv_embed *e, const void *key) {
    batcher_slot *s = e->slots;
    while (s && s->key != key) s = s->next;
    return s;
}

static void unlink_slot(srv_embed *e, batcher_slot *gone) {
    batcher_slot **link = &e->slots;
    while (*link != gone) link = &(*link)->next;
    *link = gone->next;
}

hearth_status srv_embed_batcher(srv_embed *e, const srv_model *m, int threads, int32_t batch_tokens,
                                int32_t max_queue, embed_batcher **out, uint64_t *instance, hearth_err *err) {
    const void *key = fleet_lease_attachment(m);
    if (!key) return err_set(err, HEARTH_ERR_INTERNAL, "the model '%s' has no server attachment", srv_model_id(m));
    pthread_mutex_lock(&e->mu);
    batcher_slot *s;
    while ((s = find(e, key)) && !s->b) pthread_cond_wait(&e->created, &e->mu);   /* another request creates it */
    if (s) {
        *out = s->b;
        *instance = s->instance;
        pthread_mutex_unlock(&e->mu);
        return HEARTH_OK;
    }
    s = mem_calloc(1, sizeof *s);
    if (!s) {
        pthread_mutex_unlock(&e->mu);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    }
    s->key = key;   /* the placeholder: same-model requests wait, others pass */
    snprintf(s->name, sizeof s->name, "%s", srv_model_id(m));
    s->next = e->slots;
    e->slots = s;
    pthread_mutex_unlock(&e->mu);

    embed_batcher_config bc = {.n_ctx = srv_model_n_ctx(m), .batch_tokens = batch_tokens, .max_queue = max_queue,
                               .n_threads = threads};
    embed_batcher *b = NULL;
    hearth_status st = embed_batcher_new(fleet_lease_model(m)->model, &bc, &b, err);

    pthread_mutex_lock(&e->mu);
    if (st) {
        unlink_slot(e, s);   /* a later request tries again */
        mem_free(s);
    } else {
        s->b = b;
        s->instance = ++e->next_instance;
        *out = b;
        *instance = s->instance;
    }
    pthread_cond_broadcast(&e->created);
    pthread_mutex_unlock(&e->mu);
    return st;
}

void srv_embed_detach(srv_embed *e, const void *attachment) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    batcher_slot *gone;
    while ((gone = find(e, attachment)) && !gone->b) pthread_cond_wait(&e->created, &e->mu);
    if (gone) unlink_slot(e, gone);
    pthread_mutex_unlock(&e->mu);
    if (gone) {
        embed_batcher_free(gone->b);
        mem_free(gone);
    }
}

void srv_embed_collect(srv_embed *e) {
    if (!e) return;
    if (e->cache) {
        embed_cache_stats cs;
        embed_cache_get_stats(e->cache, &cs);
        obs_set(e->hits, NULL, (double)cs.hits);
        obs_set(e->misses, NULL, (double)cs.misses);
        obs_set(e->evictions, NULL, (double)cs.evictions);
        obs_set(e->expired, NULL, (double)cs.expired);
        obs_set(e->entries, NULL, (double)cs.entries);
        obs_set(e->bytes, NULL, (double)cs.bytes);
    }
    pthread_mutex_lock(&e->mu);
    for (batcher_slot *s = e->slots; s; s = s->next) {
        if (!s->b) continue;   /* being created */
        embed_batcher_stats bs;
        embed_batcher_get_stats(s->b, &bs);
        const char *v[] = {s->name};
        obs_set(e->passes, v, (double)bs.passes);
        obs_set(e->inputs, v, (double)bs.inputs);
        obs_set(e->tokens, v, (double)bs.tokens);
    }
    pthread_mutex_unlock(&e->mu);
}
