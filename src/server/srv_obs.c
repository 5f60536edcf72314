/* The server's side of observability: the collector that reports every loaded model's
 * scheduler and memory to the obs hub, and the endpoints GET / (the dashboard page),
 * GET /metrics (Prometheus text) and GET /admin/stats (the JSON the dashboard polls).
 * Reads only; it never changes the model or the scheduler. */
#include <string.h>

#include "base/mem.h"
#include "engine/generate.h"
#include "engine/kv_cache.h"
#include "obs/obs_dashboard.h"
#include "server/srv_embed.h"
#include "server/srv_internal.h"

#define LIVE_WINDOW_S 300.0

typedef struct collect_ctx {
    obs *o;
} collect_ctx;

static void collect_one(void *ud, const fleet_loaded *m) {
    collect_ctx *c = ud;
    sched_stats st = {0};
    if (m->sched) sched_get_stats(m->sched, &st);
    kv_config kv = model_kv_config(m->gm->model, m->n_ctx, 1);
    uint64_t page_bytes = (uint64_t)kv.page_size * (uint64_t)kv.n_layer * ((uint64_t)kv.k_dim + (uint64_t)kv.v_dim) *
                          2; /* F16 keys and values */
    obs_model_sample smp = {
        .queued = st.queued,
        .running = st.running,
        .n_slots = st.n_slots,
        .kv_pages_used = st.kv_pages_used,
        .kv_pages_total = st.kv_pages_total,
        .prefix_hit_tokens = st.prefix_hits_tokens,
        .steps_interrupted = st.steps_interrupted,
        .decode_tps = st.decode_tps,
        .prefill_tps = st.prefill_tps,
        .queue_wait_s = st.queue_wait_s,
        .weights_bytes = (uint64_t)m->weights_bytes,
        .repacked_bytes = (uint64_t)m->packed_bytes,
        .kv_bytes = st.kv_pages_total > 0 ? (uint64_t)st.kv_pages_total * page_bytes : (uint64_t)m->kv_bytes,
    };
    obs_model_sample_set(c->o, m->name, &smp);
}

void srv_obs_collect(void *ud, obs *o) {
    srv *s = ud;
    collect_ctx c = {.o = o};
    fleet_visit_ready(s->fleet, collect_one, &c);
    srv_embed_collect(s->embed);
}

static void raw_reply(srv_reply *out, char *text, size_t len, const char *content_type) {
    if (!text) {
        srv_error e;
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        srv_reply_error(out, &e);
        return;
    }
    out->status = 200;
    out->raw = text;
    out->raw_len = len;
    out->content_type = content_type;
}

void srv_handle_obs(srv *s, srv_route route, srv_reply *out) {
    size_t len = 0;
    switch (route) {
    case SRV_ROUTE_METRICS: {
        char *text = obs_metrics_text(s->obs, &len);
        raw_reply(out, text, len, "text/plain; version=0.0.4; charset=utf-8");
        break;
    }
    case SRV_ROUTE_DASHBOARD: {
        len = strlen(obs_dashboard_html);
        char *page = mem_strndup(obs_dashboard_html, len);
        raw_reply(out, page, len, "text/html; charset=utf-8");
        break;
    }
    default:
        srv_reply_json(out, 200, obs_live_json(s->obs, LIVE_WINDOW_S));
        break;
    }
}
