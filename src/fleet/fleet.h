/* The model fleet: every model of the configuration, loaded on demand (once, however
 * many requests wait: single flight), verified before it serves (sha256 when configured,
 * the structural GGUF checks, a probe inference with finite logits), reference counted
 * while requests use it, unloaded after its idle TTL, and kept within a memory budget by
 * evicting idle models least-recently-used first. A reload swaps in a new configuration,
 * keeping loaded every model whose load settings did not change. Weights are read into
 * private memory, so a model file replaced or truncated on disk never affects a loaded
 * model; the new file is read on the next load.
 *
 * Threads: every function is safe from any thread. Loads run on their own threads; one
 * housekeeping thread unloads idle models and retries failed preload models. This layer
 * knows nothing of HTTP; the layer above attaches its own per-model data (the server's
 * chat prompter) through hooks. The lifecycle diagram and its invariants are in fleet.c. */
#ifndef FLEET_FLEET_H
#define FLEET_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "engine/generate.h"
#include "engine/sched.h"
#include "hearth.h"
#include "model/lora.h"

typedef enum fleet_state {
    FLEET_AVAILABLE,   /* configured, not in memory */
    FLEET_LOADING,     /* reading the file (pulling it first when it has a url) */
    FLEET_VERIFYING,   /* checksum, structure, probe inference */
    FLEET_READY,       /* serving */
    FLEET_UNLOADING,   /* freeing its memory */
    FLEET_FAILED,      /* the last load failed: error kept, retried with backoff */
} fleet_state;

const char *fleet_state_name(fleet_state s); /* "available", "loading", ... */

typedef struct fleet_hooks {
    void *ud;
    /* Builds the per-model data of the layer above once the model is read (before the
     * probe); *out is handed back to detach. May be NULL. */
    hearth_status (*attach)(void *ud, const cfg_model *mc, const gen_model *gm, void **out, hearth_err *err);
    void (*detach)(void *ud, void *attachment);
    /* Lifecycle events ("ready", "failed", "unloaded", "evicted", ...), for logs. May be
     * NULL. Called without any fleet lock held; must not call back into the fleet. */
    void (*event)(void *ud, const char *level, const char *name, const char *what, const char *detail);
    /* Every lifecycle state a configured model enters (error: the failure, else NULL),
     * in order per model, for metrics. May be NULL. Same rules as event. */
    void (*state)(void *ud, const char *name, fleet_state st, const char *error);
} fleet_hooks;

typedef struct fleet_options {
    int64_t ram_bytes;        /* physical memory for a percentage budget; 0: detect */
    double busy_retry_s;      /* Retry-After when the budget is full (default 5) */
    double failed_backoff_s;  /* first retry delay after a failed load, doubling (default 2, at most 300) */
    bool start_preloads;      /* load preload models at once (default true) */
} fleet_options;

void fleet_options_default(fleet_options *o);

typedef struct fleet fleet;

/* A fleet over cfg (copied: the caller may free it). Starts the housekeeping thread and
 * the preload models' loads. INVALID (no models is fine), NOMEM. */
hearth_status fleet_new(const cfg_config *cfg, const fleet_hooks *hooks, const fleet_options *opt, fleet **out,
                        hearth_err *err);
/* Waits for loads in progress, unloads everything (requests must be over). Accepts NULL. */
void fleet_free(fleet *f);

/* ---- using a model ------------------------------------------------------------------- */
typedef struct fleet_lease fleet_lease;

typedef struct fleet_acquire_opts {
    uint64_t deadline_ns;     /* clock_mono_ns; 0: wait as long as the load takes */
    double keep_alive_s;      /* idle time after this use (capped by server.max_keep_alive,
                                 never shortening the model's ttl); < 0 and not CFG_FOREVER: none */
    bool retry_failed;        /* a FAILED model loads again at once, ignoring its backoff */
} fleet_acquire_opts;

/* Gives a READY model by name or alias, or "NAME:ADAPTER" (when no model or alias has
 * that whole name) for the model with its adapter ADAPTER selected at its configured
 * scale (fleet_lease_lora); loading the model first if needed (single flight: one
 * load however many callers wait). While the lease is held the model is never unloaded.
 * Errors: NOT_FOUND (no such model), BUSY (the memory budget is full of models in use:
 * *retry_after_s says when to retry), TIMEOUT (deadline passed while loading), CANCELLED
 * (the fleet is stopping or the model was removed by a reload), or the status of the
 * failed load (its message; *retry_after_s: the backoff left; a missing file is IO, so
 * NOT_FOUND always means an unknown name). */
hearth_status fleet_acquire(fleet *f, const char *name, const fleet_acquire_opts *o, fleet_lease **out,
                            double *retry_after_s, hearth_err *err);
/* Ends a use: starts the idle clock when it was the last. Accepts NULL. */
void fleet_release(fleet_lease *l);

const char *fleet_lease_name(const fleet_lease *l);          /* the configured name */
const gen_model *fleet_lease_model(const fleet_lease *l);
sched *fleet_lease_sched(const fleet_lease *l);               /* NULL for embedding models */
int64_t fleet_lease_n_ctx(const fleet_lease *l);
void *fleet_lease_attachment(const fleet_lease *l);
const cfg_sampling *fleet_lease_sampling(const fleet_lease *l); /* the model's defaults, as acquired */
double fleet_lease_max_queue_wait(const fleet_lease *l);      /* its max_queue_wait (s), as acquired; 0: off */
int64_t fleet_lease_created(const fleet_lease *l);            /* unix seconds the model became ready */

/* True when name is a configured model or alias, or NAME:ADAPTER with an adapter the model
 * has (configured, or loaded at run time while the model is in memory). */
bool fleet_has(fleet *f, const char *name);

/* ---- LoRA adapters (fleet_lora.c) --------------------------------------------------
 * Each model's adapters are opened with the model (configuration `adapters:`); one that
 * fails leaves the model serving and is listed as failed with its error (and an "adapter
 * failed" event). Adapters loaded or unloaded at run time live as long as the loaded
 * model: an unload of the model (TTL, eviction, reload, admin) forgets them. Adapter
 * names never contain ':'. */
#define FLEET_ADAPTER_SCALE_MAX 100.0

/* The adapter the lease's name selected ("base:adapter"), with its configured scale; the
 * reference is the lease's (valid while it is held). adapter NULL when none. */
model_lora_use fleet_lease_lora(const fleet_lease *l);
/* The leased model's adapter name with its configured scale; one reference for the caller
 * in use->adapter (model_lora_release it). NOT_FOUND (no such adapter), UNSUPPORTED (it
 * failed to load: the message says why). */
hearth_status fleet_lease_adapter(const fleet_lease *l, const char *name, model_lora_use *use, hearth_err *err);
/* Opens path, checks it in full against the leased model, then adds it as name with
 * scale (|scale| <= FLEET_ADAPTER_SCALE_MAX). Nothing changes on failure. INVALID (name,
 * scale, a ready adapter of that name exists), the adapter's own errors (see lora.h). */
hearth_status fleet_lease_adapter_add(const fleet_lease *l, const char *name, const char *path, double scale,
                                      hearth_err *err);
/* Removes adapter name of the leased model (sequences using it finish with their own
 * references). NOT_FOUND. */
hearth_status fleet_lease_adapter_remove(const fleet_lease *l, const char *name, hearth_err *err);

typedef struct fleet_adapter_info {
    char name[CFG_NAME_MAX + 1];
    char path[4096];
    double scale;                 /* default scale */
    const char *state;            /* "ready", "failed", or "not loaded" (the model is not) */
    bool configured;              /* from the configuration, else loaded at run time */
    int64_t rank, n_targets;      /* when ready */
    double alpha;
    const char *kinds[8];         /* adapted matrix kinds (model_lora_target_kinds) */
    size_t n_kinds;
    char error[512];              /* failed: why */
} fleet_adapter_info;

/* ---- operating --------------------------------------------------------------------- */
/* Replaces the configuration (copied). Models whose load settings are unchanged and
 * whose file was not replaced on disk stay loaded (their TTL, aliases and sampling are
 * updated); changed or removed models are unloaded once their requests end; new preload
 * models start loading. summary (may be NULL) receives a one-line account. NOMEM only:
 * the configuration must already be valid. */
hearth_status fleet_reload(fleet *f, const cfg_config *cfg, char *summary, size_t cap, hearth_err *err);

/* Unloads a model now when idle, else as soon as its last request ends (*pending set).
 * NOT_FOUND. */
hearth_status fleet_unload(fleet *f, const char *name, bool *pending, hearth_err *err);

typedef struct fleet_info {
    cfg_model cfg;            /* copy: name, aliases, settings */
    fleet_state state;
    int refs;                 /* requests using it */
    int64_t weights_bytes, packed_bytes, kv_bytes; /* when loaded (or the reservation while loading) */
    int64_t last_used_unix;   /* 0: never */
    int64_t ready_unix;       /* 0: not loaded */
    double load_s;            /* duration of the last successful load */
    double idle_expires_s;    /* seconds until the TTL unloads it; < 0: not counting */
    double retry_in_s;        /* FAILED: seconds until it may load again */
    int failures;             /* consecutive failed loads */
    int loads;                /* successful loads so far */
    char error[512];          /* the last load error, or "" */
    fleet_adapter_info *adapters; /* [n_adapters] */
    size_t n_adapters;
} fleet_info;

typedef struct fleet_snapshot {
    fleet_info *models;       /* [n] in configuration order */
    size_t n;
    int64_t budget_bytes;     /* 0: unlimited */
    int64_t used_bytes;
} fleet_snapshot;

/* A copy of every model's state. NOMEM. */
hearth_status fleet_get_snapshot(fleet *f, fleet_snapshot *out, hearth_err *err);
void fleet_snapshot_free(fleet_snapshot *s);

/* A ready model as fleet_visit_ready shows it. */
typedef struct fleet_loaded {
    const char *name;
    const gen_model *gm;
    sched *sched;             /* NULL for embedding models */
    int64_t n_ctx;
    int64_t weights_bytes, packed_bytes, kv_bytes;
} fleet_loaded;

/* Calls fn for every ready model, in configuration order, holding each like a lease
 * (never unloaded during the call) without counting as a use: idle clocks and the LRU
 * order do not change. fn runs without fleet locks. For metrics collectors. */
void fleet_visit_ready(fleet *f, void (*fn)(void *ud, const fleet_loaded *m), void *ud);

/* True when every preload model is READY; otherwise why names the first that is not. */
bool fleet_ready(fleet *f, char *why, size_t cap);

/* ---- the model store and downloads (fleet_store.c, fleet_pull.c) --------------------- */
/* The store directory: $HEARTH_MODELS, else configured (may be NULL), else
 * $XDG_DATA_HOME/hearth/models, else ~/.local/share/hearth/models. */
hearth_status fleet_store_dir(const char *configured, char *out, size_t cap, hearth_err *err);

/* The https:// address of a url (hf://OWNER/REPO[@REV]/PATH maps to
 * $HF_ENDPOINT or https://huggingface.co /OWNER/REPO/resolve/REV(main)/PATH). INVALID
 * for anything but http(s):// and well-formed hf:// addresses. */
hearth_status fleet_url_resolve(const char *url, char *out, size_t cap, hearth_err *err);

typedef struct fleet_pull_opts {
    const char *sha256;       /* expected, or NULL */
    const char *name;         /* store file name, or NULL: from the url */
    double connect_timeout_s; /* default 10 */
    /* progress (may be NULL): bytes so far and total (0: unknown). */
    void (*progress)(void *ud, int64_t done, int64_t total);
    void *ud;
} fleet_pull_opts;

/* Downloads url into store_dir/NAME: resumes a previous partial download with an HTTP
 * Range request, verifies the sha256 (when given), writes through a temporary file
 * renamed into place, keeps the partial file only when the transfer was interrupted (so
 * the next pull resumes) and removes it on every other failure. The name is checked so
 * nothing is written outside the store. out_path receives the final path, sha256_out
 * (may be NULL, 65 bytes) the file's digest. Errors: INVALID (url or name), IO (network,
 * disk, HTTP status), FORMAT (checksum mismatch), NOMEM. */
hearth_status fleet_pull(const char *url, const char *store_dir, const fleet_pull_opts *o, char *out_path,
                         size_t cap, char *sha256_out, hearth_err *err);

/* sha256 of a whole file as 64 lowercase hex digits (65 bytes with the NUL). */
hearth_status fleet_sha256_file(const char *path, char out[65], hearth_err *err);

#endif
