/* LoRA adapters in the API: the request's "lora" field ([{"name", "scale"}], checked
 * before the model loads), the adapter set a request runs with (the "lora" field when
 * given, else the adapter its model name "base:adapter" selected), the adapter ids that
 * /v1/models lists, the adapter rows of GET /admin/models, and the run-time adapter
 * endpoints under /admin/models/{model}/adapters. Never touches the connection. */
#ifndef SERVER_SRV_LORA_H
#define SERVER_SRV_LORA_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/sched.h"
#include "fleet/fleet.h"
#include "server/srv_auth.h"
#include "server/srv_error.h"
#include "server/srv_model.h"

typedef struct srv_lora_req {
    bool given;                        /* the request has a "lora" field (may be empty) */
    size_t n;
    const char *name[SCHED_MAX_LORA];  /* into the request's JSON */
    double scale[SCHED_MAX_LORA];
    bool has_scale[SCHED_MAX_LORA];    /* else the adapter's configured scale */
} srv_lora_req;

/* Reads root's "lora": absent/null, or an array of at most SCHED_MAX_LORA objects with a
 * string "name" and an optional finite "scale" within +-FLEET_ADAPTER_SCALE_MAX. 400
 * naming the element on anything else. */
bool srv_lora_parse(const json_t *root, srv_lora_req *out, srv_error *e);

/* The adapters a request runs with on m: those named by in when given (400 naming an
 * unknown or failed adapter), else the one m's name selected. One reference each in
 * uses[0..*n) (release them with srv_lora_release). */
bool srv_lora_select(const srv_model *m, const srv_lora_req *in, model_lora_use *uses, int32_t *n, srv_error *e);
void srv_lora_release(model_lora_use *uses, int32_t n);
/* Whether key may run what in selects on m (true without a key or a "lora" field): each
 * adapter as the id "base:adapter", an empty list as the base model; else 403 naming
 * the element. The model name alone does not open the others a "lora" field can pick. */
bool srv_lora_key_allows(const srv_model *m, const srv_lora_req *in, srv_key *key, srv_error *e);

/* True when the model in lists an adapter id "base:adapter" equal to id. */
bool srv_lora_is_model_id(const fleet_info *in, const char *id);
/* Appends /v1/models objects for in's usable adapters ("base:adapter") to data, or only
 * the one equal to only (NULL: all); returns the number appended. */
size_t srv_lora_model_objects(const fleet_info *in, int64_t created, const char *only, json_t *data);

/* The "adapters" array of one GET /admin/models row. */
json_t *srv_lora_admin_rows(const fleet_info *in);

/* Splits rest (what follows "/admin/models/") of an adapter URL into the model name
 * (cap bytes) and *sub ("adapters..."); false when rest is not one. */
bool srv_lora_admin_url(const char *rest, char *model_name, size_t cap, const char **sub);

struct srv;
struct srv_reply;
/* /admin/models/{model}/adapters[...]: rest is what follows "/admin/models/{model}/"
 * ("adapters", "adapters/{name}", "adapters/{name}/unload"), method "POST" or "DELETE".
 * POST .../adapters with {"name", "path", "scale"} loads one (400 with the adapter's
 * error, nothing changed); DELETE .../adapters/{name} or POST .../adapters/{name}/unload
 * removes one (404 unknown). The model is loaded first if it is not. */
void srv_handle_admin_adapter(struct srv *s, const char *model_name, const char *rest, const char *method,
                              const char *body, size_t len, struct srv_reply *out);

#endif
