/* What the server's files share: the server record, the reply a handler produces, the
 * client a handler serves (to notice a disconnect), and the handlers. Only srv_http.c
 * knows libmicrohttpd. */
#ifndef SERVER_SRV_INTERNAL_H
#define SERVER_SRV_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "server/srv.h"
#include "server/srv_auth.h"
#include "server/srv_error.h"
#include "server/srv_limits.h"
#include "server/srv_request.h"

struct srv {
    srv_config cfg;
    cfg_config *config;      /* the configuration in force (owned); swapped by srv_reload */
    pthread_mutex_t reload_mu; /* one reload at a time; guards config */
    fleet *fleet;
    _Atomic uint64_t timeout_ns; /* server.timeout (reloadable) */
    int64_t max_body;        /* bytes, from the configuration at start */
    int64_t max_header;      /* bytes of the request line and headers, from the configuration at start */
    int64_t started_unix;
    struct MHD_Daemon *daemon;
    int port;
    _Atomic bool stopping;   /* srv_free began: readiness is withdrawn */
    _Atomic bool cancelling; /* grace period over: running requests cancel */
    _Atomic int active;      /* requests being handled */
    obs *obs;                /* metrics, request log, store */
    struct srv_gateway *gateway; /* routes to local models and providers (srv_gateway.c) */
    srv_auth *auth;          /* API keys (reloadable) */
    struct srv_watch *watch; /* the header-read deadline (srv_watch.c) */
    srv_policy *policy;      /* request limits and CORS origins (reloadable) */
    bool loopback;           /* bound to a loopback address: the Host header is checked */
    double header_timeout_s, idle_timeout_s; /* limits.*, from the configuration at start */
    struct srv_embed *embed; /* embedding batchers and cache (srv_embed.h) */
};

void srv_log(const srv *s, const char *level, json_t *fields); /* steals fields; adds time and level */

/* The connection a handler serves. */
typedef struct srv_client {
    const srv *server;
    int fd;                  /* the socket, to notice a hang-up; -1 unknown */
    obs_trace *trace;        /* token timing of the request (owned by the connection); may be NULL */
    int64_t *prompt_tokens;  /* the request log's prompt size, for readers that learn it late; may be NULL */
    bool (*gone)(void *ud);  /* optional: another way the requester can go away (gateway sinks) */
    void *gone_ud;
    srv_key *key;            /* the caller's API key (owned by the connection); NULL without keys */
} srv_client;

/* Whether key may use the model (or route) name; else false with e (403
 * model_not_allowed) and the refusal counted. */
bool srv_key_permits_model(srv *s, srv_key *key, const char *name, srv_error *e);

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
    const char *error_code;  /* static; set by srv_reply_error */
    char model[CFG_NAME_MAX + 1]; /* the model that served it (copied: a reload may free names), or "" */
    char *raw;               /* owned (mem_*): a non-JSON body of raw_len bytes, of content_type */
    size_t raw_len;
    const char *content_type;
    /* A body produced by a reader (routed streams): read returns bytes, 0 at the end, -1
     * to abort; done is called once when the connection lets go of it. */
    ssize_t (*read)(void *reader, char *buf, size_t cap);
    void (*done)(void *reader);
    void *reader;
    char target_header[384]; /* X-Hearth-Target of a routed reply, or "" */
    char target[96];         /* the routing target that served it (request log), or "" */
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
    SRV_ROUTE_ADMIN_MODELS,  /* GET /admin/models */
    SRV_ROUTE_ADMIN_MODEL,   /* POST /admin/models/{name}/load|unload, .../adapters[/{adapter}/unload] */
    SRV_ROUTE_ADMIN_RELOAD,  /* POST /admin/reload */
    SRV_ROUTE_DASHBOARD,     /* GET / */
    SRV_ROUTE_METRICS,       /* GET /metrics */
    SRV_ROUTE_ADMIN_STATS,   /* GET /admin/stats */
    SRV_ROUTE_ADMIN_ADAPTER_DELETE, /* DELETE /admin/models/{name}/adapters/{adapter} */
    SRV_ROUTE_ADMIN_ROUTES,  /* GET /admin/routes */
    SRV_ROUTE_EMBEDDINGS,    /* POST /v1/embeddings */
} srv_route;

/* The route of url; *method_ok tells whether method is one it accepts (else *allow). */
srv_route srv_route_find(const char *method, const char *url, bool *method_ok, const char **allow);
bool srv_route_has_body(srv_route r);
/* The route's name in metrics and logs ("chat", "metrics", ...; "unknown" for NONE). */
const char *srv_route_name(srv_route r);
/* Operator endpoints (metrics, the admin routes, the dashboard): need an admin key when keys exist. */
bool srv_route_admin(srv_route r);
/* Polled endpoints (health, readiness, metrics, dashboard): logged at debug, not stored. */
bool srv_route_quiet(srv_route r);

/* ---- observability (srv_obs.c) ------------------------------------------------------ */
/* GET /, /metrics and /admin/stats. */
void srv_handle_obs(srv *s, srv_route route, srv_reply *out);
/* Reports every loaded model's scheduler and memory to s->obs (its collector). */
void srv_obs_collect(void *ud, obs *o);

/* Runs the handler of a found route with its allowed method. */
void srv_dispatch(srv *s, srv_route route, const char *url, const char *body, size_t len, const srv_client *c,
                  srv_reply *out);

/* ---- admin (srv_admin.c) ------------------------------------------------------------ */
void srv_handle_admin_models(srv *s, srv_reply *out);
void srv_handle_admin_model(srv *s, const char *rest, srv_reply *out); /* rest: "{name}/load" */
void srv_handle_admin_reload(srv *s, srv_reply *out);
/* The request deadline for the server's timeout (clock_mono_ns). */
uint64_t srv_deadline(const srv *s, double request_timeout_s);

/* ---- completions (srv_complete.c) and their SSE bodies (srv_stream.c) --------------- */
void srv_handle_completion(srv *s, srv_api api, const char *body, size_t len, const srv_client *c, srv_reply *out);

/* Waits for the next event of j, checking the client and the deadline every 100 ms.
 * On a hang-up, shutdown or a deadline passed well beyond (the scheduler missed it) it
 * cancels the job and returns false with *why set (CANCELLED or TIMEOUT). */
struct srv_job;
struct sched_event;

/* ---- embeddings (srv_embed.c) --------------------------------------------------------- */
void srv_handle_embeddings(srv *s, const char *body, size_t len, const srv_client *c, srv_reply *out);

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
