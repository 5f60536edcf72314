/* Observability hub: Hearth's metric catalogue (names prefixed hearth_, documented in
 * docs/OPERATIONS.md), the request log line, the SQLite request store and the live
 * window behind GET /admin/stats. Other layers report events with one call each:
 *
 *   obs_request_done   an HTTP request ended (metrics, one JSON log line, a store row)
 *   obs_model_state    a model changed lifecycle state (gauge, load histogram, store row)
 *   obs_upstream, obs_retry, obs_breaker, obs_rate_limited   gateway and limits
 *
 * and the server registers a collector that samples gauges (queue, slots, KV, memory)
 * when /metrics or /admin/stats is read. Every function is thread-safe and never fails
 * its caller: the hub drops what it cannot record and counts it. Prompts, outputs and
 * credentials are never written anywhere unless log_prompts is on, and then only the
 * request body, only to the log line. This layer knows nothing of HTTP or the engine. */
#ifndef OBS_OBS_H
#define OBS_OBS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "obs/obs_metrics.h"
#include "obs/obs_stats.h"
#include "obs/obs_store.h"

typedef void (*obs_log_fn)(void *ud, const char *json_line);

typedef enum obs_level { OBS_DEBUG, OBS_INFO, OBS_WARN, OBS_ERROR } obs_level;

typedef struct obs_config {
    const char *db_path;       /* request store; NULL or "": none */
    obs_store_config store;    /* retention and limits (its path is db_path) */
    bool log_prompts;          /* add the request body (cut to 8 KiB) to request log lines */
    obs_level log_level;       /* request lines below this level are not written */
    obs_log_fn log;            /* receives each line without its newline; NULL: none */
    void *log_ud;
} obs_config;

/* Store defaults, level info, no log, no store. */
void obs_config_default(obs_config *c);

/* The default database path: $HEARTH_DATA/hearth.db, else $XDG_DATA_HOME/hearth/hearth.db,
 * else $HOME/.local/share/hearth/hearth.db. False when none can be formed (no HOME). */
bool obs_default_db_path(char *out, size_t cap);

/* "90s", "15m", "1h", "30d", "2w" or plain seconds ("3600") into seconds (> 0, at most
 * 100 years). False for anything else. */
bool obs_parse_duration(const char *s, double *out_s);

typedef struct obs obs;

/* Errors: NOMEM, INVALID (bad store limits). A store whose database cannot be opened is
 * not an error: it reports through the store metrics and /admin/stats and keeps retrying. */
hearth_status obs_new(const obs_config *c, obs **out, hearth_err *err);
/* Flushes the store (about 2 s at most) and frees everything. Accepts NULL. */
void obs_free(obs *o);

/* ---- request ids -------------------------------------------------------------------- */
/* A client's X-Request-Id is used when it is 1..64 characters of [A-Za-z0-9._:-]. */
bool obs_request_id_valid(const char *s);
/* A new random id: 32 lowercase hex digits. */
void obs_request_id_new(char out[OBS_REQUEST_ID_MAX + 1]);

/* ---- per-request token timing ---------------------------------------------------------
 * Kept by the thread that serves one request (not shared): the time of its first token
 * and the gaps between tokens, folded into the histograms when the request ends. */
#define OBS_TRACE_SEQS 16
#define OBS_ITL_BUCKETS 11
typedef struct obs_trace {
    uint64_t start_ns;                 /* clock_mono_ns at arrival */
    uint64_t first_token_ns;           /* 0: no token yet */
    uint64_t last_ns[OBS_TRACE_SEQS];  /* last token time per sequence (choice) */
    int64_t tokens;                    /* tokens seen, all sequences */
    uint64_t itl[OBS_ITL_BUCKETS + 1]; /* inter-token gaps per histogram bucket */
    double itl_sum_s;
} obs_trace;

void obs_trace_start(obs_trace *t);
/* n_tokens new tokens of sequence seq arrived now (an event may cover several). */
void obs_trace_tokens(obs_trace *t, size_t seq, int32_t n_tokens);

/* ---- events ------------------------------------------------------------------------- */
typedef struct obs_request {
    const char *request_id;
    const char *key_name;      /* API key name; "" until keys exist */
    const char *method, *path;
    const char *route;         /* a fixed route name ("chat", "completions", "metrics", ...) */
    const char *model;         /* a configured model id, "" when none was resolved */
    const char *target;        /* the target that served it (local model or upstream), "" */
    const char *end;           /* how the connection ended: ok, client_abort, timeout, ... */
    const char *error;         /* error code when the reply was an error, NULL otherwise */
    int status;
    bool stream;
    bool quiet;                /* health/metrics/dashboard polls: logged at debug, not stored */
    int64_t prompt_tokens;
    int64_t completion_tokens; /* < 0: take the trace's token count */
    int64_t cached_tokens;
    double duration_ms;
    const obs_trace *trace;    /* may be NULL */
    const char *body;          /* the request body; logged only with log_prompts */
    size_t body_len;
} obs_request;

void obs_request_done(obs *o, const obs_request *r);

/* Lifecycle states: "available", "loading", "verifying", "ready", "unloading", "failed".
 * Entering ready from loading/verifying observes the load duration; entering failed counts
 * a load failure. error: the failure's message (NULL otherwise). */
void obs_model_state(obs *o, const char *model, const char *state, const char *error);

/* Gateway and limits (outcome: "ok", "error", "timeout", "rejected"; breaker state:
 * "closed", "open", "half_open"). */
void obs_upstream(obs *o, const char *target, const char *outcome);
void obs_retry(obs *o, const char *target);
void obs_breaker(obs *o, const char *target, const char *state);
/* kind: "requests", "tokens" or "concurrency". */
void obs_rate_limited(obs *o, const char *key_name, const char *kind);
/* reason: "missing", "invalid" (key), "model", "tools", "admin" (not allowed), "host" (DNS rebinding). */
void obs_auth_failure(obs *o, const char *reason);
/* A request a model's scheduler refused for load (503); reason: "queue_full", "queue_wait"
 * (estimated wait over max_queue_wait at arrival), "queue_wait_expired" (still queued then). */
void obs_refused(obs *o, const char *model, const char *reason);

/* ---- sampled gauges ------------------------------------------------------------------- */
typedef struct obs_model_sample {
    int32_t queued, running, n_slots;
    int64_t kv_pages_used, kv_pages_total;
    int64_t prefix_hit_tokens;         /* total since the model loaded */
    int64_t steps_interrupted;         /* total since the model loaded */
    double decode_tps, prefill_tps;
    double queue_wait_s;               /* the scheduler's estimated wait for a slot now */
    uint64_t weights_bytes, repacked_bytes, kv_bytes;
} obs_model_sample;

/* Called (outside any obs lock) before /metrics or /admin/stats is produced; it reports
 * each loaded model with obs_model_sample. */
typedef void (*obs_collect_fn)(void *ud, obs *o);
void obs_set_collector(obs *o, obs_collect_fn fn, void *ud);
void obs_model_sample_set(obs *o, const char *model, const obs_model_sample *s);

/* ---- reading ---------------------------------------------------------------------------- */
/* The Prometheus text of every metric (mem_free). NULL on NOMEM. */
char *obs_metrics_text(obs *o, size_t *len);
/* The live view for the dashboard: models, memory, scheduler, request stats over the last
 * window_s seconds, breakers, store health. NULL on NOMEM. */
json_t *obs_live_json(obs *o, double window_s);
/* The registry, for tests and for layers that add their own families. */
obs_registry *obs_metrics_registry(obs *o);
/* The store's health; all zero when there is no store. */
void obs_store_health(obs *o, obs_store_status *st);
/* Waits until records so far reached the database (tests, shutdown tools). */
bool obs_flush(obs *o, int timeout_ms);

#endif
