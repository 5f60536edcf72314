/* Private to src/fleet: one loaded model (an instance) and the load pipeline that builds
 * it (fleet_load.c), separate from the registry and its state machine (fleet.c). Nothing
 * outside src/fleet includes this file. */
#ifndef FLEET_FLEET_INTERNAL_H
#define FLEET_FLEET_INTERNAL_H

#include <sys/types.h>
#include <time.h>

#include "fleet/fleet.h"

/* Identity of a file on disk, to notice it was replaced. */
typedef struct fleet_file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} fleet_file_id;

typedef struct fleet_loras fleet_loras;

typedef struct fleet_inst {
    void *map;                /* private copy of the file (anonymous mapping), map_len bytes */
    size_t map_len;
    gen_model *gm;            /* reads its tensors from map */
    sched *sched;             /* NULL for encoders */
    void *attachment;         /* from fleet_hooks.attach */
    fleet_loras *loras;       /* its adapters (fleet_lora.c) */
    int64_t n_ctx;
    int64_t weights_bytes, packed_bytes, kv_bytes;
    fleet_file_id file;
    char path[4096];          /* the file it was read from */
} fleet_inst;

/* What the pipeline asks of the registry while it runs. */
typedef struct fleet_load_env {
    void *ud;
    /* Makes room for bytes in total for this load (replacing any earlier reservation),
     * evicting idle models if needed. BUSY (with *retry_after_s) or INVALID (larger than
     * the whole budget) when it cannot. */
    hearth_status (*reserve)(void *ud, int64_t bytes, double *retry_after_s, hearth_err *err);
    void (*verifying)(void *ud); /* the file is read: checks begin */
    const fleet_hooks *hooks;
    const char *store_dir;    /* for models with a url */
} fleet_load_env;

/* Loads mc: pulls it when it has a url and is not in the store yet, reads the file into
 * private memory (sha256 computed on the way), checks it, builds the model, the hooks'
 * attachment and the scheduler, and runs the probe. *retry_after_s is set on BUSY. */
hearth_status fleet_inst_load(const cfg_model *mc, const fleet_load_env *env, fleet_inst **out,
                              double *retry_after_s, hearth_err *err);
void fleet_inst_free(fleet_inst *in, const fleet_hooks *hooks); /* accepts NULL */

/* Bytes model_new will repack for f's matrices at the active CPU level (kern_matrix_prepare). */
int64_t fleet_repack_estimate(const gguf_file *f);

/* The file a model reads: its path, or its url's file in the store. */
hearth_status fleet_model_file(const cfg_model *mc, const char *store_dir, char *out, size_t cap, hearth_err *err);

/* Identity of path now; false when it cannot be read. */
bool fleet_file_identity(const char *path, fleet_file_id *out);
bool fleet_file_same(const fleet_file_id *a, const fleet_file_id *b);

/* ---- adapters (fleet_lora.c) ---- */
/* Splits "base:adapter" at its last ':' into base (cap bytes) and *adapter; false when
 * there is no ':' with text on both sides. */
bool fleet_split_adapter(const char *name, char *base, size_t cap, const char **adapter);
bool fleet_valid_adapter_name(const char *name);
/* The registry of m's adapters with mc's configured ones opened (failures kept as failed
 * rows and reported through hooks' event). NOMEM only. */
hearth_status fleet_loras_new(const cfg_model *mc, const model *m, const fleet_hooks *hooks, fleet_loras **out,
                              hearth_err *err);
void fleet_loras_free(fleet_loras *r); /* accepts NULL; the model must still exist */
/* See fleet_lease_adapter; r may be NULL (no adapters). */
hearth_status fleet_loras_get(fleet_loras *r, const char *model_name, const char *name, model_lora_use *use,
                              hearth_err *err);
hearth_status fleet_loras_add(fleet_loras *r, const char *model_name, const char *name, const char *path, double scale,
                              hearth_err *err);
hearth_status fleet_loras_remove(fleet_loras *r, const char *model_name, const char *name, hearth_err *err);
/* True when name is in r, or (r NULL: the model is not loaded) among mc's adapters. */
bool fleet_loras_has(fleet_loras *r, const cfg_model *mc, const char *name);
/* Rows for a snapshot: r's adapters, or mc's as "not loaded" when r is NULL. NOMEM. */
hearth_status fleet_loras_info(fleet_loras *r, const cfg_model *mc, fleet_adapter_info **out, size_t *n);

/* Physical memory in bytes (the smaller of RAM and a cgroup limit); 0 if unknown. */
int64_t fleet_ram_bytes(void);

#endif
