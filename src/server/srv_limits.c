/* Hardening limits at request time (see srv_limits.h). Never touches a connection. */
#include "server/srv_limits.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "base/mem.h"

struct srv_policy {
    pthread_mutex_t mu;
    cfg_limits limits;
    char **origins;
    size_t n_origins;
};

static void free_list(char **list, size_t n) {
    for (size_t i = 0; i < n; i++) mem_free(list[i]);
    mem_free(list);
}

hearth_status srv_policy_update(srv_policy *p, const cfg_config *c) {
    size_t n = c->server.n_cors_origins;
    char **list = n ? mem_calloc(n, sizeof *list) : NULL;
    bool ok = !n || list;
    for (size_t i = 0; ok && i < n; i++) ok = (list[i] = mem_strdup(c->server.cors_origins[i])) != NULL;
    if (!ok) {
        free_list(list, n);
        return HEARTH_ERR_NOMEM;
    }
    pthread_mutex_lock(&p->mu);
    char **old = p->origins;
    size_t n_old = p->n_origins;
    p->origins = list;
    p->n_origins = n;
    p->limits = c->limits;
    pthread_mutex_unlock(&p->mu);
    free_list(old, n_old);
    return HEARTH_OK;
}

hearth_status srv_policy_new(const cfg_config *c, srv_policy **out, hearth_err *err) {
    *out = NULL;
    srv_policy *p = mem_calloc(1, sizeof *p);
    if (!p) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    if (srv_policy_update(p, c) != HEARTH_OK) {
        srv_policy_free(p);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    }
    *out = p;
    return HEARTH_OK;
}

void srv_policy_free(srv_policy *p) {
    if (!p) return;
    free_list(p->origins, p->n_origins);
    pthread_mutex_destroy(&p->mu);
    mem_free(p);
}

void srv_policy_limits(srv_policy *p, cfg_limits *out) {
    pthread_mutex_lock(&p->mu);
    *out = p->limits;
    pthread_mutex_unlock(&p->mu);
}

bool srv_policy_cors(srv_policy *p) {
    pthread_mutex_lock(&p->mu);
    bool on = p->n_origins > 0;
    pthread_mutex_unlock(&p->mu);
    return on;
}

bool srv_policy_origin_allowed(srv_policy *p, const char *origin) {
    if (!origin) return false;
    bool ok = false;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n_origins && !ok; i++)
        ok = !strcmp(p->origins[i], "*") || !strcasecmp(p->origins[i], origin);
    pthread_mutex_unlock(&p->mu);
    return ok;
}

bool srv_limits_check(const cfg_limits *l, const srv_req *r, srv_error *e) {
    if (r->max_tokens > l->max_tokens)
        return srv_invalid(e, "max_tokens", "'max_tokens' is %d; this server allows at most %lld", r->max_tokens,
                           (long long)l->max_tokens);
    if (r->n > l->n) return srv_invalid(e, "n", "'n' is %d; this server allows at most %lld", r->n, (long long)l->n);
    if ((int64_t)r->n_stop > l->stop)
        return srv_invalid(e, "stop", "'stop' holds %zu strings; this server allows at most %lld", r->n_stop,
                           (long long)l->stop);
    for (size_t i = 0; i < r->n_stop; i++)
        if ((int64_t)strlen(r->stop[i]) > l->stop_length)
            return srv_invalid(e, "stop", "a stop string is longer than %lld bytes", (long long)l->stop_length);
    if (r->messages && (int64_t)json_array_size(r->messages) > l->messages)
        return srv_invalid(e, "messages", "'messages' holds %zu messages; this server allows at most %lld",
                           json_array_size(r->messages), (long long)l->messages);
    return true;
}

/* The integer field name of root clamped to int32 (0: absent, null or not an integer:
 * the upstream judges those). */
static int32_t int_field(const json_t *root, const char *name) {
    const json_t *v = json_object_get(root, name);
    if (!json_is_integer(v)) return 0;
    json_int_t i = json_integer_value(v);
    return i > INT32_MAX ? INT32_MAX : i < 0 ? 0 : (int32_t)i;
}

bool srv_limits_check_json(const cfg_limits *l, const json_t *root, srv_error *e) {
    srv_req r = {0};
    r.max_tokens = int_field(root, json_object_get(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens");
    r.n = int_field(root, "n");
    const json_t *stop = json_object_get(root, "stop");
    if (json_is_string(stop)) r.stop[r.n_stop++] = json_string_value(stop);
    if (json_is_array(stop) && (int64_t)json_array_size(stop) > l->stop)
        return srv_invalid(e, "stop", "'stop' holds %zu strings; this server allows at most %lld", json_array_size(stop),
                           (long long)l->stop);
    for (size_t i = 0; json_is_array(stop) && i < json_array_size(stop) && r.n_stop < STOP_MAX_STRINGS; i++)
        if (json_is_string(json_array_get(stop, i))) r.stop[r.n_stop++] = json_string_value(json_array_get(stop, i));
    const json_t *messages = json_object_get(root, "messages");
    r.messages = json_is_array(messages) ? (json_t *)messages : NULL;
    return srv_limits_check(l, &r, e);
}

bool srv_host_header_loopback(const char *host) {
    if (!host) return true;
    char name[64];
    size_t n = strlen(host);
    if (n == 0 || n >= sizeof name) return false;
    memcpy(name, host, n + 1);
    char *port = NULL;
    if (name[0] == '[') {
        char *close = strchr(name, ']');
        if (!close) return false;
        port = close[1] == ':' ? close + 2 : close[1] == '\0' ? NULL : name; /* name: malformed marker */
        if (port == name) return false;
        *close = '\0';
        memmove(name, name + 1, strlen(name + 1) + 1);
    } else if ((port = strchr(name, ':'))) {
        *port++ = '\0';
    }
    if (port) {
        if (!*port || strlen(port) > 5) return false;
        for (const char *p = port; *p; p++)
            if (!isdigit((unsigned char)*p)) return false;
    }
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.') name[--len] = '\0';
    if (!strcasecmp(name, "localhost")) return true;
    unsigned char a[16];
    if (host[0] != '[' && inet_pton(AF_INET, name, a) == 1) return a[0] == 127;
    static const unsigned char one[16] = {[15] = 1};
    return host[0] == '[' && inet_pton(AF_INET6, name, a) == 1 && !memcmp(a, one, 16);
}
