/* The server's side of the gateway: the gateway built from the configuration's routes
 * (swapped safely on reload: requests keep the one they started with, the old one is
 * drained and freed when its last request ends), chat/completions whose model is a route
 * (srv_gw_handle.c), the local-model path the gateway calls (srv_gw_local.c), GET
 * /admin/routes, routes in /v1/models, and gateway metrics and log lines. */
#ifndef SERVER_SRV_GATEWAY_H
#define SERVER_SRV_GATEWAY_H

#include <jansson.h>
#include <stdbool.h>

#include "gateway/gw.h"
#include "server/srv_internal.h"

/* One built gateway, reference counted by the requests using it. */
typedef struct srv_gw_ref srv_gw_ref;

/* At srv_new (after the fleet): the gateway of s->config, if it has routes. Errors:
 * INVALID (a provider key variable unset, ...), NOMEM. */
hearth_status srv_gateway_new(srv *s, hearth_err *err);
/* At srv_free, after the HTTP daemon stopped: drains and frees. */
void srv_gateway_free(srv *s);

/* Reload: builds the gateway of next without changing anything (*out NULL when next has
 * no routes); then swap installs it (appending a note to msg) or discard drops it. */
hearth_status srv_gateway_prepare(srv *s, const cfg_config *next, srv_gw_ref **out, hearth_err *err);
void srv_gateway_swap(srv *s, srv_gw_ref *next, char *msg, size_t cap);
void srv_gateway_discard(srv_gw_ref *next);

/* The gateway in force with a reference taken (NULL: none); release when done. */
srv_gw_ref *srv_gw_acquire(srv *s);
void srv_gw_release(srv_gw_ref *r);
gw *srv_gw_of(const srv_gw_ref *r);

/* Handles a completion whose body's model is a route: true when it was one (out is
 * filled), false to go on with local models. */
bool srv_gateway_handle(srv *s, srv_api api, const json_t *root, const srv_client *c, srv_reply *out);

/* /v1/models: appends every route to data (only NULL) and returns NULL, or returns the
 * model object of the route named only (NULL when there is none). */
json_t *srv_gateway_models(srv *s, json_t *data, const char *only);

/* GET /admin/routes. */
void srv_gateway_admin(srv *s, srv_reply *out);

/* Metrics and the log line of one routed request. */
void srv_gateway_report(srv *s, const gw_result *res, const char *request_kind);
/* The X-Hearth-Target value: "route=R; target=T; attempts=N[; breaker=T:from>to,...]". */
void srv_gateway_header(const gw_result *res, char *buf, size_t cap);

/* The gw_local_ops call (srv_gw_local.c); ud is the srv. */
void srv_gw_local_call(void *ud, const char *target_model, const gw_request *req, const gw_sink *sink, gw_outcome *out);

#endif
