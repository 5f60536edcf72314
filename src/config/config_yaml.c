/* The YAML layer of the configuration: libyaml composes the document, this file walks
 * it against the schema (server, defaults, models) and hands every scalar to the key
 * setters. Each problem is reported at the node it concerns, as file:line:column and the
 * key path ("models[1].ctx"). Unknown and repeated keys are errors; YAML aliases are
 * followed but every list is capped, so no input makes the walk large. Never prints. */
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "base/mem.h"
#include "config/config_internal.h"

typedef struct walk {
    cfg_build_ctx *b;
    yaml_document_t *doc;
} walk;

static cfg_loc loc_of(const yaml_node_t *n) {
    return (cfg_loc){.line = (int)n->start_mark.line + 1, .col = (int)n->start_mark.column + 1};
}

static yaml_node_t *node(walk *w, int i) { return yaml_document_get_node(w->doc, i); }

static const char *kind_name(const yaml_node_t *n) {
    return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a value";
}

/* The text of a scalar node; NULL (with an error) for lists, mappings and empty values. */
static const char *scalar(walk *w, const yaml_node_t *n, const char *path) {
    if (n->type != YAML_SCALAR_NODE) {
        cfg_error(w->b, loc_of(n), path, "expected a single value, got %s", kind_name(n));
        return NULL;
    }
    const char *v = (const char *)n->data.scalar.value;
    bool plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (strlen(v) != n->data.scalar.length) {
        cfg_error(w->b, loc_of(n), path, "the value contains a NUL character");
        return NULL;
    }
    if (plain && (!*v || !strcmp(v, "~") || !strcmp(v, "null"))) {
        cfg_error(w->b, loc_of(n), path, "needs a value");
        return NULL;
    }
    return v;
}

/* Checks the keys of a mapping are scalars and not repeated; false (reported) if not. */
static bool keys_ok(walk *w, const yaml_node_t *map, const char *path) {
    bool ok = true;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(w, p->key);
        if (!k || k->type != YAML_SCALAR_NODE) {
            cfg_error(w->b, k ? loc_of(k) : loc_of(map), path, "keys must be plain names, not %s",
                      k ? kind_name(k) : "nothing");
            ok = false;
            continue;
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = node(w, q->key);
            if (k2 && k2->type == YAML_SCALAR_NODE && !strcmp((char *)k2->data.scalar.value, (char *)k->data.scalar.value)) {
                cfg_error(w->b, loc_of(k), path, "key '%.60s' is repeated (first at line %d)",
                          (char *)k->data.scalar.value, (int)k2->start_mark.line + 1);
                ok = false;
                break;
            }
        }
    }
    return ok;
}

static bool expect(walk *w, const yaml_node_t *n, yaml_node_type_t type, const char *path) {
    if (n->type == type) return true;
    cfg_error(w->b, loc_of(n), path, "expected %s, got %s",
              type == YAML_MAPPING_NODE ? "a mapping" : type == YAML_SEQUENCE_NODE ? "a list" : "a value", kind_name(n));
    return false;
}

/* fn(..., v == NULL) only asks whether the key exists (UNKNOWN or BAD). */
typedef cfg_set_result (*setter_fn)(walk *w, void *target, const char *key, const char *v, char *why, size_t cap);

/* Sets every scalar key of map through fn; sub(w, target, key, value node, path) handles
 * the keys fn does not know (NULL: none). */
typedef bool (*sub_fn)(walk *w, void *target, const char *key, yaml_node_t *v, const char *path);

static void each_key(walk *w, yaml_node_t *map, const char *path, void *target, setter_fn fn, sub_fn sub) {
    if (!expect(w, map, YAML_MAPPING_NODE, path) || !keys_ok(w, map, path)) return;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(w, p->key), *v = node(w, p->value);
        const char *key = (const char *)k->data.scalar.value;
        char kp[160], why[200];
        snprintf(kp, sizeof kp, "%s%s%s", path, *path ? "." : "", key);
        if (sub && sub(w, target, key, v, kp)) continue;
        if (fn(w, target, key, NULL, why, sizeof why) == CFG_SET_UNKNOWN) {
            cfg_error(w->b, loc_of(k), kp, "unknown key");
            continue;
        }
        const char *s = scalar(w, v, kp);
        if (!s) continue;
        cfg_set_result r = fn(w, target, key, s, why, sizeof why);
        if (r == CFG_SET_UNKNOWN) cfg_error(w->b, loc_of(k), kp, "unknown key");
        else if (r == CFG_SET_BAD) cfg_error(w->b, loc_of(v), kp, "%s", why);
    }
}

static cfg_set_result server_setter(walk *w, void *t, const char *key, const char *v, char *why, size_t cap) {
    if (!v) {
        cfg_config probe_cfg = {0};
        cfg_build_ctx probe = {.c = &probe_cfg};
        cfg_set_result r = cfg_set_server_key(&probe, key, "", false, why, cap);
        mem_free(probe_cfg.server.host);
        mem_free(probe_cfg.server.model_store);
        return r == CFG_SET_UNKNOWN ? r : CFG_SET_BAD;
    }
    return cfg_set_server_key(w->b, key, v, true, why, cap);
}

static cfg_set_result model_setter_impl(walk *w, cfg_model *m, bool is_defaults, const char *key, const char *v,
                                        char *why, size_t cap) {
    if (!v) {
        cfg_model probe = {0};
        cfg_set_result r = cfg_set_model_key(w->b, &probe, is_defaults, key, "", false, why, cap);
        cfg_model_clear(&probe);
        return r == CFG_SET_UNKNOWN ? r : CFG_SET_BAD;
    }
    return cfg_set_model_key(w->b, m, is_defaults, key, v, true, why, cap);
}

static cfg_set_result model_setter(walk *w, void *t, const char *key, const char *v, char *why, size_t cap) {
    return model_setter_impl(w, t, false, key, v, why, cap);
}

static cfg_set_result defaults_setter(walk *w, void *t, const char *key, const char *v, char *why, size_t cap) {
    return model_setter_impl(w, t, true, key, v, why, cap);
}

static cfg_set_result sampling_setter(walk *w, void *t, const char *key, const char *v, char *why, size_t cap) {
    if (!v) {
        cfg_sampling probe = {0};
        return cfg_set_sampling_key(&probe, key, "0", why, cap) == CFG_SET_UNKNOWN ? CFG_SET_UNKNOWN : CFG_SET_BAD;
    }
    return cfg_set_sampling_key(t, key, v, why, cap);
}

typedef struct adapter_target {
    cfg_adapter *a;
} adapter_target;

static cfg_set_result adapter_setter(walk *w, void *t, const char *key, const char *v, char *why, size_t cap) {
    cfg_adapter *a = ((adapter_target *)t)->a;
    bool known = !strcmp(key, "name") || !strcmp(key, "path") || !strcmp(key, "scale");
    if (!known) return CFG_SET_UNKNOWN;
    if (!v) return CFG_SET_BAD;
    if (!strcmp(key, "name")) {
        if (!cfg_valid_name(v)) {
            snprintf(why, cap, "'%.60s' is not a valid adapter name", v);
            return CFG_SET_BAD;
        }
        mem_free(a->name);
        a->name = cfg_strdup(w->b, v);
    } else if (!strcmp(key, "path")) {
        mem_free(a->path);
        a->path = cfg_path(w->b, v, true);
    } else {
        char *end = NULL;
        double d = strtod(v, &end);
        if (*end || end == v || !(d >= -100 && d <= 100)) {
            snprintf(why, cap, "expected a number from -100 to 100, got '%.60s'", v);
            return CFG_SET_BAD;
        }
        a->scale = d;
    }
    return CFG_SET_OK;
}

static bool sampling_sub(walk *w, void *t, const char *key, yaml_node_t *v, const char *path) {
    if (strcmp(key, "sampling") != 0) return false;
    each_key(w, v, path, &((cfg_model *)t)->sampling, sampling_setter, NULL);
    return true;
}

static bool model_sub(walk *w, void *t, const char *key, yaml_node_t *v, const char *path) {
    cfg_model *m = t;
    cfg_model_locs *L = &w->b->locs[m - w->b->c->models];
    if (sampling_sub(w, t, key, v, path)) return true;
    if (!strcmp(key, "name") || !strcmp(key, "path") || !strcmp(key, "url") || !strcmp(key, "sha256")) {
        cfg_loc *at = key[0] == 'n' ? &L->name : key[0] == 'p' ? &L->path : key[0] == 'u' ? &L->url : &L->sha256;
        *at = loc_of(v);
        return false; /* the scalar setter does the rest */
    }
    if (!strcmp(key, "aliases")) {
        if (!expect(w, v, YAML_SEQUENCE_NODE, path)) return true;
        size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (n > CFG_MAX_ALIASES) {
            cfg_error(w->b, loc_of(v), path, "at most %d aliases, got %zu", CFG_MAX_ALIASES, n);
            return true;
        }
        char **list = mem_calloc(n ? n : 1, sizeof *list);
        if (!list) {
            w->b->nomem = true;
            return true;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *item = node(w, v->data.sequence.items.start[i]);
            char ip[180];
            snprintf(ip, sizeof ip, "%s[%zu]", path, i);
            const char *s = scalar(w, item, ip);
            if (!s) continue;
            if (!cfg_valid_name(s)) {
                cfg_error(w->b, loc_of(item), ip, "'%.60s' is not a valid model name (1 to %d of A-Z a-z 0-9 . _ : @ + / -)",
                          s, CFG_NAME_MAX);
                continue;
            }
            L->alias[k] = loc_of(item);
            list[k++] = cfg_strdup(w->b, s);
        }
        for (size_t i = 0; i < m->n_aliases; i++) mem_free(m->aliases[i]);
        mem_free(m->aliases);
        m->aliases = list;
        m->n_aliases = k;
        return true;
    }
    if (!strcmp(key, "adapters")) {
        if (!expect(w, v, YAML_SEQUENCE_NODE, path)) return true;
        size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (n > CFG_MAX_ADAPTERS) {
            cfg_error(w->b, loc_of(v), path, "at most %d adapters, got %zu", CFG_MAX_ADAPTERS, n);
            return true;
        }
        cfg_adapter *list = mem_calloc(n ? n : 1, sizeof *list);
        if (!list) {
            w->b->nomem = true;
            return true;
        }
        for (size_t i = 0; i < m->n_adapters; i++) {
            mem_free(m->adapters[i].name);
            mem_free(m->adapters[i].path);
        }
        mem_free(m->adapters);
        m->adapters = list;
        m->n_adapters = n;
        for (size_t i = 0; i < n; i++) {
            yaml_node_t *item = node(w, v->data.sequence.items.start[i]);
            char ip[180];
            snprintf(ip, sizeof ip, "%s[%zu]", path, i);
            list[i].scale = 1.0;
            adapter_target at = {&list[i]};
            size_t before = w->b->errs->n + w->b->errs->more;
            each_key(w, item, ip, &at, adapter_setter, NULL);
            if (w->b->errs->n + w->b->errs->more == before && (!list[i].name || !list[i].path))
                cfg_error(w->b, loc_of(item), ip, "an adapter needs a name and a path");
        }
        return true;
    }
    return false;
}

static void read_models(walk *w, yaml_node_t *seq) {
    if (!expect(w, seq, YAML_SEQUENCE_NODE, "models")) return;
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node(w, seq->data.sequence.items.start[i]);
        char path[32];
        snprintf(path, sizeof path, "models[%zu]", i);
        cfg_model *m = cfg_add_model(w->b, loc_of(item));
        if (!m) {
            cfg_error(w->b, loc_of(item), path, "at most %d models", CFG_MAX_MODELS);
            return;
        }
        each_key(w, item, path, m, model_setter, model_sub);
    }
}

/* ---- security sections ------------------------------------------------------------ */

/* A list of strings, or one scalar, appended through cfg_list_add or cfg_add_cors_origins. */
static void read_strings(walk *w, yaml_node_t *v, const char *path, char ***list, size_t *n, bool cors) {
    size_t count = v->type == YAML_SEQUENCE_NODE ? (size_t)(v->data.sequence.items.top - v->data.sequence.items.start) : 1;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item = v->type == YAML_SEQUENCE_NODE ? node(w, v->data.sequence.items.start[i]) : v;
        char ip[180], why[200];
        snprintf(ip, sizeof ip, v->type == YAML_SEQUENCE_NODE ? "%s[%zu]" : "%s", path, i);
        const char *s = scalar(w, item, ip);
        if (!s) continue;
        bool ok = cors ? cfg_add_cors_origins(w->b, s, why, sizeof why) == CFG_SET_OK
                       : cfg_list_add(w->b, list, n, s, why, sizeof why);
        if (!ok) {
            cfg_error(w->b, loc_of(item), ip, "%s", why);
            return;
        }
    }
}

static bool server_sub(walk *w, void *t, const char *key, yaml_node_t *v, const char *path) {
    if (strcmp(key, "cors_origins") != 0 || v->type != YAML_SEQUENCE_NODE) return false;
    read_strings(w, v, path, NULL, NULL, true);
    return true;
}

static cfg_set_result limits_setter(walk *w, void *t, const char *key, const char *v, char *why, size_t cap) {
    if (!v) {
        cfg_limits probe;
        return cfg_set_limits_key(&probe, key, "", why, cap) == CFG_SET_UNKNOWN ? CFG_SET_UNKNOWN : CFG_SET_BAD;
    }
    return cfg_set_limits_key(t, key, v, why, cap);
}

static cfg_set_result api_key_setter(walk *w, void *t, const char *key, const char *v, char *why, size_t cap) {
    if (!v) {
        cfg_api_key probe = {0};
        return cfg_set_api_key_key(w->b, &probe, key, "", false, why, cap) == CFG_SET_UNKNOWN ? CFG_SET_UNKNOWN
                                                                                            : CFG_SET_BAD;
    }
    return cfg_set_api_key_key(w->b, t, key, v, true, why, cap);
}

static bool api_key_sub(walk *w, void *t, const char *key, yaml_node_t *v, const char *path) {
    cfg_api_key *k = t;
    if (!strcmp(key, "models")) {
        cfg_list_free(&k->models, &k->n_models);
        read_strings(w, v, path, &k->models, &k->n_models, false);
        return true;
    }
    if (!strcmp(key, "tools") && v->type == YAML_SEQUENCE_NODE) {
        cfg_list_free(&k->tool_names, &k->n_tool_names);
        read_strings(w, v, path, &k->tool_names, &k->n_tool_names, false);
        k->tools = true;
        return true;
    }
    return false;
}

static void read_keys(walk *w, yaml_node_t *seq) {
    if (!expect(w, seq, YAML_SEQUENCE_NODE, "keys")) return;
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node(w, seq->data.sequence.items.start[i]);
        char path[32];
        snprintf(path, sizeof path, "keys[%zu]", i);
        cfg_api_key *k = cfg_add_api_key(w->b, loc_of(item));
        if (!k) {
            if (!w->b->nomem) cfg_error(w->b, loc_of(item), path, "at most %d keys", CFG_MAX_KEYS);
            return;
        }
        each_key(w, item, path, k, api_key_setter, api_key_sub);
    }
}

static void read_root(walk *w, yaml_node_t *root) {
    if (!expect(w, root, YAML_MAPPING_NODE, "(top level)") || !keys_ok(w, root, "")) return;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(w, p->key), *v = node(w, p->value);
        const char *key = (const char *)k->data.scalar.value;
        if (!strcmp(key, "server")) each_key(w, v, "server", NULL, server_setter, server_sub);
        else if (!strcmp(key, "keys")) read_keys(w, v);
        else if (!strcmp(key, "limits")) each_key(w, v, "limits", &w->b->c->limits, limits_setter, NULL);
        else if (!strcmp(key, "defaults")) each_key(w, v, "defaults", &w->b->c->defaults, defaults_setter, sampling_sub);
        else if (!strcmp(key, "models")) read_models(w, v);
        else if (!strcmp(key, "providers") || !strcmp(key, "routes") || !strcmp(key, "breaker") || !strcmp(key, "retry") ||
                 !strcmp(key, "gateway"))
            cfg_gateway_yaml(w->b, w->doc, key, v);
        else
            cfg_error(w->b, loc_of(k), key,
                      "unknown key (expected server, limits, keys, defaults, models, providers, routes, breaker, retry or gateway)");
    }
}

void cfg_read_yaml(cfg_build_ctx *b, const char *text, size_t len) {
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        b->nomem = true;
        return;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        cfg_loc at = {.line = (int)parser.problem_mark.line + 1, .col = (int)parser.problem_mark.column + 1};
        cfg_error(b, at, "(syntax)", "%s%s%s", parser.problem ? parser.problem : "malformed YAML",
                  parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return;
    }
    walk w = {.b = b, .doc = &doc};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        read_root(&w, root);
        yaml_document_t extra;
        if (yaml_parser_load(&parser, &extra)) {
            yaml_node_t *r2 = yaml_document_get_root_node(&extra);
            if (r2) cfg_error(b, loc_of(r2), "(document)", "only one YAML document is allowed");
            yaml_document_delete(&extra);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}
