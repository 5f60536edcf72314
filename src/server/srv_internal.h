/* What the server's files share: the server record, the reply a handler produces, the
 * client a handler serves (to notice a disconnect), and the handlers. Only srv_http.c
 * knows libmicrohttpd. */
#ifndef SERVER_SRV_INTERNAL_H
#define SERVER_SRV_INTERNAL_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "server/srv.h"
#include "server/srv_error.h"
#include "server/srv_request.h"

struct srv {
    srv_config cfg;
    char *host;
    srv_model *model;
    struct MHD_Daemon *daemon;
    int port;
    _Atomic bool stopping;   /* srv_free began: readiness is withdrawn */
    _Atomic bool cancelling; /* grace period over: running requests cancel */
    _Atomic int active;      /* requests being handled */
};

void srv_log(const srv *s, const char *level, json_t *fields); /* steals fields; adds time and level */

/* The connection a handler serves. */
typedef struct srv_client {
    const srv *server;
    int fd;                  /* the socket, to notice a hang-up; -1 unknown */
} srv_client;

/* True when the client hung up or the server is cancelling requests. */
bool srv_client_gone(const srv_client *c);

typedef struct srv_stream srv_stream;

typedef struct srv_reply {
    int status;
    json_t *body;            /* owned; NULL when stream is set */
    srv_stream *stream;      /* owned; an SSE body */
    int retry_after_s;       /* > 0: Retry-After header */
    const char *allow;       /* 405: the Allow header */
    int64_t prompt_tokens, completion_tokens; /* for the request log */
} srv_reply;

void srv_reply_error(srv_reply *r, const srv_error *e);
void srv_reply_json(srv_reply *r, int status, json_t *body);

/* ---- routes ------------------------------------------------------------------------ */
typedef enum srv_route {
    SRV_ROUTE_NONE,          /* unknown path: 404 */
    SRV_ROUTE_HEALTH,
    SRV_ROUTE_READY,
    SRV_ROUTE_MODELS,
    SRV_ROUTE_MODEL,         /* /v1/models/{id} */
    SRV_ROUTE_CHAT,
    SRV_ROUTE_COMPLETIONS,
} srv_route;

/* The route of url; *method_ok tells whether method is one it accepts (else *allow). */
srv_route srv_route_find(const char *method, const char *url, bool *method_ok, const char **allow);
bool srv_route_has_body(srv_route r);

/* Runs the handler of a found route with its allowed method. */
void srv_dispatch(srv *s, srv_route route, const char *url, const char *body, size_t len, const srv_client *c,
                  srv_reply *out);

/* ---- completions (srv_complete.c) and their SSE bodies (srv_stream.c) --------------- */
void srv_handle_completion(srv *s, srv_api api, const char *body, size_t len, const srv_client *c, srv_reply *out);

/* Waits for the next event of j, checking the client and the deadline every 100 ms.
 * On a hang-up, shutdown or a deadline passed well beyond (the scheduler missed it) it
 * cancels the job and returns false with *why set (CANCELLED or TIMEOUT). */
struct srv_job;
struct sched_event;
bool srv_wait_event(struct srv_job *j, const srv_client *c, size_t *which, struct sched_event *ev,
                    hearth_status *why);

/* Takes ownership of req and job (submitted) when it returns non-NULL; NULL on NOMEM. */
srv_stream *srv_stream_new(const srv_client *c, srv_req *req, struct srv_job *job);
/* Waits for the first event, so that a deadline or failure before any output can still
 * be an HTTP error (504, 500) in *e; true when the body can start. */
bool srv_stream_start(srv_stream *st, srv_error *e);
ssize_t srv_stream_read(srv_stream *st, char *buf, size_t cap);
void srv_stream_free(srv_stream *st);

#endif
