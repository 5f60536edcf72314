/* The served model: its id (the file's stem), and its lifecycle
 *
 *     LOADING ──(file, template and scheduler ready)──► READY
 *        └──────────────(any failure)─────────────────► FAILED
 *
 * Loading runs on a background thread started by srv_model_new, so the HTTP socket can
 * listen (and /health answer) while weights are mapped and checked. Invariants:
 *   1. state only moves forward, once; READY publishes (release) every field below.
 *   2. vocab, prompter and sched are non-NULL exactly when READY.
 *   3. srv_model_free joins the loader first, then frees the scheduler (which ends every
 *      sequence), then the template and the file.
 * This file never touches HTTP. */
#ifndef SERVER_SRV_MODEL_H
#define SERVER_SRV_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/sched.h"
#include "hearth.h"
#include "server/srv_prompt.h"
#include "tokenizer/tokenizer.h"

typedef enum srv_model_state { SRV_MODEL_LOADING, SRV_MODEL_READY, SRV_MODEL_FAILED } srv_model_state;

typedef struct srv_model_config {
    const char *path;           /* GGUF file */
    const char *template_path;  /* chat template file overriding the model's; NULL: none */
    int64_t n_ctx;              /* <= 0: min(training context, 4096) */
    int32_t n_slots;            /* <= 0: scheduler default */
    int32_t max_queue;          /* < 0: scheduler default */
    int n_threads;              /* <= 0: physical cores */
} srv_model_config;

typedef struct srv_model srv_model;
/* Called on the loader thread once the state leaves LOADING. */
typedef void (*srv_model_notify)(void *ud, srv_model *m);

/* A model record in LOADING state (cfg strings are copied). NOMEM only. */
hearth_status srv_model_new(const srv_model_config *cfg, srv_model **out, hearth_err *err);
/* Starts loading on a background thread; notify (may be NULL) hears the outcome. */
hearth_status srv_model_start(srv_model *m, srv_model_notify notify, void *ud, hearth_err *err);
void srv_model_free(srv_model *m);

const char *srv_model_id(const srv_model *m);   /* file stem, e.g. "llama-spm-f16" */
int64_t srv_model_created(const srv_model *m);  /* unix seconds the server started loading it */
srv_model_state srv_model_get_state(const srv_model *m);
/* The load error when FAILED. */
const hearth_err *srv_model_error(const srv_model *m);

/* Valid only when READY: */
const tok_vocab *srv_model_vocab(const srv_model *m);
const srv_prompter *srv_model_prompter(const srv_model *m);
sched *srv_model_sched(const srv_model *m);
int64_t srv_model_n_ctx(const srv_model *m);

#endif
