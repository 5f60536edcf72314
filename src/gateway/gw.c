/* The gateway's lifecycle: targets resolved from the routes (one per distinct name,
 * shared by every route naming it, each with its own breaker), providers created with
 * their keys, the retry budget; and the bookkeeping helpers every strategy uses. Never
 * sends anything itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "gateway/gw_internal.h"

const char *gw_outcome_name(gw_outcome_kind k) {
    switch (k) {
    case GW_OUT_OK: return "ok";
    case GW_OUT_CONNECT: return "connect";
    case GW_OUT_TIMEOUT: return "timeout";
    case GW_OUT_SERVER: return "server_error";
    case GW_OUT_RATE_LIMITED: return "rate_limited";
    case GW_OUT_CLIENT: return "client_error";
    case GW_OUT_BROKEN: return "broken";
    case GW_OUT_CANCELLED: return "cancelled";
    case GW_OUT_DEADLINE: return "deadline";
    }
    return "unknown";
}

void gw_outcome_reset(gw_outcome *o) {
    mem_free(o->error_body);
    *o = (gw_outcome){.kind = GW_OUT_OK, .retry_after_ms = -1};
}

gw_verdict gw_outcome_verdict(gw_outcome_kind k) {
    switch (k) {
    case GW_OUT_OK: return GW_VERDICT_SUCCESS;
    case GW_OUT_CONNECT:
    case GW_OUT_TIMEOUT:
    case GW_OUT_SERVER:
    case GW_OUT_RATE_LIMITED:
    case GW_OUT_BROKEN: return GW_VERDICT_FAILURE;
    case GW_OUT_CLIENT:
    case GW_OUT_CANCELLED:
    case GW_OUT_DEADLINE: return GW_VERDICT_NEUTRAL;
    }
    return GW_VERDICT_NEUTRAL;
}

bool gw_outcome_retryable(gw_outcome_kind k) { return gw_outcome_verdict(k) == GW_VERDICT_FAILURE; }

uint64_t gw_draw(gw *g) {
    uint64_t state = g->seed + atomic_fetch_add(&g->draws, 1) * 0xD1B54A32D192ED03ull;
    return gw_rand64(&state);
}

bool gw_has_route(const gw *g, const char *model) {
    for (size_t i = 0; g && model && i < g->n_routes; i++)
        if (!strcmp(g->routes[i].name, model)) return true;
    return false;
}

void gw_drain(gw *g) {
    pthread_mutex_lock(&g->mu);
    while (g->shadows_running > 0) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

void gw_free(gw *g) {
    if (!g) return;
    atomic_store(&g->stopping, 1);
    gw_drain(g);
    for (size_t i = 0; i < g->n_routes; i++) {
        mem_free(g->routes[i].name);
        mem_free(g->routes[i].targets);
        mem_free(g->routes[i].weights);
    }
    mem_free(g->routes);
    for (size_t i = 0; i < g->n_targets; i++) {
        mem_free(g->targets[i].model);
        gw_breaker_destroy(&g->targets[i].breaker);
    }
    mem_free(g->targets);
    for (size_t i = 0; i < g->n_providers; i++) gw_openai_free(g->providers[i]);
    mem_free(g->providers);
    gw_budget_destroy(&g->budget);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    mem_free(g);
}

static gw_target *find_target(gw *g, const char *name) {
    for (size_t i = 0; i < g->n_targets; i++)
        if (!strcmp(g->targets[i].name, name)) return &g->targets[i];
    return NULL;
}

static hearth_status add_target(gw *g, const gw_config *cfg, const char *name, gw_target **out, hearth_err *err) {
    if ((*out = find_target(g, name))) return HEARTH_OK;
    gw_target *t = &g->targets[g->n_targets];
    *t = (gw_target){0};
    if (strlen(name) >= sizeof t->name) return err_set(err, HEARTH_ERR_INVALID, "gateway: target name '%.64s...' is too long", name);
    snprintf(t->name, sizeof t->name, "%s", name);
    if (!strncmp(name, "local:", 6)) {
        if (!g->env.local.call)
            return err_set(err, HEARTH_ERR_INVALID, "gateway: target '%s' is local, but no local models are served", name);
        t->kind = GW_TARGET_LOCAL;
        t->model = mem_strdup(name + 6);
        t->max_attempts = cfg->retry.local_max_attempts > 0 ? cfg->retry.local_max_attempts : 1;
    } else {
        const char *slash = strchr(name, '/');
        size_t plen = slash ? (size_t)(slash - name) : 0;
        for (size_t i = 0; slash && i < g->n_providers; i++) {
            const char *pn = gw_openai_name(g->providers[i]);
            if (strlen(pn) == plen && !strncmp(pn, name, plen)) t->provider = g->providers[i];
        }
        if (!t->provider) return err_set(err, HEARTH_ERR_INVALID, "gateway: target '%s' names no known provider", name);
        t->kind = GW_TARGET_OPENAI;
        t->model = mem_strdup(slash + 1);
        t->max_attempts = gw_openai_max_attempts(t->provider);
    }
    if (!t->model) return err_set(err, HEARTH_ERR_NOMEM, "gateway: out of memory");
    gw_breaker_init(&t->breaker, &cfg->breaker, g->clock);
    g->n_targets++;
    *out = t;
    return HEARTH_OK;
}

static hearth_status build(gw *g, const gw_config *cfg, hearth_err *err) {
    hearth_status st = gw_openai_global_init(err);
    if (st != HEARTH_OK) return st;
    g->providers = cfg->n_providers ? mem_calloc(cfg->n_providers, sizeof *g->providers) : NULL;
    size_t max_targets = 0;
    for (size_t i = 0; i < cfg->n_routes; i++) max_targets += cfg->routes[i].n_targets;
    g->targets = max_targets ? mem_calloc(max_targets, sizeof *g->targets) : NULL;
    g->routes = cfg->n_routes ? mem_calloc(cfg->n_routes, sizeof *g->routes) : NULL;
    if ((cfg->n_providers && !g->providers) || (max_targets && !g->targets) || (cfg->n_routes && !g->routes))
        return err_set(err, HEARTH_ERR_NOMEM, "gateway: out of memory");
    for (size_t i = 0; i < cfg->n_providers; i++) {
        st = gw_openai_new(&cfg->providers[i], &g->providers[i], err);
        if (st != HEARTH_OK) return st;
        g->n_providers++;
    }
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const gw_route_config *rc = &cfg->routes[i];
        if (rc->n_targets == 0 || rc->n_targets > GW_MAX_ROUTE_TARGETS)
            return err_set(err, HEARTH_ERR_INVALID, "gateway: route '%s' needs 1 to %d targets", rc->name,
                           GW_MAX_ROUTE_TARGETS);
        gw_route *r = &g->routes[i];
        g->n_routes++;
        r->name = mem_strdup(rc->name);
        r->targets = mem_calloc(rc->n_targets, sizeof *r->targets);
        r->weights = mem_calloc(rc->n_targets, sizeof *r->weights);
        if (!r->name || !r->targets || !r->weights) return err_set(err, HEARTH_ERR_NOMEM, "gateway: out of memory");
        r->strategy = rc->strategy;
        r->sticky = rc->sticky;
        for (size_t k = 0; k < rc->n_targets; k++) {
            st = add_target(g, cfg, rc->targets[k].target, &r->targets[k], err);
            if (st != HEARTH_OK) {
                err_prefix(err, "route '%s'", rc->name);
                return st;
            }
            r->weights[k] = rc->targets[k].weight;
            r->total_weight += rc->targets[k].weight;
            r->n++;
        }
    }
    return HEARTH_OK;
}

hearth_status gw_new(const gw_config *cfg, const gw_env *env, gw **out, hearth_err *err) {
    *out = NULL;
    gw *g = mem_calloc(1, sizeof *g);
    if (!g) return err_set(err, HEARTH_ERR_NOMEM, "gateway: out of memory");
    if (env) g->env = *env;
    g->clock = g->env.clock ? g->env.clock : gw_clock_real();
    g->retry = cfg->retry;
    g->max_shadows = cfg->max_shadows;
    g->seed = cfg->seed ? cfg->seed : clock_mono_ns() ^ ((uint64_t)(uintptr_t)g << 16);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    gw_budget_init(&g->budget, cfg->retry.budget_ratio, cfg->retry.budget_min_per_s, cfg->retry.budget_burst,
                   g->clock);
    hearth_status st = build(g, cfg, err);
    if (st != HEARTH_OK) {
        gw_free(g);
        return st;
    }
    *out = g;
    return HEARTH_OK;
}

/* ---- result bookkeeping ---------------------------------------------------------------- */

void gw_log_transition(gw *g, const gw_target *t, const gw_breaker_change *ch) {
    if (!ch->changed || !g->env.log) return;
    gw_breaker_view v;
    gw_breaker_view_get((gw_breaker *)&t->breaker, &v);
    json_t *f = json_pack("{s:s, s:s, s:s, s:s, s:I}", "msg", "circuit breaker", "target", t->name, "from",
                          gw_breaker_state_name(ch->from), "to", gw_breaker_state_name(ch->to), "opens",
                          (json_int_t)v.opens);
    if (!f) return;
    if (v.has_last_error && ch->to == GW_BREAKER_OPEN) json_object_set_new(f, "last_error", json_string(v.last_error));
    g->env.log(g->env.log_ud, ch->to == GW_BREAKER_OPEN ? "warn" : "info", f);
    json_decref(f);
}

void gw_result_add_transition(gw *g, gw_result *r, const gw_target *t, const gw_breaker_change *ch) {
    if (!ch->changed) return;
    gw_log_transition(g, t, ch);
    if (r->n_transitions >= GW_MAX_ATTEMPTS) return;
    gw_transition *x = &r->transitions[r->n_transitions++];
    snprintf(x->target, sizeof x->target, "%s", t->name);
    x->from = ch->from;
    x->to = ch->to;
}

void gw_result_add_attempt(gw_result *r, const gw_target *t, const gw_outcome *o, uint64_t waited_ns,
                           const gw_run *run, uint64_t end_ns) {
    if (r->n_attempts >= GW_MAX_ATTEMPTS) return;
    gw_attempt *a = &r->attempts[r->n_attempts++];
    *a = (gw_attempt){.kind = o->kind, .http_status = o->http_status, .waited_ns = waited_ns};
    snprintf(a->target, sizeof a->target, "%s", t->name);
    snprintf(a->msg, sizeof a->msg, "%s", o->msg);
    a->duration_ns = end_ns > run->start_ns ? end_ns - run->start_ns : 0;
    a->first_byte_ns = run->first_byte_ns > run->start_ns ? run->first_byte_ns - run->start_ns : 0;
}

static const char *error_type(gw_outcome_kind k) {
    switch (k) {
    case GW_OUT_TIMEOUT:
    case GW_OUT_DEADLINE: return "timeout_error";
    case GW_OUT_RATE_LIMITED: return "rate_limit_error";
    case GW_OUT_CLIENT: return "invalid_request_error";
    default: return "server_error";
    }
}

static int client_status(const gw_outcome *o) {
    switch (o->kind) {
    case GW_OUT_OK: return 200;
    case GW_OUT_CLIENT: return o->http_status >= 400 && o->http_status < 500 ? o->http_status : 400;
    case GW_OUT_RATE_LIMITED: return 429;
    case GW_OUT_SERVER: return o->http_status == 503 ? 503 : 502;
    case GW_OUT_TIMEOUT:
    case GW_OUT_DEADLINE: return 504;
    case GW_OUT_CANCELLED: return 499;
    case GW_OUT_CONNECT:
    case GW_OUT_BROKEN: return 502;
    }
    return 502;
}

static void set_error_body(gw_result *r, const char *type, const char *code) {
    json_t *b = json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", r->msg, "type", type, "param", "code", code);
    char *s = b ? json_dumps(b, JSON_COMPACT) : NULL;
    json_decref(b);
    if (!s) return;
    r->error_body = mem_strdup(s);
    r->error_len = r->error_body ? strlen(r->error_body) : 0;
    free(s);
}

void gw_result_fail(gw_result *r, const gw_target *t, gw_outcome *o) {
    r->kind = o->kind;
    r->http_status = client_status(o);
    if (t) snprintf(r->target, sizeof r->target, "%s", t->name);
    snprintf(r->msg, sizeof r->msg, "route '%s': %s%s", r->route, o->msg,
             r->budget_refused ? " (no retry: the retry budget is spent)" : "");
    if (o->retry_after_ms >= 0 && (o->kind == GW_OUT_RATE_LIMITED || r->http_status == 503))
        r->retry_after_s = (int)((o->retry_after_ms + 999) / 1000) > 0 ? (int)((o->retry_after_ms + 999) / 1000) : 1;
    mem_free(r->error_body);
    r->error_body = NULL;
    r->error_len = 0;
    if (o->kind == GW_OUT_CLIENT && o->error_body) {
        r->error_body = o->error_body; /* the provider's own answer, as-is */
        r->error_len = o->error_len;
        o->error_body = NULL;
        return;
    }
    set_error_body(r, error_type(o->kind), gw_outcome_name(o->kind));
}

void gw_result_free(gw_result *r) {
    if (!r) return;
    mem_free(r->error_body);
    r->error_body = NULL;
    r->error_len = 0;
}
