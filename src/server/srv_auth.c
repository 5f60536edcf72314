/* API keys at request time (see srv_auth.h): the key table, matching a presented secret
 * by its sha256 in constant time, and each key's policy and limiter state. The presented
 * secret is hashed and wiped; nothing here logs or keeps it. */
#include "server/srv_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "server/srv_bucket.h"

#define KEY_NAME_MAX 64

struct srv_key {
    _Atomic int refs;
    pthread_mutex_t mu; /* guards everything below the digest */
    char name[KEY_NAME_MAX + 1];
    unsigned char digest[CFG_KEY_DIGEST];
    bool admin, tools, all_models;
    char **models;      /* allowed names with the aliases of the models they name */
    size_t n_models;
    char **tool_names;
    size_t n_tool_names;
    char **own_names;   /* models, aliases and routes whose name has a ':': never "base:adapter" */
    size_t n_own_names;
    int64_t rpm, tpm, max_concurrent, running;
    srv_bucket requests, tokens;
};

struct srv_auth {
    pthread_mutex_t mu; /* guards keys */
    srv_key **keys;
    size_t n;
};

static void free_list(char **list, size_t n) {
    for (size_t i = 0; i < n; i++) mem_free(list[i]);
    mem_free(list);
}

void srv_key_release(srv_key *k) {
    if (!k || atomic_fetch_sub(&k->refs, 1) != 1) return;
    free_list(k->models, k->n_models);
    free_list(k->tool_names, k->n_tool_names);
    free_list(k->own_names, k->n_own_names);
    pthread_mutex_destroy(&k->mu);
    OPENSSL_cleanse(k->digest, sizeof k->digest);
    mem_free(k);
}

static bool push(char ***list, size_t *n, const char *s) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*list)[i], s)) return true;
    char **grown = mem_realloc_array(*list, *n + 1, sizeof *grown);
    if (!grown) return false;
    *list = grown;
    return (grown[*n] = mem_strdup(s)) != NULL && ++*n;
}

/* The names of c's models, aliases and routes that hold a ':' (their own names, not
 * "base:adapter" ids); false on NOMEM. */
static bool own_names(const cfg_config *c, char ***names, size_t *n) {
    *names = NULL;
    *n = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < c->n_models; i++) {
        const cfg_model *m = &c->models[i];
        if (m->name && strchr(m->name, ':')) ok = push(names, n, m->name);
        for (size_t k = 0; ok && k < m->n_aliases; k++)
            if (strchr(m->aliases[k], ':')) ok = push(names, n, m->aliases[k]);
    }
    json_t *gw = c->gateway_json ? json_loads(c->gateway_json, 0, NULL) : NULL;
    if (c->gateway_json && !gw) ok = false;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(gw, "routes"), i, r) {
        const char *name = json_string_value(json_object_get(r, "name"));
        if (ok && name && strchr(name, ':')) ok = push(names, n, name);
    }
    json_decref(gw);
    if (!ok) free_list(*names, *n);
    return ok;
}

/* The policy lists of ck expanded against c's models; false on NOMEM. */
static bool policy_lists(const cfg_config *c, const cfg_api_key *ck, bool *all, char ***models, size_t *n_models,
                         char ***tools, size_t *n_tools) {
    *all = false;
    *models = *tools = NULL;
    *n_models = *n_tools = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < ck->n_models; i++) {
        const char *name = ck->models[i];
        if (!strcmp(name, "*")) {
            *all = true;
            continue;
        }
        ok = push(models, n_models, name);
        const cfg_model *m = cfg_find_model(c, name);
        if (m) {
            ok = ok && push(models, n_models, m->name);
            for (size_t k = 0; ok && k < m->n_aliases; k++) ok = push(models, n_models, m->aliases[k]);
        }
    }
    for (size_t i = 0; ok && i < ck->n_tool_names; i++) ok = push(tools, n_tools, ck->tool_names[i]);
    if (!ok) {
        free_list(*models, *n_models);
        free_list(*tools, *n_tools);
    }
    return ok;
}

/* Applies ck's policy to k (new or kept from the last configuration). */
static bool apply(srv_key *k, const cfg_config *c, const cfg_api_key *ck, bool fresh) {
    bool all;
    char **models, **tools, **own;
    size_t n_models, n_tools, n_own;
    if (!own_names(c, &own, &n_own)) return false;
    if (!policy_lists(c, ck, &all, &models, &n_models, &tools, &n_tools)) {
        free_list(own, n_own);
        return false;
    }
    uint64_t now = clock_mono_ns();
    pthread_mutex_lock(&k->mu);
    free_list(k->models, k->n_models);
    free_list(k->tool_names, k->n_tool_names);
    k->models = models;
    k->n_models = n_models;
    k->tool_names = tools;
    k->n_tool_names = n_tools;
    free_list(k->own_names, k->n_own_names);
    k->own_names = own;
    k->n_own_names = n_own;
    k->all_models = all;
    k->admin = ck->admin;
    k->tools = ck->tools;
    if (ck->requests_per_minute > 0) {
        if (fresh || k->rpm <= 0) srv_bucket_init(&k->requests, ck->requests_per_minute, now);
        else srv_bucket_set_rate(&k->requests, ck->requests_per_minute, now);
    }
    if (ck->tokens_per_minute > 0) {
        if (fresh || k->tpm <= 0) srv_bucket_init(&k->tokens, ck->tokens_per_minute, now);
        else srv_bucket_set_rate(&k->tokens, ck->tokens_per_minute, now);
    }
    k->rpm = ck->requests_per_minute;
    k->tpm = ck->tokens_per_minute;
    k->max_concurrent = ck->max_concurrent;
    pthread_mutex_unlock(&k->mu);
    return true;
}

hearth_status srv_auth_update(srv_auth *a, const cfg_config *c) {
    srv_key **next = c->n_keys ? mem_calloc(c->n_keys, sizeof *next) : NULL;
    if (c->n_keys && !next) return HEARTH_ERR_NOMEM;
    bool ok = true;
    for (size_t i = 0; ok && i < c->n_keys; i++) {
        const cfg_api_key *ck = &c->keys[i];
        srv_key *k = NULL;
        pthread_mutex_lock(&a->mu);
        for (size_t j = 0; j < a->n && !k; j++)
            if (!strcmp(a->keys[j]->name, ck->name)) {
                k = a->keys[j];
                atomic_fetch_add(&k->refs, 1);
            }
        pthread_mutex_unlock(&a->mu);
        bool fresh = !k;
        if (fresh) {
            k = mem_calloc(1, sizeof *k);
            if (!k) {
                ok = false;
                break;
            }
            atomic_init(&k->refs, 1);
            pthread_mutex_init(&k->mu, NULL);
            snprintf(k->name, sizeof k->name, "%s", ck->name);
        }
        next[i] = k;
        ok = apply(k, c, ck, fresh);
    }
    if (!ok) {
        for (size_t i = 0; i < c->n_keys; i++) srv_key_release(next[i]);
        mem_free(next);
        return HEARTH_ERR_NOMEM;
    }
    pthread_mutex_lock(&a->mu); /* digests are read under it by srv_auth_check */
    for (size_t i = 0; i < c->n_keys; i++) memcpy(next[i]->digest, c->keys[i].digest, sizeof next[i]->digest);
    srv_key **old = a->keys;
    size_t n_old = a->n;
    a->keys = next;
    a->n = c->n_keys;
    pthread_mutex_unlock(&a->mu);
    for (size_t i = 0; i < n_old; i++) srv_key_release(old[i]);
    mem_free(old);
    return HEARTH_OK;
}

hearth_status srv_auth_new(const cfg_config *c, srv_auth **out, hearth_err *err) {
    *out = NULL;
    srv_auth *a = mem_calloc(1, sizeof *a);
    if (!a) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&a->mu, NULL);
    if (srv_auth_update(a, c) != HEARTH_OK) {
        srv_auth_free(a);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    }
    *out = a;
    return HEARTH_OK;
}

void srv_auth_free(srv_auth *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) srv_key_release(a->keys[i]);
    mem_free(a->keys);
    pthread_mutex_destroy(&a->mu);
    mem_free(a);
}

bool srv_auth_enabled(srv_auth *a) {
    pthread_mutex_lock(&a->mu);
    bool on = a->n > 0;
    pthread_mutex_unlock(&a->mu);
    return on;
}

/* The token of "Bearer TOKEN" (scheme case-insensitive, spaces around); NULL when malformed. */
static const char *bearer(const char *h, size_t *len) {
    while (*h == ' ') h++;
    if (strncasecmp(h, "Bearer ", 7) != 0) return NULL;
    h += 7;
    while (*h == ' ') h++;
    size_t n = strlen(h);
    while (n > 0 && h[n - 1] == ' ') n--;
    *len = n;
    return n ? h : NULL;
}

srv_key *srv_auth_check(srv_auth *a, const char *authorization, srv_error *e, const char **reason) {
    size_t len = 0;
    const char *token = authorization ? bearer(authorization, &len) : NULL;
    if (!token) {
        *reason = authorization ? "invalid" : "missing";
        srv_fail(e, 401, "invalid_request_error", authorization ? "invalid_api_key" : "missing_api_key", NULL,
                 authorization ? "The Authorization header must be 'Bearer YOUR_KEY'."
                               : "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.");
        return NULL;
    }
    unsigned char digest[CFG_KEY_DIGEST];
    unsigned int dlen = 0;
    EVP_Digest(token, len, digest, &dlen, EVP_sha256(), NULL);
    srv_key *found = NULL;
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n; i++) { /* every digest is compared: the time does not tell which matched */
        bool eq = srv_ct_equal(digest, a->keys[i]->digest, sizeof digest);
        if (eq && !found) found = a->keys[i];
    }
    if (found) atomic_fetch_add(&found->refs, 1);
    pthread_mutex_unlock(&a->mu);
    OPENSSL_cleanse(digest, sizeof digest);
    if (!found) {
        *reason = "invalid";
        srv_fail(e, 401, "invalid_request_error", "invalid_api_key", NULL, "Incorrect API key provided.");
    }
    return found;
}

const char *srv_key_name(const srv_key *k) { return k ? k->name : ""; }

bool srv_key_admin(srv_key *k) {
    pthread_mutex_lock(&k->mu);
    bool admin = k->admin;
    pthread_mutex_unlock(&k->mu);
    return admin;
}

bool srv_key_admit(srv_key *k, bool tokens, srv_error *e, const char **kind) {
    uint64_t now = clock_mono_ns();
    int retry = 1;
    const char *why = NULL;
    int64_t limit = 0;
    pthread_mutex_lock(&k->mu);
    if (k->max_concurrent > 0 && k->running >= k->max_concurrent) why = "concurrency", limit = k->max_concurrent;
    else if (tokens && k->tpm > 0 && !srv_bucket_ready(&k->tokens, now, &retry)) why = "tokens", limit = k->tpm;
    else if (k->rpm > 0 && !srv_bucket_take(&k->requests, 1, now, &retry)) why = "requests", limit = k->rpm;
    if (!why) k->running++;
    pthread_mutex_unlock(&k->mu);
    if (!why) return true;
    *kind = why;
    srv_fail(e, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
             !strcmp(why, "concurrency") ? "Too many requests in flight for this API key (at most %lld at once)."
             : !strcmp(why, "tokens")    ? "Token rate limit reached for this API key (%lld tokens per minute)."
                                         : "Request rate limit reached for this API key (%lld requests per minute).",
             (long long)limit);
    e->retry_after_s = retry;
    return false;
}

void srv_key_done(srv_key *k, int64_t tokens) {
    pthread_mutex_lock(&k->mu);
    if (k->running > 0) k->running--;
    if (k->tpm > 0 && tokens > 0) srv_bucket_charge(&k->tokens, (double)tokens, clock_mono_ns());
    pthread_mutex_unlock(&k->mu);
}

static bool listed(char *const *list, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], s)) return true;
    return false;
}

bool srv_key_model_allowed(srv_key *k, const char *model) {
    if (!k) return true;
    char base[CFG_NAME_MAX + 1];
    const char *colon = strrchr(model, ':'); /* "base:adapter" is allowed with its base */
    size_t n = colon ? (size_t)(colon - model) : 0;
    if (n > 0 && n < sizeof base) memcpy(base, model, n);
    base[n < sizeof base ? n : 0] = '\0';
    pthread_mutex_lock(&k->mu);
    bool ok = k->all_models || listed(k->models, k->n_models, model) ||
              (base[0] && listed(k->models, k->n_models, base) && !listed(k->own_names, k->n_own_names, model));
    pthread_mutex_unlock(&k->mu);
    return ok;
}

bool srv_key_all_models(srv_key *k) {
    if (!k) return true;
    pthread_mutex_lock(&k->mu);
    bool all = k->all_models;
    pthread_mutex_unlock(&k->mu);
    return all;
}

bool srv_key_tools_allowed(srv_key *k, const json_t *tools, srv_error *e) {
    if (!k || !json_is_array(tools) || json_array_size(tools) == 0) return true;
    bool ok = true;
    char bad[96] = "";
    pthread_mutex_lock(&k->mu);
    if (!k->tools) {
        ok = false;
    } else if (k->n_tool_names) {
        for (size_t i = 0; ok && i < json_array_size(tools); i++) {
            const json_t *fn = json_object_get(json_array_get(tools, i), "function");
            const char *name = json_string_value(json_object_get(fn, "name"));
            if (!name || !listed(k->tool_names, k->n_tool_names, name)) {
                ok = false;
                snprintf(bad, sizeof bad, "%s", name ? name : "");
            }
        }
    }
    pthread_mutex_unlock(&k->mu);
    if (ok) return true;
    if (bad[0])
        return srv_fail(e, 403, "permission_error", "tool_not_allowed", "tools",
                        "This API key may not use the tool '%.80s'.", bad);
    return srv_fail(e, 403, "permission_error", "tools_not_allowed", "tools", "This API key may not use tools.");
}
