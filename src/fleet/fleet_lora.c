/* LoRA adapters of the fleet's loaded models: each instance's registry of named
 * adapters (the configured ones opened with the model; a configured adapter that fails
 * leaves the model serving and is kept as failed with its error), run-time loads and
 * unloads, lookups for leases ("base:adapter" names and the request's lora list), and
 * the adapter rows of a snapshot. An adapter is opened and checked in full before it is
 * visible; unloading drops only the registry's reference, so running sequences that
 * hold their own finish unaffected. The registry lock is taken after fleet.mu, never
 * before it. Never prints; never touches HTTP. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "fleet/fleet_internal.h"

typedef struct fleet_adapter {
    char name[CFG_NAME_MAX + 1];
    char path[4096];
    double scale;
    bool configured;
    model_lora *lora;             /* NULL: failed */
    char error[512];
} fleet_adapter;

struct fleet_loras {
    pthread_mutex_t mu;
    const model *m;
    fleet_adapter *a;             /* [n] */
    size_t n, cap;
};

bool fleet_split_adapter(const char *name, char *base, size_t cap, const char **adapter) {
    const char *colon = strrchr(name, ':');
    if (!colon || colon == name || !colon[1] || (size_t)(colon - name) >= cap) return false;
    memcpy(base, name, (size_t)(colon - name));
    base[colon - name] = '\0';
    *adapter = colon + 1;
    return true;
}

bool fleet_valid_adapter_name(const char *name) { return cfg_valid_name(name) && !strchr(name, ':'); }

static fleet_adapter *find_locked(fleet_loras *r, const char *name) {
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->a[i].name, name)) return &r->a[i];
    return NULL;
}

/* A new row for name (replacing a failed one of that name); NULL on NOMEM. */
static fleet_adapter *add_locked(fleet_loras *r, const char *name) {
    fleet_adapter *a = find_locked(r, name);
    if (a) {
        model_lora_release(a->lora);
        memset(a, 0, sizeof *a);
    } else {
        if (r->n == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 4;
            fleet_adapter *grown = mem_realloc_array(r->a, cap, sizeof *grown);
            if (!grown) return NULL;
            r->a = grown;
            r->cap = cap;
        }
        a = &r->a[r->n++];
        memset(a, 0, sizeof *a);
    }
    snprintf(a->name, sizeof a->name, "%s", name);
    return a;
}

static void report(const fleet_hooks *h, const char *model_name, const char *level, const char *what,
                   const char *detail) {
    if (h && h->event) h->event(h->ud, level, model_name, what, detail);
}

hearth_status fleet_loras_new(const cfg_model *mc, const model *m, const fleet_hooks *hooks, fleet_loras **out,
                              hearth_err *err) {
    *out = NULL;
    fleet_loras *r = mem_calloc(1, sizeof *r);
    if (!r || pthread_mutex_init(&r->mu, NULL) != 0) {
        mem_free(r);
        return err_set(err, HEARTH_ERR_NOMEM, "model '%s': out of memory for its adapters", mc->name);
    }
    r->m = m;
    for (size_t i = 0; i < mc->n_adapters; i++) {
        const cfg_adapter *c = &mc->adapters[i];
        if (find_locked(r, c->name)) continue; /* the first of a repeated name wins */
        fleet_adapter *a = add_locked(r, c->name);
        if (!a) {
            fleet_loras_free(r);
            return err_set(err, HEARTH_ERR_NOMEM, "model '%s': out of memory for its adapters", mc->name);
        }
        snprintf(a->path, sizeof a->path, "%s", c->path);
        a->scale = c->scale;
        a->configured = true;
        hearth_err e = {0};
        if (!fleet_valid_adapter_name(c->name))
            err_set(&e, HEARTH_ERR_INVALID, "adapter name '%s' may not contain ':' (requests name it as model:adapter)",
                    c->name);
        else
            model_lora_open(m, c->path, &a->lora, &e);
        char detail[700];
        if (!a->lora) {
            snprintf(a->error, sizeof a->error, "%s", e.msg);
            snprintf(detail, sizeof detail, "adapter '%s': %s", c->name, e.msg);
            report(hooks, mc->name, "error", "adapter failed", detail);
        } else {
            snprintf(detail, sizeof detail, "adapter '%s' (%s, rank %lld)", c->name, c->path,
                     (long long)model_lora_rank(a->lora));
            report(hooks, mc->name, "info", "adapter ready", detail);
        }
    }
    *out = r;
    return HEARTH_OK;
}

void fleet_loras_free(fleet_loras *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) model_lora_release(r->a[i].lora);
    mem_free(r->a);
    pthread_mutex_destroy(&r->mu);
    mem_free(r);
}

hearth_status fleet_loras_get(fleet_loras *r, const char *model_name, const char *name, model_lora_use *use,
                              hearth_err *err) {
    *use = (model_lora_use){0};
    if (!r) return err_set(err, HEARTH_ERR_NOT_FOUND, "the model '%s' has no adapter '%.200s'", model_name, name);
    pthread_mutex_lock(&r->mu);
    const fleet_adapter *a = find_locked(r, name);
    hearth_status st = HEARTH_OK;
    if (!a) st = err_set(err, HEARTH_ERR_NOT_FOUND, "the model '%s' has no adapter '%.200s'", model_name, name);
    else if (!a->lora)
        st = err_set(err, HEARTH_ERR_UNSUPPORTED, "adapter '%s' of model '%s' failed to load: %s", name, model_name,
                     a->error);
    else *use = (model_lora_use){model_lora_retain(a->lora), (float)a->scale};
    pthread_mutex_unlock(&r->mu);
    return st;
}

hearth_status fleet_loras_add(fleet_loras *r, const char *model_name, const char *name, const char *path, double scale,
                              hearth_err *err) {
    if (!fleet_valid_adapter_name(name))
        return err_set(err, HEARTH_ERR_INVALID,
                       "'%.60s' is not a valid adapter name (1 to %d of A-Z a-z 0-9 . _ @ + / -, no ':')", name,
                       CFG_NAME_MAX);
    if (!(scale >= -FLEET_ADAPTER_SCALE_MAX && scale <= FLEET_ADAPTER_SCALE_MAX))
        return err_set(err, HEARTH_ERR_INVALID, "adapter scale must be a number from %g to %g", -FLEET_ADAPTER_SCALE_MAX,
                       FLEET_ADAPTER_SCALE_MAX);
    if (strlen(path) >= sizeof ((fleet_adapter *)0)->path)
        return err_set(err, HEARTH_ERR_INVALID, "adapter path is too long");
    pthread_mutex_lock(&r->mu);
    const fleet_adapter *old = find_locked(r, name);
    bool taken = old && old->lora;
    pthread_mutex_unlock(&r->mu);
    if (taken)
        return err_set(err, HEARTH_ERR_INVALID, "model '%s' already has an adapter '%s': unload it first", model_name,
                       name);
    model_lora *lora = NULL;
    hearth_status st = model_lora_open(r->m, path, &lora, err);
    if (st) return st;
    pthread_mutex_lock(&r->mu);
    old = find_locked(r, name);
    fleet_adapter *a = NULL;
    if (old && old->lora) st = err_set(err, HEARTH_ERR_INVALID, "model '%s' already has an adapter '%s'", model_name, name);
    else if (!(a = add_locked(r, name))) st = err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    if (a) {
        snprintf(a->path, sizeof a->path, "%s", path);
        a->scale = scale;
        a->lora = lora;
        lora = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    model_lora_release(lora);
    return st;
}

hearth_status fleet_loras_remove(fleet_loras *r, const char *model_name, const char *name, hearth_err *err) {
    pthread_mutex_lock(&r->mu);
    fleet_adapter *a = find_locked(r, name);
    model_lora *drop = NULL;
    if (a) {
        drop = a->lora;
        *a = r->a[--r->n];
    }
    pthread_mutex_unlock(&r->mu);
    model_lora_release(drop);
    if (!a) return err_set(err, HEARTH_ERR_NOT_FOUND, "the model '%s' has no adapter '%.200s'", model_name, name);
    return HEARTH_OK;
}

bool fleet_loras_has(fleet_loras *r, const cfg_model *mc, const char *name) {
    if (!r) {
        for (size_t i = 0; i < mc->n_adapters; i++)
            if (!strcmp(mc->adapters[i].name, name)) return true;
        return false;
    }
    pthread_mutex_lock(&r->mu);
    bool has = find_locked(r, name) != NULL;
    pthread_mutex_unlock(&r->mu);
    return has;
}

static void info_of(fleet_adapter_info *o, const fleet_adapter *a) {
    snprintf(o->name, sizeof o->name, "%s", a->name);
    snprintf(o->path, sizeof o->path, "%s", a->path);
    o->scale = a->scale;
    o->configured = a->configured;
    o->state = a->lora ? "ready" : "failed";
    snprintf(o->error, sizeof o->error, "%s", a->error);
    if (!a->lora) return;
    o->rank = model_lora_rank(a->lora);
    o->alpha = model_lora_alpha(a->lora);
    o->n_targets = model_lora_n_targets(a->lora);
    o->n_kinds = model_lora_target_kinds(a->lora, o->kinds, sizeof o->kinds / sizeof o->kinds[0]);
    if (o->n_kinds > sizeof o->kinds / sizeof o->kinds[0]) o->n_kinds = sizeof o->kinds / sizeof o->kinds[0];
}

hearth_status fleet_loras_info(fleet_loras *r, const cfg_model *mc, fleet_adapter_info **out, size_t *n) {
    *out = NULL;
    *n = 0;
    if (r) pthread_mutex_lock(&r->mu);
    size_t count = r ? r->n : mc->n_adapters;
    fleet_adapter_info *list = count ? mem_calloc(count, sizeof *list) : NULL;
    if (list) {
        for (size_t i = 0; i < count; i++) {
            if (r) {
                info_of(&list[i], &r->a[i]);
                continue;
            }
            snprintf(list[i].name, sizeof list[i].name, "%s", mc->adapters[i].name);
            snprintf(list[i].path, sizeof list[i].path, "%s", mc->adapters[i].path);
            list[i].scale = mc->adapters[i].scale;
            list[i].configured = true;
            list[i].state = "not loaded";
        }
    }
    if (r) pthread_mutex_unlock(&r->mu);
    if (count && !list) return HEARTH_ERR_NOMEM;
    *out = list;
    *n = count;
    return HEARTH_OK;
}
