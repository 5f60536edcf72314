/* Circuit breaker of one gateway target (see gw_breaker.c for the state machine and its
 * invariants). Thread-safe: any number of request threads ask and report at once. It
 * decides only whether a call may go out; it never sleeps and never calls a target. */
#ifndef GATEWAY_GW_BREAKER_H
#define GATEWAY_GW_BREAKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "gateway/gw_clock.h"

typedef enum gw_breaker_state { GW_BREAKER_CLOSED, GW_BREAKER_OPEN, GW_BREAKER_HALF_OPEN } gw_breaker_state;

const char *gw_breaker_state_name(gw_breaker_state s); /* "closed", "open", "half_open" */

typedef struct gw_breaker_config {
    int failures;             /* consecutive failures that open it; 0: rule off (default 5) */
    double failure_ratio;     /* failures / calls over the window that open it; 0: rule off (0.5) */
    int min_calls;            /* calls in the window before the ratio applies (20) */
    uint64_t window_ns;       /* sliding window of the ratio rule (60 s) */
    uint64_t cooldown_ns;     /* open time after the first open (30 s) */
    uint64_t cooldown_max_ns; /* cap of the doubling cooldown on repeated opens (600 s) */
    int probes;               /* half-open: calls let through at once, successes to close (1) */
} gw_breaker_config;

void gw_breaker_config_default(gw_breaker_config *c);

/* What a finished call tells the breaker. NEUTRAL: the call says nothing about the
 * target's health (4xx caused by the request, cancelled by the client or a race). */
typedef enum gw_verdict { GW_VERDICT_SUCCESS, GW_VERDICT_FAILURE, GW_VERDICT_NEUTRAL } gw_verdict;

/* A permission to call, handed back with the call's verdict. */
typedef struct gw_ticket {
    uint64_t generation;
    bool probe;
} gw_ticket;

/* A state change, reported to the caller for logs, metrics and the request's report. */
typedef struct gw_breaker_change {
    bool changed;
    gw_breaker_state from, to;
} gw_breaker_change;

#define GW_BREAKER_BUCKETS 10
#define GW_ERROR_MSG 200

typedef struct gw_breaker_bucket {
    uint64_t epoch; /* now / bucket width when it was last reset */
    uint32_t calls, failures;
} gw_breaker_bucket;

typedef struct gw_breaker {
    pthread_mutex_t mu;
    gw_breaker_config cfg;
    const gw_clock *clock;
    gw_breaker_state state;
    uint64_t generation;       /* bumped at every transition */
    int consecutive;           /* failures in a row (CLOSED) */
    int opens;                 /* opens since the last close (cooldown growth) */
    uint64_t open_until_ns;    /* OPEN: when the cooldown ends */
    int probes_in_flight, probe_successes;
    gw_breaker_bucket buckets[GW_BREAKER_BUCKETS];
    /* statistics for the admin view */
    uint64_t calls, successes, failures, rejected, total_opens;
    char last_error[GW_ERROR_MSG];
    uint64_t last_error_ns;    /* clock time of last_error; 0 none */
} gw_breaker;

/* Starts CLOSED. cfg is copied; clock must outlive the breaker. */
void gw_breaker_init(gw_breaker *b, const gw_breaker_config *cfg, const gw_clock *clock);
void gw_breaker_destroy(gw_breaker *b);

/* May a call go out now? True fills *t (hand it to gw_breaker_report). May move OPEN to
 * HALF_OPEN when the cooldown has passed (reported in *ch). */
bool gw_breaker_allow(gw_breaker *b, gw_ticket *t, gw_breaker_change *ch);

/* The verdict of a call allowed with t; error (may be NULL) is kept as the last error
 * for failures. */
void gw_breaker_report(gw_breaker *b, const gw_ticket *t, gw_verdict v, const char *error, gw_breaker_change *ch);

/* A consistent copy of the breaker's state (mutex not included; do not use it). */
typedef struct gw_breaker_view {
    gw_breaker_state state;
    int consecutive, opens;
    uint32_t window_calls, window_failures;
    uint64_t retry_in_ns;      /* OPEN: time left of the cooldown */
    uint64_t calls, successes, failures, rejected, total_opens;
    bool has_last_error;
    char last_error[GW_ERROR_MSG];
    uint64_t last_error_age_ns;
} gw_breaker_view;

void gw_breaker_view_get(gw_breaker *b, gw_breaker_view *v);

#endif
