/* Running a request on its route: the attempt runner every strategy uses (it knows
 * whether output reached the client, so nothing is retried after the first byte), the
 * fallback loop (breaker, retry budget, backoff, Retry-After), and the weighted choice.
 * Never writes to the client except through the caller's sink. */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "gateway/gw_internal.h"

#define SLICE_NS 50000000ull
#define CAPTURE_MAX ((size_t)64 << 10)
#define NS_PER_MS 1000000ull

/* ---- output capture (shadow comparisons) ------------------------------------------------ */

static void capture_text(gw_capture *c, const char *s, size_t n) {
    if (c->len + n > CAPTURE_MAX) n = CAPTURE_MAX - c->len;
    if (n == 0) return;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        while (cap < c->len + n + 1) cap *= 2;
        char *nb = mem_realloc(c->text, cap);
        if (!nb) return;
        c->text = nb;
        c->cap = cap;
    }
    memcpy(c->text + c->len, s, n);
    c->len += n;
    c->text[c->len] = '\0';
}

/* The answer's text of a chunk or body: choices[].delta.content / message.content
 * (chat) or choices[].text (completions). */
void gw_capture_add(gw_capture *c, const char *data, size_t len, bool streamed) {
    c->bytes += len;
    if (!c->first_ns) c->first_ns = clock_mono_ns();
    json_t *v = json_loadb(data, len, 0, NULL);
    json_t *choices = json_object_get(v, "choices");
    for (size_t i = 0; i < json_array_size(choices); i++) {
        json_t *ch = json_array_get(choices, i);
        json_t *msg = json_object_get(ch, streamed ? "delta" : "message");
        json_t *text = msg ? json_object_get(msg, "content") : json_object_get(ch, "text");
        if (json_is_string(text)) capture_text(c, json_string_value(text), json_string_length(text));
    }
    json_decref(v);
}

void gw_capture_free(gw_capture *c) {
    mem_free(c->text);
    *c = (gw_capture){0};
}

/* ---- one attempt -------------------------------------------------------------------------- */

/* May this run write? A race lets only its first producer through. */
static bool claim(gw_run *r) {
    if (atomic_load(&r->cancel)) return false;
    if (!r->winner) return true;
    int none = -1;
    return atomic_compare_exchange_strong(r->winner, &none, r->index) || none == r->index;
}

static bool output(gw_run *r, const char *data, size_t len, bool streamed) {
    if (!claim(r)) return false;
    if (!r->first_byte_ns) r->first_byte_ns = clock_mono_ns();
    if (r->capture) gw_capture_add(r->capture, data, len, streamed);
    if (!r->client) return true;
    if (!r->committed && r->client->commit) r->client->commit(r->client->ud, r->target);
    r->committed = true;
    return streamed ? r->client->event(r->client->ud, data, len) : r->client->body(r->client->ud, data, len);
}

static bool run_event(void *ud, const char *data, size_t len) { return output(ud, data, len, true); }
static bool run_body(void *ud, const char *data, size_t len) { return output(ud, data, len, false); }

static bool run_gone(void *ud) {
    gw_run *r = ud;
    if (atomic_load(&r->cancel) || atomic_load(&r->g->stopping)) return true;
    if (r->winner) {
        int w = atomic_load(r->winner);
        if (w >= 0 && w != r->index) return true;
    }
    return r->client && r->client->gone && r->client->gone(r->client->ud);
}

void gw_attempt_run(gw_run *run, gw_target *t, gw_outcome *out) {
    gw_sink s = {.event = run_event, .body = run_body, .gone = run_gone, .ud = run};
    run->start_ns = clock_mono_ns();
    run->first_byte_ns = 0;
    run->target = t->name;
    if (run->client && run->client->attempt) run->client->attempt(run->client->ud, t->name);
    gw_outcome_reset(out);
    if (t->kind == GW_TARGET_LOCAL) run->g->env.local.call(run->g->env.local.ud, t->model, run->req, &s, out);
    else gw_openai_call(t->provider, t->model, run->req, &s, out);
    /* a target that reports success for an attempt the client left is still cancelled */
    if (out->kind == GW_OUT_OK && run_gone(run) && !run->committed && run->client) out->kind = GW_OUT_CANCELLED;
}

/* ---- fallback ------------------------------------------------------------------------------ */

/* Sleeps ns in slices, watching the client. False (with *why) when the wait was cut. */
static bool pause_for(gw *g, const gw_request *req, const gw_sink *sink, uint64_t ns, gw_outcome_kind *why) {
    if (req->deadline_ns && clock_mono_ns() + ns >= req->deadline_ns) {
        *why = GW_OUT_DEADLINE;
        return false;
    }
    while (ns > 0) {
        if ((sink && sink->gone && sink->gone(sink->ud)) || atomic_load(&g->stopping)) {
            *why = GW_OUT_CANCELLED;
            return false;
        }
        uint64_t slice = ns < SLICE_NS ? ns : SLICE_NS;
        g->clock->sleep_ns(g->clock->ud, slice);
        ns -= slice;
    }
    return true;
}

static void all_skipped(gw *g, gw_target **order, size_t n, gw_result *res) {
    uint64_t soonest = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        gw_breaker_view v;
        gw_breaker_view_get(&order[i]->breaker, &v);
        if (v.retry_in_ns < soonest) soonest = v.retry_in_ns;
    }
    gw_outcome o = {.kind = GW_OUT_SERVER, .http_status = 503, .retry_after_ms = -1};
    if (soonest != UINT64_MAX) o.retry_after_ms = (int64_t)(soonest / NS_PER_MS);
    snprintf(o.msg, sizeof o.msg, "every target is unavailable (circuit breakers open)");
    gw_result_fail(res, NULL, &o);
    (void)g;
}

void gw_fallback(gw *g, gw_target **order, size_t n, const gw_request *req, const gw_sink *sink, gw_result *res,
                 size_t prior, gw_capture *capture) {
    gw_run run = {.g = g, .req = req, .client = sink, .capture = capture};
    atomic_init(&run.cancel, 0);
    gw_outcome last = {.retry_after_ms = -1}, cur = {.retry_after_ms = -1};
    gw_target *last_t = NULL;
    bool tried = false;
    size_t attempts = prior;
    uint64_t rng = gw_draw(g);
    for (size_t i = 0; i < n; i++) {
        gw_target *t = order[i];
        for (int k = 0; k < t->max_attempts; k++) {
            if (res->n_attempts >= GW_MAX_ATTEMPTS) goto give_up;
            uint64_t waited = 0;
            if (k > 0) {
                uint64_t cap = (uint64_t)g->retry.retry_after_cap_ms * NS_PER_MS;
                uint64_t ra = last.retry_after_ms >= 0 ? (uint64_t)last.retry_after_ms * NS_PER_MS : 0;
                if (ra > cap) break; /* this target asked for longer than we wait: next one */
                waited = gw_backoff_ns((uint64_t)g->retry.base_ms * NS_PER_MS, (uint64_t)g->retry.cap_ms * NS_PER_MS,
                                       (unsigned)(k - 1), &rng);
                if (ra > waited) waited = ra;
                gw_outcome_kind why;
                if (!pause_for(g, req, sink, waited, &why)) {
                    if (why == GW_OUT_DEADLINE) goto give_up; /* the last error says more */
                    last.kind = why;
                    snprintf(last.msg, sizeof last.msg, "the client went away");
                    goto give_up;
                }
            }
            gw_ticket tk;
            gw_breaker_change ch;
            bool allowed = gw_breaker_allow(&t->breaker, &tk, &ch);
            gw_result_add_transition(g, res, t, &ch);
            if (!allowed) {
                res->skipped++;
                break;
            }
            if (attempts > 0 && !gw_budget_withdraw(&g->budget)) {
                gw_breaker_report(&t->breaker, &tk, GW_VERDICT_NEUTRAL, NULL, &ch);
                gw_result_add_transition(g, res, t, &ch);
                res->budget_refused = true;
                goto give_up;
            }
            gw_attempt_run(&run, t, &cur);
            uint64_t end = clock_mono_ns();
            gw_breaker_report(&t->breaker, &tk, gw_outcome_verdict(cur.kind), cur.msg, &ch);
            gw_result_add_attempt(res, t, &cur, waited, &run, end);
            gw_result_add_transition(g, res, t, &ch);
            attempts++;
            tried = true;
            gw_outcome_reset(&last);
            last = cur;
            cur = (gw_outcome){.retry_after_ms = -1};
            last_t = t;
            snprintf(res->target, sizeof res->target, "%s", t->name);
            res->committed = run.committed;
            if (last.kind == GW_OUT_OK) {
                res->kind = GW_OUT_OK;
                res->http_status = 200;
                gw_outcome_reset(&last);
                return;
            }
            if (run.committed || !gw_outcome_retryable(last.kind)) goto give_up;
        }
    }
give_up:
    if (tried || last.kind != GW_OUT_OK) gw_result_fail(res, last_t, &last);
    else all_skipped(g, order, n, res);
    res->committed = run.committed;
    gw_outcome_reset(&last);
    gw_outcome_reset(&cur);
}

/* ---- strategies ------------------------------------------------------------------------------ */

static uint64_t hash_user(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return gw_rand64(&h);
}

/* Weighted: the chosen target first, then the others in their configured order. */
static void weighted_order(gw *g, const gw_route *r, const gw_request *req, gw_target **order) {
    uint64_t point = (r->sticky && req->user ? hash_user(req->user) : gw_draw(g)) % r->total_weight;
    size_t chosen = 0;
    for (uint64_t acc = 0; chosen < r->n; chosen++) {
        acc += r->weights[chosen];
        if (point < acc) break;
    }
    size_t m = 0;
    order[m++] = r->targets[chosen];
    for (size_t i = 0; i < r->n; i++)
        if (i != chosen) order[m++] = r->targets[i];
}

void gw_call(gw *g, const gw_request *req, const gw_sink *sink, gw_result *res) {
    *res = (gw_result){0};
    snprintf(res->route, sizeof res->route, "%s", req->model ? req->model : "");
    gw_route *r = NULL;
    for (size_t i = 0; req->model && i < g->n_routes && !r; i++)
        if (!strcmp(g->routes[i].name, req->model)) r = &g->routes[i];
    if (!r) {
        gw_outcome o = {.kind = GW_OUT_CLIENT, .http_status = 404, .retry_after_ms = -1};
        snprintf(o.msg, sizeof o.msg, "no route is named '%.64s'", req->model ? req->model : "");
        gw_result_fail(res, NULL, &o);
        return;
    }
    gw_budget_deposit(&g->budget);
    gw_target *order[GW_MAX_ROUTE_TARGETS];
    switch (r->strategy) {
    case GW_FALLBACK:
        gw_fallback(g, r->targets, r->n, req, sink, res, 0, NULL);
        break;
    case GW_WEIGHTED:
        weighted_order(g, r, req, order);
        gw_fallback(g, order, r->n, req, sink, res, 0, NULL);
        break;
    case GW_RACE:
        gw_race(g, r, req, sink, res);
        break;
    case GW_SHADOW:
        gw_shadow(g, r, req, sink, res);
        break;
    }
}
