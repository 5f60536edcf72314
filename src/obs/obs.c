/* The observability hub: Hearth's metric catalogue, model lifecycle and gateway events,
 * sampled gauges and the /metrics text (see obs.h). Request events are in obs_request.c,
 * the live JSON in obs_live.c. Never prints, never exits, never fails its caller. */
#include "obs/obs_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/mem.h"

static const double DURATION_BOUNDS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
static const double TTFT_BOUNDS[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
const double obs_itl_bounds[OBS_ITL_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2.5};
static const double LOAD_BOUNDS[] = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
static const char *const MODEL_STATES[] = {"available", "loading", "verifying", "ready", "unloading", "failed"};
static const char *const BREAKER_STATES[] = {"closed", "open", "half_open"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define VALUES(...) ((const char *const[]){__VA_ARGS__})

double obs_now_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double obs_now_unix(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void obs_format_time(double unix_s, char out[32]) {
    time_t secs = (time_t)unix_s;
    long ms = (long)((unix_s - (double)secs) * 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

void obs_copy(char *dst, size_t cap, const char *src) {
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

void obs_config_default(obs_config *c) {
    *c = (obs_config){.log_level = OBS_INFO};
    obs_store_config_default(&c->store);
}

bool obs_default_db_path(char *out, size_t cap) {
    const char *data = getenv("HEARTH_DATA"), *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    int n;
    if (data && *data) n = snprintf(out, cap, "%s/hearth.db", data);
    else if (xdg && *xdg) n = snprintf(out, cap, "%s/hearth/hearth.db", xdg);
    else if (home && *home) n = snprintf(out, cap, "%s/.local/share/hearth/hearth.db", home);
    else return false;
    return n > 0 && (size_t)n < cap;
}

bool obs_parse_duration(const char *s, double *out_s) {
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ') return false;
    char *end = NULL;
    double v = strtod(s, &end);
    double unit = 1;
    if (end == s) return false;
    if (*end) {
        switch (*end) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        case 'w': unit = 7 * 86400; break;
        default: return false;
        }
        if (end[1]) return false;
    }
    double secs = v * unit;
    if (!(secs > 0 && secs <= 100.0 * 365 * 86400)) return false;
    *out_s = secs;
    return true;
}

static bool register_families(obs *o) {
    obs_registry *r = o->reg;
    obs_families *f = &o->f;
#define FAM(field, kind, name, help, labels, bounds, nb)                                                             \
    if (!(f->field = obs_family_new(r, kind, name, help, labels, bounds, nb))) return false
    FAM(requests, OBS_COUNTER, "hearth_requests_total", "HTTP requests by route, model and status.",
        LABELS("route", "model", "status"), NULL, 0);
    FAM(duration, OBS_HISTOGRAM, "hearth_request_duration_seconds",
        "Time from the request's arrival to the end of its response.", LABELS("route", "model"), DURATION_BOUNDS,
        N_OF(DURATION_BOUNDS));
    FAM(ttft, OBS_HISTOGRAM, "hearth_time_to_first_token_seconds",
        "Time from the request's arrival to its first generated token.", LABELS("model"), TTFT_BOUNDS,
        N_OF(TTFT_BOUNDS));
    FAM(itl, OBS_HISTOGRAM, "hearth_inter_token_latency_seconds",
        "Time between consecutive generated tokens of one sequence.", LABELS("model"), obs_itl_bounds,
        OBS_ITL_BUCKETS);
    FAM(prompt_tokens, OBS_COUNTER, "hearth_prompt_tokens_total", "Prompt tokens of completed requests.",
        LABELS("model"), NULL, 0);
    FAM(gen_tokens, OBS_COUNTER, "hearth_generated_tokens_total", "Tokens generated.", LABELS("model"), NULL, 0);
    FAM(queue, OBS_GAUGE, "hearth_queue_depth", "Sequences waiting for a slot.", LABELS("model"), NULL, 0);
    FAM(slots_busy, OBS_GAUGE, "hearth_slots_busy", "Slots decoding a sequence.", LABELS("model"), NULL, 0);
    FAM(slots_total, OBS_GAUGE, "hearth_slots_total", "Slots of the model's scheduler.", LABELS("model"), NULL, 0);
    FAM(kv_used, OBS_GAUGE, "hearth_kv_cache_pages_used", "KV cache pages in use.", LABELS("model"), NULL, 0);
    FAM(kv_total, OBS_GAUGE, "hearth_kv_cache_pages_total", "KV cache pages in the pool.", LABELS("model"), NULL,
        0);
    FAM(prefix_hits, OBS_COUNTER, "hearth_prefix_cache_hit_tokens_total",
        "Prompt tokens served from cached KV pages instead of being recomputed.", LABELS("model"), NULL, 0);
    FAM(steps_interrupted, OBS_COUNTER, "hearth_steps_interrupted_total",
        "Decode steps stopped so that an arriving prompt did not wait for them (redone with it).", LABELS("model"),
        NULL, 0);
    FAM(decode_tps, OBS_GAUGE, "hearth_decode_tokens_per_second", "Recent decode throughput of the scheduler.",
        LABELS("model"), NULL, 0);
    FAM(prefill_tps, OBS_GAUGE, "hearth_prefill_tokens_per_second", "Recent prompt throughput of the scheduler.",
        LABELS("model"), NULL, 0);
    FAM(model_state, OBS_GAUGE, "hearth_model_state", "1 for the model's current lifecycle state, 0 for the others.",
        LABELS("model", "state"), NULL, 0);
    FAM(load_duration, OBS_HISTOGRAM, "hearth_model_load_duration_seconds",
        "Time from the start of a load to the model being ready.", LABELS("model"), LOAD_BOUNDS, N_OF(LOAD_BOUNDS));
    FAM(load_failures, OBS_COUNTER, "hearth_model_load_failures_total", "Model loads that failed.",
        LABELS("model"), NULL, 0);
    FAM(memory, OBS_GAUGE, "hearth_memory_bytes", "Memory held by a model, by kind (weights, repacked, kv).",
        LABELS("model", "kind"), NULL, 0);
    FAM(upstream, OBS_COUNTER, "hearth_upstream_requests_total", "Requests sent to a routing target, by outcome.",
        LABELS("target", "outcome"), NULL, 0);
    FAM(retries, OBS_COUNTER, "hearth_upstream_retries_total", "Retries of a request against a target.",
        LABELS("target"), NULL, 0);
    FAM(breaker, OBS_GAUGE, "hearth_breaker_state", "1 for a target's current circuit-breaker state, 0 for others.",
        LABELS("target", "state"), NULL, 0);
    FAM(rate_limited, OBS_COUNTER, "hearth_rate_limited_total",
        "Requests refused by a rate limit, by API key name and limit (requests, tokens, concurrency).",
        LABELS("key", "kind"), NULL, 0);
    FAM(auth_failures, OBS_COUNTER, "hearth_auth_failures_total",
        "Requests refused by authentication or authorization, by reason.", LABELS("reason"), NULL, 0);
    FAM(refused, OBS_COUNTER, "hearth_requests_refused_total",
        "Requests a model refused for load with 503, by reason (queue_full, queue_wait, queue_wait_expired).",
        LABELS("model", "reason"), NULL, 0);
    FAM(queue_wait, OBS_GAUGE, "hearth_queue_wait_estimate_seconds",
        "Estimated wait for a slot of a request arriving now (what max_queue_wait is compared with).",
        LABELS("model"), NULL, 0);
    FAM(store_written, OBS_COUNTER, "hearth_store_rows_written_total", "Rows written to the request store.", NULL,
        NULL, 0);
    FAM(store_dropped, OBS_COUNTER, "hearth_store_dropped_total",
        "Records the request store gave up on (queue full, database unusable).", NULL, NULL, 0);
    FAM(store_failures, OBS_COUNTER, "hearth_store_failures_total", "Failed open or write attempts of the store.",
        NULL, NULL, 0);
    FAM(store_pruned, OBS_COUNTER, "hearth_store_pruned_rows_total",
        "Rows deleted by retention or to make room in a full database.", NULL, NULL, 0);
    FAM(store_up, OBS_GAUGE, "hearth_store_up", "1 when the request store's last write succeeded.", NULL, NULL, 0);
    FAM(store_queued, OBS_GAUGE, "hearth_store_queue_depth", "Records waiting for the store's writer.", NULL, NULL,
        0);
    FAM(build_info, OBS_GAUGE, "hearth_build_info", "Always 1; the version is a label.", LABELS("version"), NULL, 0);
    FAM(start_time, OBS_GAUGE, "hearth_start_time_seconds", "Unix time the server started.", NULL, NULL, 0);
#undef FAM
    obs_set(f->build_info, VALUES(HEARTH_VERSION), 1);
    obs_set(f->start_time, NULL, (double)(int64_t)o->start_unix);
    return true;
}

hearth_status obs_new(const obs_config *c, obs **out, hearth_err *err) {
    *out = NULL;
    obs *o = mem_calloc(1, sizeof *o);
    if (!o) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&o->mu, NULL);
    o->cfg = *c;
    o->start_unix = obs_now_unix();
    o->start_mono = obs_now_mono();
    o->reg = obs_registry_new();
    o->window = mem_calloc(OBS_WINDOW_CAP, sizeof *o->window);
    if (!o->reg || !o->window || !register_families(o)) {
        obs_free(o);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory registering metrics");
    }
    if (c->db_path && *c->db_path) {
        o->db_path = mem_strdup(c->db_path);
        if (!o->db_path) {
            obs_free(o);
            return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
        }
        obs_store_config sc = c->store;
        sc.path = o->db_path;
        hearth_status st = obs_store_new(&sc, &o->store, err);
        if (st != HEARTH_OK) {
            obs_free(o);
            return st;
        }
    }
    o->cfg.db_path = o->db_path;
    *out = o;
    return HEARTH_OK;
}

void obs_free(obs *o) {
    if (!o) return;
    obs_store_free(o->store);
    obs_registry_free(o->reg);
    mem_free(o->window);
    mem_free(o->db_path);
    pthread_mutex_destroy(&o->mu);
    mem_free(o);
}

/* ---- models ------------------------------------------------------------------------ */

/* The record of id, created when new; NULL when the table is full. o->mu held. */
static obs_model_rec *model_rec(obs *o, const char *id) {
    for (size_t i = 0; i < o->n_models; i++)
        if (!strncmp(o->models[i].id, id, OBS_LABEL_MAX)) return &o->models[i];
    if (o->n_models == OBS_MAX_MODELS) return NULL;
    obs_model_rec *m = &o->models[o->n_models++];
    memset(m, 0, sizeof *m);
    obs_copy(m->id, sizeof m->id, id);
    m->load_ms = -1;
    return m;
}

static void one_hot(obs_family *f, const char *key, const char *const *states, size_t n, const char *current) {
    for (size_t i = 0; i < n; i++) obs_set(f, VALUES(key, states[i]), strcmp(states[i], current) == 0);
}

void obs_model_state(obs *o, const char *model, const char *state, const char *error) {
    if (!o || !model || !state) return;
    double now = obs_now_mono();
    obs_store_model_event ev = {.duration_ms = -1};
    double load_s = -1;
    pthread_mutex_lock(&o->mu);
    obs_model_rec *m = model_rec(o, model);
    if (m) {
        if (m->state[0]) ev.duration_ms = (now - m->since_mono) * 1000;
        if (!strcmp(state, "loading")) m->load_start_mono = now;
        if (!strcmp(state, "ready") && m->load_start_mono > 0) {
            load_s = now - m->load_start_mono;
            m->load_ms = load_s * 1000;
        }
        if (strcmp(state, "loading") != 0 && strcmp(state, "verifying") != 0) m->load_start_mono = 0;
        obs_copy(m->state, sizeof m->state, state);
        obs_copy(m->error, sizeof m->error, error);
        m->since_mono = now;
        m->since_unix = obs_now_unix();
    }
    pthread_mutex_unlock(&o->mu);
    one_hot(o->f.model_state, model, MODEL_STATES, N_OF(MODEL_STATES), state);
    if (load_s >= 0) obs_observe(o->f.load_duration, VALUES(model), load_s);
    if (!strcmp(state, "failed")) obs_add(o->f.load_failures, VALUES(model), 1);
    obs_copy(ev.model, sizeof ev.model, model);
    obs_copy(ev.state, sizeof ev.state, state);
    obs_copy(ev.error, sizeof ev.error, error);
    if (o->store) obs_store_put_model_event(o->store, &ev);
}

void obs_model_sample_set(obs *o, const char *model, const obs_model_sample *s) {
    if (!o || !model || !s) return;
    pthread_mutex_lock(&o->mu);
    obs_model_rec *m = model_rec(o, model);
    if (m) {
        m->sample = *s;
        m->has_sample = true;
    }
    pthread_mutex_unlock(&o->mu);
    const obs_families *f = &o->f;
    obs_set(f->queue, VALUES(model), s->queued);
    obs_set(f->slots_busy, VALUES(model), s->running);
    obs_set(f->slots_total, VALUES(model), s->n_slots);
    obs_set(f->kv_used, VALUES(model), (double)s->kv_pages_used);
    obs_set(f->kv_total, VALUES(model), (double)s->kv_pages_total);
    obs_set(f->prefix_hits, VALUES(model), (double)s->prefix_hit_tokens);
    obs_set(f->steps_interrupted, VALUES(model), (double)s->steps_interrupted);
    obs_set(f->decode_tps, VALUES(model), s->decode_tps);
    obs_set(f->prefill_tps, VALUES(model), s->prefill_tps);
    obs_set(f->queue_wait, VALUES(model), s->queue_wait_s);
    obs_set(f->memory, VALUES(model, "weights"), (double)s->weights_bytes);
    obs_set(f->memory, VALUES(model, "repacked"), (double)s->repacked_bytes);
    obs_set(f->memory, VALUES(model, "kv"), (double)s->kv_bytes);
}

/* ---- gateway and limits --------------------------------------------------------------- */

void obs_upstream(obs *o, const char *target, const char *outcome) {
    if (o) obs_add(o->f.upstream, VALUES(target, outcome), 1);
}

void obs_retry(obs *o, const char *target) {
    if (o) obs_add(o->f.retries, VALUES(target), 1);
}

void obs_rate_limited(obs *o, const char *key_name, const char *kind) {
    if (o) obs_add(o->f.rate_limited, VALUES(key_name, kind), 1);
}

void obs_auth_failure(obs *o, const char *reason) {
    if (o) obs_add(o->f.auth_failures, VALUES(reason), 1);
}

void obs_refused(obs *o, const char *model, const char *reason) {
    if (o && model && reason) obs_add(o->f.refused, VALUES(model, reason), 1);
}

void obs_breaker(obs *o, const char *target, const char *state) {
    if (!o || !target || !state) return;
    pthread_mutex_lock(&o->mu);
    obs_target_rec *t = NULL;
    for (size_t i = 0; i < o->n_targets && !t; i++)
        if (!strncmp(o->targets[i].target, target, OBS_LABEL_MAX)) t = &o->targets[i];
    if (!t && o->n_targets < OBS_MAX_TARGETS) {
        t = &o->targets[o->n_targets++];
        obs_copy(t->target, sizeof t->target, target);
    }
    if (t) obs_copy(t->state, sizeof t->state, state);
    pthread_mutex_unlock(&o->mu);
    one_hot(o->f.breaker, target, BREAKER_STATES, N_OF(BREAKER_STATES), state);
}

/* ---- reading --------------------------------------------------------------------------- */

void obs_set_collector(obs *o, obs_collect_fn fn, void *ud) {
    pthread_mutex_lock(&o->mu);
    o->collect = fn;
    o->collect_ud = ud;
    pthread_mutex_unlock(&o->mu);
}

void obs_collect(obs *o) {
    pthread_mutex_lock(&o->mu);
    obs_collect_fn fn = o->collect;
    void *ud = o->collect_ud;
    pthread_mutex_unlock(&o->mu);
    if (fn) fn(ud, o);
}

void obs_store_health(obs *o, obs_store_status *st) { obs_store_get_status(o ? o->store : NULL, st); }

char *obs_metrics_text(obs *o, size_t *len) {
    obs_collect(o);
    if (o->store) {
        obs_store_status st;
        obs_store_get_status(o->store, &st);
        obs_set(o->f.store_written, NULL, (double)st.written);
        obs_set(o->f.store_dropped, NULL, (double)st.dropped);
        obs_set(o->f.store_failures, NULL, (double)st.failures);
        obs_set(o->f.store_pruned, NULL, (double)st.pruned);
        obs_set(o->f.store_up, NULL, st.up);
        obs_set(o->f.store_queued, NULL, (double)st.queued);
    }
    return obs_registry_render(o->reg, len);
}

obs_registry *obs_metrics_registry(obs *o) { return o->reg; }

bool obs_flush(obs *o, int timeout_ms) { return !o || obs_store_wait_idle(o->store, timeout_ms); }
