/* The live view behind GET /admin/stats (and so the dashboard): models with their state
 * and samples, memory, request statistics over a recent window (the same aggregator as
 * `hearth stats`), breakers and the store's health. Reads only; never blocks on I/O. */
#include <string.h>

#include "base/mem.h"
#include "obs/obs_internal.h"
#include "obs/obs_json.h"

static json_t *model_json(const obs_model_rec *m, double now_mono) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "id", obs_json_str(m->id));
    json_object_set_new(o, "state", obs_json_str(m->state));
    json_object_set_new(o, "since_s", json_real(now_mono - m->since_mono));
    json_object_set_new(o, "error", m->error[0] ? obs_json_str(m->error) : json_null());
    json_object_set_new(o, "load_ms", m->load_ms >= 0 ? json_real(m->load_ms) : json_null());
    if (m->has_sample) {
        const obs_model_sample *s = &m->sample;
        json_object_set_new(o, "queued", json_integer(s->queued));
        json_object_set_new(o, "running", json_integer(s->running));
        json_object_set_new(o, "slots", json_integer(s->n_slots));
        json_object_set_new(o, "kv_pages_used", json_integer(s->kv_pages_used));
        json_object_set_new(o, "kv_pages_total", json_integer(s->kv_pages_total));
        json_object_set_new(o, "prefix_hit_tokens", json_integer(s->prefix_hit_tokens));
        json_object_set_new(o, "decode_tps", json_real(s->decode_tps));
        json_object_set_new(o, "prefill_tps", json_real(s->prefill_tps));
        json_object_set_new(o, "memory", json_pack("{s:I, s:I, s:I}", "weights", (json_int_t)s->weights_bytes,
                                                   "repacked", (json_int_t)s->repacked_bytes, "kv",
                                                   (json_int_t)s->kv_bytes));
    }
    return o;
}

static json_t *store_json(obs *o) {
    if (!o->store) return json_pack("{s:b}", "enabled", 0);
    obs_store_status st;
    obs_store_get_status(o->store, &st);
    return json_pack("{s:b, s:o, s:b, s:I, s:I, s:I, s:I, s:I, s:o}", "enabled", 1, "path", obs_json_str(o->db_path),
                     "up", st.up, "written", (json_int_t)st.written, "dropped", (json_int_t)st.dropped, "failures",
                     (json_int_t)st.failures, "pruned", (json_int_t)st.pruned, "queued", (json_int_t)st.queued,
                     "last_error", st.last_error[0] ? obs_json_str(st.last_error) : json_null());
}

/* Request statistics of the window's records newer than since_mono. o->mu held. */
static bool window_report(obs *o, double since_mono, double window_s, obs_report *rep) {
    obs_agg *agg = obs_agg_new();
    if (!agg) return false;
    bool ok = true;
    for (size_t i = 0; ok && i < o->window_n; i++) {
        const obs_window_rec *w = &o->window[(o->window_head + i) % OBS_WINDOW_CAP];
        if (w->mono_s < since_mono) continue;
        obs_sample s = {.model = w->model, .route = w->route, .error = w->error, .status = w->status,
                        .duration_ms = w->duration_ms, .ttft_ms = w->ttft_ms, .prompt_tokens = w->prompt_tokens,
                        .completion_tokens = w->completion_tokens};
        ok = obs_agg_add(agg, &s);
    }
    ok = ok && obs_agg_report(agg, window_s, rep);
    obs_agg_free(agg);
    return ok;
}

json_t *obs_live_json(obs *o, double window_s) {
    obs_collect(o);
    double now = obs_now_mono();
    double span = now - o->start_mono < window_s ? now - o->start_mono : window_s;
    json_t *models = json_array(), *breakers = json_array();
    uint64_t mem[3] = {0};
    obs_report rep = {0};
    pthread_mutex_lock(&o->mu);
    for (size_t i = 0; models && i < o->n_models; i++) {
        const obs_model_rec *m = &o->models[i];
        json_array_append_new(models, model_json(m, now));
        if (m->has_sample) {
            mem[0] += m->sample.weights_bytes;
            mem[1] += m->sample.repacked_bytes;
            mem[2] += m->sample.kv_bytes;
        }
    }
    for (size_t i = 0; breakers && i < o->n_targets; i++)
        json_array_append_new(breakers, json_pack("{s:o, s:o}", "target", obs_json_str(o->targets[i].target), "state",
                                                  obs_json_str(o->targets[i].state)));
    bool rep_ok = window_report(o, now - window_s, span > 0 ? span : window_s, &rep);
    pthread_mutex_unlock(&o->mu);
    json_t *requests = rep_ok ? obs_report_json(&rep) : NULL;
    obs_report_free(&rep);
    return json_pack("{s:s, s:f, s:f, s:o, s:o, s:o, s:o, s:o}", "version", HEARTH_VERSION, "time", obs_now_unix(),
                     "uptime_s", now - o->start_mono, "models", models ? models : json_null(), "memory",
                     json_pack("{s:I, s:I, s:I, s:I}", "weights", (json_int_t)mem[0], "repacked", (json_int_t)mem[1],
                               "kv", (json_int_t)mem[2], "total", (json_int_t)(mem[0] + mem[1] + mem[2])),
                     "requests", requests ? requests : json_null(), "breakers", breakers ? breakers : json_null(),
                     "store", store_json(o));
}
