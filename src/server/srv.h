/* The HTTP server: the OpenAI-compatible API over one model, on libmicrohttpd with a
 * thread per connection. srv_new listens at once and loads the model in the background
 * (GET /health answers as soon as the socket listens, GET /ready once the model can
 * take requests). The server never prints: log lines (one JSON object each) go to the
 * configured callback. */
#ifndef SERVER_SRV_H
#define SERVER_SRV_H

#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "server/srv_model.h"

typedef void (*srv_log_fn)(void *ud, const char *json_line);

typedef struct srv_config {
    const char *host;          /* address to bind (IPv4 or IPv6 literal); NULL: 127.0.0.1 */
    int port;                  /* 0: any free port (see srv_port) */
    srv_model_config model;
    double timeout_s;          /* longest a request may run; requests may ask for less */
    int max_connections;       /* concurrent connections (each a thread) */
    size_t max_body;           /* bytes of a request body (413 beyond) */
    size_t max_header;         /* bytes of the request line and headers together */
    double shutdown_grace_s;   /* srv_free lets running requests finish this long */
    srv_log_fn log;            /* may be NULL */
    void *log_ud;
} srv_config;

/* timeout 600 s, 256 connections, 8 MiB bodies, 16 KiB headers, 5 s grace. */
void srv_config_default(srv_config *c);

typedef struct srv srv;

/* Binds and starts serving. Errors: INVALID (bad host or config), IO (cannot bind),
 * NOMEM. The configuration's strings are copied. */
hearth_status srv_new(const srv_config *cfg, srv **out, hearth_err *err);
/* Graceful stop: refuses new connections, lets running requests finish for the grace
 * period, cancels the rest, then frees everything. Accepts NULL. */
void srv_free(srv *s);

int srv_port(const srv *s);
srv_model_state srv_state(const srv *s);
const hearth_err *srv_load_error(const srv *s);

#endif
