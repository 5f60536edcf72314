/* Load generator for an OpenAI-compatible server on this machine: keeps exactly C
 * streamed completions in flight (libcurl multi, one thread) until N have finished, and
 * records per request the time to first token, the gaps between content chunks, the
 * output tokens and how it ended. Loopback targets only; never prints. */
#ifndef LOADGEN_LOADGEN_H
#define LOADGEN_LOADGEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

typedef struct loadgen_config {
    const char *url;      /* server base: http://127.0.0.1:PORT (a trailing /v1 is accepted) */
    const char *model;    /* NULL: the first id listed by GET /v1/models */
    bool chat;            /* /v1/chat/completions with one user message, else /v1/completions */
    int concurrency;      /* requests in flight at once, >= 1 */
    long requests;        /* requests in all, >= 1 */
    int prompt_words;     /* words per prompt, >= 1 */
    int max_tokens;       /* max_tokens of each request (with ignore_eos), >= 1 */
    uint64_t seed;        /* prompts and per-request sampling seeds (seed + index) */
    double temperature;   /* sent as is (0: greedy) */
    double timeout_s;     /* longest one request may take, connection included */
} loadgen_config;

void loadgen_config_default(loadgen_config *cfg);

/* How a request ended. */
typedef enum loadgen_kind {
    LOADGEN_OK = 0,         /* 200, SSE through data: [DONE] */
    LOADGEN_REJECTED,       /* 429, or 503 with Retry-After: the server shed load */
    LOADGEN_CONNECT,        /* the connection could not be made (refused, unreachable) */
    LOADGEN_TIMEOUT,        /* the request outlived timeout_s */
    LOADGEN_HTTP_4XX,       /* another 4xx */
    LOADGEN_HTTP_5XX,       /* another non-200 status */
    LOADGEN_MALFORMED,      /* 200 but not a well-formed SSE stream of JSON objects */
    LOADGEN_STREAM_ERROR,   /* an error frame inside the stream */
    LOADGEN_INCOMPLETE,     /* the body ended before data: [DONE] */
    LOADGEN_TRANSPORT,      /* another transfer failure (reset, bad response) */
    LOADGEN_N_KINDS
} loadgen_kind;

const char *loadgen_kind_name(loadgen_kind k); /* "ok", "rejected", "connect", ... */

typedef struct loadgen_request {
    loadgen_kind kind;
    long status;          /* HTTP status, 0 when none arrived */
    double start_s;       /* since the run started */
    double ttft_s;        /* first content chunk after start; < 0 when none */
    double last_s;        /* last content chunk after start */
    double end_s;         /* since the run started */
    long chunks;          /* content chunks */
    long tokens;          /* usage.completion_tokens when reported, else chunks */
} loadgen_request;

typedef struct loadgen_result {
    char model[256];
    char endpoint[512];
    loadgen_request *req;  /* in the order they were started */
    size_t n_req;
    double *itl_s;         /* gaps between content chunks of successful requests */
    size_t n_itl;
    double duration_s;     /* first request started .. last one ended */
    long count[LOADGEN_N_KINDS];
    char sample[LOADGEN_N_KINDS][200]; /* the first message of each kind */
} loadgen_result;

/* Checks the target (loopback http only), resolves the model, then runs the requests.
 * Fails (no result) when the configuration is invalid or the server cannot be reached;
 * once requests run, every failure is counted in the result instead. */
hearth_status loadgen_run(const loadgen_config *cfg, loadgen_result **out, hearth_err *err);
void loadgen_result_free(loadgen_result *r);

/* The report: one JSON object (counts, errors by kind, throughput, TTFT/ITL/TPOT
 * percentiles in milliseconds). NULL when out of memory. */
json_t *loadgen_report(const loadgen_config *cfg, const loadgen_result *r);

/* A prompt of n_words words for request `index` (mem_free it); NULL when out of memory. */
char *loadgen_prompt(uint64_t seed, uint64_t index, int n_words);

typedef struct loadgen_summary {
    size_t n;
    double min, mean, p50, p90, p99, max;
} loadgen_summary;

/* Sorts v in place and summarizes it (all zero when n is 0). */
loadgen_summary loadgen_summarize(double *v, size_t n);
/* Linearly interpolated p-th percentile (0..100) of n sorted values; 0 when n is 0. */
double loadgen_percentile(const double *sorted, size_t n, double p);

#endif
