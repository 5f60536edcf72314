/* What the hub's files (obs.c, obs_request.c, obs_live.c) share: the hub record, its
 * metric families and its tables. Nothing outside src/obs includes this. */
#ifndef OBS_OBS_INTERNAL_H
#define OBS_OBS_INTERNAL_H

#include <pthread.h>

#include "obs/obs.h"

#define OBS_MAX_MODELS 64
#define OBS_MAX_TARGETS 64
#define OBS_WINDOW_CAP 4096 /* requests remembered for /admin/stats */
#define OBS_STATE_MAX 23

typedef struct obs_families {
    obs_family *requests, *duration, *ttft, *itl, *prompt_tokens, *gen_tokens;
    obs_family *queue, *slots_busy, *slots_total, *kv_used, *kv_total, *prefix_hits, *steps_interrupted, *decode_tps, *prefill_tps;
    obs_family *model_state, *load_duration, *load_failures, *memory;
    obs_family *upstream, *retries, *breaker, *rate_limited, *auth_failures;
    obs_family *refused, *queue_wait;
    obs_family *store_written, *store_dropped, *store_failures, *store_pruned, *store_up, *store_queued;
    obs_family *build_info, *start_time;
} obs_families;

typedef struct obs_model_rec {
    char id[OBS_LABEL_MAX + 1];
    char state[OBS_STATE_MAX + 1];
    double since_mono, since_unix;   /* entered the current state */
    double load_start_mono;          /* entered loading; 0 when not loading */
    double load_ms;                  /* the last successful load; < 0 none */
    char error[512];
    bool has_sample;
    obs_model_sample sample;
} obs_model_rec;

typedef struct obs_target_rec {
    char target[OBS_LABEL_MAX + 1];
    char state[OBS_STATE_MAX + 1];
} obs_target_rec;

typedef struct obs_window_rec {
    double mono_s;
    char model[OBS_LABEL_MAX + 1];
    char route[OBS_ROUTE_MAX + 1];
    char error[OBS_ERROR_MAX + 1];
    int status;
    double duration_ms, ttft_ms;
    int64_t prompt_tokens, completion_tokens;
} obs_window_rec;

struct obs {
    obs_config cfg;
    char *db_path;
    obs_registry *reg;
    obs_families f;
    obs_store *store;            /* NULL: none */
    double start_unix, start_mono;
    pthread_mutex_t mu;          /* the tables, the window and the collector */
    obs_collect_fn collect;
    void *collect_ud;
    obs_model_rec models[OBS_MAX_MODELS];
    size_t n_models;
    obs_target_rec targets[OBS_MAX_TARGETS];
    size_t n_targets;
    obs_window_rec *window;      /* ring of OBS_WINDOW_CAP */
    size_t window_head, window_n;
    int64_t store_failures_told; /* store failures already reported in a log line */
    double store_next_tell;      /* monotonic seconds before which no new report is made */
};

/* ITL histogram bounds in seconds (OBS_ITL_BUCKETS of them). */
extern const double obs_itl_bounds[OBS_ITL_BUCKETS];

double obs_now_mono(void);
double obs_now_unix(void);
/* "2024-05-01T12:00:00.123Z" */
void obs_format_time(double unix_s, char out[32]);
/* Copies src into dst[cap], cut (NULL counts as ""). */
void obs_copy(char *dst, size_t cap, const char *src);
/* Runs the collector, if any (no lock held). */
void obs_collect(obs *o);

#endif
