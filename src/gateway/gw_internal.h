/* What the gateway's files share: the gateway record, its targets and routes, and the
 * attempt runner used by every strategy. Not for use outside src/gateway/. */
#ifndef GATEWAY_GW_INTERNAL_H
#define GATEWAY_GW_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "gateway/gw.h"
#include "gateway/gw_openai.h"
#include "gateway/gw_retry.h"

typedef enum gw_target_kind { GW_TARGET_LOCAL, GW_TARGET_OPENAI } gw_target_kind;

typedef struct gw_target {
    char name[96];             /* "local:MODEL" or "PROVIDER/MODEL"; unique in the gateway */
    gw_target_kind kind;
    char *model;               /* local model name, or the name routes use at the provider */
    gw_openai *provider;       /* OPENAI: borrowed from the gateway */
    int max_attempts;
    gw_breaker breaker;        /* shared by every route naming this target */
} gw_target;

typedef struct gw_route {
    char *name;
    gw_strategy strategy;
    bool sticky;
    gw_target **targets;       /* borrowed from the gateway's table */
    uint32_t *weights;
    size_t n;
    uint64_t total_weight;
} gw_route;

#define GW_SHADOW_RECENT 16

struct gw {
    gw_env env;
    const gw_clock *clock;
    gw_openai **providers;
    size_t n_providers;
    gw_target *targets;
    size_t n_targets;
    gw_route *routes;
    size_t n_routes;
    gw_retry_config retry;
    gw_budget budget;
    uint64_t seed;
    _Atomic uint64_t draws;    /* weighted choices and jitter draw number */
    _Atomic int stopping;      /* gw_free began: shadow calls cancel */
    /* shadow calls */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int max_shadows, shadows_running;
    uint64_t shadows_started, shadows_dropped;
    gw_shadow_record recent[GW_SHADOW_RECENT]; /* texts not kept */
    size_t n_recent, next_recent;
};

/* A random 64-bit value from the gateway's seeded stream (thread-safe). */
uint64_t gw_draw(gw *g);

/* Output capture for shadow comparisons: the answer's text, at most 64 KiB. */
typedef struct gw_capture {
    char *text;
    size_t len, cap;
    size_t bytes;              /* every output byte, captured or not */
    uint64_t first_ns;         /* clock_mono_ns of the first output; 0 none */
} gw_capture;

void gw_capture_add(gw_capture *c, const char *data, size_t len, bool streamed);
void gw_capture_free(gw_capture *c);

/* One attempt in flight: wraps the client's sink to know whether anything reached the
 * client, to let a race pick one winner, and to cancel the attempt. */
typedef struct gw_run {
    gw *g;
    const gw_request *req;
    const gw_sink *client;     /* NULL: output is only captured (shadow) */
    _Atomic int cancel;        /* set by a race's winner or gw_free */
    _Atomic int *winner;       /* race: index of the winning run, -1 none yet; NULL otherwise */
    int index;
    const char *target;        /* name of the target of the current attempt */
    bool committed;            /* output went to the client */
    uint64_t start_ns, first_byte_ns; /* clock_mono_ns, of the current attempt */
    gw_capture *capture;       /* shadow comparisons; NULL: none */
} gw_run;

/* Runs one attempt of run->req on t: asks nothing of the breaker, reports nothing.
 * Fills *out. */
void gw_attempt_run(gw_run *run, gw_target *t, gw_outcome *out);

/* How the breaker should count an outcome, and whether another attempt may follow. */
gw_verdict gw_outcome_verdict(gw_outcome_kind k);
bool gw_outcome_retryable(gw_outcome_kind k);

/* Result bookkeeping. */
void gw_result_add_transition(gw *g, gw_result *r, const gw_target *t, const gw_breaker_change *ch);
void gw_result_add_attempt(gw_result *r, const gw_target *t, const gw_outcome *o, uint64_t waited_ns,
                           const gw_run *run, uint64_t end_ns);
/* Sets the client-facing status, message and body of a failed result from o. */
void gw_result_fail(gw_result *r, const gw_target *t, gw_outcome *o);

/* Tries order[0..n) in order, as a fallback route does (also the tail of a race).
 * prior: attempts already made by this request (a further one is a retry). */
void gw_fallback(gw *g, gw_target **order, size_t n, const gw_request *req, const gw_sink *sink, gw_result *res,
                 size_t prior, gw_capture *capture);

/* Strategies of gw_collab.c. */
void gw_race(gw *g, gw_route *route, const gw_request *req, const gw_sink *sink, gw_result *res);
void gw_shadow(gw *g, gw_route *route, const gw_request *req, const gw_sink *sink, gw_result *res);

/* A shadow comparison without its texts (admin view, logs). NULL on NOMEM. */
json_t *gw_shadow_record_json(const gw_shadow_record *r);

void gw_log_transition(gw *g, const gw_target *t, const gw_breaker_change *ch);

#endif
