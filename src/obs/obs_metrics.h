/* A thread-safe registry of metric families (counters, gauges, histograms) with labels,
 * rendered in the Prometheus text exposition format (version 0.0.4). Label cardinality is
 * bounded: a family holds at most OBS_MAX_SERIES label sets, and any further set is
 * counted under one overflow series whose every label value is "_other"; label values are
 * cut to OBS_LABEL_MAX bytes. Updates never allocate after a series exists and never fail
 * the caller: a NULL family or an allocation failure makes them a no-op.
 * This file knows nothing of Hearth's own metrics (obs.c names those). */
#ifndef OBS_OBS_METRICS_H
#define OBS_OBS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define OBS_MAX_SERIES 200
#define OBS_MAX_LABELS 4
#define OBS_MAX_BUCKETS 24
#define OBS_LABEL_MAX 96
#define OBS_OVERFLOW_VALUE "_other"

typedef enum obs_kind { OBS_COUNTER, OBS_GAUGE, OBS_HISTOGRAM } obs_kind;

typedef struct obs_registry obs_registry;
typedef struct obs_family obs_family;

obs_registry *obs_registry_new(void); /* NULL on NOMEM */
void obs_registry_free(obs_registry *r);  /* accepts NULL; frees every family */

/* Registers a family. labels: NULL-terminated label names (at most OBS_MAX_LABELS; NULL
 * for none). bounds: a histogram's strictly increasing finite upper bounds (+Inf is
 * implicit), at most OBS_MAX_BUCKETS; ignored for other kinds. Returns NULL for an invalid
 * name (not [a-zA-Z_:][a-zA-Z0-9_:]*), label, bounds, a duplicate name, or NOMEM. The
 * family lives until obs_registry_free; it renders (HELP and TYPE only) even with no series. */
obs_family *obs_family_new(obs_registry *r, obs_kind kind, const char *name, const char *help,
                           const char *const *labels, const double *bounds, size_t n_bounds);

/* values: one label value per label name of the family (NULL pointer when it has none; a
 * NULL value counts as ""). */
void obs_add(obs_family *f, const char *const *values, double v);     /* counter (v >= 0) or gauge */
void obs_set(obs_family *f, const char *const *values, double v);     /* gauge; or a counter mirrored from a
                                                                           total kept elsewhere */
void obs_observe(obs_family *f, const char *const *values, double v); /* histogram */
/* Merges a locally collected histogram: counts[i] observations in bucket i (i < n_bounds:
 * v <= bounds[i] and above the previous bound; i == n_bounds: above the last), their sum. */
void obs_observe_counts(obs_family *f, const char *const *values, const uint64_t *counts, size_t n_counts,
                        double sum);

/* Current value of a counter or gauge series, or a histogram's count; 0 when absent. */
double obs_value(obs_family *f, const char *const *values);

/* The whole registry in the text format, NUL-terminated; *len its length. Caller frees
 * with mem_free. NULL on NOMEM. */
char *obs_registry_render(obs_registry *r, size_t *len);

#endif
