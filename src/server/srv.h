/* The HTTP server: the OpenAI-compatible API over the model fleet, on libmicrohttpd with
 * a thread per connection. srv_new listens at once; models load in the background
 * (preload models at start, the others on their first request). GET /health answers as
 * soon as the socket listens, GET /ready once every preload model is ready. Operators
 * get /admin/models, /admin/models/{name}/load|unload and /admin/reload. The server
 * never prints: log lines (one JSON object each) go to the configured callback. */
#ifndef SERVER_SRV_H
#define SERVER_SRV_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "fleet/fleet.h"
#include "hearth.h"
#include "obs/obs.h"

typedef void (*srv_log_fn)(void *ud, const char *json_line);

/* Builds the configuration anew for a reload (file, environment, flags again). */
typedef hearth_status (*srv_reload_fn)(void *ud, cfg_config **out, cfg_errors *errs, hearth_err *err);

typedef struct srv_config {
    cfg_config *config;        /* server limits and models; srv_new takes ownership (always) */
    srv_log_fn log;            /* may be NULL */
    void *log_ud;
    srv_reload_fn reload;      /* NULL: reloads are refused */
    void *reload_ud;
    const fleet_options *fleet_opt; /* NULL: defaults */
    obs_config obs;            /* metrics, request log and store (obs_config_default first);
                                  its log is set to log above */
} srv_config;

typedef struct srv srv;

/* Binds and starts serving. Errors: INVALID (bad host), IO (cannot bind), NOMEM. */
hearth_status srv_new(const srv_config *cfg, srv **out, hearth_err *err);
/* Graceful stop: refuses new connections, lets running requests finish for the grace
 * period, cancels the rest, then frees everything. Accepts NULL. */
void srv_free(srv *s);

int srv_port(const srv *s);
fleet *srv_fleet(const srv *s);

/* Reloads the configuration through cfg.reload: validated fully before anything
 * changes; an invalid configuration changes nothing (errs lists why, err has the
 * first). msg receives a summary. Logs the outcome. Safe from any thread. */
hearth_status srv_reload(srv *s, char *msg, size_t cap, cfg_errors *errs, hearth_err *err);

#endif
