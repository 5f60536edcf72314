/* JSON views of the gateway for operators: a request's report (for its log line and the
 * X-Hearth-Target header) and GET /admin/routes (breaker state, counts and last error
 * per target, the retry budget, recent shadow comparisons). Texts of answers and keys
 * never appear here. */
#include <string.h>

#include "gateway/gw_internal.h"

static double ms(uint64_t ns) { return (double)ns * 1e-6; }

json_t *gw_result_json(const gw_result *r) {
    json_t *attempts = json_array(), *changes = json_array();
    for (size_t i = 0; attempts && i < r->n_attempts; i++) {
        const gw_attempt *a = &r->attempts[i];
        json_t *o = json_pack("{s:s, s:s, s:i, s:f, s:f, s:f}", "target", a->target, "outcome",
                              gw_outcome_name(a->kind), "status", a->http_status, "waited_ms", ms(a->waited_ns),
                              "first_byte_ms", ms(a->first_byte_ns), "ms", ms(a->duration_ns));
        if (o && a->kind != GW_OUT_OK && a->msg[0]) json_object_set_new(o, "error", json_string(a->msg));
        json_array_append_new(attempts, o);
    }
    for (size_t i = 0; changes && i < r->n_transitions; i++) {
        const gw_transition *t = &r->transitions[i];
        json_array_append_new(changes, json_pack("{s:s, s:s, s:s}", "target", t->target, "from",
                                                 gw_breaker_state_name(t->from), "to", gw_breaker_state_name(t->to)));
    }
    if (!attempts || !changes) {
        json_decref(attempts);
        json_decref(changes);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:i, s:b, s:o, s:I, s:b, s:o}", "route", r->route, "target", r->target,
                     "outcome", gw_outcome_name(r->kind), "status", r->http_status, "committed", r->committed,
                     "attempts", attempts, "skipped", (json_int_t)r->skipped, "budget_refused", r->budget_refused,
                     "breaker", changes);
}

static json_t *target_json(gw_target *t) {
    gw_breaker_view v;
    gw_breaker_view_get(&t->breaker, &v);
    json_t *last = json_null();
    if (v.has_last_error) last = json_pack("{s:s, s:f}", "message", v.last_error, "age_s", (double)v.last_error_age_ns * 1e-9);
    json_t *o = json_pack("{s:s, s:s, s:s, s:{s:s, s:i, s:i, s:f, s:{s:I, s:I}}, s:I, s:I, s:I, s:I, s:I, s:o}",
                          "name", t->name, "kind", t->kind == GW_TARGET_LOCAL ? "local" : "openai", "model", t->model,
                          "breaker", "state", gw_breaker_state_name(v.state), "consecutive_failures", v.consecutive,
                          "opens", v.opens, "retry_in_s", (double)v.retry_in_ns * 1e-9, "window", "calls",
                          (json_int_t)v.window_calls, "failures", (json_int_t)v.window_failures, "calls",
                          (json_int_t)v.calls, "successes", (json_int_t)v.successes, "failures", (json_int_t)v.failures,
                          "rejected", (json_int_t)v.rejected, "total_opens", (json_int_t)v.total_opens, "last_error",
                          last ? last : json_null());
    if (o && t->provider) json_object_set_new(o, "provider", json_string(gw_openai_name(t->provider)));
    return o;
}

static json_t *route_json(const gw_route *r) {
    json_t *ts = json_array();
    for (size_t i = 0; ts && i < r->n; i++)
        json_array_append_new(ts, json_pack("{s:s, s:I}", "target", r->targets[i]->name, "weight",
                                            (json_int_t)r->weights[i]));
    if (!ts) return NULL;
    return json_pack("{s:s, s:s, s:b, s:o}", "name", r->name, "strategy", gw_strategy_name(r->strategy), "sticky",
                     r->sticky, "targets", ts);
}

json_t *gw_status_json(gw *g) {
    json_t *routes = json_array(), *targets = json_array(), *recent = json_array();
    for (size_t i = 0; routes && i < g->n_routes; i++) json_array_append_new(routes, route_json(&g->routes[i]));
    for (size_t i = 0; targets && i < g->n_targets; i++) json_array_append_new(targets, target_json(&g->targets[i]));
    gw_budget_view b;
    gw_budget_view_get(&g->budget, &b);
    pthread_mutex_lock(&g->mu);
    for (size_t k = 0; recent && k < g->n_recent; k++) {
        size_t i = (g->next_recent + GW_SHADOW_RECENT - g->n_recent + k) % GW_SHADOW_RECENT;
        json_array_append_new(recent, gw_shadow_record_json(&g->recent[i]));
    }
    json_t *shadow = json_pack("{s:i, s:I, s:I, s:o}", "running", g->shadows_running, "started",
                               (json_int_t)g->shadows_started, "dropped", (json_int_t)g->shadows_dropped, "recent",
                               recent ? recent : json_array());
    pthread_mutex_unlock(&g->mu);
    if (!routes || !targets || !shadow) {
        json_decref(routes);
        json_decref(targets);
        json_decref(shadow);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:{s:f, s:I, s:I, s:I}, s:o}", "routes", routes, "targets", targets, "retry_budget",
                     "tokens", b.tokens, "requests", (json_int_t)b.requests, "retries", (json_int_t)b.retries,
                     "refused", (json_int_t)b.refused, "shadow", shadow);
}
