/* A token bucket for per-key rate limits, and a constant-time comparison for secrets.
 * The bucket is a plain value with no lock and no clock of its own: callers pass the
 * time (clock_mono_ns) and hold whatever lock guards it, so it is tested exactly. */
#ifndef SERVER_SRV_BUCKET_H
#define SERVER_SRV_BUCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct srv_bucket {
    double level;       /* tokens available now (may be negative after a charge) */
    double capacity;    /* a full minute's worth */
    double per_s;       /* refill rate */
    uint64_t last_ns;   /* when level was last brought up to date */
} srv_bucket;

/* A full bucket refilling per_minute tokens a minute (per_minute > 0). */
void srv_bucket_init(srv_bucket *b, int64_t per_minute, uint64_t now_ns);
/* Changes the rate (a reload), keeping the level at most the new capacity. */
void srv_bucket_set_rate(srv_bucket *b, int64_t per_minute, uint64_t now_ns);
/* Takes n tokens when at least n are there; else false with *retry_after_s, the whole
 * seconds (at least 1) until they will be. */
bool srv_bucket_take(srv_bucket *b, double n, uint64_t now_ns, int *retry_after_s);
/* Whether at least one token is there, without taking it (else *retry_after_s as above). */
bool srv_bucket_ready(srv_bucket *b, uint64_t now_ns, int *retry_after_s);
/* Takes n tokens after the fact; the level may go below zero (a debt repaid by refill). */
void srv_bucket_charge(srv_bucket *b, double n, uint64_t now_ns);

/* a[0..n) == b[0..n), in time that depends on n only. */
bool srv_ct_equal(const void *a, const void *b, size_t n);

#endif
