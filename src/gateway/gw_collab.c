/* Collaborating targets. race: the first two targets whose breakers allow run at once;
 * the first to produce output wins and the other is cancelled; if neither answers, the
 * remaining targets are tried as a fallback route would. shadow: targets[0] answers the
 * client (as a one-target fallback route); targets[1] gets the same request on a worker
 * thread, its output discarded, and both sides' outcome, timings and text are compared
 * when both are done. A shadow never delays or changes the client's answer. */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "gateway/gw_internal.h"

/* ---- race ------------------------------------------------------------------------------ */

typedef struct racer {
    gw_run run;
    gw_target *t;
    gw_ticket tk;
    gw_outcome out;
    uint64_t end_ns;
} racer;

static void *race_thread(void *arg) {
    racer *r = arg;
    gw_attempt_run(&r->run, r->t, &r->out);
    r->end_ns = clock_mono_ns();
    return NULL;
}

static void race_report(gw *g, racer *r, gw_result *res) {
    gw_breaker_change ch;
    gw_breaker_report(&r->t->breaker, &r->tk, gw_outcome_verdict(r->out.kind), r->out.msg, &ch);
    gw_result_add_attempt(res, r->t, &r->out, 0, &r->run, r->end_ns);
    gw_result_add_transition(g, res, r->t, &ch);
}

void gw_race(gw *g, gw_route *route, const gw_request *req, const gw_sink *sink, gw_result *res) {
    racer rs[2];
    size_t n = 0, next = 0;
    _Atomic int winner;
    atomic_init(&winner, -1);
    for (; next < route->n && n < 2; next++) {
        gw_target *t = route->targets[next];
        gw_breaker_change ch;
        gw_ticket tk;
        bool ok = gw_breaker_allow(&t->breaker, &tk, &ch);
        gw_result_add_transition(g, res, t, &ch);
        if (!ok) {
            res->skipped++;
            continue;
        }
        rs[n] = (racer){.t = t, .tk = tk, .out = {.retry_after_ms = -1}};
        rs[n].run = (gw_run){.g = g, .req = req, .client = sink, .winner = &winner, .index = (int)n};
        atomic_init(&rs[n].run.cancel, 0);
        n++;
    }
    if (n < 2) { /* nothing to race: hand the tickets back and fall back over the rest */
        for (size_t i = 0; i < n; i++) {
            gw_breaker_change ch;
            gw_breaker_report(&rs[i].t->breaker, &rs[i].tk, GW_VERDICT_NEUTRAL, NULL, &ch);
            gw_result_add_transition(g, res, rs[i].t, &ch);
        }
        res->skipped = 0; /* the fallback counts them again */
        gw_fallback(g, route->targets, route->n, req, sink, res, 0, NULL);
        return;
    }
    pthread_t th;
    bool threaded = pthread_create(&th, NULL, race_thread, &rs[1]) == 0;
    race_thread(&rs[0]);
    if (threaded) pthread_join(th, NULL);
    else race_thread(&rs[1]); /* no thread to spare: one after the other */
    race_report(g, &rs[0], res);
    race_report(g, &rs[1], res);
    int w = atomic_load(&winner);
    if (w >= 0) {
        racer *r = &rs[w];
        snprintf(res->target, sizeof res->target, "%s", r->t->name);
        res->committed = r->run.committed;
        if (r->out.kind == GW_OUT_OK) {
            res->kind = GW_OUT_OK;
            res->http_status = 200;
        } else {
            gw_result_fail(res, r->t, &r->out);
            res->committed = r->run.committed;
        }
    } else {
        /* neither produced output: the first target's failure speaks for the race, unless
         * the request itself was at fault (the other one's 4xx) */
        racer *r = rs[0].out.kind == GW_OUT_CLIENT || rs[1].out.kind != GW_OUT_CLIENT ? &rs[0] : &rs[1];
        bool retry = gw_outcome_retryable(rs[0].out.kind) && gw_outcome_retryable(rs[1].out.kind);
        size_t before = res->n_attempts;
        if (retry && next < route->n) gw_fallback(g, route->targets + next, route->n - next, req, sink, res, 0, NULL);
        if (res->n_attempts == before) gw_result_fail(res, r->t, &r->out);
    }
    gw_outcome_reset(&rs[0].out);
    gw_outcome_reset(&rs[1].out);
}

/* ---- shadow ------------------------------------------------------------------------------ */

typedef struct shadow_job {
    gw *g;
    gw_target *t;
    gw_ticket tk;
    gw_request req;            /* copies: the client's request may be gone before it ends */
    json_t *body;
    char *model, *user;
    gw_shadow_record rec;
    int pending;               /* sides still running (under g->mu) */
    uint64_t start_ns;
} shadow_job;

static void side_fill(gw_shadow_side *s, const gw_target *t, gw_outcome_kind kind, int status, gw_capture *cap,
                      uint64_t start_ns, uint64_t end_ns) {
    snprintf(s->target, sizeof s->target, "%s", t->name);
    s->kind = kind;
    s->http_status = status;
    s->first_byte_ns = cap->first_ns > start_ns ? cap->first_ns - start_ns : 0;
    s->total_ns = end_ns > start_ns ? end_ns - start_ns : 0;
    s->bytes = cap->bytes;
    s->text = cap->text;
    s->text_len = cap->len;
    cap->text = NULL;
}

static json_t *side_json(const gw_shadow_side *s) {
    return json_pack("{s:s, s:s, s:i, s:f, s:f, s:I}", "target", s->target, "outcome", gw_outcome_name(s->kind),
                     "status", s->http_status, "first_byte_ms", (double)s->first_byte_ns * 1e-6, "total_ms",
                     (double)s->total_ns * 1e-6, "bytes", (json_int_t)s->bytes);
}

json_t *gw_shadow_record_json(const gw_shadow_record *r) {
    return json_pack("{s:s, s:o, s:o, s:b}", "route", r->route, "primary", side_json(&r->primary), "shadow",
                     side_json(&r->shadow), "same_text", r->same_text);
}

static void job_free(shadow_job *j) {
    json_decref(j->body);
    mem_free(j->model);
    mem_free(j->user);
    mem_free(j->rec.primary.text);
    mem_free(j->rec.shadow.text);
    mem_free(j);
}

/* One side is done; the last one publishes the comparison and frees the job. */
static void side_done(shadow_job *j) {
    gw *g = j->g;
    pthread_mutex_lock(&g->mu);
    bool last = --j->pending == 0;
    pthread_mutex_unlock(&g->mu);
    if (!last) return;
    gw_shadow_record *r = &j->rec;
    r->same_text = r->primary.text_len == r->shadow.text_len &&
                   (r->primary.text_len == 0 || !memcmp(r->primary.text, r->shadow.text, r->primary.text_len));
    if (g->env.on_shadow) g->env.on_shadow(g->env.shadow_ud, r);
    if (g->env.log) {
        json_t *f = gw_shadow_record_json(r);
        if (f) {
            json_object_set_new(f, "msg", json_string("shadow comparison"));
            g->env.log(g->env.log_ud, "info", f);
            json_decref(f);
        }
    }
    pthread_mutex_lock(&g->mu);
    gw_shadow_record *keep = &g->recent[g->next_recent];
    *keep = *r;
    keep->primary.text = keep->shadow.text = NULL;
    g->next_recent = (g->next_recent + 1) % GW_SHADOW_RECENT;
    if (g->n_recent < GW_SHADOW_RECENT) g->n_recent++;
    pthread_mutex_unlock(&g->mu);
    job_free(j);
}

static void *shadow_thread(void *arg) {
    shadow_job *j = arg;
    gw *g = j->g;
    gw_capture cap = {0};
    gw_run run = {.g = g, .req = &j->req, .client = NULL, .capture = &cap};
    atomic_init(&run.cancel, 0);
    gw_outcome out = {.retry_after_ms = -1};
    gw_attempt_run(&run, j->t, &out);
    uint64_t end = clock_mono_ns();
    gw_breaker_change ch;
    gw_breaker_report(&j->t->breaker, &j->tk, gw_outcome_verdict(out.kind), out.msg, &ch);
    gw_log_transition(g, j->t, &ch);
    side_fill(&j->rec.shadow, j->t, out.kind, out.http_status, &cap, j->start_ns, end);
    gw_outcome_reset(&out);
    gw_capture_free(&cap);
    side_done(j);
    pthread_mutex_lock(&g->mu);
    g->shadows_running--;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

/* A job for the shadow target, or NULL when it is not to run (capacity, breaker, memory). */
static shadow_job *shadow_start(gw *g, gw_route *route, const gw_request *req, gw_result *res, uint64_t start_ns) {
    gw_target *t = route->targets[1];
    pthread_mutex_lock(&g->mu);
    bool room = g->shadows_running < g->max_shadows && !atomic_load(&g->stopping);
    if (room) g->shadows_running++;
    else g->shadows_dropped++;
    pthread_mutex_unlock(&g->mu);
    if (!room) return NULL;
    shadow_job *j = mem_calloc(1, sizeof *j);
    gw_breaker_change ch;
    bool ok = j != NULL;
    if (ok) {
        j->g = g;
        j->t = t;
        j->pending = 2;
        j->start_ns = start_ns;
        snprintf(j->rec.route, sizeof j->rec.route, "%s", route->name);
        j->body = json_deep_copy(req->body);
        j->model = mem_strdup(req->model);
        j->user = req->user ? mem_strdup(req->user) : NULL;
        ok = j->body && j->model && (!req->user || j->user);
    }
    if (ok) {
        ok = gw_breaker_allow(&t->breaker, &j->tk, &ch);
        gw_result_add_transition(g, res, t, &ch);
    }
    pthread_t th;
    if (ok) {
        j->req = (gw_request){.api = req->api, .model = j->model, .body = j->body, .stream = req->stream, .user = j->user};
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&th, &attr, shadow_thread, j) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) gw_breaker_report(&t->breaker, &j->tk, GW_VERDICT_NEUTRAL, NULL, &ch);
    }
    pthread_mutex_lock(&g->mu);
    if (ok) g->shadows_started++;
    else g->shadows_running--, g->shadows_dropped++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (!ok && j) job_free(j);
    return ok ? j : NULL;
}

void gw_shadow(gw *g, gw_route *route, const gw_request *req, const gw_sink *sink, gw_result *res) {
    uint64_t start = clock_mono_ns();
    shadow_job *j = shadow_start(g, route, req, res, start);
    gw_capture cap = {0};
    gw_fallback(g, route->targets, 1, req, sink, res, 0, j ? &cap : NULL);
    if (j) {
        int status = res->kind == GW_OUT_OK ? 200 : res->n_attempts ? res->attempts[res->n_attempts - 1].http_status : 0;
        side_fill(&j->rec.primary, route->targets[0], res->kind, status, &cap, start, clock_mono_ns());
        side_done(j);
    }
    gw_capture_free(&cap);
}
