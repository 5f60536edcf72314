/* The gateway: a model name clients use (a route) leads to one or more targets — local
 * models, reached through a callback table the server plugs in, or models of remote
 * OpenAI-compatible providers, reached over HTTP(S) with libcurl — with a strategy
 * (fallback, weighted, race, shadow), retries with backoff and a retry budget, and a
 * circuit breaker per target. Semantics are in docs/ARCHITECTURE.md ("Gateway"); the
 * configuration shape in docs/CONFIG.md ("Gateway").
 *
 * The gateway never parses a request beyond what routing needs (model, stream, user),
 * never touches the client's connection (output goes through a gw_sink), never prints,
 * and never logs or reports a provider's API key. */
#ifndef GATEWAY_GW_H
#define GATEWAY_GW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/gw_breaker.h"
#include "gateway/gw_clock.h"
#include "hearth.h"

/* ---- a request and where its answer goes ------------------------------------------- */

typedef enum gw_api { GW_API_CHAT, GW_API_COMPLETION } gw_api;

typedef struct gw_request {
    gw_api api;
    const char *model;          /* the route's name */
    const json_t *body;         /* the client's JSON body; borrowed, never modified */
    bool stream;
    const char *user;           /* sticky key of weighted routes; NULL: none */
    uint64_t deadline_ns;       /* clock_mono_ns() deadline of the whole request; 0 none */
} gw_request;

/* Where output goes. The gateway calls event/body from the calling thread or, for race
 * routes, from one worker thread, never two at once and never after gw_call returned.
 * Every byte handed to event/body counts as having reached the client: from then on
 * the request is never retried. Return false when the client is gone (the attempt is
 * cancelled). */
typedef struct gw_sink {
    /* One streamed chunk: an SSE data payload, a JSON object ("[DONE]" is never passed:
     * a stream that ends with outcome OK is complete). */
    bool (*event)(void *ud, const char *data, size_t len);
    /* The whole reply body of a non-streamed request (JSON). */
    bool (*body)(void *ud, const char *data, size_t len);
    /* Polled at least every 50 ms, from any gateway thread: true when the client went
     * away. May be NULL. */
    bool (*gone)(void *ud);
    void *ud;
    /* Optional (may be NULL). attempt: an attempt on target begins (race attempts run at
     * once, so it may come from two threads). commit: the first output of the request
     * is about to reach the client, produced by target (once per request, before that
     * output's event/body call). */
    void (*attempt)(void *ud, const char *target);
    void (*commit)(void *ud, const char *target);
} gw_sink;

/* ---- what one attempt on one target came to ---------------------------------------- */

typedef enum gw_outcome_kind {
    GW_OUT_OK,
    GW_OUT_CONNECT,      /* refused, reset or unreachable before any response byte */
    GW_OUT_TIMEOUT,      /* no response byte within the target's first-byte timeout */
    GW_OUT_SERVER,       /* 5xx, 408, a refused redirect, or a local model overloaded */
    GW_OUT_RATE_LIMITED, /* 429 */
    GW_OUT_CLIENT,       /* another 4xx: the request's own fault; returned to the client */
    GW_OUT_BROKEN,       /* the response began but broke: reset, stall, malformed, too large */
    GW_OUT_CANCELLED,    /* the client went away, or the attempt lost a race */
    GW_OUT_DEADLINE,     /* the request's own deadline passed */
} gw_outcome_kind;

const char *gw_outcome_name(gw_outcome_kind k); /* "ok", "connect", "timeout", ... */

typedef struct gw_outcome {
    gw_outcome_kind kind;
    int http_status;           /* upstream (or local) HTTP status; 0 when none */
    int64_t retry_after_ms;    /* from a Retry-After header; -1 none */
    char *error_body;          /* mem_alloc'd upstream error body (JSON), or NULL */
    size_t error_len;
    char msg[256];             /* one line; never holds a credential */
} gw_outcome;

void gw_outcome_reset(gw_outcome *o); /* frees error_body, then kind OK and no values */

/* The local-model path, plugged in by the server. call runs req on the local model
 * `model`, emitting through sink (events when req->stream, else one body), and fills
 * *out: OK; SERVER with http_status 503 when the model is overloaded (retryable);
 * CLIENT with status and an OpenAI-shaped error_body for the request's own faults;
 * CANCELLED when sink->gone said so; DEADLINE. Called concurrently from request
 * threads and gateway workers. */
typedef struct gw_local_ops {
    void (*call)(void *ud, const char *model, const gw_request *req, const gw_sink *sink, gw_outcome *out);
    void *ud;
} gw_local_ops;

/* ---- configuration ------------------------------------------------------------------ */

typedef enum gw_strategy { GW_FALLBACK, GW_WEIGHTED, GW_RACE, GW_SHADOW } gw_strategy;
const char *gw_strategy_name(gw_strategy s);

typedef struct gw_alias {
    char *name;                /* the model name routes use */
    char *upstream;            /* the name sent to the provider */
} gw_alias;

typedef struct gw_provider_config {
    char *name;
    char *base_url;            /* http(s)://host[:port][/path]; no credentials, query or fragment */
    char *api_key_env;         /* environment variable holding the key; NULL: none sent */
    gw_alias *models;
    size_t n_models;
    uint32_t connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms, total_timeout_ms;
    int max_attempts;          /* attempts on one of its targets within a request */
    size_t max_line;           /* longest SSE line accepted (bytes) */
} gw_provider_config;

typedef struct gw_route_target {
    char *target;              /* "local:MODEL" or "PROVIDER/MODEL" */
    uint32_t weight;           /* weighted routes */
} gw_route_target;

#define GW_MAX_ROUTE_TARGETS 16

typedef struct gw_route_config {
    char *name;
    gw_strategy strategy;
    bool sticky;               /* weighted: the same user always gets the same first target */
    gw_route_target *targets;
    size_t n_targets;
} gw_route_config;

typedef struct gw_retry_config {
    uint32_t base_ms, cap_ms;  /* backoff before attempt k+1 on a target: U[0, min(cap, base*2^k)] */
    uint32_t retry_after_cap_ms; /* longest Retry-After honoured; longer moves on to the next target */
    double budget_ratio;       /* retries per request allowed on average (0.1) */
    double budget_min_per_s;   /* plus this many per second (1) */
    double budget_burst;       /* bucket size (10) */
    int local_max_attempts;    /* attempts on a local target within a request (1) */
} gw_retry_config;

typedef struct gw_config {
    gw_provider_config *providers;
    size_t n_providers;
    gw_route_config *routes;
    size_t n_routes;
    gw_breaker_config breaker;
    gw_retry_config retry;
    uint64_t seed;             /* weighted choices and jitter; 0: random at gw_new */
    int max_shadows;           /* shadow calls in flight at once; more are dropped (8) */
} gw_config;

/* Builds a configuration from its JSON form (docs/CONFIG.md, "Gateway"): {"providers":
 * [...], "routes": [...], "breaker": {...}, "retry": {...}, "seed": N}. Every field is
 * type- and range-checked; an error names it ("routes[1].targets[0]"). INVALID, NOMEM. */
hearth_status gw_config_parse(const json_t *root, gw_config **out, hearth_err *err);
void gw_config_free(gw_config *c);

/* ---- the gateway ------------------------------------------------------------------- */

typedef struct gw gw;

/* Log lines the gateway emits (breaker transitions, shadow comparisons): fields is a
 * JSON object, borrowed; it never holds a key, a prompt or an output. */
typedef void (*gw_log_fn)(void *ud, const char *level, const json_t *fields);

typedef struct gw_shadow_side {
    char target[96];
    gw_outcome_kind kind;
    int http_status;
    uint64_t first_byte_ns, total_ns; /* from the start of the request */
    size_t bytes;                     /* output bytes produced */
    char *text;                       /* the answer's text, at most 64 KiB */
    size_t text_len;
} gw_shadow_side;

typedef struct gw_shadow_record {
    char route[64];
    gw_shadow_side primary, shadow;
    bool same_text;
} gw_shadow_record;

typedef struct gw_env {
    gw_local_ops local;        /* call NULL: routes with local targets are refused */
    const gw_clock *clock;     /* NULL: the real clock */
    gw_log_fn log;             /* may be NULL */
    void *log_ud;
    /* Each finished shadow comparison, with both texts (for the operator's store); may
     * be NULL. Runs on a gateway worker; the record is valid during the call. */
    void (*on_shadow)(void *ud, const gw_shadow_record *r);
    void *shadow_ud;
} gw_env;

/* Resolves every route's targets, reads providers' keys from the environment and
 * prepares libcurl. Errors: INVALID (unknown provider, local target without local ops,
 * key variable unset, bad URL), NOMEM. cfg may be freed afterwards. */
hearth_status gw_new(const gw_config *cfg, const gw_env *env, gw **out, hearth_err *err);
/* Waits for running shadow calls, then frees everything. Accepts NULL. */
void gw_free(gw *g);

bool gw_has_route(const gw *g, const char *model);

#define GW_MAX_ATTEMPTS 16

typedef struct gw_attempt {
    char target[96];
    gw_outcome_kind kind;
    int http_status;
    uint64_t waited_ns;        /* backoff slept before it */
    uint64_t first_byte_ns;    /* until its first output; 0 when none */
    uint64_t duration_ns;
    char msg[160];
} gw_attempt;

typedef struct gw_transition {
    char target[96];
    gw_breaker_state from, to;
} gw_transition;

typedef struct gw_result {
    char route[64];
    char target[96];           /* the target that answered (or failed last); "" none tried */
    gw_outcome_kind kind;      /* OK, or why the request failed */
    bool committed;            /* output reached the client: failures end the stream */
    int http_status;           /* for the client: 200, or the error's status */
    int retry_after_s;         /* > 0: send Retry-After */
    char *error_body;          /* mem_alloc'd JSON error body for the client, or NULL */
    size_t error_len;
    char msg[256];
    gw_attempt attempts[GW_MAX_ATTEMPTS];
    size_t n_attempts;
    size_t skipped;            /* targets passed over because their breaker was open */
    bool budget_refused;       /* a retry was refused by the retry budget */
    gw_transition transitions[GW_MAX_ATTEMPTS];
    size_t n_transitions;
} gw_result;

/* Runs req on its route (gw_has_route must be true, else NOT_FOUND in res). Blocks
 * until the answer is complete or failed. When res->kind is not OK and nothing was
 * committed, the caller answers with res->http_status and res->error_body; when
 * committed, it ends the stream with an error event. Always call gw_result_free. */
void gw_call(gw *g, const gw_request *req, const gw_sink *sink, gw_result *res);
void gw_result_free(gw_result *r);

/* The request's report for a log line: route, target, attempts, transitions. NULL on
 * NOMEM. */
json_t *gw_result_json(const gw_result *r);

/* GET /admin/routes: routes, and per target its breaker state, counts, last error; the
 * retry budget; recent shadow comparisons (timings and statuses, no texts). */
json_t *gw_status_json(gw *g);

/* Waits until no shadow call is running. */
void gw_drain(gw *g);

#endif
