/* The server's view of a model a request uses: a fleet lease (see src/fleet/fleet.h),
 * held from when the request's model is known until its job ends, so the model is never
 * unloaded under it. Also the fleet hooks the server provides (each loaded model's chat
 * prompter, built from the model's template or the configured template file; lifecycle
 * events turned into log lines) and the per-model defaults applied to requests. This
 * file never touches HTTP. */
#ifndef SERVER_SRV_MODEL_H
#define SERVER_SRV_MODEL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/sched.h"
#include "fleet/fleet.h"
#include "hearth.h"
#include "server/srv_error.h"
#include "server/srv_prompt.h"
#include "server/srv_request.h"
#include "tokenizer/tokenizer.h"

typedef struct fleet_lease srv_model;

const char *srv_model_id(const srv_model *m);   /* the configured name */
int64_t srv_model_created(const srv_model *m);  /* unix seconds it became ready */
const tok_vocab *srv_model_vocab(const srv_model *m);
const srv_prompter *srv_model_prompter(const srv_model *m);
sched *srv_model_sched(const srv_model *m);     /* NULL for embedding models */
int64_t srv_model_n_ctx(const srv_model *m);
void srv_model_release(srv_model *m);           /* accepts NULL */

/* Gives the named model, loading it if needed, waiting at most until deadline_ns
 * (clock_mono_ns). Errors as API errors: 404 unknown model, 503 with Retry-After when
 * it is loading past the deadline, failed, or does not fit the memory budget. */
bool srv_model_acquire(fleet *f, const char *name, double keep_alive_s, uint64_t deadline_ns, bool retry_failed,
                       srv_model **out, srv_error *e);

/* The request's "keep_alive": seconds (number), a duration string ("5m", "forever"), or
 * absent (*out < 0 and not CFG_FOREVER). 400 when malformed. */
bool srv_model_keep_alive(const json_t *root, double *out, srv_error *e);

/* Fills the sampling fields and max_tokens the request left out from the model's
 * configured defaults. */
void srv_model_apply_defaults(const srv_model *m, srv_req *r);

/* The hooks for fleet_new: attach/detach the chat prompter; events to log (ud: srv *). */
void srv_model_hooks(fleet_hooks *h, void *srv_ud);

#endif
