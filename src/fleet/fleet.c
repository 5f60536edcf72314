/* The fleet registry and the lifecycle of each configured model:
 *
 *                 acquire / preload / admin load
 *     available ────────────────────────────────► loading ──(file read)──► verifying
 *        ▲  ▲                                       │  │                      │  │
 *        │  └──────(budget full: BUSY to waiters)───┘  │                      │  │
 *        │                                   (error)   ▼        (error)       │  │
 *        │        failed ◄─────────────────────────────┴──────────────────────┘  │
 *        │          │  (backoff elapsed and a request, a preload retry                │
 *        │          │   or an admin load) ──► loading                     (all passed)
 *        │                                                                        ▼
 *     unloading ◄──(idle past ttl, evicted for the budget, removed or changed by a
 *                   reload, admin unload; always with no request using it)── ready
 *
 * Invariants (f->mu guards every field of every entry):
 *   1. A model's instance exists exactly while it is ready or unloading; requests only
 *      ever see a ready instance, through a lease.
 *   2. refs counts the leases of an entry; an entry with refs > 0 is ready and is never
 *      unloaded, nor is one with callers waiting in fleet_acquire (they are about to
 *      take it: a fresh load is never lost to a ttl of 0 before its waiters run) or one
 *      a metrics reader visits (visits, never shown as requests). Unloading takes the
 *      instance out of the entry under the lock, frees it without the lock, then returns
 *      the entry to available.
 *   3. At most one load runs per entry (single flight): only a caller that moves the
 *      entry from available or failed to loading starts a loader thread; everyone else
 *      waits on f->cv. Every waiter of one load attempt gets that attempt's outcome.
 *   4. Memory: the sum of reservations never exceeds the budget. A load reserves before
 *      each step that takes memory; eviction only takes ready entries with no requests
 *      that are neither preload nor ttl: forever, least recently used first.
 *   5. Entries removed by a reload are retired: never handed to new requests, unloaded
 *      when their last request ends, freed when no load, request or waiter refers to them.
 *   6. Hooks (events, attach/detach) run without f->mu held.
 *   7. A lease's adapter ("model:adapter") is taken in the same hold of f->mu as its
 *      count, so every use refs counts (requests in /admin/models) already holds its
 *      adapter: unloading the adapter from then on never fails that request.
 *   8. An entry a reload adds starts no load (request or preload) until the reload has
 *      reported it available: its "loading" is never reported before that "available".
 * Never prints; never touches HTTP. */
#include "fleet/fleet.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "fleet/fleet_internal.h"

#define NS 1000000000ull
#define BACKOFF_MAX_S 300.0
#define HOUSEKEEPING_MAX_SLEEP_S 60

typedef struct fleet_entry {
    struct fleet_entry *next;
    fleet *f;
    cfg_model mc;                 /* current settings (owned copy) */
    fleet_state state;
    bool retired;                 /* invariant 5 */
    bool unload_pending;          /* unload as soon as it is idle */
    bool admin_unloaded;          /* an operator unloaded it: no automatic preload */
    uint64_t unreported;          /* invariant 8: the reload (its number) yet to report it; 0: reported */
    fleet_inst *inst;             /* invariant 1 */
    int refs;                     /* invariant 2 */
    int visits;                   /* metrics readers inside fleet_visit_ready (invariant 2) */
    int waiters;                  /* callers inside fleet_acquire holding this entry */
    uint64_t attempt, finished;   /* loads started / finished */
    hearth_status last_st;        /* outcome of the last finished load */
    hearth_err last_err;
    double last_retry_after;
    int failures, loads;
    uint64_t retry_at_ns;         /* failed, or not loaded for the budget: when it may load again */
    uint64_t last_used_ns;        /* clock_mono_ns of the last acquire or release */
    int64_t last_used_unix;
    uint64_t idle_until_ns;       /* ready and unused: unload at this time; UINT64_MAX never */
    int64_t reserved;             /* bytes of the budget it holds */
    double load_s;
    int64_t ready_unix;
    pthread_t loader;
    bool loader_joinable;
} fleet_entry;

struct fleet {
    pthread_mutex_t mu;
    pthread_cond_t cv;            /* any entry changed state */
    pthread_cond_t wake;          /* housekeeping has something to look at */
    fleet_entry *entries;         /* the configuration's models, in order */
    fleet_entry *retired;
    fleet_hooks hooks;
    fleet_options opt;
    char store[4096];
    int64_t budget;               /* bytes; 0 unlimited */
    double max_keep_alive_s;
    bool stopping;
    uint64_t reloads;             /* reloads so far (numbers fleet_entry.unreported) */
    pthread_t housekeeper;
    bool housekeeper_started;
};

struct fleet_lease {
    fleet *f;
    fleet_entry *e;
    fleet_inst *inst;
    cfg_sampling sampling;
    double max_queue_wait_s;      /* the model's max_queue_wait when acquired; 0: off */
    double keep_alive_s;          /* < 0: none (CFG_FOREVER is forever) */
    bool has_keep_alive;
    int64_t created;
    char name[CFG_NAME_MAX + 1];
    char base[CFG_NAME_MAX + 1];  /* the configured name (name without ":adapter") */
    model_lora_use lora;          /* selected by a "name:adapter" name; one reference */
};

const char *fleet_state_name(fleet_state s) {
    static const char *const names[] = {"available", "loading", "verifying", "ready", "unloading", "failed"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

void fleet_options_default(fleet_options *o) {
    *o = (fleet_options){.ram_bytes = 0, .busy_retry_s = 5, .failed_backoff_s = 2, .start_preloads = true};
}

static void emit(fleet *f, const char *level, const char *name, const char *what, const char *detail) {
    if (f->hooks.event) f->hooks.event(f->hooks.ud, level, name, what, detail ? detail : "");
}

/* Reports a configured (not retired) model's new state; called without f->mu. */
static void emit_state(fleet *f, bool retired, const char *name, fleet_state st, const char *error) {
    if (!retired && f->hooks.state) f->hooks.state(f->hooks.ud, name, st, error);
}

static void abs_deadline(struct timespec *ts, uint64_t mono_ns) {
    ts->tv_sec = (time_t)(mono_ns / NS);
    ts->tv_nsec = (long)(mono_ns % NS);
}

static bool has_name(const fleet_entry *e, const char *name) {
    if (!strcmp(e->mc.name, name)) return true;
    for (size_t i = 0; i < e->mc.n_aliases; i++)
        if (!strcmp(e->mc.aliases[i], name)) return true;
    return false;
}

static fleet_entry *find(fleet *f, const char *name) {
    for (fleet_entry *e = f->entries; e; e = e->next)
        if (has_name(e, name)) return e;
    return NULL;
}

/* Pinned models are never unloaded by the TTL nor evicted for the budget. */
/* No request, waiter or visitor holds e (invariant 2): it may be unloaded or freed. */
static bool idle(const fleet_entry *e) { return e->refs == 0 && e->waiters == 0 && e->visits == 0; }

static bool pinned(const fleet_entry *e) { return !e->retired && (e->mc.preload || e->mc.ttl_s == CFG_FOREVER); }

static int64_t used_bytes(fleet *f, const fleet_entry *except) {
    int64_t used = 0;
    for (int list = 0; list < 2; list++)
        for (fleet_entry *e = list ? f->retired : f->entries; e; e = e->next)
            if (e != except) used += e->reserved;
    return used;
}

/* Unloads e (ready, unused). Called and returns with f->mu held; drops it meanwhile. */
static void unload_locked(fleet *f, fleet_entry *e, const char *why) {
    fleet_inst *in = e->inst;
    char name[CFG_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", e->mc.name);
    bool retired = e->retired;
    e->inst = NULL;
    e->state = FLEET_UNLOADING;
    pthread_mutex_unlock(&f->mu);
    emit_state(f, retired, name, FLEET_UNLOADING, NULL);
    fleet_inst_free(in, &f->hooks);
    emit(f, "info", name, "unloaded", why);
    emit_state(f, retired, name, FLEET_AVAILABLE, NULL);
    pthread_mutex_lock(&f->mu);
    e->state = FLEET_AVAILABLE;
    e->reserved = 0;
    e->unload_pending = false;
    e->ready_unix = 0;
    pthread_cond_broadcast(&f->cv);
    pthread_cond_signal(&f->wake);
}

/* ---- loading ------------------------------------------------------------------------- */

static hearth_status reserve_cb(void *ud, int64_t bytes, double *retry_after_s, hearth_err *err) {
    fleet_entry *e = ud;
    fleet *f = e->f;
    pthread_mutex_lock(&f->mu);
    if (f->budget > 0 && bytes > f->budget) {
        pthread_mutex_unlock(&f->mu);
        return err_set(err, HEARTH_ERR_RANGE, "model '%s' needs %lld bytes, more than the whole memory budget (%lld)",
                       e->mc.name, (long long)bytes, (long long)f->budget);
    }
    while (f->budget > 0 && used_bytes(f, e) + bytes > f->budget) {
        fleet_entry *victim = NULL;
        for (int list = 0; list < 2; list++)
            for (fleet_entry *v = list ? f->retired : f->entries; v; v = v->next)
                if (v != e && v->state == FLEET_READY && idle(v) && !pinned(v) &&
                    (!victim || v->last_used_ns < victim->last_used_ns))
                    victim = v;
        if (!victim) {
            int64_t used = used_bytes(f, e);
            pthread_mutex_unlock(&f->mu);
            *retry_after_s = f->opt.busy_retry_s;
            return err_set(err, HEARTH_ERR_BUSY,
                           "the memory budget is full: model '%s' needs %lld bytes, %lld of %lld are held by models in "
                           "use or pinned",
                           e->mc.name, (long long)bytes, (long long)used, (long long)f->budget);
        }
        char why[CFG_NAME_MAX + 64];
        snprintf(why, sizeof why, "evicted (least recently used) to make room for '%s'", e->mc.name);
        unload_locked(f, victim, why);
    }
    e->reserved = bytes;
    pthread_mutex_unlock(&f->mu);
    return HEARTH_OK;
}

static void verifying_cb(void *ud) {
    fleet_entry *e = ud;
    char name[CFG_NAME_MAX + 1];
    pthread_mutex_lock(&e->f->mu);
    e->state = FLEET_VERIFYING;
    bool retired = e->retired;
    snprintf(name, sizeof name, "%s", e->mc.name);
    pthread_cond_broadcast(&e->f->cv);
    pthread_mutex_unlock(&e->f->mu);
    emit_state(e->f, retired, name, FLEET_VERIFYING, NULL);
}

static double ttl_ns_or_forever(double ttl_s, uint64_t now, uint64_t *until) {
    *until = ttl_s < 0 ? UINT64_MAX : now + (uint64_t)(ttl_s * 1e9);
    return ttl_s;
}

static void *loader_main(void *arg) {
    fleet_entry *e = arg;
    fleet *f = e->f;
    cfg_model mc;
    pthread_mutex_lock(&f->mu);
    hearth_status st = cfg_model_copy(&mc, &e->mc);
    bool retired = e->retired;
    pthread_mutex_unlock(&f->mu);
    if (st == HEARTH_OK) emit_state(f, retired, mc.name, FLEET_LOADING, NULL);
    hearth_err err = {0};
    double ra = 0;
    fleet_inst *in = NULL;
    uint64_t t0 = clock_mono_ns();
    if (st != HEARTH_OK) {
        err_set(&err, st, "out of memory starting the load");
    } else {
        fleet_load_env env = {.ud = e, .reserve = reserve_cb, .verifying = verifying_cb, .hooks = &f->hooks,
                              .store_dir = f->store};
        st = fleet_inst_load(&mc, &env, &in, &ra, &err);
    }
    char name[CFG_NAME_MAX + 1], detail[600];
    pthread_mutex_lock(&f->mu);
    snprintf(name, sizeof name, "%s", e->mc.name);
    uint64_t now = clock_mono_ns();
    e->finished = e->attempt;
    e->last_st = st == HEARTH_ERR_NOT_FOUND ? HEARTH_ERR_IO : st; /* NOT_FOUND means "no such model" */
    e->last_err = err;
    if (st == HEARTH_OK) {
        e->inst = in;
        e->state = FLEET_READY;
        e->failures = 0;
        e->retry_at_ns = 0;
        e->loads++;
        e->load_s = (double)(now - t0) / 1e9;
        e->ready_unix = clock_unix_s();
        e->last_used_ns = now;
        ttl_ns_or_forever(e->mc.ttl_s, now, &e->idle_until_ns);
        snprintf(detail, sizeof detail, "%.2fs, %lld bytes (weights %lld, repacked %lld, kv %lld)", e->load_s,
                 (long long)e->reserved, (long long)in->weights_bytes, (long long)in->packed_bytes,
                 (long long)in->kv_bytes);
    } else if (st == HEARTH_ERR_BUSY) {
        e->state = FLEET_AVAILABLE;
        e->last_retry_after = ra;
        e->retry_at_ns = now + (uint64_t)(ra * 1e9); /* no automatic retry before then */
        e->reserved = 0;
        snprintf(detail, sizeof detail, "%s", err.msg);
    } else {
        e->state = FLEET_FAILED;
        e->failures++;
        double backoff = f->opt.failed_backoff_s;
        for (int i = 1; i < e->failures && backoff < BACKOFF_MAX_S; i++) backoff *= 2;
        if (backoff > BACKOFF_MAX_S) backoff = BACKOFF_MAX_S;
        e->retry_at_ns = now + (uint64_t)(backoff * 1e9);
        e->last_retry_after = backoff;
        e->reserved = 0;
        snprintf(detail, sizeof detail, "%s (retry in %.0fs)", err.msg, backoff);
    }
    fleet_state now_state = e->state;
    retired = e->retired;
    pthread_cond_broadcast(&f->cv);
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->mu);
    emit_state(f, retired, name, now_state, st == HEARTH_OK || st == HEARTH_ERR_BUSY ? NULL : err.msg);
    emit(f, st == HEARTH_OK ? "info" : st == HEARTH_ERR_BUSY ? "warn" : "error", name,
         st == HEARTH_OK ? "ready" : st == HEARTH_ERR_BUSY ? "not loaded: memory budget full" : "failed to load", detail);
    cfg_model_clear(&mc);
    return NULL;
}

/* Moves e to loading and starts its loader. f->mu held. False (e unchanged) when no
 * thread can be started; err says why. */
static bool start_load(fleet *f, fleet_entry *e, hearth_err *err) {
    if (e->loader_joinable) { /* the previous loader has finished its work (state left loading) */
        pthread_join(e->loader, NULL);
        e->loader_joinable = false;
    }
    e->state = FLEET_LOADING;
    e->attempt++;
    e->admin_unloaded = false;
    if (pthread_create(&e->loader, NULL, loader_main, e) != 0) {
        e->attempt--;
        e->state = FLEET_AVAILABLE;
        err_set(err, HEARTH_ERR_NOMEM, "model '%s': cannot start a loader thread", e->mc.name);
        return false;
    }
    e->loader_joinable = true;
    pthread_cond_broadcast(&f->cv);
    return true;
}

/* ---- using ---------------------------------------------------------------------------- */

static hearth_status acquire_locked(fleet *f, fleet_entry **ep, const char *name, const fleet_acquire_opts *o,
                                    fleet_lease *l, double *retry_after_s, hearth_err *err) {
    uint64_t my_attempt = 0;
    for (;;) {
        fleet_entry *e = *ep;
        if (f->stopping) return err_set(err, HEARTH_ERR_CANCELLED, "the server is stopping");
        if (e->retired) { /* a reload replaced it: follow the name to its new entry */
            fleet_entry *n = find(f, name);
            if (!n) return err_set(err, HEARTH_ERR_CANCELLED, "model '%s' was removed by a reload", name);
            e->waiters--;
            n->waiters++;
            *ep = n;
            my_attempt = 0;
            continue;
        }
        if (my_attempt && e->finished >= my_attempt && e->last_st != HEARTH_OK && e->state != FLEET_READY) {
            *err = e->last_err;
            *retry_after_s = e->last_retry_after;
            return e->last_st;
        }
        uint64_t now = clock_mono_ns();
        switch (e->state) {
        case FLEET_READY:
            e->refs++;
            e->last_used_ns = now;
            e->last_used_unix = clock_unix_s();
            e->admin_unloaded = false;
            l->e = e;
            l->inst = e->inst;
            l->sampling = e->mc.sampling;
            l->max_queue_wait_s = e->mc.max_queue_wait_s;
            l->created = e->ready_unix;
            snprintf(l->name, sizeof l->name, "%s", e->mc.name);
            return HEARTH_OK;
        case FLEET_FAILED:
            if (!o->retry_failed && now < e->retry_at_ns) {
                *err = e->last_err;
                *retry_after_s = (double)(e->retry_at_ns - now) / 1e9;
                return e->last_st;
            }
            __attribute__((fallthrough)); /* the backoff is over: try again */
        case FLEET_AVAILABLE:
            if (e->unreported) break; /* invariant 8: the reload reports it, then wakes us */
            if (!start_load(f, e, err)) return err->status ? err->status : HEARTH_ERR_NOMEM;
            my_attempt = e->attempt;
            break;
        case FLEET_LOADING:
        case FLEET_VERIFYING:
            if (!my_attempt) my_attempt = e->attempt;
            break;
        case FLEET_UNLOADING:
            break;
        }
        if (o->deadline_ns) {
            if (now >= o->deadline_ns) {
                *retry_after_s = 1;
                return err_set(err, HEARTH_ERR_TIMEOUT, "model '%s' is still loading", e->mc.name);
            }
            struct timespec ts;
            abs_deadline(&ts, o->deadline_ns);
            pthread_cond_timedwait(&f->cv, &f->mu, &ts);
        } else {
            pthread_cond_wait(&f->cv, &f->mu);
        }
    }
}

/* Ends the lease's count on its entry and starts the idle clock. f->mu held. */
static void release_locked(fleet *f, const fleet_lease *l) {
    fleet_entry *e = l->e;
    uint64_t now = clock_mono_ns();
    e->last_used_ns = now;
    e->last_used_unix = clock_unix_s();
    double ttl = e->mc.ttl_s;
    if (l->has_keep_alive) { /* extends, within the configured maximum, never shortens */
        double ka = l->keep_alive_s, max = f->max_keep_alive_s;
        if (max != CFG_FOREVER && (ka == CFG_FOREVER || ka > max)) ka = max;
        if (ttl != CFG_FOREVER && (ka == CFG_FOREVER || ka > ttl)) ttl = ka;
    }
    uint64_t until;
    ttl_ns_or_forever(ttl, now, &until);
    e->refs--;
    if (until > e->idle_until_ns) e->idle_until_ns = until; /* a deadline only moves later */
}

hearth_status fleet_acquire(fleet *f, const char *name, const fleet_acquire_opts *o, fleet_lease **out,
                            double *retry_after_s, hearth_err *err) {
    *out = NULL;
    *retry_after_s = 0;
    fleet_lease *l = mem_calloc(1, sizeof *l);
    if (!l) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    l->f = f;
    l->keep_alive_s = o->keep_alive_s;
    l->has_keep_alive = o->keep_alive_s >= 0 || o->keep_alive_s == CFG_FOREVER;
    pthread_mutex_lock(&f->mu);
    fleet_entry *e = find(f, name);
    char base[CFG_NAME_MAX + 1];
    const char *adapter = NULL;
    if (!e && fleet_split_adapter(name, base, sizeof base, &adapter) && (e = find(f, base))) name = base;
    if (!e) {
        pthread_mutex_unlock(&f->mu);
        mem_free(l);
        return err_set(err, HEARTH_ERR_NOT_FOUND, "the model '%.200s' does not exist", name);
    }
    e->waiters++;
    hearth_status st = acquire_locked(f, &e, name, o, l, retry_after_s, err);
    e->waiters--;
    if (st == HEARTH_OK && o->retry_failed) e->unload_pending = false;
    /* The adapter is taken in the same hold of f->mu as the count (invariant 7). */
    hearth_err ae = {0};
    hearth_status adapter_st = st == HEARTH_OK && adapter
                                   ? fleet_loras_get(l->inst->loras, l->name, adapter, &l->lora, &ae)
                                   : HEARTH_OK;
    if (adapter_st != HEARTH_OK) release_locked(f, l);
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->mu);
    if (st != HEARTH_OK || adapter_st != HEARTH_OK) {
        mem_free(l);
        if (adapter_st == HEARTH_ERR_NOT_FOUND)
            return err_set(err, adapter_st,
                           "the model '%s:%.200s' does not exist (model '%s' has no adapter '%.200s')", base, adapter,
                           base, adapter);
        if (adapter_st != HEARTH_OK) *err = ae;
        return st != HEARTH_OK ? st : adapter_st;
    }
    snprintf(l->base, sizeof l->base, "%s", l->name);
    if (adapter) {
        size_t n = strlen(l->name);
        snprintf(l->name + n, sizeof l->name - n, ":%s", adapter);
    }
    *out = l;
    return HEARTH_OK;
}

void fleet_release(fleet_lease *l) {
    if (!l) return;
    fleet *f = l->f;
    pthread_mutex_lock(&f->mu);
    release_locked(f, l);
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->mu);
    model_lora_release(l->lora.adapter);
    mem_free(l);
}

const char *fleet_lease_name(const fleet_lease *l) { return l->name; }
const gen_model *fleet_lease_model(const fleet_lease *l) { return l->inst->gm; }
sched *fleet_lease_sched(const fleet_lease *l) { return l->inst->sched; }
int64_t fleet_lease_n_ctx(const fleet_lease *l) { return l->inst->n_ctx; }
void *fleet_lease_attachment(const fleet_lease *l) { return l->inst->attachment; }
const cfg_sampling *fleet_lease_sampling(const fleet_lease *l) { return &l->sampling; }
double fleet_lease_max_queue_wait(const fleet_lease *l) { return l->max_queue_wait_s; }
int64_t fleet_lease_created(const fleet_lease *l) { return l->created; }
model_lora_use fleet_lease_lora(const fleet_lease *l) { return l->lora; }

static const char *base_name(const fleet_lease *l) { return l->base; }

hearth_status fleet_lease_adapter(const fleet_lease *l, const char *name, model_lora_use *use, hearth_err *err) {
    return fleet_loras_get(l->inst->loras, base_name(l), name, use, err);
}

hearth_status fleet_lease_adapter_add(const fleet_lease *l, const char *name, const char *path, double scale,
                                      hearth_err *err) {
    if (!l->inst->loras) return err_set(err, HEARTH_ERR_UNSUPPORTED, "the model '%s' takes no adapters", base_name(l));
    return fleet_loras_add(l->inst->loras, base_name(l), name, path, scale, err);
}

hearth_status fleet_lease_adapter_remove(const fleet_lease *l, const char *name, hearth_err *err) {
    if (!l->inst->loras) return err_set(err, HEARTH_ERR_NOT_FOUND, "the model '%s' has no adapters", base_name(l));
    return fleet_loras_remove(l->inst->loras, base_name(l), name, err);
}

bool fleet_has(fleet *f, const char *name) {
    pthread_mutex_lock(&f->mu);
    bool has = find(f, name) != NULL;
    char base[CFG_NAME_MAX + 1];
    const char *adapter = NULL;
    fleet_entry *e = NULL;
    if (!has && fleet_split_adapter(name, base, sizeof base, &adapter) && (e = find(f, base)))
        has = fleet_loras_has(e->inst ? e->inst->loras : NULL, &e->mc, adapter);
    pthread_mutex_unlock(&f->mu);
    return has;
}

/* ---- housekeeping ---------------------------------------------------------------------- */

static bool can_free_retired(const fleet_entry *e) {
    return (e->state == FLEET_AVAILABLE || e->state == FLEET_FAILED) && idle(e);
}

static void free_entry(fleet_entry *e) {
    if (e->loader_joinable) pthread_join(e->loader, NULL);
    cfg_model_clear(&e->mc);
    mem_free(e);
}

/* One pass; returns when to look again. f->mu held (dropped while unloading). */
static uint64_t housekeeping_pass(fleet *f) {
rescan:;
    uint64_t now = clock_mono_ns(), next = now + (uint64_t)HOUSEKEEPING_MAX_SLEEP_S * NS;
    for (int list = 0; list < 2; list++) {
        for (fleet_entry *e = list ? f->retired : f->entries; e; e = e->next) {
            if (e->state == FLEET_READY && idle(e)) {
                if (e->retired || e->unload_pending) {
                    unload_locked(f, e, e->retired ? "removed or changed by a reload" : "unloaded by an operator");
                    goto rescan;
                }
                if (!pinned(e) && e->idle_until_ns <= now) {
                    char why[64];
                    cfg_format_duration(e->mc.ttl_s, why, sizeof why);
                    char detail[96];
                    snprintf(detail, sizeof detail, "idle past its ttl (%s)", why);
                    unload_locked(f, e, detail);
                    goto rescan;
                }
                if (!pinned(e) && e->idle_until_ns < next) next = e->idle_until_ns;
            }
            if (!e->retired && !e->unreported && e->mc.preload && !e->admin_unloaded && f->opt.start_preloads) {
                hearth_err err;
                bool idle = e->state == FLEET_FAILED || (e->state == FLEET_AVAILABLE && e->waiters == 0);
                if (idle && e->retry_at_ns <= now) start_load(f, e, &err);
                else if (idle && e->retry_at_ns < next) next = e->retry_at_ns;
            }
        }
    }
    for (fleet_entry **pp = &f->retired; *pp;) {
        fleet_entry *e = *pp;
        if (can_free_retired(e)) {
            *pp = e->next;
            free_entry(e);
        } else {
            pp = &e->next;
        }
    }
    return next;
}

static void *housekeeper_main(void *arg) {
    fleet *f = arg;
    pthread_mutex_lock(&f->mu);
    while (!f->stopping) {
        uint64_t next = housekeeping_pass(f);
        if (f->stopping) break;
        struct timespec ts;
        abs_deadline(&ts, next);
        pthread_cond_timedwait(&f->wake, &f->mu, &ts);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* ---- configuration ---------------------------------------------------------------------- */

static fleet_entry *entry_new(fleet *f, const cfg_model *mc) {
    fleet_entry *e = mem_calloc(1, sizeof *e);
    if (!e) return NULL;
    if (cfg_model_copy(&e->mc, mc) != HEARTH_OK) {
        mem_free(e);
        return NULL;
    }
    e->f = f;
    e->state = FLEET_AVAILABLE;
    return e;
}

static hearth_status apply_server(fleet *f, const cfg_config *cfg, hearth_err *err) {
    hearth_status st = fleet_store_dir(cfg->server.model_store, f->store, sizeof f->store, err);
    if (st != HEARTH_OK) return st;
    int64_t ram = f->opt.ram_bytes > 0 ? f->opt.ram_bytes : fleet_ram_bytes();
    f->budget = cfg_memory_budget(&cfg->server, ram);
    f->max_keep_alive_s = cfg->server.max_keep_alive_s;
    return HEARTH_OK;
}

hearth_status fleet_new(const cfg_config *cfg, const fleet_hooks *hooks, const fleet_options *opt, fleet **out,
                        hearth_err *err) {
    *out = NULL;
    fleet *f = mem_calloc(1, sizeof *f);
    if (!f) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    if (hooks) f->hooks = *hooks;
    if (opt) f->opt = *opt;
    else fleet_options_default(&f->opt);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, &ca);
    pthread_cond_init(&f->wake, &ca);
    pthread_condattr_destroy(&ca);
    hearth_status st = apply_server(f, cfg, err);
    fleet_entry **tail = &f->entries;
    for (size_t i = 0; st == HEARTH_OK && i < cfg->n_models; i++) {
        if (!(*tail = entry_new(f, &cfg->models[i]))) st = err_set(err, HEARTH_ERR_NOMEM, "out of memory");
        else tail = &(*tail)->next;
    }
    /* before the housekeeper can start a preload, whose "loading" must not be overtaken */
    for (size_t i = 0; st == HEARTH_OK && i < cfg->n_models; i++)
        emit_state(f, false, cfg->models[i].name, FLEET_AVAILABLE, NULL);
    if (st == HEARTH_OK && pthread_create(&f->housekeeper, NULL, housekeeper_main, f) != 0)
        st = err_set(err, HEARTH_ERR_NOMEM, "cannot start the fleet's housekeeping thread");
    if (st != HEARTH_OK) {
        fleet_free(f);
        return st;
    }
    f->housekeeper_started = true;
    *out = f;
    return HEARTH_OK;
}

void fleet_free(fleet *f) {
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_broadcast(&f->cv);
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->mu);
    if (f->housekeeper_started) pthread_join(f->housekeeper, NULL);
    /* loads in progress finish first (a loader may evict other entries) */
    for (int list = 0; list < 2; list++)
        for (fleet_entry *e = list ? f->retired : f->entries; e; e = e->next)
            if (e->loader_joinable) {
                pthread_join(e->loader, NULL);
                e->loader_joinable = false;
            }
    for (int list = 0; list < 2; list++) {
        for (fleet_entry *e = list ? f->retired : f->entries, *next; e; e = next) {
            next = e->next;
            fleet_inst_free(e->inst, &f->hooks);
            free_entry(e);
        }
    }
    pthread_cond_destroy(&f->cv);
    pthread_cond_destroy(&f->wake);
    pthread_mutex_destroy(&f->mu);
    mem_free(f);
}

/* True when e is loaded from a file that is no longer the one on disk. f->mu held. */
static bool file_replaced(fleet *f, const fleet_entry *e) {
    if (!e->inst) return false;
    fleet_file_id now;
    return !fleet_file_identity(e->inst->path, &now) || !fleet_file_same(&now, &e->inst->file);
}

hearth_status fleet_reload(fleet *f, const cfg_config *cfg, char *summary, size_t cap, hearth_err *err) {
    size_t n = cfg->n_models;
    fleet_entry **fresh = mem_calloc(n ? n : 1, sizeof *fresh);
    cfg_model *copies = mem_calloc(n ? n : 1, sizeof *copies);
    hearth_status st = fresh && copies ? HEARTH_OK : err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == HEARTH_OK && i < n; i++) {
        if (!(fresh[i] = entry_new(f, &cfg->models[i])) || cfg_model_copy(&copies[i], &cfg->models[i]) != HEARTH_OK)
            st = err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    }
    char store[sizeof f->store];
    if (st == HEARTH_OK) st = fleet_store_dir(cfg->server.model_store, store, sizeof store, err);
    if (st != HEARTH_OK) {
        for (size_t i = 0; fresh && i < n; i++)
            if (fresh[i]) free_entry(fresh[i]);
        for (size_t i = 0; copies && i < n; i++) cfg_model_clear(&copies[i]);
        mem_free(fresh);
        mem_free(copies);
        return st;
    }
    size_t kept = 0, added = 0, dropped = 0;
    pthread_mutex_lock(&f->mu);
    uint64_t reload_no = ++f->reloads;
    int64_t ram = f->opt.ram_bytes > 0 ? f->opt.ram_bytes : fleet_ram_bytes();
    memcpy(f->store, store, sizeof store);
    f->budget = cfg_memory_budget(&cfg->server, ram);
    f->max_keep_alive_s = cfg->server.max_keep_alive_s;
    fleet_entry *old = f->entries, *list = NULL, **tail = &list;
    for (size_t i = 0; i < n; i++) {
        fleet_entry *keep = NULL, **pp;
        for (pp = &old; *pp; pp = &(*pp)->next)
            if (!strcmp((*pp)->mc.name, cfg->models[i].name)) break;
        if (*pp && cfg_model_same_load(&(*pp)->mc, &cfg->models[i]) && !file_replaced(f, *pp)) {
            keep = *pp;
            *pp = keep->next;
            cfg_model_clear(&keep->mc);
            keep->mc = copies[i];
            memset(&copies[i], 0, sizeof copies[i]);
            if (keep->state == FLEET_READY && keep->refs == 0) /* the new ttl counts from now */
                ttl_ns_or_forever(keep->mc.ttl_s, clock_mono_ns(), &keep->idle_until_ns);
            kept++;
        } else {
            keep = fresh[i];
            keep->unreported = reload_no;
            fresh[i] = NULL;
            added++;
        }
        keep->next = NULL;
        *tail = keep;
        tail = &keep->next;
    }
    for (fleet_entry *e = old, *next; e; e = next) { /* invariant 5 */
        next = e->next;
        e->retired = true;
        e->next = f->retired;
        f->retired = e;
        dropped++;
    }
    f->entries = list;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < n; i++) {
        if (!fresh[i]) emit_state(f, false, cfg->models[i].name, FLEET_AVAILABLE, NULL); /* taken: a new entry */
        if (fresh[i]) free_entry(fresh[i]);
        cfg_model_clear(&copies[i]);
    }
    pthread_mutex_lock(&f->mu); /* loads, preloads and retired models after the states above */
    for (int pass = 0; pass < 2; pass++)
        for (fleet_entry *e = pass ? f->retired : f->entries; e; e = e->next)
            if (e->unreported == reload_no) e->unreported = 0;
    pthread_cond_broadcast(&f->cv);
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->mu);
    mem_free(fresh);
    mem_free(copies);
    if (summary)
        snprintf(summary, cap, "%zu models: %zu unchanged, %zu new or changed, %zu removed or replaced", n, kept, added,
                 dropped);
    return HEARTH_OK;
}

hearth_status fleet_unload(fleet *f, const char *name, bool *pending, hearth_err *err) {
    *pending = false;
    pthread_mutex_lock(&f->mu);
    fleet_entry *e = find(f, name);
    if (!e) {
        pthread_mutex_unlock(&f->mu);
        return err_set(err, HEARTH_ERR_NOT_FOUND, "the model '%.200s' does not exist", name);
    }
    e->admin_unloaded = true;
    if (e->state == FLEET_READY && e->refs == 0 && e->visits == 0) {
        unload_locked(f, e, "unloaded by an operator");
    } else if (e->state == FLEET_READY || e->state == FLEET_LOADING || e->state == FLEET_VERIFYING) {
        e->unload_pending = true;
        *pending = true;
    }
    pthread_mutex_unlock(&f->mu);
    return HEARTH_OK;
}

hearth_status fleet_get_snapshot(fleet *f, fleet_snapshot *out, hearth_err *err) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&f->mu);
    size_t n = 0;
    for (fleet_entry *e = f->entries; e; e = e->next) n++;
    out->models = mem_calloc(n ? n : 1, sizeof *out->models);
    if (!out->models) {
        pthread_mutex_unlock(&f->mu);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    }
    uint64_t now = clock_mono_ns();
    for (fleet_entry *e = f->entries; e; e = e->next) {
        fleet_info *in = &out->models[out->n];
        if (cfg_model_copy(&in->cfg, &e->mc) != HEARTH_OK) {
            pthread_mutex_unlock(&f->mu);
            fleet_snapshot_free(out);
            return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
        }
        out->n++;
        in->state = e->state;
        in->refs = e->refs;
        if (e->inst) {
            in->weights_bytes = e->inst->weights_bytes;
            in->packed_bytes = e->inst->packed_bytes;
            in->kv_bytes = e->inst->kv_bytes;
        } else {
            in->weights_bytes = e->reserved;
        }
        in->last_used_unix = e->last_used_unix;
        in->ready_unix = e->ready_unix;
        in->load_s = e->load_s;
        in->idle_expires_s = e->state == FLEET_READY && e->refs == 0 && !pinned(e) && e->idle_until_ns != UINT64_MAX
                                 ? (e->idle_until_ns > now ? (double)(e->idle_until_ns - now) / 1e9 : 0)
                                 : -1;
        in->retry_in_s = e->state == FLEET_FAILED && e->retry_at_ns > now ? (double)(e->retry_at_ns - now) / 1e9 : 0;
        in->failures = e->failures;
        in->loads = e->loads;
        if (e->last_st != HEARTH_OK) snprintf(in->error, sizeof in->error, "%s", e->last_err.msg);
        if (fleet_loras_info(e->inst ? e->inst->loras : NULL, &e->mc, &in->adapters, &in->n_adapters) != HEARTH_OK) {
            pthread_mutex_unlock(&f->mu);
            fleet_snapshot_free(out);
            return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
        }
    }
    out->budget_bytes = f->budget;
    out->used_bytes = used_bytes(f, NULL);
    pthread_mutex_unlock(&f->mu);
    return HEARTH_OK;
}

void fleet_snapshot_free(fleet_snapshot *s) {
    for (size_t i = 0; s->models && i < s->n; i++) {
        cfg_model_clear(&s->models[i].cfg);
        mem_free(s->models[i].adapters);
    }
    mem_free(s->models);
    memset(s, 0, sizeof *s);
}

bool fleet_ready(fleet *f, char *why, size_t cap) {
    bool ok = true;
    pthread_mutex_lock(&f->mu);
    for (fleet_entry *e = f->entries; e && ok; e = e->next) {
        if (!e->mc.preload || e->state == FLEET_READY) continue;
        ok = false;
        if (e->state == FLEET_FAILED)
            snprintf(why, cap, "model '%s' failed to load: %s", e->mc.name, e->last_err.msg);
        else
            snprintf(why, cap, "model '%s' is %s", e->mc.name, fleet_state_name(e->state));
    }
    pthread_mutex_unlock(&f->mu);
    return ok;
}

void fleet_visit_ready(fleet *f, void (*fn)(void *ud, const fleet_loaded *m), void *ud) {
    pthread_mutex_lock(&f->mu);
    size_t n = 0, k = 0;
    for (fleet_entry *e = f->entries; e; e = e->next) n += e->state == FLEET_READY;
    fleet_entry **held = n ? mem_alloc_array(n, sizeof *held) : NULL;
    char(*names)[CFG_NAME_MAX + 1] = n ? mem_alloc_array(n, sizeof *names) : NULL;
    for (fleet_entry *e = f->entries; e && held && names; e = e->next) {
        if (e->state != FLEET_READY) continue;
        e->visits++; /* invariant 2: not unloaded while visited, yet no request */
        snprintf(names[k], sizeof names[k], "%s", e->mc.name);
        held[k++] = e;
    }
    pthread_mutex_unlock(&f->mu);
    for (size_t i = 0; i < k; i++) {
        const fleet_inst *in = held[i]->inst;
        fleet_loaded m = {.name = names[i], .gm = in->gm, .sched = in->sched, .n_ctx = in->n_ctx,
                          .weights_bytes = in->weights_bytes, .packed_bytes = in->packed_bytes, .kv_bytes = in->kv_bytes};
        fn(ud, &m);
    }
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < k; i++) held[i]->visits--;
    if (k) pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->mu);
    mem_free(held);
    mem_free(names);
}
