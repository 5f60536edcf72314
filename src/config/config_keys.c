/* The keys of the configuration and their value checks: one setter per section, used
 * alike by the YAML reader and by environment variables and flags, so a value means the
 * same and is refused with the same words wherever it is given. Never prints. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "config/config_internal.h"

char *cfg_strdup(cfg_build_ctx *b, const char *s) {
    char *d = mem_strdup(s);
    if (!d) b->nomem = true;
    return d;
}

char *cfg_path(cfg_build_ctx *b, const char *v, bool from_file) {
    const char *home = getenv("HOME");
    char *out = NULL;
    if (v[0] == '~' && v[1] == '/' && home && home[0]) {
        size_t n = strlen(home) + strlen(v);
        out = mem_alloc(n);
        if (out) snprintf(out, n, "%s%s", home, v + 1);
    } else if (v[0] != '/' && from_file && b->dir) {
        size_t n = strlen(b->dir) + strlen(v) + 2;
        out = mem_alloc(n);
        if (out) snprintf(out, n, "%s/%s", b->dir, v);
    } else {
        out = mem_strdup(v);
    }
    if (!out) b->nomem = true;
    return out;
}

static void replace(char **field, char *value) {
    mem_free(*field);
    *field = value;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!*s || isspace((unsigned char)*s) || *s == '+') return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_num(const char *s, double lo, double hi, double *out) {
    if (!*s || isspace((unsigned char)*s)) return false;
    char *end = NULL;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || v < lo || v > hi) return false;
    for (const char *p = s; *p; p++) /* plain decimals only: no hex, no exponents of inf/nan words */
        if (!isdigit((unsigned char)*p) && !strchr("+-.eE", *p)) return false;
    *out = v;
    return true;
}

static bool parse_bool(const char *s, bool *out) {
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (!strcasecmp(s, yes[i])) return *out = true, true;
        if (!strcasecmp(s, no[i])) return *out = false, true;
    }
    return false;
}

static cfg_set_result bad(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static cfg_set_result bad(char *why, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return CFG_SET_BAD;
}

/* An integer key: range-checked, with "auto" meaning 0 when auto_ok. */
static cfg_set_result int_key(const char *v, int64_t lo, int64_t hi, bool auto_ok, int64_t *out, char *why,
                              size_t cap) {
    if (auto_ok && !strcmp(v, "auto")) {
        *out = 0;
        return CFG_SET_OK;
    }
    if (!parse_i64(v, lo, hi, out))
        return bad(why, cap, "expected an integer from %lld to %lld%s, got '%.60s'", (long long)lo, (long long)hi,
                   auto_ok ? " or auto" : "", v);
    return CFG_SET_OK;
}

cfg_set_result cfg_set_sampling_key(cfg_sampling *s, const char *key, const char *v, char *why, size_t cap) {
    static const struct { const char *key; unsigned bit; double lo, hi; size_t off; } nums[] = {
        {"temperature", CFG_S_TEMPERATURE, 0, 2, offsetof(cfg_sampling, temperature)},
        {"top_p", CFG_S_TOP_P, 0, 1, offsetof(cfg_sampling, top_p)},
        {"min_p", CFG_S_MIN_P, 0, 1, offsetof(cfg_sampling, min_p)},
        {"repeat_penalty", CFG_S_REPEAT_PENALTY, 0, 100, offsetof(cfg_sampling, repeat_penalty)},
        {"presence_penalty", CFG_S_PRESENCE, -2, 2, offsetof(cfg_sampling, presence_penalty)},
        {"frequency_penalty", CFG_S_FREQUENCY, -2, 2, offsetof(cfg_sampling, frequency_penalty)},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        if (strcmp(key, nums[i].key) != 0) continue;
        double d;
        if (!parse_num(v, nums[i].lo, nums[i].hi, &d) || (nums[i].bit == CFG_S_REPEAT_PENALTY && d <= 0))
            return bad(why, cap, "expected a number from %g to %g%s, got '%.60s'", nums[i].lo, nums[i].hi,
                       nums[i].bit == CFG_S_REPEAT_PENALTY ? " (above 0)" : "", v);
        *(double *)((char *)s + nums[i].off) = d;
        s->set |= nums[i].bit;
        return CFG_SET_OK;
    }
    cfg_set_result r;
    if (!strcmp(key, "top_k")) {
        if ((r = int_key(v, 0, INT32_MAX, false, &s->top_k, why, cap)) == CFG_SET_OK) s->set |= CFG_S_TOP_K;
        return r;
    }
    if (!strcmp(key, "max_tokens")) {
        if ((r = int_key(v, 1, INT32_MAX, false, &s->max_tokens, why, cap)) == CFG_SET_OK) s->set |= CFG_S_MAX_TOKENS;
        return r;
    }
    if (!strcmp(key, "seed")) {
        if ((r = int_key(v, INT64_MIN, INT64_MAX, false, &s->seed, why, cap)) == CFG_SET_OK) s->set |= CFG_S_SEED;
        return r;
    }
    return CFG_SET_UNKNOWN;
}

cfg_set_result cfg_set_model_key(cfg_build_ctx *b, cfg_model *m, bool is_defaults, const char *key, const char *v,
                                 bool from_file, char *why, size_t cap) {
    int64_t i = 0;
    cfg_set_result r;
    if (!strcmp(key, "preload")) {
        if (!parse_bool(v, &m->preload)) return bad(why, cap, "expected true or false, got '%.60s'", v);
        m->set |= CFG_M_PRELOAD;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "ttl")) {
        if (!cfg_parse_duration(v, true, &m->ttl_s))
            return bad(why, cap, "expected a duration such as 10m, 90s, 0 or forever, got '%.60s'", v);
        m->set |= CFG_M_TTL;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "ctx")) {
        if (!strcmp(v, "auto")) {
            m->ctx = 0;
        } else {
            if ((r = int_key(v, 16, INT32_MAX, true, &i, why, cap)) != CFG_SET_OK) return r;
            m->ctx = i;
        }
        m->set |= CFG_M_CTX;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "slots")) {
        if ((r = int_key(v, 1, 256, false, &i, why, cap)) != CFG_SET_OK) return r;
        m->slots = (int32_t)i;
        m->set |= CFG_M_SLOTS;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "threads")) {
        if ((r = int_key(v, 1, 1024, true, &i, why, cap)) != CFG_SET_OK) return r;
        m->threads = (int32_t)i;
        m->set |= CFG_M_THREADS;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "max_queue")) {
        if ((r = int_key(v, 0, 1 << 20, false, &i, why, cap)) != CFG_SET_OK) return r;
        m->max_queue = (int32_t)i;
        m->set |= CFG_M_MAX_QUEUE;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "max_queue_wait")) {
        double d = 0;
        if (!cfg_parse_duration(v, false, &d) || d > CFG_MAX_QUEUE_WAIT_S)
            return bad(why, cap, "expected a duration up to 1h such as 500ms or 2s (0: off), got '%.60s'", v);
        m->max_queue_wait_s = d;
        m->set |= CFG_M_MAX_QUEUE_WAIT;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "pooling")) {
        if (!cfg_parse_pooling(v, &m->pooling))
            return bad(why, cap, "expected none, mean, cls, last or default, got '%.60s'", v);
        m->set |= CFG_M_POOLING;
        return CFG_SET_OK;
    }
    if (is_defaults) return CFG_SET_UNKNOWN;
    if (!strcmp(key, "name")) {
        if (!cfg_valid_name(v))
            return bad(why, cap, "'%.60s' is not a valid model name (1 to %d of A-Z a-z 0-9 . _ : @ + / -)", v,
                       CFG_NAME_MAX);
        replace(&m->name, cfg_strdup(b, v));
        return CFG_SET_OK;
    }
    if (!strcmp(key, "path")) {
        if (!*v) return bad(why, cap, "expected a file path");
        replace(&m->path, cfg_path(b, v, from_file));
        return CFG_SET_OK;
    }
    if (!strcmp(key, "url")) {
        if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8) && strncmp(v, "hf://", 5))
            return bad(why, cap, "expected an http://, https:// or hf://OWNER/REPO/FILE.gguf address, got '%.60s'", v);
        replace(&m->url, cfg_strdup(b, v));
        return CFG_SET_OK;
    }
    if (!strcmp(key, "sha256")) {
        if (!cfg_valid_sha256(v)) return bad(why, cap, "expected 64 hexadecimal digits, got '%.80s'", v);
        char *d = cfg_strdup(b, v);
        for (char *p = d; p && *p; p++) *p = (char)tolower((unsigned char)*p);
        replace(&m->sha256, d);
        return CFG_SET_OK;
    }
    if (!strcmp(key, "chat_template")) {
        if (!*v) return bad(why, cap, "expected a file path");
        replace(&m->chat_template, cfg_path(b, v, from_file));
        return CFG_SET_OK;
    }
    return CFG_SET_UNKNOWN;
}

cfg_set_result cfg_set_server_key(cfg_build_ctx *b, const char *key, const char *v, bool from_file, char *why,
                                  size_t cap) {
    cfg_server *s = &b->c->server;
    int64_t i = 0;
    double d = 0;
    cfg_set_result r;
    if (!strcmp(key, "host")) {
        if (!*v) return bad(why, cap, "expected an IPv4 or IPv6 address");
        replace(&s->host, cfg_strdup(b, v));
        return CFG_SET_OK;
    }
    if (!strcmp(key, "port")) {
        if ((r = int_key(v, 0, 65535, false, &i, why, cap)) != CFG_SET_OK) return r;
        s->port = (int)i;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "max_connections")) {
        if ((r = int_key(v, 1, 100000, false, &i, why, cap)) != CFG_SET_OK) return r;
        s->max_connections = (int)i;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "timeout") || !strcmp(key, "shutdown_grace")) {
        bool timeout = key[0] == 't';
        if (!cfg_parse_duration(v, false, &d) || d > 86400 || (timeout && d <= 0))
            return bad(why, cap, "expected a duration %s up to 24h such as 600s or 10m, got '%.60s'",
                       timeout ? "above 0" : "from 0", v);
        *(timeout ? &s->timeout_s : &s->shutdown_grace_s) = d;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "max_keep_alive")) {
        if (!cfg_parse_duration(v, true, &d))
            return bad(why, cap, "expected a duration such as 1h or forever, got '%.60s'", v);
        s->max_keep_alive_s = d;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "max_body") || !strcmp(key, "max_header")) {
        bool body = !strcmp(key, "max_body");
        int64_t lo = body ? 1024 : 1024, hi = body ? (int64_t)1 << 30 : (int64_t)1 << 20;
        if (!cfg_parse_size(v, &i) || i < lo || i > hi)
            return bad(why, cap, "expected a size from 1KiB to %s such as 8MiB, got '%.60s'", body ? "1GiB" : "1MiB", v);
        *(body ? &s->max_body : &s->max_header) = i;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "allow_unauthenticated")) {
        if (!parse_bool(v, &s->allow_unauthenticated)) return bad(why, cap, "expected true or false, got '%.60s'", v);
        return CFG_SET_OK;
    }
    if (!strcmp(key, "cors_origins")) return cfg_add_cors_origins(b, v, why, cap);
    if (!strcmp(key, "model_store")) {
        if (!*v) return bad(why, cap, "expected a directory");
        replace(&s->model_store, cfg_path(b, v, from_file));
        return CFG_SET_OK;
    }
    if (!strcmp(key, "memory_budget")) {
        size_t n = strlen(v);
        if (!strcmp(v, "unlimited")) {
            s->memory_budget = 0;
            s->memory_budget_pct = 0;
            return CFG_SET_OK;
        }
        if (n > 1 && v[n - 1] == '%') {
            char num[32];
            if (n - 1 < sizeof num) {
                memcpy(num, v, n - 1);
                num[n - 1] = '\0';
                if (parse_num(num, 0, 100, &d) && d > 0) {
                    s->memory_budget = 0;
                    s->memory_budget_pct = d;
                    return CFG_SET_OK;
                }
            }
        } else if (cfg_parse_size(v, &i) && i > 0) {
            s->memory_budget = i;
            s->memory_budget_pct = 0;
            return CFG_SET_OK;
        }
        return bad(why, cap, "expected a size such as 8GiB, a percentage of RAM such as 75%%, or unlimited, got '%.60s'",
                   v);
    }
    return CFG_SET_UNKNOWN;
}

static const char *const pooling_names[] = {"none", "mean", "cls", "last"};

bool cfg_parse_pooling(const char *v, int32_t *out) {
    if (!strcmp(v, "default")) return *out = -1, true;
    for (int32_t i = 0; i < 4; i++)
        if (!strcmp(v, pooling_names[i])) return *out = i, true;
    return false;
}

const char *cfg_pooling_name(int32_t p) { return p >= 0 && p < 4 ? pooling_names[p] : "default"; }

cfg_set_result cfg_set_embeddings_key(cfg_embeddings *e, const char *key, const char *v, char *why, size_t cap) {
    int64_t i = 0;
    cfg_set_result r;
    if (!strcmp(key, "cache")) {
        if (!parse_bool(v, &e->cache)) return bad(why, cap, "expected true or false, got '%.60s'", v);
        return CFG_SET_OK;
    }
    if (!strcmp(key, "cache_max_entries")) {
        if ((r = int_key(v, 1, (int64_t)1 << 30, false, &i, why, cap)) != CFG_SET_OK) return r;
        e->cache_max_entries = i;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "cache_max_bytes")) {
        if (!cfg_parse_size(v, &i) || i < 1024 || i > ((int64_t)1 << 40))
            return bad(why, cap, "expected a size from 1KiB to 1TiB such as 64MiB, got '%.60s'", v);
        e->cache_max_bytes = i;
        return CFG_SET_OK;
    }
    if (!strcmp(key, "cache_ttl")) {
        double d = 0;
        if (!cfg_parse_duration(v, true, &d))
            return bad(why, cap, "expected a duration such as 1h, 0 or forever, got '%.60s'", v);
        e->cache_ttl_s = d < 0 ? 0 : d;
        return CFG_SET_OK;
    }
    static const struct { const char *key; int64_t lo, hi; size_t off; } ints[] = {
        {"max_inputs", 1, 1 << 20, offsetof(cfg_embeddings, max_inputs)},
        {"max_request_tokens", 1, 1 << 30, offsetof(cfg_embeddings, max_request_tokens)},
        {"batch_tokens", 16, 1 << 20, offsetof(cfg_embeddings, batch_tokens)},
        {"max_queue", 1, 1 << 24, offsetof(cfg_embeddings, max_queue)},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        if (strcmp(key, ints[k].key) != 0) continue;
        if ((r = int_key(v, ints[k].lo, ints[k].hi, false, &i, why, cap)) != CFG_SET_OK) return r;
        *(int32_t *)((char *)e + ints[k].off) = (int32_t)i;
        return CFG_SET_OK;
    }
    return CFG_SET_UNKNOWN;
}
