/* Request statistics per (model, route): counts, error rate, latency and time-to-first-
 * token percentiles, decode speed and the most frequent error codes. One aggregator
 * serves both `hearth stats` (rows read from the SQLite store) and the live window behind
 * GET /admin/stats, so the two always agree on definitions:
 *   errors        status >= 500 (the server's fault); client_errors: 400..499
 *   percentiles   nearest rank over the requests of the group (ttft: those with a token)
 *   tokens_per_s  decode speed: sum of (completion_tokens - 1) over sum of (duration -
 *                 ttft) for requests that produced at least two tokens
 * Values only: no I/O, no locks (one aggregator per caller). */
#ifndef OBS_OBS_STATS_H
#define OBS_OBS_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "obs/obs_metrics.h"

#define OBS_TOP_ERRORS 3
#define OBS_ROUTE_MAX 31
#define OBS_ERROR_MAX 63
#define OBS_MAX_GROUPS 256 /* further (model, route) pairs are counted under model "_other" */

typedef struct obs_sample {
    const char *model, *route; /* NULL counts as "" */
    const char *error;         /* error code; NULL or "" for none */
    int status;
    double duration_ms;
    double ttft_ms;            /* < 0: no token was produced */
    int64_t prompt_tokens, completion_tokens;
} obs_sample;

typedef struct obs_pcts {
    int64_t n;                 /* values behind the percentiles; 0: they are meaningless */
    double p50, p95, p99;
} obs_pcts;

typedef struct obs_error_count {
    char code[OBS_ERROR_MAX + 1];
    int64_t count;
} obs_error_count;

typedef struct obs_group {
    char model[OBS_LABEL_MAX + 1];
    char route[OBS_ROUTE_MAX + 1];
    int64_t requests, errors, client_errors;
    double error_rate;         /* errors / requests */
    obs_pcts latency_ms, ttft_ms;
    int64_t prompt_tokens, completion_tokens;
    double tokens_per_s;       /* 0 when no request produced two tokens */
    obs_error_count top[OBS_TOP_ERRORS]; /* most frequent first */
    size_t n_top;
} obs_group;

typedef struct obs_report {
    obs_group *groups;         /* [n_groups] sorted by model, then route; owned */
    size_t n_groups;
    int64_t requests, errors;
    double window_s;           /* the span the samples cover (for rates); 0 unknown */
} obs_report;

typedef struct obs_agg obs_agg;

obs_agg *obs_agg_new(void); /* NULL on NOMEM */
void obs_agg_free(obs_agg *a);
/* Adds one request. False on NOMEM (the sample is then not counted). */
bool obs_agg_add(obs_agg *a, const obs_sample *s);
/* Computes the report (the aggregator stays usable). False on NOMEM. */
bool obs_agg_report(obs_agg *a, double window_s, obs_report *out);
void obs_report_free(obs_report *r);

/* {"window_s", "requests", "errors", "rate_per_s", "groups":[{model, route, requests,
 * errors, client_errors, error_rate, latency_ms:{p50,p95,p99}, ttft_ms:{...}|null,
 * prompt_tokens, completion_tokens, tokens_per_s, top_errors:[{code,count}]}]}. NULL on NOMEM. */
json_t *obs_report_json(const obs_report *r);

#endif
