/* Routes: which path answers which method, and the small endpoints (health, readiness,
 * models). Unknown paths are 404 and known paths with another method 405, both as
 * OpenAI-shaped errors. */
#include <string.h>

#include "server/srv_internal.h"
#include "server/srv_response.h"

#define MODELS_PREFIX "/v1/models/"

typedef struct route_def {
    const char *path; /* exact, or a prefix when it ends with '/' */
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
};

srv_route srv_route_find(const char *method, const char *url, bool *method_ok, const char **allow) {
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route_def *r = &routes[i];
        size_t n = strlen(r->path);
        bool prefix = r->path[n - 1] == '/';
        if (prefix ? (strncmp(url, r->path, n) != 0 || url[n] == '\0') : strcmp(url, r->path) != 0) continue;
        *allow = r->method;
        /* HEAD is GET without the body (the HTTP glue drops it) */
        *method_ok = !strcmp(method, r->method) || (!strcmp(r->method, "GET") && !strcmp(method, "HEAD"));
        return r->route;
    }
    *method_ok = false;
    *allow = NULL;
    return SRV_ROUTE_NONE;
}

bool srv_route_has_body(srv_route r) { return r == SRV_ROUTE_CHAT || r == SRV_ROUTE_COMPLETIONS; }

void srv_reply_json(srv_reply *r, int status, json_t *body) {
    r->status = body ? status : 500;
    r->body = body;
}

void srv_reply_error(srv_reply *r, const srv_error *e) {
    srv_reply_json(r, e->status, srv_error_json(e));
    r->retry_after_s = e->retry_after_s;
}

static void handle_ready(srv *s, srv_reply *out) {
    srv_model_state st = srv_model_get_state(s->model);
    bool stopping = atomic_load(&s->stopping);
    const char *status = stopping ? "stopping" : st == SRV_MODEL_READY ? "ready" : st == SRV_MODEL_LOADING ? "loading" : "failed";
    json_t *body = json_pack("{s:s, s:s}", "status", status, "model", srv_model_id(s->model));
    if (body && st == SRV_MODEL_FAILED)
        json_object_set_new(body, "error", json_string(srv_model_error(s->model)->msg));
    srv_reply_json(out, st == SRV_MODEL_READY && !stopping ? 200 : 503, body);
    if (st == SRV_MODEL_LOADING) out->retry_after_s = 1;
}

static void handle_model(srv *s, const char *id, srv_reply *out) {
    if (strcmp(id, srv_model_id(s->model)) != 0) {
        srv_error e;
        srv_fail(&e, 404, "invalid_request_error", "model_not_found", "model", "The model '%.200s' does not exist", id);
        srv_reply_error(out, &e);
        return;
    }
    srv_reply_json(out, 200, srv_model_object(srv_model_id(s->model), srv_model_created(s->model)));
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
        srv_reply_json(out, 200,
                       json_pack("{s:s, s:[o]}", "object", "list", "data",
                                 srv_model_object(srv_model_id(s->model), srv_model_created(s->model))));
        break;
    case SRV_ROUTE_MODEL:
        handle_model(s, url + strlen(MODELS_PREFIX), out);
        break;
    case SRV_ROUTE_CHAT:
        srv_handle_completion(s, SRV_API_CHAT, body, len, c, out);
        break;
    case SRV_ROUTE_COMPLETIONS:
        srv_handle_completion(s, SRV_API_COMPLETION, body, len, c, out);
        break;
    case SRV_ROUTE_NONE:
        break;
    }
}
