/* The effective configuration written back as YAML: every key with its resolved value,
 * in a form cfg_build reads to the same configuration (tested by a round trip). Strings
 * are double-quoted with escapes, so no value can break the document. Never prints. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    const cfg_embeddings *e = &c->embeddings;
    put(&o, "embeddings:\n  cache: %s\n  cache_max_entries: %lld\n", e->cache ? "true" : "false",
        (long long)e->cache_max_entries);
    cfg_format_size(e->cache_max_bytes, d, sizeof d);
    put(&o, "  cache_max_bytes: %s\n", d);
    cfg_format_duration(e->cache_ttl_s, d, sizeof d);
    put(&o, "  cache_ttl: %s\n  max_inputs: %d\n  batch_tokens: %d\n  max_queue: %d\n", d, e->max_inputs,
        e->batch_tokens, e->max_queue);
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
    if (o.nomem) {
        mem_free(o.buf);
        return NULL;
    }
    return o.buf;
}
