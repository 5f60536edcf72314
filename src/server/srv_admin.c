/* Operator endpoints: GET /admin/models (each model's state, memory, last use, load
 * time, error), POST /admin/models/{name}/load and /unload, POST /admin/reload, and the
 * reload itself (shared with SIGHUP): the new configuration is built and checked in full
 * before anything changes, so an invalid one changes nothing and says why. These routes
 * have no authentication of their own: bind the server to loopback, or put it behind
 * the API-key layer, before exposing them. */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "server/srv_gateway.h"
#include "server/srv_internal.h"
#include "server/srv_json.h"
#include "server/srv_lora.h"
#include "server/srv_model.h"

static json_t *opt_int(int64_t v) { return v > 0 ? json_integer(v) : json_null(); }

static json_t *info_json(const fleet_info *in) {
    char ttl[48];
    cfg_format_duration(in->cfg.ttl_s, ttl, sizeof ttl);
    json_t *aliases = json_array();
    for (size_t k = 0; aliases && k < in->cfg.n_aliases; k++) json_array_append_new(aliases, json_string(in->cfg.aliases[k]));
    json_t *o = json_pack("{s:s, s:o, s:s, s:i, s:b, s:s, s:{s:I, s:I, s:I, s:I}, s:o, s:o, s:f, s:o, s:o, s:i, s:i}",
                          "name", in->cfg.name, "aliases", aliases ? aliases : json_array(), "state",
                          fleet_state_name(in->state), "requests", in->refs, "preload", in->cfg.preload, "ttl", ttl,
                          "memory", "weights_bytes", (json_int_t)in->weights_bytes, "repacked_bytes",
                          (json_int_t)in->packed_bytes, "kv_bytes", (json_int_t)in->kv_bytes, "total_bytes",
                          (json_int_t)(in->weights_bytes + in->packed_bytes + in->kv_bytes), "last_used",
                          opt_int(in->last_used_unix), "loaded_at", opt_int(in->ready_unix), "load_seconds", in->load_s,
                          "idle_unload_in", in->idle_expires_s >= 0 ? json_real(in->idle_expires_s) : json_null(),
                          "retry_in", in->retry_in_s > 0 ? json_real(in->retry_in_s) : json_null(), "failures",
                          in->failures, "loads", in->loads);
    if (o) {
        const char *path = in->cfg.path ? in->cfg.path : in->cfg.url;
        json_object_set_new(o, in->cfg.path ? "path" : "url", srv_json_text(path, strlen(path)));
        json_object_set_new(o, "error", in->error[0] ? srv_json_text(in->error, strlen(in->error)) : json_null());
        json_object_set_new(o, "adapters", srv_lora_admin_rows(in));
    }
    return o;
}

void srv_handle_admin_models(srv *s, srv_reply *out) {
    fleet_snapshot snap;
    hearth_err err;
    if (fleet_get_snapshot(s->fleet, &snap, &err) != HEARTH_OK) {
        srv_error e;
        srv_fail(&e, 500, "server_error", NULL, NULL, "%s", err.msg);
        srv_reply_error(out, &e);
        return;
    }
    json_t *models = json_array();
    for (size_t i = 0; models && i < snap.n; i++) json_array_append_new(models, info_json(&snap.models[i]));
    json_t *body = json_pack("{s:{s:o, s:I}, s:o}", "memory", "budget_bytes",
                             snap.budget_bytes > 0 ? json_integer(snap.budget_bytes) : json_null(), "used_bytes",
                             (json_int_t)snap.used_bytes, "models", models ? models : json_array());
    fleet_snapshot_free(&snap);
    srv_reply_json(out, 200, body);
}

void srv_handle_admin_model(srv *s, const char *rest, srv_reply *out) {
    srv_error e;
    const char *slash = strrchr(rest, '/');
    const char *action = slash ? slash + 1 : "";
    char name[CFG_NAME_MAX + 1];
    size_t n = slash ? (size_t)(slash - rest) : 0;
    if (!slash || n == 0 || n > CFG_NAME_MAX || (strcmp(action, "load") && strcmp(action, "unload"))) {
        srv_fail(&e, 404, "invalid_request_error", "unknown_url", NULL,
                 "Unknown request URL: use POST /admin/models/{name}/load or /unload");
        srv_reply_error(out, &e);
        return;
    }
    memcpy(name, rest, n);
    name[n] = '\0';
    snprintf(out->model, sizeof out->model, "%s", name);
    if (!strcmp(action, "unload")) {
        bool pending = false;
        hearth_err err;
        if (fleet_unload(s->fleet, name, &pending, &err) != HEARTH_OK) {
            srv_fail(&e, 404, "invalid_request_error", "model_not_found", NULL, "%s", err.msg);
            srv_reply_error(out, &e);
            return;
        }
        srv_reply_json(out, 200,
                       json_pack("{s:s, s:s}", "name", name, "status",
                                 pending ? "unloading when its requests end" : "unloaded"));
        return;
    }
    srv_model *m = NULL;
    uint64_t t0 = clock_mono_ns();
    if (!srv_model_acquire(s->fleet, name, -2, srv_deadline(s, 0), true, &m, &e)) {
        srv_reply_error(out, &e);
        return;
    }
    json_t *body = json_pack("{s:s, s:s, s:f}", "name", srv_model_id(m), "status", "ready", "seconds",
                             (double)(clock_mono_ns() - t0) / 1e9);
    srv_model_release(m);
    srv_reply_json(out, 200, body);
}

static void note_restart(const cfg_server *a, const cfg_server *b, char *buf, size_t cap) {
    size_t n = strlen(buf);
    const char *keys[6];
    int k = 0;
    if (strcmp(a->host ? a->host : "127.0.0.1", b->host ? b->host : "127.0.0.1")) keys[k++] = "host";
    if (a->port != b->port) keys[k++] = "port";
    if (a->max_connections != b->max_connections) keys[k++] = "max_connections";
    if (a->max_body != b->max_body) keys[k++] = "max_body";
    if (a->max_header != b->max_header) keys[k++] = "max_header";
    if (a->shutdown_grace_s != b->shutdown_grace_s) keys[k++] = "shutdown_grace";
    for (int i = 0; i < k && n < cap; i++) n += (size_t)snprintf(buf + n, cap - n, "%s server.%s", i ? "," : "; needs a restart to apply:", keys[i]);
}

/* The connection limits libmicrohttpd took at start. */
static void note_restart_limits(const cfg_limits *a, const cfg_limits *b, char *buf, size_t cap) {
    size_t n = strlen(buf);
    const char *keys[3];
    int k = 0;
    if (a->connections_per_ip != b->connections_per_ip) keys[k++] = "connections_per_ip";
    if (a->header_timeout_s != b->header_timeout_s) keys[k++] = "header_timeout";
    if (a->idle_timeout_s != b->idle_timeout_s) keys[k++] = "idle_timeout";
    bool first = !strstr(buf, "needs a restart");
    for (int i = 0; i < k && n < cap; i++, first = false)
        n += (size_t)snprintf(buf + n, cap - n, "%s limits.%s", first ? "; needs a restart to apply:" : ",", keys[i]);
}

hearth_status srv_reload(srv *s, char *msg, size_t cap, cfg_errors *errs, hearth_err *err) {
    memset(errs, 0, sizeof *errs);
    msg[0] = '\0';
    if (!s->cfg.reload) return err_set(err, HEARTH_ERR_INVALID, "this server was started without a reloadable configuration");
    pthread_mutex_lock(&s->reload_mu);
    cfg_config *next = NULL;
    hearth_status st = s->cfg.reload(s->cfg.reload_ud, &next, errs, err);
    /* the bind is the one of the start (the host needs a restart): the rule of the start holds */
    if (st == HEARTH_OK && !s->loopback && next->n_keys == 0 && !next->server.allow_unauthenticated)
        st = err_set(err, HEARTH_ERR_INVALID,
                     "this server listens on a non-loopback address: a configuration without API keys needs "
                     "allow_unauthenticated");
    struct srv_gw_ref *next_gw = NULL;
    if (st == HEARTH_OK) st = srv_gateway_prepare(s, next, &next_gw, err);
    if (st == HEARTH_OK) st = fleet_reload(s->fleet, next, msg, cap, err);
    if (st == HEARTH_OK && (srv_auth_update(s->auth, next) != HEARTH_OK || srv_policy_update(s->policy, next) != HEARTH_OK))
        st = err_set(err, HEARTH_ERR_NOMEM, "out of memory applying the keys and limits (models were reloaded)");
    if (st == HEARTH_OK) srv_gateway_swap(s, next_gw, msg, cap);
    else srv_gateway_discard(next_gw);
    if (st == HEARTH_OK) {
        atomic_store(&s->timeout_ns, (uint64_t)(next->server.timeout_s * 1e9));
        note_restart(&s->config->server, &next->server, msg, cap);
        note_restart_limits(&s->config->limits, &next->limits, msg, cap);
        cfg_config *old = s->config;
        s->config = next;
        next = NULL;
        cfg_free(old);
    }
    pthread_mutex_unlock(&s->reload_mu);
    cfg_free(next);
    if (st == HEARTH_OK) {
        srv_log(s, "info", json_pack("{s:s, s:o}", "msg", "configuration reloaded", "detail", srv_json_text(msg, strlen(msg))));
    } else {
        json_t *list = json_array();
        for (size_t i = 0; list && i < errs->n; i++) json_array_append_new(list, srv_json_text(errs->msg[i], strlen(errs->msg[i])));
        srv_log(s, "error",
                json_pack("{s:s, s:o, s:o}", "msg", "reload refused: the configuration is unchanged", "error",
                          srv_json_text(err->msg, strlen(err->msg)), "errors", list ? list : json_array()));
    }
    return st;
}

void srv_handle_admin_reload(srv *s, srv_reply *out) {
    char msg[512];
    cfg_errors errs;
    hearth_err err = {0};
    hearth_status st = srv_reload(s, msg, sizeof msg, &errs, &err);
    if (st == HEARTH_OK) {
        srv_reply_json(out, 200, json_pack("{s:s, s:o}", "status", "reloaded", "summary", srv_json_text(msg, strlen(msg))));
        return;
    }
    srv_error e;
    srv_fail(&e, st == HEARTH_ERR_NOMEM ? 500 : 400, st == HEARTH_ERR_NOMEM ? "server_error" : "invalid_request_error",
             "config_invalid", NULL, "the configuration was not reloaded (nothing changed): %s", err.msg);
    json_t *body = srv_error_json(&e), *list = json_array();
    for (size_t i = 0; list && i < errs.n; i++) json_array_append_new(list, srv_json_text(errs.msg[i], strlen(errs.msg[i])));
    if (body) json_object_set_new(json_object_get(body, "error"), "errors", list ? list : json_array());
    else json_decref(list);
    srv_reply_json(out, e.status, body);
}
