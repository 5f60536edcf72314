/* The gateway's lifecycle inside the server (built at start and on reload, reference
 * counted so a reload never frees one a request still uses), GET /admin/routes, routes
 * in /v1/models, and the metrics and log lines of routed requests and breaker
 * transitions. Log lines carry targets, outcomes and timings: never a key, a prompt or
 * an output. */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "server/srv_gateway.h"
#include "server/srv_response.h"

struct srv_gw_ref {
    gw *g;
    _Atomic int refs;
};

typedef struct srv_gateway {
    pthread_mutex_t mu;        /* guards cur */
    srv_gw_ref *cur;           /* NULL: no routes */
    obs_family *transitions;   /* hearth_breaker_transitions_total */
} srv_gateway;

gw *srv_gw_of(const srv_gw_ref *r) { return r ? r->g : NULL; }

/* ---- logs and metrics ----------------------------------------------------------------- */

static void gw_log(void *ud, const char *level, const json_t *fields) {
    srv *s = ud;
    const char *msg = json_string_value(json_object_get(fields, "msg"));
    if (msg && !strcmp(msg, "circuit breaker")) {
        const char *target = json_string_value(json_object_get(fields, "target"));
        const char *from = json_string_value(json_object_get(fields, "from"));
        const char *to = json_string_value(json_object_get(fields, "to"));
        if (target && from && to) {
            obs_breaker(s->obs, target, to);
            if (s->gateway && s->gateway->transitions)
                obs_add(s->gateway->transitions, (const char *const[]){target, from, to}, 1);
        }
    }
    srv_log(s, level, json_deep_copy(fields));
}

static const char *outcome_label(gw_outcome_kind k) {
    switch (k) {
    case GW_OUT_OK: return "ok";
    case GW_OUT_TIMEOUT:
    case GW_OUT_DEADLINE: return "timeout";
    case GW_OUT_CLIENT: return "rejected";
    case GW_OUT_CANCELLED: return "cancelled";
    default: return "error";
    }
}

void srv_gateway_report(srv *s, const gw_result *res, const char *request_kind) {
    for (size_t i = 0; i < res->n_attempts; i++) {
        obs_upstream(s->obs, res->attempts[i].target, outcome_label(res->attempts[i].kind));
        if (i > 0) obs_retry(s->obs, res->attempts[i].target);
    }
    json_t *f = json_pack("{s:s, s:s}", "msg", "gateway", "api", request_kind), *r = gw_result_json(res);
    if (f && r) json_object_update(f, r);
    json_decref(r);
    srv_log(s, res->kind == GW_OUT_OK ? "info" : "warn", f);
}

void srv_gateway_header(const gw_result *res, char *buf, size_t cap) {
    int n = snprintf(buf, cap, "route=%s; target=%s; attempts=%zu", res->route, res->target[0] ? res->target : "none",
                     res->n_attempts);
    for (size_t i = 0; i < res->n_transitions && n > 0 && (size_t)n < cap; i++) {
        const gw_transition *t = &res->transitions[i];
        n += snprintf(buf + n, cap - (size_t)n, "%s%s:%s>%s", i ? "," : "; breaker=", t->target,
                      gw_breaker_state_name(t->from), gw_breaker_state_name(t->to));
    }
    if (n < 0 || (size_t)n >= cap) {
        /* too long for the header: keep what is whole */
        char *semi = strrchr(buf, ';');
        if (semi) *semi = '\0';
    }
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void ref_free(srv_gw_ref *r) {
    if (!r) return;
    gw_free(r->g); /* waits for its shadow calls */
    mem_free(r);
}

static hearth_status build(srv *s, const cfg_config *c, srv_gw_ref **out, hearth_err *err) {
    *out = NULL;
    if (!c->gateway_json) return HEARTH_OK;
    json_error_t je;
    json_t *root = json_loads(c->gateway_json, 0, &je);
    if (!root) return err_set(err, HEARTH_ERR_NOMEM, "gateway: cannot read the configuration's routes");
    gw_config *gc = NULL;
    hearth_status st = gw_config_parse(root, &gc, err);
    json_decref(root);
    if (st != HEARTH_OK) return st;
    gw_env env = {.local = {.call = srv_gw_local_call, .ud = s}, .log = gw_log, .log_ud = s};
    gw *g = NULL;
    st = gw_new(gc, &env, &g, err);
    gw_config_free(gc);
    if (st != HEARTH_OK) return st;
    srv_gw_ref *r = mem_calloc(1, sizeof *r);
    if (!r) {
        gw_free(g);
        return err_set(err, HEARTH_ERR_NOMEM, "gateway: out of memory");
    }
    r->g = g;
    atomic_init(&r->refs, 1);
    *out = r;
    return HEARTH_OK;
}

/* Every target's breaker gauge starts at closed (a new gateway's breakers are closed). */
static void gauges_closed(srv *s, srv_gw_ref *r) {
    json_t *st = r ? gw_status_json(r->g) : NULL;
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(st, "targets"), i, t) {
        const char *name = json_string_value(json_object_get(t, "name"));
        if (name) obs_breaker(s->obs, name, "closed");
    }
    json_decref(st);
}

hearth_status srv_gateway_new(srv *s, hearth_err *err) {
    srv_gateway *gwh = mem_calloc(1, sizeof *gwh);
    if (!gwh) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&gwh->mu, NULL);
    static const char *const labels[] = {"target", "from", "to", NULL};
    gwh->transitions = obs_family_new(obs_metrics_registry(s->obs), OBS_COUNTER, "hearth_breaker_transitions_total",
                                      "Circuit breaker state changes per routing target", labels, NULL, 0);
    s->gateway = gwh;
    hearth_status st = build(s, s->config, &gwh->cur, err);
    if (st == HEARTH_OK) gauges_closed(s, gwh->cur);
    return st;
}

void srv_gateway_free(srv *s) {
    srv_gateway *gwh = s->gateway;
    if (!gwh) return;
    srv_gw_release(gwh->cur);
    pthread_mutex_destroy(&gwh->mu);
    mem_free(gwh);
    s->gateway = NULL;
}

srv_gw_ref *srv_gw_acquire(srv *s) {
    srv_gateway *gwh = s->gateway;
    if (!gwh) return NULL;
    pthread_mutex_lock(&gwh->mu);
    srv_gw_ref *r = gwh->cur;
    if (r) atomic_fetch_add(&r->refs, 1);
    pthread_mutex_unlock(&gwh->mu);
    return r;
}

void srv_gw_release(srv_gw_ref *r) {
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) ref_free(r);
}

hearth_status srv_gateway_prepare(srv *s, const cfg_config *next, srv_gw_ref **out, hearth_err *err) {
    return build(s, next, out, err);
}

void srv_gateway_discard(srv_gw_ref *next) { srv_gw_release(next); }

void srv_gateway_swap(srv *s, srv_gw_ref *next, char *msg, size_t cap) {
    srv_gateway *gwh = s->gateway;
    pthread_mutex_lock(&gwh->mu);
    srv_gw_ref *old = gwh->cur;
    gwh->cur = next;
    pthread_mutex_unlock(&gwh->mu);
    gauges_closed(s, next);
    size_t n = strlen(msg);
    if (n < cap && (old || next))
        snprintf(msg + n, cap - n, "%sgateway: %s", n ? "; " : "", next ? "routes replaced" : "routes removed");
    srv_gw_release(old); /* freed (after draining) when its last request ends */
}

/* ---- endpoints -------------------------------------------------------------------------- */

void srv_gateway_admin(srv *s, srv_reply *out) {
    srv_gw_ref *r = srv_gw_acquire(s);
    json_t *body = r ? gw_status_json(r->g) : json_pack("{s:[], s:[]}", "routes", "targets");
    srv_gw_release(r);
    srv_reply_json(out, 200, body);
}

json_t *srv_gateway_models(srv *s, json_t *data, const char *only) {
    srv_gw_ref *r = srv_gw_acquire(s);
    if (!r) return NULL;
    json_t *st = gw_status_json(r->g), *one = NULL;
    srv_gw_release(r);
    size_t i;
    json_t *route;
    json_array_foreach(json_object_get(st, "routes"), i, route) {
        const char *name = json_string_value(json_object_get(route, "name"));
        if (!name || (only && strcmp(only, name) != 0)) continue;
        json_t *o = srv_model_object(name, s->started_unix);
        if (!o) continue;
        json_t *targets = json_array();
        size_t k;
        json_t *t;
        json_array_foreach(json_object_get(route, "targets"), k, t) json_array_append(targets, json_object_get(t, "target"));
        json_object_set_new(o, "route", json_pack("{s:O, s:o}", "strategy", json_object_get(route, "strategy"),
                                                  "targets", targets ? targets : json_array()));
        if (only) {
            one = o;
            break;
        }
        json_array_append_new(data, o);
    }
    json_decref(st);
    return one;
}
