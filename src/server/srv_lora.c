/* LoRA adapters in the API (see srv_lora.h): the request field, adapter selection for a
 * job, /v1/models ids, /admin/models rows and the run-time adapter endpoints. Adapter
 * files are opened and checked by the fleet (src/fleet/fleet_lora.c); nothing here reads
 * them. */
#include "server/srv_lora.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "server/srv_internal.h"
#include "server/srv_json.h"
#include "server/srv_response.h"

bool srv_lora_parse(const json_t *root, srv_lora_req *out, srv_error *e) {
    memset(out, 0, sizeof *out);
    const json_t *v = json_object_get(root, "lora");
    if (!v || json_is_null(v)) return true;
    if (!json_is_array(v))
        return srv_invalid(e, "lora", "'lora' must be an array of {\"name\": ..., \"scale\": ...} objects");
    if (json_array_size(v) > SCHED_MAX_LORA)
        return srv_invalid(e, "lora", "'lora' takes at most %d adapters (got %zu)", SCHED_MAX_LORA, json_array_size(v));
    out->given = true;
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *it = json_array_get(v, i);
        char param[32];
        snprintf(param, sizeof param, "lora[%zu]", i);
        const json_t *name = json_object_get(it, "name"), *scale = json_object_get(it, "scale");
        if (!json_is_object(it) || !json_is_string(name) || json_string_length(name) == 0)
            return srv_invalid(e, param, "'%s' must be an object with an adapter \"name\"", param);
        out->name[i] = json_string_value(name);
        if (scale && !json_is_null(scale)) {
            double d = json_number_value(scale);
            if (!json_is_number(scale) || !isfinite(d) || fabs(d) > FLEET_ADAPTER_SCALE_MAX)
                return srv_invalid(e, param, "'%s.scale' must be a number from %g to %g", param,
                                   -FLEET_ADAPTER_SCALE_MAX, FLEET_ADAPTER_SCALE_MAX);
            out->scale[i] = d;
            out->has_scale[i] = true;
        }
        out->n++;
    }
    return true;
}

void srv_lora_release(model_lora_use *uses, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        model_lora_release(uses[i].adapter);
        uses[i] = (model_lora_use){0};
    }
}

bool srv_lora_select(const srv_model *m, const srv_lora_req *in, model_lora_use *uses, int32_t *n, srv_error *e) {
    *n = 0;
    if (!in->given) {
        model_lora_use sel = fleet_lease_lora(m);
        if (sel.adapter) uses[(*n)++] = (model_lora_use){model_lora_retain(sel.adapter), sel.scale};
        return true;
    }
    for (size_t i = 0; i < in->n; i++) {
        hearth_err err = {0};
        model_lora_use u;
        if (fleet_lease_adapter(m, in->name[i], &u, &err) != HEARTH_OK) {
            srv_lora_release(uses, *n);
            *n = 0;
            char param[32];
            snprintf(param, sizeof param, "lora[%zu]", i);
            return srv_fail(e, 400, "invalid_request_error", "adapter_not_found", param, "%s", err.msg);
        }
        if (in->has_scale[i]) u.scale = (float)in->scale[i];
        uses[(*n)++] = u;
    }
    return true;
}

bool srv_lora_key_allows(const srv_model *m, const srv_lora_req *in, srv_key *key, srv_error *e) {
    if (!key || !in->given) return true;
    char base[CFG_NAME_MAX + 1], id[2 * CFG_NAME_MAX + 2];
    const char *name = srv_model_id(m), *colon = fleet_lease_lora(m).adapter ? strrchr(name, ':') : NULL;
    size_t n = colon ? (size_t)(colon - name) : strlen(name); /* adapter names never hold ':' */
    snprintf(base, sizeof base, "%.*s", (int)n, name);
    if (in->n == 0 && !srv_key_model_allowed(key, base))
        return srv_fail(e, 403, "permission_error", "model_not_allowed", "lora",
                        "This API key may not use the model '%s' without an adapter", base);
    for (size_t i = 0; i < in->n; i++) {
        snprintf(id, sizeof id, "%s:%s", base, in->name[i]);
        if (srv_key_model_allowed(key, id)) continue;
        char param[32];
        snprintf(param, sizeof param, "lora[%zu]", i);
        return srv_fail(e, 403, "permission_error", "model_not_allowed", param,
                        "This API key may not use the adapter '%.120s' of the model '%s'", in->name[i], base);
    }
    return true;
}

static bool usable(const fleet_adapter_info *a) { return strcmp(a->state, "failed") != 0; }

bool srv_lora_is_model_id(const fleet_info *in, const char *id) {
    size_t nl = strlen(in->cfg.name);
    if (strncmp(id, in->cfg.name, nl) != 0 || id[nl] != ':') return false;
    for (size_t k = 0; k < in->n_adapters; k++)
        if (usable(&in->adapters[k]) && !strcmp(id + nl + 1, in->adapters[k].name)) return true;
    return false;
}

size_t srv_lora_model_objects(const fleet_info *in, int64_t created, const char *only, json_t *data) {
    size_t n = 0;
    for (size_t k = 0; k < in->n_adapters; k++) {
        const fleet_adapter_info *a = &in->adapters[k];
        char id[2 * CFG_NAME_MAX + 2];
        snprintf(id, sizeof id, "%s:%s", in->cfg.name, a->name);
        if (!usable(a) || (only && strcmp(only, id) != 0)) continue;
        json_t *o = srv_model_object(id, created);
        if (!o) continue;
        json_object_set_new(o, "parent", json_string(in->cfg.name));
        json_object_set_new(o, "adapter", srv_json_text(a->name, strlen(a->name)));
        json_object_set_new(o, "scale", json_real(a->scale));
        json_object_set_new(o, "state", json_string(strcmp(a->state, "ready") ? "available" : "ready"));
        json_array_append_new(data, o);
        n++;
    }
    return n;
}

json_t *srv_lora_admin_rows(const fleet_info *in) {
    json_t *rows = json_array();
    for (size_t k = 0; rows && k < in->n_adapters; k++) {
        const fleet_adapter_info *a = &in->adapters[k];
        bool ready = !strcmp(a->state, "ready");
        json_t *kinds = json_array();
        for (size_t i = 0; kinds && i < a->n_kinds; i++) json_array_append_new(kinds, json_string(a->kinds[i]));
        json_t *o = json_pack("{s:o, s:o, s:f, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "name",
                              srv_json_text(a->name, strlen(a->name)), "path", srv_json_text(a->path, strlen(a->path)),
                              "scale", a->scale, "state", a->state, "source", a->configured ? "config" : "runtime", "rank",
                              ready ? json_integer(a->rank) : json_null(), "alpha",
                              ready ? json_real(a->alpha) : json_null(), "targets",
                              ready && kinds ? kinds : json_null(), "matrices",
                              ready ? json_integer(a->n_targets) : json_null(), "error",
                              a->error[0] ? srv_json_text(a->error, strlen(a->error)) : json_null());
        if (!ready || !kinds) json_decref(kinds);
        if (o) json_array_append_new(rows, o);
    }
    return rows ? rows : json_array();
}

/* ---- run-time adapter endpoints ------------------------------------------------------ */

static void fail_reply(srv_reply *out, srv_error *e) { srv_reply_error(out, e); }

static void admin_load(srv *s, srv_model *m, const char *body, size_t len, srv_reply *out) {
    srv_error e;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const json_t *name = json_object_get(root, "name"), *path = json_object_get(root, "path"),
                 *scale = json_object_get(root, "scale");
    double sc = 1.0;
    if (!json_is_object(root)) srv_invalid(&e, NULL, "the body must be a JSON object {\"name\", \"path\", \"scale\"}");
    else if (!json_is_string(name)) srv_invalid(&e, "name", "'name' must be a string");
    else if (!json_is_string(path) || json_string_length(path) == 0) srv_invalid(&e, "path", "'path' must be a file path");
    else if (scale && !json_is_null(scale) && !json_is_number(scale)) srv_invalid(&e, "scale", "'scale' must be a number");
    else e.status = 0;
    if (e.status == 0 && scale && json_is_number(scale)) sc = json_number_value(scale);
    if (e.status == 0) {
        hearth_err err = {0};
        hearth_status st = fleet_lease_adapter_add(m, json_string_value(name), json_string_value(path), sc, &err);
        if (st == HEARTH_ERR_NOMEM) srv_fail(&e, 500, "server_error", NULL, NULL, "%s", err.msg);
        else if (st != HEARTH_OK) srv_fail(&e, 400, "invalid_request_error", "adapter_invalid", "path", "%s", err.msg);
    }
    if (e.status != 0) {
        srv_log(s, "warn",
                json_pack("{s:s, s:s, s:o}", "msg", "adapter load refused", "model", srv_model_id(m), "error",
                          srv_json_text(e.message, strlen(e.message))));
        json_decref(root);
        fail_reply(out, &e);
        return;
    }
    model_lora_use u = {0};
    hearth_err err = {0};
    json_t *reply = NULL;
    if (fleet_lease_adapter(m, json_string_value(name), &u, &err) == HEARTH_OK) {
        reply = json_pack("{s:s, s:o, s:s, s:I, s:f, s:f}", "model", srv_model_id(m), "name",
                          srv_json_text(json_string_value(name), json_string_length(name)), "status", "ready", "rank",
                          (json_int_t)model_lora_rank(u.adapter), "alpha", (double)model_lora_alpha(u.adapter), "scale",
                          (double)u.scale);
        model_lora_release(u.adapter);
    }
    srv_log(s, "info",
            json_pack("{s:s, s:s, s:o, s:o}", "msg", "adapter loaded", "model", srv_model_id(m), "adapter",
                      srv_json_text(json_string_value(name), json_string_length(name)), "path",
                      srv_json_text(json_string_value(path), json_string_length(path))));
    json_decref(root);
    srv_reply_json(out, 200, reply);
}

static void admin_unload(srv *s, srv_model *m, const char *name, srv_reply *out) {
    hearth_err err = {0};
    if (fleet_lease_adapter_remove(m, name, &err) != HEARTH_OK) {
        srv_error e;
        srv_fail(&e, 404, "invalid_request_error", "adapter_not_found", NULL, "%s", err.msg);
        fail_reply(out, &e);
        return;
    }
    srv_log(s, "info",
            json_pack("{s:s, s:s, s:o}", "msg", "adapter unloaded", "model", srv_model_id(m), "adapter",
                      srv_json_text(name, strlen(name))));
    srv_reply_json(out, 200, json_pack("{s:s, s:o, s:s}", "model", srv_model_id(m), "name",
                                       srv_json_text(name, strlen(name)), "status", "unloaded"));
}

bool srv_lora_admin_url(const char *rest, char *model_name, size_t cap, const char **sub) {
    for (const char *p = strstr(rest, "/adapters"); p; p = strstr(p + 1, "/adapters")) {
        if (p[9] != '\0' && p[9] != '/') continue;
        size_t n = (size_t)(p - rest);
        if (n == 0 || n >= cap) return false;
        memcpy(model_name, rest, n);
        model_name[n] = '\0';
        *sub = p + 1;
        return true;
    }
    return false;
}

void srv_handle_admin_adapter(srv *s, const char *model_name, const char *rest, const char *method, const char *body,
                              size_t len, srv_reply *out) {
    srv_error e;
    char name[CFG_NAME_MAX + 1] = "";
    bool load = !strcmp(rest, "adapters") && !strcmp(method, "POST");
    bool unload = false;
    if (!load && !strncmp(rest, "adapters/", 9)) {
        const char *n = rest + 9, *slash = strchr(n, '/');
        size_t nl = slash ? (size_t)(slash - n) : strlen(n);
        bool is_delete = !slash && !strcmp(method, "DELETE");
        bool is_post = slash && !strcmp(slash, "/unload") && !strcmp(method, "POST");
        if (nl > 0 && nl <= CFG_NAME_MAX && (is_delete || is_post)) {
            memcpy(name, n, nl);
            name[nl] = '\0';
            unload = true;
        }
    }
    if (!load && !unload) {
        srv_fail(&e, 404, "invalid_request_error", "unknown_url", NULL,
                 "Unknown request URL: use POST /admin/models/{model}/adapters, DELETE "
                 "/admin/models/{model}/adapters/{name} or POST /admin/models/{model}/adapters/{name}/unload");
        fail_reply(out, &e);
        return;
    }
    snprintf(out->model, sizeof out->model, "%s", model_name);
    srv_model *m = NULL;
    if (!srv_model_acquire(s->fleet, model_name, -2, srv_deadline(s, 0), true, &m, &e)) {
        fail_reply(out, &e);
        return;
    }
    if (fleet_lease_lora(m).adapter) { /* "base:adapter" is not a model to manage adapters of */
        srv_model_release(m);
        srv_fail(&e, 404, "invalid_request_error", "model_not_found", NULL,
                 "'%s' names an adapter; manage adapters under the base model's name", model_name);
        fail_reply(out, &e);
        return;
    }
    if (load) admin_load(s, m, body, len, out);
    else admin_unload(s, m, name, out);
    srv_model_release(m);
}
