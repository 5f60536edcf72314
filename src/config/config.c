/* Building a configuration in layers (defaults < file < environment < settings), then
 * checking it as a whole: every model gets a name, a file or an address, valid defaults
 * merged in, and names and aliases are unique. Also the small helpers over a built
 * config (find, copy, compare). Never prints; problems go into cfg_errors. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "config/config_internal.h"

void cfg_error(cfg_build_ctx *b, cfg_loc at, const char *key, const char *fmt, ...) {
    cfg_errors *e = b->errs;
    if (e->n >= CFG_MAX_ERRORS) {
        e->more++;
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *out = e->msg[e->n++];
    size_t cap = sizeof e->msg[0];
    if (at.line > 0) snprintf(out, cap, "%s:%d:%d: %s: %s", b->file, at.line, at.col, key, msg);
    else snprintf(out, cap, "%s: %s: %s", at.origin ? at.origin : "configuration", key, msg);
}

void cfg_model_defaults(cfg_model *m) {
    m->ttl_s = 600;
    m->ctx = 0;
    m->slots = 8;
    m->max_queue = 64;
    m->threads = 0;
    m->preload = false;
    m->pooling = -1;
}

static void defaults(cfg_config *c) {
    c->server.port = 8080;
    c->server.timeout_s = 600;
    c->server.max_connections = 256;
    c->server.max_body = (int64_t)8 << 20;
    c->server.max_header = (int64_t)16 << 10;
    c->server.shutdown_grace_s = 5;
    c->server.memory_budget_pct = 80;
    c->server.max_keep_alive_s = 3600;
    cfg_limits_defaults(&c->limits);
    c->embeddings = (cfg_embeddings){.cache = true, .cache_max_entries = 10000, .cache_max_bytes = (int64_t)64 << 20,
                                     .cache_ttl_s = 3600, .max_inputs = 2048, .max_request_tokens = 300000, .batch_tokens = 2048, .max_queue = 8192};
    cfg_model_defaults(&c->defaults);
}

cfg_model *cfg_add_model(cfg_build_ctx *b, cfg_loc at) {
    cfg_config *c = b->c;
    if (c->n_models >= CFG_MAX_MODELS) return NULL;
    cfg_model *grown = mem_realloc_array(c->models, c->n_models + 1, sizeof *grown);
    if (grown) c->models = grown;
    cfg_model_locs *locs = grown ? mem_realloc_array(b->locs, c->n_models + 1, sizeof *locs) : NULL;
    if (!locs) {
        b->nomem = true;
        return NULL;
    }
    b->locs = locs;
    cfg_model *m = &c->models[c->n_models];
    memset(m, 0, sizeof *m);
    m->line = at.line;
    m->col = at.col;
    b->locs[c->n_models] = (cfg_model_locs){.entry = at, .name = at, .path = at, .url = at, .sha256 = at};
    c->n_models++;
    return m;
}

void cfg_model_clear(cfg_model *m) {
    mem_free(m->name);
    for (size_t i = 0; i < m->n_aliases; i++) mem_free(m->aliases[i]);
    mem_free(m->aliases);
    mem_free(m->path);
    mem_free(m->url);
    mem_free(m->sha256);
    mem_free(m->chat_template);
    for (size_t i = 0; i < m->n_adapters; i++) {
        mem_free(m->adapters[i].name);
        mem_free(m->adapters[i].path);
    }
    mem_free(m->adapters);
    memset(m, 0, sizeof *m);
}

static bool dup_str(char **dst, const char *src) {
    if (!src) return true;
    *dst = mem_strdup(src);
    return *dst != NULL;
}

hearth_status cfg_model_copy(cfg_model *dst, const cfg_model *src) {
    *dst = *src;
    dst->name = dst->path = dst->url = dst->sha256 = dst->chat_template = NULL;
    dst->aliases = NULL;
    dst->adapters = NULL;
    dst->n_aliases = dst->n_adapters = 0;
    bool ok = dup_str(&dst->name, src->name) && dup_str(&dst->path, src->path) && dup_str(&dst->url, src->url) &&
              dup_str(&dst->sha256, src->sha256) && dup_str(&dst->chat_template, src->chat_template);
    if (ok && src->n_aliases) {
        ok = (dst->aliases = mem_calloc(src->n_aliases, sizeof *dst->aliases)) != NULL;
        for (size_t i = 0; ok && i < src->n_aliases; i++, dst->n_aliases++)
            ok = dup_str(&dst->aliases[i], src->aliases[i]);
    }
    if (ok && src->n_adapters) {
        ok = (dst->adapters = mem_calloc(src->n_adapters, sizeof *dst->adapters)) != NULL;
        for (size_t i = 0; ok && i < src->n_adapters; i++, dst->n_adapters++) {
            dst->adapters[i].scale = src->adapters[i].scale;
            ok = dup_str(&dst->adapters[i].name, src->adapters[i].name) &&
                 dup_str(&dst->adapters[i].path, src->adapters[i].path);
        }
    }
    if (!ok) {
        cfg_model_clear(dst);
        return HEARTH_ERR_NOMEM;
    }
    return HEARTH_OK;
}

void cfg_free(cfg_config *c) {
    if (!c) return;
    mem_free(c->source);
    mem_free(c->server.host);
    mem_free(c->server.model_store);
    cfg_free_security(c);
    cfg_model_clear(&c->defaults);
    for (size_t i = 0; i < c->n_models; i++) cfg_model_clear(&c->models[i]);
    mem_free(c->models);
    mem_free(c->gateway_json);
    mem_free(c);
}

static bool str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

bool cfg_model_same_load(const cfg_model *a, const cfg_model *b) {
    if (!str_eq(a->path, b->path) || !str_eq(a->url, b->url) || !str_eq(a->sha256, b->sha256) ||
        !str_eq(a->chat_template, b->chat_template) || a->ctx != b->ctx || a->slots != b->slots ||
        a->threads != b->threads || a->max_queue != b->max_queue || a->n_adapters != b->n_adapters)
        return false;
    for (size_t i = 0; i < a->n_adapters; i++)
        if (!str_eq(a->adapters[i].name, b->adapters[i].name) || !str_eq(a->adapters[i].path, b->adapters[i].path) ||
            a->adapters[i].scale != b->adapters[i].scale)
            return false;
    return true;
}

const cfg_model *cfg_find_model(const cfg_config *c, const char *name) {
    for (size_t i = 0; i < c->n_models; i++) {
        const cfg_model *m = &c->models[i];
        if (m->name && !strcmp(m->name, name)) return m;
        for (size_t k = 0; k < m->n_aliases; k++)
            if (!strcmp(m->aliases[k], name)) return m;
    }
    return NULL;
}

/* ---- environment and settings ---------------------------------------------------- */

static const struct { const char *var, *key; } env_keys[] = {
    {"HEARTH_HOST", "server.host"},
    {"HEARTH_PORT", "server.port"},
    {"HEARTH_TIMEOUT", "server.timeout"},
    {"HEARTH_MAX_BODY", "server.max_body"},
    {"HEARTH_MAX_CONNECTIONS", "server.max_connections"},
    {"HEARTH_MODELS", "server.model_store"},
    {"HEARTH_MEMORY_BUDGET", "server.memory_budget"},
    {"HEARTH_MAX_KEEP_ALIVE", "server.max_keep_alive"},
    {"HEARTH_CORS_ORIGINS", "server.cors_origins"},
    {"HEARTH_MODEL", "model"},
    {"HEARTH_CTX", "models.ctx"},
    {"HEARTH_SLOTS", "models.slots"},
    {"HEARTH_THREADS", "models.threads"},
    {"HEARTH_MAX_QUEUE", "models.max_queue"},
    {"HEARTH_MAX_QUEUE_WAIT", "models.max_queue_wait"},
    {"HEARTH_TTL", "models.ttl"},
};

/* The model name a file gives: its base name without ".gguf". */
static bool stem_name(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
    if (n == 0 || n >= cap) return false;
    memcpy(out, base, n);
    out[n] = '\0';
    return cfg_valid_name(out);
}

/* "PATH[:SCALE]" (--lora): an adapter named after its file, appended to m. */
static void add_cli_adapter(cfg_build_ctx *b, cfg_model *m, cfg_loc at, const char *v) {
    char path[4096], name[CFG_NAME_MAX + 1];
    double scale = 1.0;
    snprintf(path, sizeof path, "%s", v);
    char *colon = strrchr(path, ':');
    if (colon && colon[1]) {
        char *end = NULL;
        double d = strtod(colon + 1, &end);
        if (end != colon + 1 && !*end) {
            if (!(d >= -100 && d <= 100)) {
                cfg_error(b, at, "lora", "scale must be a number from -100 to 100, got '%.60s'", colon + 1);
                return;
            }
            scale = d;
            *colon = '\0';
        }
    }
    if (!*path || !stem_name(path, name, sizeof name) || strchr(name, ':')) {
        cfg_error(b, at, "lora", "expected ADAPTER.gguf[:SCALE] whose file name makes an adapter name, got '%.80s'", v);
        return;
    }
    if (m->n_adapters >= CFG_MAX_ADAPTERS) {
        cfg_error(b, at, "lora", "at most %d adapters", CFG_MAX_ADAPTERS);
        return;
    }
    cfg_adapter *list = mem_realloc_array(m->adapters, m->n_adapters + 1, sizeof *list);
    if (!list) {
        b->nomem = true;
        return;
    }
    m->adapters = list;
    list[m->n_adapters] = (cfg_adapter){cfg_strdup(b, name), cfg_path(b, path, false), scale};
    m->n_adapters++;
}

/* The model -m/HEARTH_MODEL named: its index, or -1 (b->c has none yet). */
typedef struct settings_state {
    long cli_model;
} settings_state;

static void apply_setting(cfg_build_ctx *b, settings_state *ss, const cfg_setting *s) {
    cfg_loc at = {.origin = s->origin};
    char why[200];
    cfg_set_result r = CFG_SET_UNKNOWN;
    const char *dot = strchr(s->key, '.');
    if (!strcmp(s->key, "model")) {
        char name[CFG_NAME_MAX + 1];
        if (!*s->value) {
            cfg_error(b, at, "model", "expected a GGUF file path");
            return;
        }
        if (!stem_name(s->value, name, sizeof name)) {
            cfg_error(b, at, "model", "the file name of '%.80s' does not make a valid model name; name it in a config file",
                      s->value);
            return;
        }
        cfg_model *m = NULL;
        for (size_t i = 0; i < b->c->n_models; i++)
            if (b->c->models[i].name && !strcmp(b->c->models[i].name, name)) m = &b->c->models[i];
        if (!m) {
            if (!(m = cfg_add_model(b, at))) {
                if (!b->nomem) cfg_error(b, at, "model", "at most %d models", CFG_MAX_MODELS);
                return;
            }
            m->name = cfg_strdup(b, name);
        }
        mem_free(m->url);
        m->url = NULL;
        mem_free(m->path);
        m->path = cfg_path(b, s->value, false);
        m->preload = true;
        m->set |= CFG_M_PRELOAD;
        ss->cli_model = m - b->c->models;
        b->locs[ss->cli_model].path = at;
        return;
    }
    if (dot && !strncmp(s->key, "server.", 7)) {
        r = cfg_set_server_key(b, dot + 1, s->value, false, why, sizeof why);
    } else if (dot && !strncmp(s->key, "models.", 7)) {
        r = cfg_set_model_key(b, &b->c->defaults, true, dot + 1, s->value, false, why, sizeof why);
        for (size_t i = 0; r == CFG_SET_OK && i < b->c->n_models; i++)
            r = cfg_set_model_key(b, &b->c->models[i], true, dot + 1, s->value, false, why, sizeof why);
    } else if (dot && !strncmp(s->key, "limits.", 7)) {
        r = cfg_set_limits_key(&b->c->limits, dot + 1, s->value, why, sizeof why);
    } else if (dot && !strncmp(s->key, "embeddings.", 11)) {
        r = cfg_set_embeddings_key(&b->c->embeddings, dot + 1, s->value, why, sizeof why);
    } else if (dot && !strncmp(s->key, "defaults.", 9)) {
        r = cfg_set_model_key(b, &b->c->defaults, true, dot + 1, s->value, false, why, sizeof why);
    } else if (!strcmp(s->key, "model.lora")) {
        if (ss->cli_model < 0) {
            cfg_error(b, at, "lora", "needs a model given with -m or HEARTH_MODEL");
            return;
        }
        add_cli_adapter(b, &b->c->models[ss->cli_model], at, s->value);
        return;
    } else if (!strcmp(s->key, "model.chat_template")) {
        if (ss->cli_model < 0) {
            cfg_error(b, at, "chat_template", "needs a model given with -m or HEARTH_MODEL");
            return;
        }
        r = cfg_set_model_key(b, &b->c->models[ss->cli_model], false, "chat_template", s->value, false, why, sizeof why);
    }
    if (r == CFG_SET_UNKNOWN) cfg_error(b, at, s->key, "unknown setting");
    else if (r == CFG_SET_BAD) cfg_error(b, at, s->key, "%s", why);
}

/* ---- whole-config checks ------------------------------------------------------------ */

static void merge_defaults(cfg_model *m, const cfg_model *d) {
    if (!(m->set & CFG_M_PRELOAD)) m->preload = d->preload;
    if (!(m->set & CFG_M_TTL)) m->ttl_s = d->ttl_s;
    if (!(m->set & CFG_M_CTX)) m->ctx = d->ctx;
    if (!(m->set & CFG_M_SLOTS)) m->slots = d->slots;
    if (!(m->set & CFG_M_THREADS)) m->threads = d->threads;
    if (!(m->set & CFG_M_MAX_QUEUE)) m->max_queue = d->max_queue;
    if (!(m->set & CFG_M_MAX_QUEUE_WAIT)) m->max_queue_wait_s = d->max_queue_wait_s;
    if (!(m->set & CFG_M_POOLING)) m->pooling = d->pooling;
    cfg_sampling *s = &m->sampling;
    const cfg_sampling *ds = &d->sampling;
    unsigned take = ds->set & ~s->set;
    if (take & CFG_S_TEMPERATURE) s->temperature = ds->temperature;
    if (take & CFG_S_TOP_P) s->top_p = ds->top_p;
    if (take & CFG_S_TOP_K) s->top_k = ds->top_k;
    if (take & CFG_S_MIN_P) s->min_p = ds->min_p;
    if (take & CFG_S_REPEAT_PENALTY) s->repeat_penalty = ds->repeat_penalty;
    if (take & CFG_S_PRESENCE) s->presence_penalty = ds->presence_penalty;
    if (take & CFG_S_FREQUENCY) s->frequency_penalty = ds->frequency_penalty;
    if (take & CFG_S_SEED) s->seed = ds->seed;
    if (take & CFG_S_MAX_TOKENS) s->max_tokens = ds->max_tokens;
    s->set |= take;
}

static void check_models(cfg_build_ctx *b) {
    cfg_config *c = b->c;
    for (size_t i = 0; i < c->n_models; i++) {
        cfg_model *m = &c->models[i];
        cfg_model_locs *L = &b->locs[i];
        char kp[48];
        snprintf(kp, sizeof kp, "models[%zu]", i);
        merge_defaults(m, &c->defaults);
        if (!m->name) {
            cfg_error(b, L->entry, kp, "a model needs a name");
            continue;
        }
        if (!m->path && !m->url) cfg_error(b, L->entry, kp, "model '%s' needs a path or a url", m->name);
        if (m->path && m->url) cfg_error(b, L->url, kp, "model '%s' has both a path and a url: give one", m->name);
        char file[256];
        if (m->url && !cfg_url_file_name(m->url, file, sizeof file))
            cfg_error(b, L->url, kp,
                      "the url of '%s' does not end in a usable file name ([A-Za-z0-9._+-], not starting with a dot)",
                      m->name);
        /* names and aliases: unique across every model */
        for (size_t k = 0; k <= m->n_aliases; k++) {
            const char *nm = k == 0 ? m->name : m->aliases[k - 1];
            cfg_loc at = k == 0 ? L->name : L->alias[k - 1];
            char key[64];
            if (k == 0) snprintf(key, sizeof key, "%s.name", kp);
            else snprintf(key, sizeof key, "%s.aliases[%zu]", kp, k - 1);
            bool dup = false;
            for (size_t j = 0; j <= i && !dup; j++) {
                const cfg_model *o = &c->models[j];
                size_t upto = j == i ? k : o->n_aliases + 1;
                for (size_t q = 0; q < upto && !dup; q++) {
                    const char *on = q == 0 ? o->name : o->aliases[q - 1];
                    if (on && !strcmp(on, nm)) {
                        dup = true;
                        cfg_error(b, at, key, "'%s' is already used by model '%s'%s", nm, o->name ? o->name : "?",
                                  q == 0 ? "" : " (as an alias)");
                    }
                }
            }
        }
        /* adapters: requests name them as "model:adapter" */
        for (size_t k = 0; k < m->n_adapters; k++) {
            const char *an = m->adapters[k].name;
            char key[64];
            snprintf(key, sizeof key, "%s.adapters[%zu].name", kp, k);
            if (an && strchr(an, ':')) cfg_error(b, L->entry, key, "adapter name '%s' may not contain ':'", an);
            for (size_t j = 0; an && j < k; j++)
                if (m->adapters[j].name && !strcmp(m->adapters[j].name, an))
                    cfg_error(b, L->entry, key, "model '%s' has two adapters named '%s'", m->name, an);
        }
    }
}

static hearth_status finish(cfg_build_ctx *b, const cfg_setting *settings, size_t n, bool use_env, hearth_err *err) {
    settings_state ss = {.cli_model = -1};
    if (use_env) {
        for (size_t i = 0; i < sizeof env_keys / sizeof env_keys[0]; i++) {
            const char *v = getenv(env_keys[i].var);
            if (!v) continue;
            char origin[64];
            snprintf(origin, sizeof origin, "environment %s", env_keys[i].var);
            cfg_setting s = {env_keys[i].key, v, origin};
            apply_setting(b, &ss, &s);
        }
    }
    for (size_t i = 0; i < n; i++) apply_setting(b, &ss, &settings[i]);
    if (!b->nomem) check_models(b);
    if (!b->nomem) cfg_gateway_finish(b);
    if (!b->nomem) cfg_check_security(b);
    if (b->nomem) return err_set(err, HEARTH_ERR_NOMEM, "out of memory reading the configuration");
    if (b->errs->n == 0) return HEARTH_OK;
    size_t others = b->errs->n - 1 + b->errs->more;
    if (others) err_set(err, HEARTH_ERR_INVALID, "%s (and %zu more)", b->errs->msg[0], others);
    else err_set(err, HEARTH_ERR_INVALID, "%s", b->errs->msg[0]);
    return HEARTH_ERR_INVALID;
}

/* dir: where relative paths in the text are taken from (NULL: as written). */
static hearth_status build(const char *text, size_t len, const char *name, const char *dir, bool use_env,
                           const cfg_setting *settings, size_t n, cfg_config **out, cfg_errors *errs, hearth_err *err) {
    *out = NULL;
    memset(errs, 0, sizeof *errs);
    cfg_config *c = mem_calloc(1, sizeof *c);
    cfg_build_ctx b = {.c = c, .errs = errs, .file = name ? name : "(config)"};
    hearth_status st = HEARTH_ERR_NOMEM;
    if (!c) {
        err_set(err, st, "out of memory reading the configuration");
        goto done;
    }
    defaults(c);
    if (name) {
        c->source = mem_strdup(name);
        b.dir = dir ? mem_strdup(dir) : NULL;
        if (!c->source || (dir && !b.dir)) {
            err_set(err, st, "out of memory reading the configuration");
            goto done;
        }
    }
    if (text) cfg_read_yaml(&b, text, len);
    st = finish(&b, settings, n, use_env, err);
done:
    cfg_gateway_build_free(&b);
    mem_free(b.dir);
    mem_free(b.locs);
    if (st != HEARTH_OK) cfg_free(c);
    else *out = c;
    return st;
}

hearth_status cfg_build_text(const char *text, size_t len, const char *name, bool use_env, const cfg_setting *settings,
                             size_t n, cfg_config **out, cfg_errors *errs, hearth_err *err) {
    return build(text, len, name ? name : "(config)", NULL, use_env, settings, n, out, errs, err);
}

hearth_status cfg_build(const char *path, bool use_env, const cfg_setting *settings, size_t n, cfg_config **out,
                        cfg_errors *errs, hearth_err *err) {
    if (!path) return build(NULL, 0, NULL, NULL, use_env, settings, n, out, errs, err);
    *out = NULL;
    memset(errs, 0, sizeof *errs);
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, errno == ENOENT ? HEARTH_ERR_NOT_FOUND : HEARTH_ERR_IO, "%s: cannot open the config file: %s",
                       path, strerror(errno));
    char *text = mem_alloc(CFG_FILE_MAX + 1);
    size_t len = text ? fread(text, 1, CFG_FILE_MAX + 1, f) : 0;
    bool bad = ferror(f);
    fclose(f);
    if (!text) return err_set(err, HEARTH_ERR_NOMEM, "out of memory reading %s", path);
    if (bad || len > CFG_FILE_MAX) {
        mem_free(text);
        return err_set(err, HEARTH_ERR_IO, "%s: %s", path, bad ? "read error" : "config file larger than 1 MiB");
    }
    /* relative paths in the file are relative to the file's own directory */
    char *real = realpath(path, NULL), *slash = real ? strrchr(real, '/') : NULL;
    if (slash) *(slash == real ? slash + 1 : slash) = '\0';
    hearth_status st = build(text, len, path, real, use_env, settings, n, out, errs, err);
    free(real); /* from realpath, not mem_* */
    mem_free(text);
    return st;
}
