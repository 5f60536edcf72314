/* The effective configuration written back as YAML: every key with its resolved value,
 * in a form cfg_build reads to the same configuration (tested by a round trip). Strings
 * are double-quoted with escapes, so no value can break the document. Never prints. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/mem.h"
#include "config/config_internal.h"

typedef struct out {
    char *buf;
    size_t len, cap;
    bool nomem;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...) {
    if (o->nomem) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->nomem = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n + 64;
        char *nb = mem_realloc(o->buf, cap);
        if (!nb) {
            o->nomem = true;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
}

static void quoted(out *o, const char *s) {
    put(o, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') put(o, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f) put(o, "\\x%02x", *p);
        else put(o, "%c", *p);
    }
    put(o, "\"");
}

/* The shortest decimal that reads back to the same double. */
static void number(out *o, double v) {
    char b[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, v);
        if (strtod(b, NULL) == v) break;
    }
    put(o, "%s", b);
}

static void model_keys(out *o, const cfg_model *m, const char *ind) {
    char d[48];
    put(o, "%spreload: %s\n", ind, m->preload ? "true" : "false");
    cfg_format_duration(m->ttl_s, d, sizeof d);
    put(o, "%sttl: %s\n", ind, d);
    if (m->ctx > 0) put(o, "%sctx: %lld\n", ind, (long long)m->ctx);
    else put(o, "%sctx: auto\n", ind);
    put(o, "%sslots: %d\n", ind, m->slots);
    put(o, "%smax_queue: %d\n", ind, m->max_queue);
    cfg_format_duration(m->max_queue_wait_s, d, sizeof d);
    put(o, "%smax_queue_wait: %s\n", ind, d);
    if (m->threads > 0) put(o, "%sthreads: %d\n", ind, m->threads);
    else put(o, "%sthreads: auto\n", ind);
    if (m->pooling >= 0) put(o, "%spooling: %s\n", ind, cfg_pooling_name(m->pooling));
    const cfg_sampling *s = &m->sampling;
    if (!s->set) return;
    put(o, "%ssampling:\n", ind);
    static const struct { unsigned bit; const char *key; size_t off; } nums[] = {
        {CFG_S_TEMPERATURE, "temperature", offsetof(cfg_sampling, temperature)},
        {CFG_S_TOP_P, "top_p", offsetof(cfg_sampling, top_p)},
        {CFG_S_MIN_P, "min_p", offsetof(cfg_sampling, min_p)},
        {CFG_S_REPEAT_PENALTY, "repeat_penalty", offsetof(cfg_sampling, repeat_penalty)},
        {CFG_S_PRESENCE, "presence_penalty", offsetof(cfg_sampling, presence_penalty)},
        {CFG_S_FREQUENCY, "frequency_penalty", offsetof(cfg_sampling, frequency_penalty)},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (!(s->set & nums[i].bit)) continue;
        put(o, "%s  %s: ", ind, nums[i].key);
        number(o, *(const double *)((const char *)s + nums[i].off));
        put(o, "\n");
    }
    if (s->set & CFG_S_TOP_K) put(o, "%s  top_k: %lld\n", ind, (long long)s->top_k);
    if (s->set & CFG_S_SEED) put(o, "%s  seed: %lld\n", ind, (long long)s->seed);
    if (s->set & CFG_S_MAX_TOKENS) put(o, "%s  max_tokens: %lld\n", ind, (long long)s->max_tokens);
}

/* The gateway sections as YAML flow collections (JSON with ", " and ": " separators,
 * which YAML reads back as the same tree). */
static void gateway_sections(out *o, const char *json_text) {
    if (!json_text) return;
    json_t *root = json_loads(json_text, 0, NULL);
    if (!root) {
        o->nomem = true;
        return;
    }
    static const char *const keys[] = {"providers", "routes", "breaker", "retry"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(root, keys[i]);
        if (!v) continue;
        char *text = json_dumps(v, JSON_ENSURE_ASCII | JSON_ENCODE_ANY);
        if (!text) o->nomem = true;
        else put(o, "%s: %s\n", keys[i], text);
        free(text); /* from jansson */
    }
    json_t *seed = json_object_get(root, "seed"), *shadows = json_object_get(root, "max_shadows");
    if (seed || shadows) {
        put(o, "gateway:\n");
        if (seed) put(o, "  seed: %lld\n", (long long)json_integer_value(seed));
        if (shadows) put(o, "  max_shadows: %lld\n", (long long)json_integer_value(shadows));
    }
    json_decref(root);
}

static void strings(out *o, char *const *list, size_t n) {
    put(o, "[");
    for (size_t k = 0; k < n; k++) {
        if (k) put(o, ", ");
        quoted(o, list[k]);
    }
    put(o, "]\n");
}

/* limits and keys; a key shows where its secret comes from, never the secret. */
static void security(out *o, const cfg_config *c) {
    const cfg_limits *l = &c->limits;
    char d1[48], d2[48];
    cfg_format_duration(l->header_timeout_s, d1, sizeof d1);
    cfg_format_duration(l->idle_timeout_s, d2, sizeof d2);
    put(o,
        "limits:\n  max_tokens: %lld\n  n: %lld\n  stop: %lld\n  stop_length: %lld\n  messages: %lld\n"
        "  headers: %lld\n  connections_per_ip: %lld\n  header_timeout: %s\n  idle_timeout: %s\n",
        (long long)l->max_tokens, (long long)l->n, (long long)l->stop, (long long)l->stop_length,
        (long long)l->messages, (long long)l->headers, (long long)l->connections_per_ip, d1, d2);
    if (c->n_keys) put(o, "keys:\n");
    for (size_t i = 0; i < c->n_keys; i++) {
        const cfg_api_key *k = &c->keys[i];
        static const char *const source[] = {"sha256", "env", "file"};
        put(o, "  - name: ");
        quoted(o, k->name);
        put(o, "\n    %s: ", source[k->source]);
        quoted(o, k->ref);
        put(o, "\n    models: ");
        strings(o, k->models, k->n_models);
        if (k->n_tool_names) {
            put(o, "    tools: ");
            strings(o, k->tool_names, k->n_tool_names);
        } else {
            put(o, "    tools: %s\n", k->tools ? "true" : "false");
        }
        put(o, "    admin: %s\n    requests_per_minute: %lld\n    tokens_per_minute: %lld\n    max_concurrent: %lld\n",
            k->admin ? "true" : "false", (long long)k->requests_per_minute, (long long)k->tokens_per_minute,
            (long long)k->max_concurrent);
    }
}

char *cfg_dump(const cfg_config *c) {
    out o = {.cap = 4096};
    o.buf = mem_alloc(o.cap);
    if (!o.buf) return NULL;
    o.buf[0] = '\0';
    char d[48];
    const cfg_server *s = &c->server;
    put(&o, "server:\n  host: ");
    quoted(&o, s->host ? s->host : "127.0.0.1");
    put(&o, "\n  port: %d\n", s->port);
    cfg_format_duration(s->timeout_s, d, sizeof d);
    put(&o, "  timeout: %s\n", d);
    put(&o, "  max_connections: %d\n", s->max_connections);
    cfg_format_size(s->max_body, d, sizeof d);
    put(&o, "  max_body: %s\n", d);
    cfg_format_size(s->max_header, d, sizeof d);
    put(&o, "  max_header: %s\n", d);
    cfg_format_duration(s->shutdown_grace_s, d, sizeof d);
    put(&o, "  shutdown_grace: %s\n", d);
    if (s->model_store) {
        put(&o, "  model_store: ");
        quoted(&o, s->model_store);
        put(&o, "\n");
    }
    if (s->memory_budget > 0) {
        cfg_format_size(s->memory_budget, d, sizeof d);
        put(&o, "  memory_budget: %s\n", d);
    } else if (s->memory_budget_pct > 0) {
        put(&o, "  memory_budget: ");
        number(&o, s->memory_budget_pct);
        put(&o, "%%\n");
    } else {
        put(&o, "  memory_budget: unlimited\n");
    }
    cfg_format_duration(s->max_keep_alive_s, d, sizeof d);
    put(&o, "  max_keep_alive: %s\n", d);
    put(&o, "  allow_unauthenticated: %s\n", s->allow_unauthenticated ? "true" : "false");
    if (s->n_cors_origins) {
        put(&o, "  cors_origins: ");
        strings(&o, s->cors_origins, s->n_cors_origins);
    }
    security(&o, c);
    const cfg_embeddings *e = &c->embeddings;
    put(&o, "embeddings:\n  cache: %s\n  cache_max_entries: %lld\n", e->cache ? "true" : "false",
        (long long)e->cache_max_entries);
    cfg_format_size(e->cache_max_bytes, d, sizeof d);
    put(&o, "  cache_max_bytes: %s\n", d);
    cfg_format_duration(e->cache_ttl_s, d, sizeof d);
    put(&o, "  cache_ttl: %s\n  max_inputs: %d\n  max_request_tokens: %d\n  batch_tokens: %d\n  max_queue: %d\n", d,
        e->max_inputs, e->max_request_tokens, e->batch_tokens, e->max_queue);
    put(&o, "defaults:\n");
    model_keys(&o, &c->defaults, "  ");
    put(&o, c->n_models ? "models:\n" : "models: []\n");
    for (size_t i = 0; i < c->n_models; i++) {
        const cfg_model *m = &c->models[i];
        put(&o, "  - name: ");
        quoted(&o, m->name);
        put(&o, "\n");
        if (m->n_aliases) {
            put(&o, "    aliases: [");
            for (size_t k = 0; k < m->n_aliases; k++) {
                if (k) put(&o, ", ");
                quoted(&o, m->aliases[k]);
            }
            put(&o, "]\n");
        }
        static const char *const keys[] = {"path", "url", "sha256", "chat_template"};
        const char *vals[] = {m->path, m->url, m->sha256, m->chat_template};
        for (int k = 0; k < 4; k++) {
            if (!vals[k]) continue;
            put(&o, "    %s: ", keys[k]);
            quoted(&o, vals[k]);
            put(&o, "\n");
        }
        model_keys(&o, m, "    ");
        if (m->n_adapters) put(&o, "    adapters:\n");
        for (size_t k = 0; k < m->n_adapters; k++) {
            put(&o, "      - name: ");
            quoted(&o, m->adapters[k].name);
            put(&o, "\n        path: ");
            quoted(&o, m->adapters[k].path);
            put(&o, "\n        scale: ");
            number(&o, m->adapters[k].scale);
            put(&o, "\n");
        }
    }
    gateway_sections(&o, c->gateway_json);
    if (o.nomem) {
        mem_free(o.buf);
        return NULL;
    }
    return o.buf;
}
