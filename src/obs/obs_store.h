/* The SQLite request store: one row per API request (never its prompt or output) and one
 * per model lifecycle event, in a WAL-mode database. Callers hand records to a bounded
 * in-memory queue and return at once; a background writer thread opens the database,
 * writes the queue in batches (one transaction each), applies retention (age and row
 * count) and retries failures with backoff. A slow, locked, read-only or full database
 * therefore never slows or fails a request: at worst records are dropped and counted.
 *
 * Writer states:   closed ──open ok──► open ──fatal error──► closed (reopen after backoff)
 *                     └──open fails──► closed (retry after backoff)
 * Invariants: 1. obs_store_put_* never blocks on I/O and never waits on the writer.
 *             2. every record put is eventually written or counted in `dropped`.
 *             3. on SQLITE_FULL the oldest rows are deleted to make room before a retry.
 *
 * Schema (PRAGMA user_version 1):
 *   requests(id INTEGER PRIMARY KEY, ts REAL unix seconds at the end, request_id, key_name,
 *            method, route, model, target, status, stream, end_reason, prompt_tokens,
 *            completion_tokens, cached_tokens, ttft_ms (NULL: no token), duration_ms, error)
 *   model_events(id INTEGER PRIMARY KEY, ts REAL, model, state, duration_ms (time in the
 *            previous state), error) */
#ifndef OBS_OBS_STORE_H
#define OBS_OBS_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"
#include "obs/obs_metrics.h"
#include "obs/obs_stats.h"

#define OBS_REQUEST_ID_MAX 64

typedef struct obs_store_request {
    double ts;                                 /* unix seconds; 0: now */
    char request_id[OBS_REQUEST_ID_MAX + 1];
    char key_name[64];
    char method[12];
    char route[OBS_ROUTE_MAX + 1];
    char model[OBS_LABEL_MAX + 1];
    char target[OBS_LABEL_MAX + 1];
    char end_reason[16];
    char error[OBS_ERROR_MAX + 1];             /* error code, "" for none */
    int status;
    bool stream;
    int64_t prompt_tokens, completion_tokens, cached_tokens;
    double ttft_ms;                            /* < 0: no token */
    double duration_ms;
} obs_store_request;

typedef struct obs_store_model_event {
    double ts;                                 /* unix seconds; 0: now */
    char model[OBS_LABEL_MAX + 1];
    char state[24];
    double duration_ms;                        /* time spent in the previous state; < 0 unknown */
    char error[512];
} obs_store_model_event;

typedef struct obs_store_config {
    const char *path;          /* database file; its folder is created (0700) when missing */
    double max_age_s;          /* rows older than this are deleted; <= 0 keeps them (default 30 days) */
    int64_t max_rows;          /* rows kept per table; <= 0 unlimited (default 1,000,000) */
    int64_t max_bytes;         /* cap on the database size (SQLite max_page_count); 0 none. When
                                  reached, the oldest rows make room. */
    int32_t queue_cap;         /* records waiting for the writer before new ones drop (default 4096) */
    int32_t busy_timeout_ms;   /* wait for another connection's lock per attempt (default 200) */
    const char *vfs;           /* SQLite VFS name; NULL: the default (tests inject faults with theirs) */
} obs_store_config;

void obs_store_config_default(obs_store_config *c);

typedef struct obs_store obs_store;

/* Starts the writer thread, which opens the database (so an unusable path is reported
 * through obs_store_get_status, not here). Errors: INVALID (no path, bad limits), NOMEM. */
hearth_status obs_store_new(const obs_store_config *c, obs_store **out, hearth_err *err);
/* Writes what is queued (giving up after about 2 s), stops the thread, closes. Accepts NULL. */
void obs_store_free(obs_store *s);

/* Queue a record (copied). False when it was dropped (queue full, or stopping). */
bool obs_store_put_request(obs_store *s, const obs_store_request *r);
bool obs_store_put_model_event(obs_store *s, const obs_store_model_event *e);

/* Waits until every record queued before the call is written or dropped, at most
 * timeout_ms. True when that happened. For tests and tools. */
bool obs_store_wait_idle(obs_store *s, int timeout_ms);

typedef struct obs_store_status {
    bool up;                   /* the database is open and the last write succeeded */
    int64_t written;           /* rows written, both tables */
    int64_t dropped;           /* records given up: queue full, or retries exhausted */
    int64_t failures;          /* failed open or write attempts */
    int64_t pruned;            /* rows deleted by retention or to make room */
    int64_t queued;            /* records waiting now */
    char last_error[256];      /* "" when none yet */
} obs_store_status;

void obs_store_get_status(obs_store *s, obs_store_status *st);

/* Reads the requests of the database at path with ts >= since (unix seconds) into agg,
 * opening it read-only. Sets first_ts and last_ts to the span found (0 when none).
 * Errors: NOT_FOUND (no such file), IO/FORMAT (not a Hearth database), NOMEM. */
hearth_status obs_store_read_requests(const char *path, double since, obs_agg *agg, double *first_ts,
                                      double *last_ts, hearth_err *err);

#endif
