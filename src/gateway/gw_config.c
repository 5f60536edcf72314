/* The gateway's configuration from its JSON form (the YAML config maps onto the same
 * tree; shape in docs/CONFIG.md, "Gateway"). Every field is type- and range-checked and
 * unknown fields are refused, so a typo is an error naming the field, not a default
 * silently used. Never reads the environment (keys are read by gw_new). */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "gateway/gw.h"

#define MAX_PROVIDERS 64
#define MAX_ROUTES 256
#define MAX_TARGETS GW_MAX_ROUTE_TARGETS
#define MAX_MODELS 1024
#define MAX_NAME 63
#define MAX_TIMEOUT_S 86400.0

static const gw_retry_config retry_defaults = {
    .base_ms = 250,
    .cap_ms = 8000,
    .retry_after_cap_ms = 30000,
    .budget_ratio = 0.1,
    .budget_min_per_s = 1,
    .budget_burst = 10,
    .local_max_attempts = 1,
};

const char *gw_strategy_name(gw_strategy s) {
    switch (s) {
    case GW_FALLBACK: return "fallback";
    case GW_WEIGHTED: return "weighted";
    case GW_RACE: return "race";
    case GW_SHADOW: return "shadow";
    }
    return "unknown";
}

void gw_config_free(gw_config *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n_providers; i++) {
        gw_provider_config *p = &c->providers[i];
        mem_free(p->name);
        mem_free(p->base_url);
        mem_free(p->api_key_env);
        for (size_t k = 0; k < p->n_models; k++) {
            mem_free(p->models[k].name);
            mem_free(p->models[k].upstream);
        }
        mem_free(p->models);
    }
    mem_free(c->providers);
    for (size_t i = 0; i < c->n_routes; i++) {
        gw_route_config *r = &c->routes[i];
        mem_free(r->name);
        for (size_t k = 0; k < r->n_targets; k++) mem_free(r->targets[k].target);
        mem_free(r->targets);
    }
    mem_free(c->routes);
    mem_free(c);
}

/* ---- field helpers: each returns false with err set, naming path.key -------------- */

static bool fail(hearth_err *err, hearth_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(hearth_err *err, hearth_status st, const char *fmt, ...) {
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err_set(err, st, "gateway config: %s", msg);
    return false;
}

static bool only_keys(const json_t *obj, const char *path, const char *const *allowed, hearth_err *err) {
    if (!json_is_object(obj)) return fail(err, HEARTH_ERR_INVALID, "%s must be an object", path);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++) known = !strcmp(key, *a);
        if (!known) return fail(err, HEARTH_ERR_INVALID, "%s.%.64s is not a known field", path, key);
    }
    return true;
}

static bool is_name(const char *s, bool allow_slash) {
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '-' && c != '_' && c != '.' && c != ':' && !(allow_slash && c == '/')) return false;
    }
    return true;
}

static bool get_string(const json_t *obj, const char *key, const char *path, bool required, char **out,
                       hearth_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v) return required ? fail(err, HEARTH_ERR_INVALID, "%s.%s is required", path, key) : true;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 2048 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return fail(err, HEARTH_ERR_INVALID, "%s.%s must be a non-empty string", path, key);
    *out = mem_strdup(json_string_value(v));
    return *out ? true : fail(err, HEARTH_ERR_NOMEM, "out of memory");
}

static bool get_number(const json_t *obj, const char *key, const char *path, double lo, double hi, double *out,
                       hearth_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v) return true;
    if (!json_is_number(v)) return fail(err, HEARTH_ERR_INVALID, "%s.%s must be a number", path, key);
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi)
        return fail(err, HEARTH_ERR_INVALID, "%s.%s must be between %g and %g (got %g)", path, key, lo, hi, d);
    *out = d;
    return true;
}

static bool get_int(const json_t *obj, const char *key, const char *path, long long lo, long long hi, long long *out,
                    hearth_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!v) return true;
    if (!json_is_integer(v)) return fail(err, HEARTH_ERR_INVALID, "%s.%s must be an integer", path, key);
    long long i = json_integer_value(v);
    if (i < lo || i > hi)
        return fail(err, HEARTH_ERR_INVALID, "%s.%s must be between %lld and %lld (got %lld)", path, key, lo, hi, i);
    *out = i;
    return true;
}

/* Seconds (fractional) into milliseconds. */
static bool get_seconds_ms(const json_t *obj, const char *key, const char *path, uint32_t *ms, hearth_err *err) {
    double s = (double)*ms / 1000.0;
    if (!get_number(obj, key, path, 0, MAX_TIMEOUT_S, &s, err)) return false;
    *ms = (uint32_t)llround(s * 1000.0);
    return true;
}

/* ---- providers ------------------------------------------------------------------------ */

static bool parse_models(const json_t *m, const char *path, gw_provider_config *p, hearth_err *err) {
    if (!m) return true;
    if (!json_is_object(m)) return fail(err, HEARTH_ERR_INVALID, "%s.models must be an object (name: upstream)", path);
    size_t n = json_object_size(m);
    if (n > MAX_MODELS) return fail(err, HEARTH_ERR_INVALID, "%s.models has more than %d entries", path, MAX_MODELS);
    p->models = n ? mem_calloc(n, sizeof *p->models) : NULL;
    if (n && !p->models) return fail(err, HEARTH_ERR_NOMEM, "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)m, key, v) {
        if (!is_name(key, true))
            return fail(err, HEARTH_ERR_INVALID, "%s.models: '%.64s' is not a valid model name", path, key);
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 256)
            return fail(err, HEARTH_ERR_INVALID, "%s.models.%s must be a non-empty string", path, key);
        gw_alias *a = &p->models[p->n_models++];
        a->name = mem_strdup(key);
        a->upstream = mem_strdup(json_string_value(v));
        if (!a->name || !a->upstream) return fail(err, HEARTH_ERR_NOMEM, "out of memory");
    }
    return true;
}

static bool parse_provider(const json_t *o, const char *path, gw_provider_config *p, hearth_err *err) {
    static const char *const keys[] = {"name", "kind", "base_url", "api_key_env", "models",
                                       "timeouts", "max_attempts", "max_line_bytes", NULL};
    static const char *const tkeys[] = {"connect_s", "first_byte_s", "idle_s", "total_s", NULL};
    *p = (gw_provider_config){.connect_timeout_ms = 10000,
                              .first_byte_timeout_ms = 60000,
                              .idle_timeout_ms = 60000,
                              .total_timeout_ms = 600000,
                              .max_attempts = 2};
    if (!only_keys(o, path, keys, err) || !get_string(o, "name", path, true, &p->name, err)) return false;
    if (!is_name(p->name, false) || strchr(p->name, ':'))
        return fail(err, HEARTH_ERR_INVALID, "%s.name must be letters, digits, '-', '_' or '.'", path);
    char *kind = NULL;
    if (!get_string(o, "kind", path, false, &kind, err)) return false;
    bool known = !kind || !strcmp(kind, "openai");
    mem_free(kind);
    if (!known) return fail(err, HEARTH_ERR_INVALID, "%s.kind must be \"openai\"", path);
    if (!get_string(o, "base_url", path, true, &p->base_url, err) ||
        !get_string(o, "api_key_env", path, false, &p->api_key_env, err))
        return false;
    if (p->api_key_env) {
        for (const char *c = p->api_key_env; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '_')
                return fail(err, HEARTH_ERR_INVALID, "%s.api_key_env must be an environment variable name", path);
    }
    if (!parse_models(json_object_get(o, "models"), path, p, err)) return false;
    json_t *t = json_object_get(o, "timeouts");
    if (t) {
        char tp[96];
        snprintf(tp, sizeof tp, "%s.timeouts", path);
        if (!only_keys(t, tp, tkeys, err) || !get_seconds_ms(t, "connect_s", tp, &p->connect_timeout_ms, err) ||
            !get_seconds_ms(t, "first_byte_s", tp, &p->first_byte_timeout_ms, err) ||
            !get_seconds_ms(t, "idle_s", tp, &p->idle_timeout_ms, err) ||
            !get_seconds_ms(t, "total_s", tp, &p->total_timeout_ms, err))
            return false;
    }
    long long attempts = p->max_attempts, line = 0;
    if (!get_int(o, "max_attempts", path, 1, 10, &attempts, err) ||
        !get_int(o, "max_line_bytes", path, 1024, 64LL << 20, &line, err))
        return false;
    p->max_attempts = (int)attempts;
    p->max_line = (size_t)line;
    return true;
}

/* ---- routes ----------------------------------------------------------------------------- */

static bool parse_strategy(const json_t *o, const char *path, gw_route_config *r, hearth_err *err) {
    json_t *s = json_object_get(o, "strategy");
    json_t *mode = json_object_get(o, "collaborate");
    const char *name = s ? json_string_value(s) : "fallback";
    if (!name) return fail(err, HEARTH_ERR_INVALID, "%s.strategy must be a string", path);
    if (!strcmp(name, "collaborate")) {
        name = json_string_value(mode);
        if (!name || (strcmp(name, "race") != 0 && strcmp(name, "shadow") != 0))
            return fail(err, HEARTH_ERR_INVALID, "%s.collaborate must be \"race\" or \"shadow\"", path);
    } else if (mode) {
        return fail(err, HEARTH_ERR_INVALID, "%s.collaborate is only for strategy \"collaborate\"", path);
    }
    if (!strcmp(name, "fallback")) r->strategy = GW_FALLBACK;
    else if (!strcmp(name, "weighted")) r->strategy = GW_WEIGHTED;
    else if (!strcmp(name, "race")) r->strategy = GW_RACE;
    else if (!strcmp(name, "shadow")) r->strategy = GW_SHADOW;
    else
        return fail(err, HEARTH_ERR_INVALID, "%s.strategy must be fallback, weighted or collaborate (got '%.32s')",
                    path, name);
    return true;
}

static bool parse_target(const json_t *v, const char *path, const gw_config *c, gw_route_target *t, hearth_err *err) {
    static const char *const keys[] = {"target", "weight", NULL};
    const json_t *name = v;
    t->weight = 1;
    if (json_is_object(v)) {
        if (!only_keys(v, path, keys, err)) return false;
        name = json_object_get(v, "target");
        long long w = 1;
        if (!get_int(v, "weight", path, 0, 1000000, &w, err)) return false;
        t->weight = (uint32_t)w;
    }
    const char *s = json_string_value(name);
    if (!s) return fail(err, HEARTH_ERR_INVALID, "%s must be \"local:MODEL\", \"PROVIDER/MODEL\" or {target, weight}", path);
    if (!strncmp(s, "local:", 6)) {
        if (!is_name(s + 6, true)) return fail(err, HEARTH_ERR_INVALID, "%s: '%.64s' is not a valid model name", path, s);
    } else {
        const char *slash = strchr(s, '/');
        if (!slash || !is_name(slash + 1, true))
            return fail(err, HEARTH_ERR_INVALID, "%s: '%.64s' is neither local:MODEL nor PROVIDER/MODEL", path, s);
        bool found = false;
        for (size_t i = 0; i < c->n_providers && !found; i++)
            found = strlen(c->providers[i].name) == (size_t)(slash - s) &&
                    !strncmp(c->providers[i].name, s, (size_t)(slash - s));
        if (!found) return fail(err, HEARTH_ERR_INVALID, "%s: no provider named '%.*s'", path, (int)(slash - s), s);
    }
    t->target = mem_strdup(s);
    return t->target ? true : fail(err, HEARTH_ERR_NOMEM, "out of memory");
}

static bool parse_route(const json_t *o, const char *path, const gw_config *c, gw_route_config *r, hearth_err *err) {
    static const char *const keys[] = {"name", "strategy", "collaborate", "sticky", "targets", NULL};
    if (!only_keys(o, path, keys, err) || !get_string(o, "name", path, true, &r->name, err) ||
        !parse_strategy(o, path, r, err))
        return false;
    if (!is_name(r->name, true)) return fail(err, HEARTH_ERR_INVALID, "%s.name '%.64s' is not a valid model name", path, r->name);
    json_t *sticky = json_object_get(o, "sticky");
    if (sticky && !json_is_boolean(sticky)) return fail(err, HEARTH_ERR_INVALID, "%s.sticky must be true or false", path);
    r->sticky = json_is_true(sticky);
    if (r->sticky && r->strategy != GW_WEIGHTED)
        return fail(err, HEARTH_ERR_INVALID, "%s.sticky is only for weighted routes", path);
    json_t *ts = json_object_get(o, "targets");
    size_t n = json_array_size(ts);
    if (!json_is_array(ts) || n == 0 || n > MAX_TARGETS)
        return fail(err, HEARTH_ERR_INVALID, "%s.targets must be an array of 1 to %d targets", path, MAX_TARGETS);
    if (r->strategy == GW_RACE && n < 2) return fail(err, HEARTH_ERR_INVALID, "%s: a race needs at least 2 targets", path);
    if (r->strategy == GW_SHADOW && n != 2)
        return fail(err, HEARTH_ERR_INVALID, "%s: shadow takes exactly 2 targets (primary, shadow)", path);
    r->targets = mem_calloc(n, sizeof *r->targets);
    if (!r->targets) return fail(err, HEARTH_ERR_NOMEM, "out of memory");
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        char tp[128];
        snprintf(tp, sizeof tp, "%s.targets[%zu]", path, i);
        if (!parse_target(json_array_get(ts, i), tp, c, &r->targets[i], err)) return false;
        r->n_targets++;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(r->targets[k].target, r->targets[i].target))
                return fail(err, HEARTH_ERR_INVALID, "%s names '%s' twice", tp, r->targets[i].target);
        total += r->targets[i].weight;
    }
    if (r->strategy == GW_WEIGHTED && total == 0)
        return fail(err, HEARTH_ERR_INVALID, "%s: the weights of a weighted route add up to 0", path);
    return true;
}

static bool parse_breaker(const json_t *o, gw_breaker_config *b, hearth_err *err) {
    static const char *const keys[] = {"failures", "failure_ratio", "min_calls", "window_s",
                                       "cooldown_s", "cooldown_max_s", "probes", NULL};
    if (!o) return true;
    long long failures = b->failures, min_calls = b->min_calls, probes = b->probes;
    double window = (double)b->window_ns * 1e-9, cd = (double)b->cooldown_ns * 1e-9,
           cdmax = (double)b->cooldown_max_ns * 1e-9;
    if (!only_keys(o, "breaker", keys, err) || !get_int(o, "failures", "breaker", 0, 1000, &failures, err) ||
        !get_number(o, "failure_ratio", "breaker", 0, 1, &b->failure_ratio, err) ||
        !get_int(o, "min_calls", "breaker", 1, 1000000, &min_calls, err) ||
        !get_number(o, "window_s", "breaker", 1, MAX_TIMEOUT_S, &window, err) ||
        !get_number(o, "cooldown_s", "breaker", 0.001, MAX_TIMEOUT_S, &cd, err) ||
        !get_number(o, "cooldown_max_s", "breaker", 0.001, MAX_TIMEOUT_S, &cdmax, err) ||
        !get_int(o, "probes", "breaker", 1, 100, &probes, err))
        return false;
    if (cdmax < cd) return fail(err, HEARTH_ERR_INVALID, "breaker.cooldown_max_s is below breaker.cooldown_s");
    b->failures = (int)failures;
    b->min_calls = (int)min_calls;
    b->probes = (int)probes;
    b->window_ns = (uint64_t)(window * 1e9);
    b->cooldown_ns = (uint64_t)(cd * 1e9);
    b->cooldown_max_ns = (uint64_t)(cdmax * 1e9);
    return true;
}

static bool parse_retry(const json_t *o, gw_retry_config *r, hearth_err *err) {
    static const char *const keys[] = {"base_s", "cap_s", "retry_after_cap_s", "budget_ratio",
                                       "budget_min_per_s", "budget_burst", "local_max_attempts", NULL};
    if (!o) return true;
    long long local = r->local_max_attempts;
    if (!only_keys(o, "retry", keys, err) || !get_seconds_ms(o, "base_s", "retry", &r->base_ms, err) ||
        !get_seconds_ms(o, "cap_s", "retry", &r->cap_ms, err) ||
        !get_seconds_ms(o, "retry_after_cap_s", "retry", &r->retry_after_cap_ms, err) ||
        !get_number(o, "budget_ratio", "retry", 0, 10, &r->budget_ratio, err) ||
        !get_number(o, "budget_min_per_s", "retry", 0, 1e6, &r->budget_min_per_s, err) ||
        !get_number(o, "budget_burst", "retry", 1, 1e6, &r->budget_burst, err) ||
        !get_int(o, "local_max_attempts", "retry", 1, 10, &local, err))
        return false;
    r->local_max_attempts = (int)local;
    return true;
}

static bool parse_all(const json_t *root, gw_config *c, hearth_err *err) {
    static const char *const keys[] = {"providers", "routes", "breaker", "retry", "seed", "max_shadows", NULL};
    if (!only_keys(root, "gateway", keys, err)) return false;
    json_t *ps = json_object_get(root, "providers");
    if (ps && (!json_is_array(ps) || json_array_size(ps) > MAX_PROVIDERS))
        return fail(err, HEARTH_ERR_INVALID, "providers must be an array of at most %d providers", MAX_PROVIDERS);
    size_t np = json_array_size(ps);
    c->providers = np ? mem_calloc(np, sizeof *c->providers) : NULL;
    if (np && !c->providers) return fail(err, HEARTH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < np; i++) {
        char path[48];
        snprintf(path, sizeof path, "providers[%zu]", i);
        c->n_providers++;
        if (!parse_provider(json_array_get(ps, i), path, &c->providers[i], err)) return false;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(c->providers[k].name, c->providers[i].name))
                return fail(err, HEARTH_ERR_INVALID, "%s.name '%s' is used twice", path, c->providers[i].name);
    }
    json_t *rs = json_object_get(root, "routes");
    if (rs && (!json_is_array(rs) || json_array_size(rs) > MAX_ROUTES))
        return fail(err, HEARTH_ERR_INVALID, "routes must be an array of at most %d routes", MAX_ROUTES);
    size_t nr = json_array_size(rs);
    c->routes = nr ? mem_calloc(nr, sizeof *c->routes) : NULL;
    if (nr && !c->routes) return fail(err, HEARTH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nr; i++) {
        char path[48];
        snprintf(path, sizeof path, "routes[%zu]", i);
        c->n_routes++;
        if (!parse_route(json_array_get(rs, i), path, c, &c->routes[i], err)) return false;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(c->routes[k].name, c->routes[i].name))
                return fail(err, HEARTH_ERR_INVALID, "%s.name '%s' is used twice", path, c->routes[i].name);
    }
    long long seed = 0, shadows = c->max_shadows;
    if (!parse_breaker(json_object_get(root, "breaker"), &c->breaker, err) ||
        !parse_retry(json_object_get(root, "retry"), &c->retry, err) ||
        !get_int(root, "seed", "gateway", 0, INT64_MAX, &seed, err) ||
        !get_int(root, "max_shadows", "gateway", 0, 1024, &shadows, err))
        return false;
    c->seed = (uint64_t)seed;
    c->max_shadows = (int)shadows;
    return true;
}

hearth_status gw_config_parse(const json_t *root, gw_config **out, hearth_err *err) {
    hearth_err local;
    if (!err) err = &local;
    *out = NULL;
    gw_config *c = mem_calloc(1, sizeof *c);
    if (!c) return err_set(err, HEARTH_ERR_NOMEM, "gateway config: out of memory");
    gw_breaker_config_default(&c->breaker);
    c->retry = retry_defaults;
    c->max_shadows = 8;
    if (!parse_all(root, c, err)) {
        gw_config_free(c);
        return err->status;
    }
    *out = c;
    return HEARTH_OK;
}
