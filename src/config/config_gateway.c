/* The gateway sections of the configuration (providers, routes, breaker, retry, and
 * gateway: {seed, max_shadows}): the
 * YAML subtree becomes the JSON tree gw_config_parse reads (plain scalars typed as YAML
 * reads them: integers, reals, true/false; quoted scalars stay strings), which checks
 * every field. Its errors are placed at the YAML node they name ("routes[1].targets[0]").
 * Then the whole-config rules only the configuration can check: a route name is not a
 * model name or alias, and a local target names a configured model. Never reads the
 * environment (provider keys are read when the server builds the gateway), never prints. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/mem.h"
#include "config/config_internal.h"
#include "gateway/gw.h"

#define MAX_DEPTH 12
#define MAX_NODES 20000
#define MAX_PLACES 1024
#define PLACE_PATH 128

typedef struct place {
    char path[PLACE_PATH];
    cfg_loc at;
} place;

struct cfg_gateway_build {
    json_t *root;   /* {"providers": [...], ...} */
    place *places;  /* where each node of the sections is (grown on demand, at most MAX_PLACES) */
    size_t n_places, cap_places;
    size_t nodes;
};

static cfg_loc loc_of(const yaml_node_t *n) {
    return (cfg_loc){.line = (int)n->start_mark.line + 1, .col = (int)n->start_mark.column + 1};
}

/* False only when out of memory. */
static bool remember(cfg_gateway_build *g, const char *path, const yaml_node_t *n) {
    if (g->n_places >= MAX_PLACES || strlen(path) >= PLACE_PATH) return true;
    if (g->n_places == g->cap_places) {
        size_t cap = g->cap_places ? 2 * g->cap_places : 16;
        place *grown = mem_realloc_array(g->places, cap, sizeof *grown);
        if (!grown) return false;
        g->places = grown;
        g->cap_places = cap;
    }
    place *p = &g->places[g->n_places++];
    snprintf(p->path, sizeof p->path, "%s", path);
    p->at = loc_of(n);
    return true;
}

static bool all_digits(const char *s, size_t from) {
    if (!s[from]) return false;
    for (size_t i = from; s[i]; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

/* A plain scalar as YAML 1.2's core schema reads it. */
static json_t *typed_scalar(const char *v) {
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE")) return json_true();
    if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE")) return json_false();
    if (!*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL")) return json_null();
    if (all_digits(v, (v[0] == '-' || v[0] == '+') ? 1 : 0)) {
        errno = 0;
        long long i = strtoll(v, NULL, 10);
        if (errno == 0) return json_integer(i);
    }
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    bool numeric = end != v && *end == '\0' && errno == 0 && (isdigit((unsigned char)v[0]) || v[0] == '-' ||
                                                              v[0] == '+' || v[0] == '.');
    if (numeric && !strpbrk(v, "xXnN")) return json_real(d); /* no hex, inf or nan */
    return json_string(v);
}

static json_t *convert(cfg_build_ctx *b, yaml_document_t *doc, yaml_node_t *n, const char *path, int depth) {
    cfg_gateway_build *g = b->gateway;
    if (depth > MAX_DEPTH || ++g->nodes > MAX_NODES) {
        cfg_error(b, loc_of(n), path, "nested too deeply or too large");
        return NULL;
    }
    if (!remember(g, path, n)) {
        b->nomem = true;
        return NULL;
    }
    if (n->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)n->data.scalar.value;
        if (strlen(v) != n->data.scalar.length) {
            cfg_error(b, loc_of(n), path, "the value contains a NUL character");
            return NULL;
        }
        json_t *j = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? typed_scalar(v) : json_string(v);
        if (!j) cfg_error(b, loc_of(n), path, "is not valid UTF-8");
        return j;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        json_t *arr = json_array();
        if (!arr) b->nomem = true;
        size_t i = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; arr && it < n->data.sequence.items.top; it++, i++) {
            char p[PLACE_PATH + 32];
            snprintf(p, sizeof p, "%s[%zu]", path, i);
            json_t *v = convert(b, doc, yaml_document_get_node(doc, *it), p, depth + 1);
            if (!v) {
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, v);
        }
        return arr;
    }
    json_t *obj = json_object();
    if (!obj) b->nomem = true;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; obj && pr < n->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(doc, pr->key), *v = yaml_document_get_node(doc, pr->value);
        if (!k || k->type != YAML_SCALAR_NODE) {
            cfg_error(b, loc_of(k ? k : n), path, "keys must be plain names");
            json_decref(obj);
            return NULL;
        }
        const char *key = (const char *)k->data.scalar.value;
        char p[PLACE_PATH + 80];
        snprintf(p, sizeof p, "%s.%.60s", path, key);
        if (json_object_get(obj, key)) {
            cfg_error(b, loc_of(k), p, "key is repeated");
            json_decref(obj);
            return NULL;
        }
        json_t *jv = convert(b, doc, v, p, depth + 1);
        if (!jv) {
            json_decref(obj);
            return NULL;
        }
        json_object_set_new(obj, key, jv);
    }
    return obj;
}

static cfg_gateway_build *gateway_of(cfg_build_ctx *b) {
    if (b->gateway) return b->gateway;
    cfg_gateway_build *g = mem_calloc(1, sizeof *g);
    if (g) g->root = json_object();
    if (!g || !g->root) {
        if (g) {
            json_decref(g->root);
            mem_free(g->places);
        }
        mem_free(g);
        b->nomem = true;
        return NULL;
    }
    b->gateway = g;
    return g;
}

void cfg_gateway_yaml(cfg_build_ctx *b, yaml_document_t *doc, const char *key, yaml_node_t *node) {
    cfg_gateway_build *g = gateway_of(b);
    if (!g) return;
    json_t *v = convert(b, doc, node, key, 0);
    if (!v || strcmp(key, "gateway") != 0) {
        if (v) json_object_set_new(g->root, key, v);
        return;
    }
    /* gateway: {seed, max_shadows}: the settings of the gateway as a whole */
    const char *k;
    json_t *item;
    if (!json_is_object(v)) cfg_error(b, loc_of(node), "gateway", "expected a mapping (seed, max_shadows)");
    json_object_foreach(v, k, item) {
        if (strcmp(k, "seed") != 0 && strcmp(k, "max_shadows") != 0)
            cfg_error(b, loc_of(node), "gateway", "unknown key '%.60s' (expected seed or max_shadows)", k);
        else
            json_object_set(g->root, k, item);
    }
    json_decref(v);
}

void cfg_gateway_build_free(cfg_build_ctx *b) {
    if (!b->gateway) return;
    json_decref(b->gateway->root);
    mem_free(b->gateway->places);
    mem_free(b->gateway);
    b->gateway = NULL;
}

/* The place named by the longest path that starts msg ("routes[1].targets[0]: ..."). */
static const place *place_of(const cfg_gateway_build *g, const char *msg) {
    const place *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < g->n_places; i++) {
        size_t n = strlen(g->places[i].path);
        if (n <= best_len || strncmp(msg, g->places[i].path, n) != 0) continue;
        char next = msg[n];
        if (next == '\0' || next == ':' || next == ' ' || next == '.' || next == '[') {
            best = &g->places[i];
            best_len = n;
        }
    }
    return best;
}

static const place *place_exact(const cfg_gateway_build *g, const char *path) {
    for (size_t i = 0; i < g->n_places; i++)
        if (!strcmp(g->places[i].path, path)) return &g->places[i];
    return NULL;
}

static cfg_loc loc_at(const cfg_build_ctx *b, const char *path) {
    const place *p = place_exact(b->gateway, path);
    return p ? p->at : (cfg_loc){.origin = b->file};
}

/* A local target that is no model name: "local:MODEL:ADAPTER" (split at the last ':')
 * with ADAPTER configured on MODEL, as a request's "model" would name it. */
static void check_adapter_target(cfg_build_ctx *b, cfg_loc at, const char *path, const char *t) {
    const char *name = t + 6, *colon = strrchr(name, ':');
    char base[CFG_NAME_MAX + 1];
    size_t n = colon ? (size_t)(colon - name) : 0;
    const cfg_model *m = NULL;
    if (colon && n > 0 && n <= CFG_NAME_MAX) {
        memcpy(base, name, n);
        base[n] = '\0';
        m = cfg_find_model(b->c, base);
    }
    if (!m) {
        cfg_error(b, at, path, "'%s' names no configured model", t);
        return;
    }
    for (size_t a = 0; a < m->n_adapters; a++)
        if (m->adapters[a].name && !strcmp(m->adapters[a].name, colon + 1)) return;
    cfg_error(b, at, path, "'%s': model '%s' has no configured adapter '%s'", t, base, colon + 1);
}

/* Rules across sections: route names are not model names, local targets exist (a model,
 * or a model with one of its configured adapters). */
static void check_names(cfg_build_ctx *b, const gw_config *gc) {
    for (size_t i = 0; i < gc->n_routes; i++) {
        const gw_route_config *r = &gc->routes[i];
        char path[64];
        snprintf(path, sizeof path, "routes[%zu].name", i);
        const cfg_model *m = cfg_find_model(b->c, r->name);
        if (m)
            cfg_error(b, loc_at(b, path), path,
                      "'%s' is already the name or an alias of model '%s': routes and models share one namespace",
                      r->name, m->name ? m->name : "?");
        /* "MODEL:X" is the id of MODEL's adapter X (requests, local targets): not a route */
        const char *colon = strrchr(r->name, ':');
        char base[CFG_NAME_MAX + 1];
        size_t bn = colon ? (size_t)(colon - r->name) : 0;
        const cfg_model *bm = NULL;
        if (!m && bn > 0 && bn <= CFG_NAME_MAX) {
            memcpy(base, r->name, bn);
            base[bn] = '\0';
            bm = cfg_find_model(b->c, base);
        }
        if (bm)
            cfg_error(b, loc_at(b, path), path,
                      "'%s' reads as an adapter of model '%s' (MODEL:ADAPTER): routes and models share one namespace",
                      r->name, bm->name ? bm->name : "?");
        for (size_t k = 0; k < r->n_targets; k++) {
            const char *t = r->targets[k].target;
            if (strncmp(t, "local:", 6) != 0 || cfg_find_model(b->c, t + 6)) continue;
            char tp[80];
            snprintf(tp, sizeof tp, "routes[%zu].targets[%zu]", i, k);
            check_adapter_target(b, loc_at(b, tp), tp, t);
        }
    }
}

void cfg_gateway_finish(cfg_build_ctx *b) {
    cfg_gateway_build *g = b->gateway;
    if (!g || b->nomem || json_object_size(g->root) == 0) return;
    gw_config *gc = NULL;
    hearth_err err = {0};
    hearth_status st = gw_config_parse(g->root, &gc, &err);
    if (st == HEARTH_ERR_NOMEM) {
        b->nomem = true;
        return;
    }
    if (st != HEARTH_OK) {
        static const char prefix[] = "gateway config: ";
        const char *msg = strncmp(err.msg, prefix, sizeof prefix - 1) ? err.msg : err.msg + sizeof prefix - 1;
        const place *p = place_of(g, msg);
        if (p) {
            const char *rest = msg + strlen(p->path);
            while (*rest == ':' || *rest == ' ') rest++;
            cfg_error(b, p->at, p->path, "%s", *rest ? rest : msg);
        } else {
            cfg_error(b, (cfg_loc){.origin = b->file}, "gateway", "%s", msg);
        }
        return;
    }
    check_names(b, gc);
    gw_config_free(gc);
    char *text = json_dumps(g->root, JSON_COMPACT);
    if (!text) {
        b->nomem = true;
        return;
    }
    b->c->gateway_json = cfg_strdup(b, text);
    free(text); /* from jansson */
}
