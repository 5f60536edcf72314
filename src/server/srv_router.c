/* Routes: which path answers which method, and the small endpoints (health, readiness,
 * the configured models). Unknown paths are 404 and known paths with another method 405, both as
 * OpenAI-shaped errors. */
#include <string.h>

#include "server/srv_gateway.h"
#include "server/srv_internal.h"
#include "server/srv_lora.h"
#include "server/srv_response.h"

#define MODELS_PREFIX "/v1/models/"
#define ADMIN_MODELS_PREFIX "/admin/models/"

typedef struct route_def {
    const char *path; /* exact, or a prefix when it ends with '/' (and is longer than "/") */
    srv_route route;
    const char *method;
} route_def;

static const route_def routes[] = {
    {"/health", SRV_ROUTE_HEALTH, "GET"},
    {"/ready", SRV_ROUTE_READY, "GET"},
    {"/v1/models", SRV_ROUTE_MODELS, "GET"},
    {MODELS_PREFIX, SRV_ROUTE_MODEL, "GET"},
    {"/v1/chat/completions", SRV_ROUTE_CHAT, "POST"},
    {"/v1/completions", SRV_ROUTE_COMPLETIONS, "POST"},
    {"/admin/models", SRV_ROUTE_ADMIN_MODELS, "GET"},
    {ADMIN_MODELS_PREFIX, SRV_ROUTE_ADMIN_MODEL, "POST"},
    {ADMIN_MODELS_PREFIX, SRV_ROUTE_ADMIN_ADAPTER_DELETE, "DELETE"},
    {"/admin/reload", SRV_ROUTE_ADMIN_RELOAD, "POST"},
    {"/", SRV_ROUTE_DASHBOARD, "GET"},
    {"/metrics", SRV_ROUTE_METRICS, "GET"},
    {"/admin/stats", SRV_ROUTE_ADMIN_STATS, "GET"},
    {"/admin/routes", SRV_ROUTE_ADMIN_ROUTES, "GET"},
    {"/v1/embeddings", SRV_ROUTE_EMBEDDINGS, "POST"},
};

static const char *const route_names[] = {
    [SRV_ROUTE_NONE] = "unknown",        [SRV_ROUTE_HEALTH] = "health",   [SRV_ROUTE_READY] = "ready",
    [SRV_ROUTE_MODELS] = "models",       [SRV_ROUTE_MODEL] = "model",     [SRV_ROUTE_CHAT] = "chat",
    [SRV_ROUTE_COMPLETIONS] = "completions", [SRV_ROUTE_ADMIN_MODELS] = "admin_models",
    [SRV_ROUTE_ADMIN_MODEL] = "admin_model", [SRV_ROUTE_ADMIN_RELOAD] = "admin_reload",
    [SRV_ROUTE_DASHBOARD] = "dashboard", [SRV_ROUTE_METRICS] = "metrics", [SRV_ROUTE_ADMIN_STATS] = "admin_stats",
    [SRV_ROUTE_ADMIN_ADAPTER_DELETE] = "admin_adapter",
    [SRV_ROUTE_ADMIN_ROUTES] = "admin_routes",
    [SRV_ROUTE_EMBEDDINGS] = "embeddings",
};

const char *srv_route_name(srv_route r) { return route_names[r]; }

bool srv_route_admin(srv_route r) { /* every admin_* route, present and future */
    return r == SRV_ROUTE_DASHBOARD || r == SRV_ROUTE_METRICS || !strncmp(route_names[r], "admin", 5);
}

bool srv_route_quiet(srv_route r) {
    return r == SRV_ROUTE_HEALTH || r == SRV_ROUTE_READY || r == SRV_ROUTE_DASHBOARD || r == SRV_ROUTE_METRICS ||
           r == SRV_ROUTE_ADMIN_STATS;
}

srv_route srv_route_find(const char *method, const char *url, bool *method_ok, const char **allow) {
    srv_route found = SRV_ROUTE_NONE; /* the first route of the path, when no method matches */
    *method_ok = false;
    *allow = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route_def *r = &routes[i];
        size_t n = strlen(r->path);
        bool prefix = n > 1 && r->path[n - 1] == '/';
        if (prefix ? (strncmp(url, r->path, n) != 0 || url[n] == '\0') : strcmp(url, r->path) != 0) continue;
        /* HEAD is GET without the body (the HTTP glue drops it) */
        if (!strcmp(method, r->method) || (!strcmp(r->method, "GET") && !strcmp(method, "HEAD"))) {
            *allow = r->method;
            *method_ok = true;
            return r->route;
        }
        if (found == SRV_ROUTE_NONE) {
            found = r->route;
            *allow = r->method;
        }
    }
    return found;
}

bool srv_route_has_body(srv_route r) {
    return r == SRV_ROUTE_CHAT || r == SRV_ROUTE_COMPLETIONS || r == SRV_ROUTE_ADMIN_MODEL ||
           r == SRV_ROUTE_EMBEDDINGS;
}

void srv_reply_json(srv_reply *r, int status, json_t *body) {
    r->status = body ? status : 500;
    r->body = body;
}

void srv_reply_error(srv_reply *r, const srv_error *e) {
    srv_reply_json(r, e->status, srv_error_json(e));
    r->retry_after_s = e->retry_after_s;
    r->error_code = e->code ? e->code : e->type;
}

static void handle_ready(srv *s, srv_reply *out) {
    char why[600] = "";
    bool stopping = atomic_load(&s->stopping);
    bool ready = !stopping && fleet_ready(s->fleet, why, sizeof why);
    const char *status = stopping ? "stopping" : ready ? "ready" : strstr(why, "failed to load") ? "failed" : "loading";
    json_t *body = json_pack("{s:s}", "status", status);
    if (body && !ready && !stopping) json_object_set_new(body, "reason", json_string(why));
    srv_reply_json(out, ready ? 200 : 503, body);
    if (!ready) out->retry_after_s = 1;
}

/* Every configured model the key may use, or only the one named (NULL: all); *found
 * tells whether it was. */
static json_t *model_list(srv *s, const char *only, srv_key *key, bool *found, srv_error *e) {
    fleet_snapshot snap;
    hearth_err err;
    if (fleet_get_snapshot(s->fleet, &snap, &err) != HEARTH_OK) {
        srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    json_t *data = json_array(), *one = NULL;
    for (size_t i = 0; data && i < snap.n; i++) {
        const fleet_info *in = &snap.models[i];
        bool match = !only || !strcmp(only, in->cfg.name);
        for (size_t k = 0; only && !match && k < in->cfg.n_aliases; k++) match = !strcmp(only, in->cfg.aliases[k]);
        int64_t created = in->ready_unix ? in->ready_unix : s->started_unix;
        if (!match && only && srv_lora_is_model_id(in, only)) { /* "base:adapter" */
            if (!srv_key_model_allowed(key, only)) break;
            json_t *adapters = json_array();
            if (adapters && srv_lora_model_objects(in, created, only, adapters) == 1)
                one = json_incref(json_array_get(adapters, 0));
            json_decref(adapters);
            break;
        }
        if (!match) continue;
        if (!srv_key_model_allowed(key, only ? only : in->cfg.name)) {
            if (!only) srv_lora_model_objects(in, created, NULL, data); /* the key may hold an adapter id */
            continue;
        }
        json_t *o = srv_model_object(in->cfg.name, in->ready_unix ? in->ready_unix : s->started_unix);
        json_t *aliases = json_array();
        for (size_t k = 0; aliases && k < in->cfg.n_aliases; k++) json_array_append_new(aliases, json_string(in->cfg.aliases[k]));
        if (o) {
            json_object_set_new(o, "aliases", aliases ? aliases : json_null());
            json_object_set_new(o, "state", json_string(fleet_state_name(in->state)));
        }
        if (only) {
            one = o;
            break;
        }
        json_array_append_new(data, o);
        srv_lora_model_objects(in, created, NULL, data);
    }
    fleet_snapshot_free(&snap);
    if (!only && data) srv_gateway_models(s, data, NULL);
    if (only && !one && srv_key_model_allowed(key, only)) one = srv_gateway_models(s, NULL, only);
    for (size_t i = 0; !only && data && i < json_array_size(data);) { /* routes the key may not use */
        const char *id = json_string_value(json_object_get(json_array_get(data, i), "id"));
        if (id && !srv_key_model_allowed(key, id)) json_array_remove(data, i);
        else i++;
    }
    *found = !only || one;
    if (only) {
        json_decref(data);
        if (!one)
            srv_fail(e, 404, "invalid_request_error", "model_not_found", "model", "The model '%.200s' does not exist", only);
        return one;
    }
    return json_pack("{s:s, s:o}", "object", "list", "data", data ? data : json_array());
}

static void handle_models(srv *s, const char *only, srv_key *key, srv_reply *out) {
    srv_error e;
    bool found = false;
    json_t *body = model_list(s, only, key, &found, &e);
    if (!found || !body) srv_reply_error(out, &e);
    else srv_reply_json(out, 200, body);
}

void srv_dispatch(srv *s, srv_route route, const char *url, const char *body, size_t len, const srv_client *c,
                  srv_reply *out) {
    switch (route) {
    case SRV_ROUTE_HEALTH:
        srv_reply_json(out, 200, json_pack("{s:s}", "status", "ok"));
        break;
    case SRV_ROUTE_READY:
        handle_ready(s, out);
        break;
    case SRV_ROUTE_MODELS:
        handle_models(s, NULL, c->key, out);
        break;
    case SRV_ROUTE_MODEL:
        handle_models(s, url + strlen(MODELS_PREFIX), c->key, out);
        break;
    case SRV_ROUTE_ADMIN_MODELS:
        srv_handle_admin_models(s, out);
        break;
    case SRV_ROUTE_ADMIN_MODEL:
    case SRV_ROUTE_ADMIN_ADAPTER_DELETE: {
        const char *rest = url + strlen(ADMIN_MODELS_PREFIX), *sub = NULL;
        char base[CFG_NAME_MAX + 1];
        if (srv_lora_admin_url(rest, base, sizeof base, &sub))
            srv_handle_admin_adapter(s, base, sub, route == SRV_ROUTE_ADMIN_MODEL ? "POST" : "DELETE", body, len, out);
        else if (route == SRV_ROUTE_ADMIN_MODEL) srv_handle_admin_model(s, rest, out);
        else {
            srv_error e;
            srv_fail(&e, 404, "invalid_request_error", "unknown_url", NULL,
                     "Unknown request URL: DELETE takes /admin/models/{model}/adapters/{name}");
            srv_reply_error(out, &e);
        }
        break;
    }
    case SRV_ROUTE_ADMIN_RELOAD:
        srv_handle_admin_reload(s, out);
        break;
    case SRV_ROUTE_DASHBOARD:
    case SRV_ROUTE_METRICS:
    case SRV_ROUTE_ADMIN_STATS:
        srv_handle_obs(s, route, out);
        break;
    case SRV_ROUTE_CHAT:
        srv_handle_completion(s, SRV_API_CHAT, body, len, c, out);
        break;
    case SRV_ROUTE_COMPLETIONS:
        srv_handle_completion(s, SRV_API_COMPLETION, body, len, c, out);
        break;
    case SRV_ROUTE_EMBEDDINGS:
        srv_handle_embeddings(s, body, len, c, out);
        break;
    case SRV_ROUTE_ADMIN_ROUTES:
        srv_gateway_admin(s, out);
        break;
    case SRV_ROUTE_NONE:
        break;
    }
}
