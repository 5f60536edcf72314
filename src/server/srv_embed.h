/* The server's embeddings state: one batcher per loaded model that embeds (created on
 * its first embedding request, freed when the fleet detaches the model), the process-wide
 * embedding cache, and their metrics. POST /v1/embeddings itself is srv_handle_embeddings
 * (srv_internal.h). Never touches HTTP. */
#ifndef SERVER_SRV_EMBED_H
#define SERVER_SRV_EMBED_H

#include "config/config.h"
#include "engine/embed_batcher.h"
#include "engine/embed_cache.h"
#include "hearth.h"
#include "obs/obs.h"
#include "server/srv_model.h"

typedef struct srv_embed srv_embed;

/* The cache as cfg says (read once: cache settings need a restart), metric families in
 * o's registry. NOMEM, INVALID. */
hearth_status srv_embed_new(const cfg_embeddings *cfg, obs *o, srv_embed **out, hearth_err *err);
/* After the fleet is freed (every model detached). Accepts NULL. */
void srv_embed_free(srv_embed *e);

/* The batcher of the leased model, created on first use with the model's context and
 * threads; *instance is an id unique to this load of the model (for cache keys). */
hearth_status srv_embed_batcher(srv_embed *e, const srv_model *m, int threads, int32_t batch_tokens,
                                int32_t max_queue, embed_batcher **out, uint64_t *instance, hearth_err *err);
embed_cache *srv_embed_cache(srv_embed *e); /* NULL when caching is off */

/* The fleet is unloading the model whose attachment this is: frees its batcher. */
void srv_embed_detach(srv_embed *e, const void *attachment);

/* Mirrors the cache and batcher counters into the metrics (before /metrics renders). */
void srv_embed_collect(srv_embed *e);

#endif
