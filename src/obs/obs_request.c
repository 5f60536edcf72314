/* One finished HTTP request: request ids, token timing, and the four records it leaves
 * (metrics, one JSON log line, a store row, the live window). What is recorded is the
 * request's shape and timings; prompts and outputs are never part of it, except the
 * request body in the log line when the operator turned log_prompts on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/clock.h"
#include "base/mem.h"
#include "obs/obs_internal.h"
#include "obs/obs_json.h"

#define PROMPT_LOG_MAX 8192
#define STORE_TELL_EVERY_S 60.0
#define VALUES(...) ((const char *const[]){__VA_ARGS__})

bool obs_request_id_valid(const char *s) {
    size_t n = 0;
    for (; s && s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == ':' || c == '-';
        if (!ok || n >= OBS_REQUEST_ID_MAX) return false;
    }
    return n > 0;
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void obs_request_id_new(char out[OBS_REQUEST_ID_MAX + 1]) {
    static _Atomic uint64_t counter;
    uint64_t r[2];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        uint64_t seed = clock_mono_ns() ^ ((uint64_t)clock_unix_s() << 20) ^ (counter++ << 48);
        r[0] = splitmix(&seed);
        r[1] = splitmix(&seed);
    }
    snprintf(out, OBS_REQUEST_ID_MAX + 1, "%016llx%016llx", (unsigned long long)r[0], (unsigned long long)r[1]);
}

void obs_trace_start(obs_trace *t) {
    *t = (obs_trace){0};
    t->start_ns = clock_mono_ns();
}

void obs_trace_tokens(obs_trace *t, size_t seq, int32_t n_tokens) {
    if (!t || n_tokens <= 0) return;
    uint64_t now = clock_mono_ns();
    if (!t->first_token_ns) t->first_token_ns = now;
    t->tokens += n_tokens;
    if (seq >= OBS_TRACE_SEQS) return;
    if (t->last_ns[seq]) {
        /* an event covering k tokens counts k gaps of equal share */
        double gap = (double)(now - t->last_ns[seq]) / 1e9 / n_tokens;
        size_t b = 0;
        while (b < OBS_ITL_BUCKETS && gap > obs_itl_bounds[b]) b++;
        t->itl[b] += (uint64_t)n_tokens;
        t->itl_sum_s += gap * n_tokens;
    } else if (n_tokens > 1) {
        /* the first event's extra tokens came with the first: gaps of zero */
        t->itl[0] += (uint64_t)(n_tokens - 1);
    }
    t->last_ns[seq] = now;
}

static const char *const LEVELS[] = {"debug", "info", "warn", "error"};

static obs_level level_of(const obs_request *r) {
    if (r->status >= 500) return OBS_ERROR;
    if (r->status >= 400 || (r->end && strcmp(r->end, "ok") != 0)) return OBS_WARN;
    return r->quiet ? OBS_DEBUG : OBS_INFO;
}

static void set_str(json_t *o, const char *k, const char *v) { json_object_set_new(o, k, obs_json_str(v)); }

static void log_line(obs *o, const obs_request *r, double ttft_ms, int64_t completion) {
    obs_level lv = level_of(r);
    if (!o->cfg.log || lv < o->cfg.log_level) return;
    char when[32];
    obs_format_time(obs_now_unix(), when);
    json_t *l = json_object();
    if (!l) return;
    set_str(l, "time", when);
    set_str(l, "level", LEVELS[lv]);
    set_str(l, "msg", "request");
    set_str(l, "request_id", r->request_id);
    set_str(l, "key", r->key_name);
    set_str(l, "method", r->method);
    set_str(l, "path", r->path);
    set_str(l, "route", r->route);
    set_str(l, "model", r->model);
    set_str(l, "target", r->target);
    json_object_set_new(l, "status", json_integer(r->status));
    json_object_set_new(l, "stream", json_boolean(r->stream));
    set_str(l, "end", r->end);
    json_object_set_new(l, "prompt_tokens", json_integer(r->prompt_tokens));
    json_object_set_new(l, "completion_tokens", json_integer(completion));
    json_object_set_new(l, "cached_tokens", json_integer(r->cached_tokens));
    json_object_set_new(l, "ttft_ms", ttft_ms >= 0 ? json_real(ttft_ms) : json_null());
    json_object_set_new(l, "duration_ms", json_real(r->duration_ms));
    json_object_set_new(l, "error", r->error ? obs_json_str(r->error) : json_null());
    if (o->cfg.log_prompts && r->body)
        json_object_set_new(l, "prompt", obs_json_strn(r->body, r->body_len < PROMPT_LOG_MAX ? r->body_len
                                                                                              : PROMPT_LOG_MAX));
    char *text = json_dumps(l, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (text) o->cfg.log(o->cfg.log_ud, text);
    free(text);
    json_decref(l);
}

static void to_window(obs *o, const obs_request *r, double ttft_ms, int64_t completion) {
    pthread_mutex_lock(&o->mu);
    obs_window_rec *w = &o->window[(o->window_head + o->window_n) % OBS_WINDOW_CAP];
    if (o->window_n < OBS_WINDOW_CAP) o->window_n++;
    else o->window_head = (o->window_head + 1) % OBS_WINDOW_CAP;
    *w = (obs_window_rec){.mono_s = obs_now_mono(), .status = r->status, .duration_ms = r->duration_ms,
                          .ttft_ms = ttft_ms, .prompt_tokens = r->prompt_tokens, .completion_tokens = completion};
    obs_copy(w->model, sizeof w->model, r->model);
    obs_copy(w->route, sizeof w->route, r->route);
    obs_copy(w->error, sizeof w->error, r->error);
    pthread_mutex_unlock(&o->mu);
}

static void to_store(obs *o, const obs_request *r, double ttft_ms, int64_t completion) {
    obs_store_request row = {
        .status = r->status,
        .stream = r->stream,
        .prompt_tokens = r->prompt_tokens,
        .completion_tokens = completion,
        .cached_tokens = r->cached_tokens,
        .ttft_ms = ttft_ms,
        .duration_ms = r->duration_ms,
    };
    obs_copy(row.request_id, sizeof row.request_id, r->request_id);
    obs_copy(row.key_name, sizeof row.key_name, r->key_name);
    obs_copy(row.method, sizeof row.method, r->method);
    obs_copy(row.route, sizeof row.route, r->route);
    obs_copy(row.model, sizeof row.model, r->model);
    obs_copy(row.target, sizeof row.target, r->target);
    obs_copy(row.end_reason, sizeof row.end_reason, r->end);
    obs_copy(row.error, sizeof row.error, r->error);
    obs_store_put_request(o->store, &row);
}

/* A warn line when the store has failed since the last report (at most one a minute). */
static void watch_store(obs *o) {
    obs_store_status st;
    obs_store_get_status(o->store, &st);
    double now = obs_now_mono();
    pthread_mutex_lock(&o->mu);
    bool tell = st.failures > o->store_failures_told && now >= o->store_next_tell;
    if (tell) {
        o->store_failures_told = st.failures;
        o->store_next_tell = now + STORE_TELL_EVERY_S;
    }
    pthread_mutex_unlock(&o->mu);
    if (!tell || !o->cfg.log || OBS_WARN < o->cfg.log_level) return;
    char when[32];
    obs_format_time(obs_now_unix(), when);
    json_t *l = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:I}", "time", when, "level", "warn", "msg",
                          "request store failing; requests are served, records may be dropped", "db",
                          obs_json_str(o->db_path), "error", obs_json_str(st.last_error), "failures",
                          (json_int_t)st.failures, "dropped", (json_int_t)st.dropped);
    char *text = l ? json_dumps(l, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (text) o->cfg.log(o->cfg.log_ud, text);
    free(text);
    json_decref(l);
}

void obs_request_done(obs *o, const obs_request *r) {
    if (!o || !r) return;
    const obs_trace *t = r->trace;
    double ttft_ms = t && t->first_token_ns ? (double)(t->first_token_ns - t->start_ns) / 1e6 : -1;
    int64_t completion = r->completion_tokens >= 0 ? r->completion_tokens : t ? t->tokens : 0;
    const char *model = r->model ? r->model : "";
    char status[16];
    snprintf(status, sizeof status, "%d", r->status);
    const obs_families *f = &o->f;
    obs_add(f->requests, VALUES(r->route, model, status), 1);
    obs_observe(f->duration, VALUES(r->route, model), r->duration_ms / 1000);
    if (*model) {
        if (ttft_ms >= 0) obs_observe(f->ttft, VALUES(model), ttft_ms / 1000);
        if (t) obs_observe_counts(f->itl, VALUES(model), t->itl, OBS_ITL_BUCKETS + 1, t->itl_sum_s);
        if (r->prompt_tokens > 0) obs_add(f->prompt_tokens, VALUES(model), (double)r->prompt_tokens);
        if (completion > 0) obs_add(f->gen_tokens, VALUES(model), (double)completion);
    }
    log_line(o, r, ttft_ms, completion);
    if (r->quiet) return;
    to_window(o, r, ttft_ms, completion);
    if (!o->store) return;
    to_store(o, r, ttft_ms, completion);
    watch_store(o);
}
