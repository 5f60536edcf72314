/* When to try again: exponential backoff with full jitter, Retry-After parsing, and the
 * retry budget (a token bucket that keeps retries to a fraction of the traffic). Pure
 * decisions; nothing here sleeps or calls a target. */
#ifndef GATEWAY_GW_RETRY_H
#define GATEWAY_GW_RETRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "gateway/gw_clock.h"

/* A uniformly random wait in [0, min(cap, base * 2^retry)] (retry counts from 0).
 * rng is the caller's splitmix64 state. */
uint64_t gw_backoff_ns(uint64_t base_ns, uint64_t cap_ns, unsigned retry, uint64_t *rng);

/* splitmix64: the next 64 random bits of *state. */
uint64_t gw_rand64(uint64_t *state);

/* Parses a Retry-After value: delay-seconds, or an HTTP-date (IMF-fixdate, RFC 850 or
 * asctime) compared with now_unix_s. *ms is the wait in milliseconds (0 for a date in
 * the past). False when the value is neither. */
bool gw_retry_after_parse(const char *value, int64_t now_unix_s, int64_t *ms);

/* Token bucket of retries: every request deposits `ratio` tokens, time deposits
 * `min_per_s` per second, the bucket holds at most `burst`, and each retry takes one
 * whole token. So over any stretch, retries <= ratio * requests + min_per_s * seconds
 * + burst. Thread-safe. */
typedef struct gw_budget {
    pthread_mutex_t mu;
    const gw_clock *clock;
    double ratio, min_per_s, burst;
    double tokens;
    uint64_t last_ns;
    uint64_t requests, retries, refused;
} gw_budget;

void gw_budget_init(gw_budget *b, double ratio, double min_per_s, double burst, const gw_clock *clock);
void gw_budget_destroy(gw_budget *b);
void gw_budget_deposit(gw_budget *b);        /* one request arrived */
bool gw_budget_withdraw(gw_budget *b);       /* may this request retry? */

typedef struct gw_budget_view {
    double tokens;
    uint64_t requests, retries, refused;
} gw_budget_view;
void gw_budget_view_get(gw_budget *b, gw_budget_view *v);

#endif
