/* Circuit breaker of one target. It turns calls' verdicts into a decision whether the
 * next call may go out; it never sleeps, never calls anything, and never logs.
 *
 *                 N failures in a row, or failure ratio
 *                 over the window (with >= min_calls)
 *     ┌────────┐ ──────────────────────────────────────► ┌──────┐
 *     │ CLOSED │                                          │ OPEN │◄──────────┐
 *     └────────┘ ◄────────┐                               └──────┘           │
 *                         │ `probes` successes               │ cooldown over │ a probe
 *                         │                                  ▼ (next allow)  │ fails
 *                         │                           ┌───────────┐          │
 *                         └───────────────────────────│ HALF_OPEN │──────────┘
 *                                                     └───────────┘
 *
 * Invariants:
 *   1. OPEN: allow() refuses every call until the clock reaches open_until_ns.
 *   2. HALF_OPEN: at most cfg.probes calls are in flight; every other call is refused.
 *   3. Only verdicts of tickets of the current generation change counts or state; the
 *      generation is bumped at every transition, so a slow call started before an open
 *      or a close can never open, close or re-open the breaker afterwards.
 *   4. NEUTRAL verdicts change no count (a probe's slot is still given back).
 *   5. The k-th open in a row (no close in between) lasts min(cooldown * 2^(k-1),
 *      cooldown_max); a close resets k.
 *   6. Entering CLOSED clears the consecutive count and the window.
 */
#include "gateway/gw_breaker.h"

#include <stdio.h>
#include <string.h>

#define NS_PER_S 1000000000ull

const char *gw_breaker_state_name(gw_breaker_state s) {
    switch (s) {
    case GW_BREAKER_CLOSED: return "closed";
    case GW_BREAKER_OPEN: return "open";
    case GW_BREAKER_HALF_OPEN: return "half_open";
    }
    return "unknown";
}

void gw_breaker_config_default(gw_breaker_config *c) {
    *c = (gw_breaker_config){
        .failures = 5,
        .failure_ratio = 0.5,
        .min_calls = 20,
        .window_ns = 60 * NS_PER_S,
        .cooldown_ns = 30 * NS_PER_S,
        .cooldown_max_ns = 600 * NS_PER_S,
        .probes = 1,
    };
}

void gw_breaker_init(gw_breaker *b, const gw_breaker_config *cfg, const gw_clock *clock) {
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->cfg = *cfg;
    if (b->cfg.probes < 1) b->cfg.probes = 1;
    if (b->cfg.window_ns < GW_BREAKER_BUCKETS) b->cfg.window_ns = GW_BREAKER_BUCKETS;
    b->clock = clock;
    b->state = GW_BREAKER_CLOSED;
}

void gw_breaker_destroy(gw_breaker *b) { pthread_mutex_destroy(&b->mu); }

static uint64_t bucket_width(const gw_breaker *b) { return b->cfg.window_ns / GW_BREAKER_BUCKETS; }

static gw_breaker_bucket *bucket_now(gw_breaker *b, uint64_t now) {
    uint64_t epoch = now / bucket_width(b);
    gw_breaker_bucket *k = &b->buckets[epoch % GW_BREAKER_BUCKETS];
    if (k->epoch != epoch) *k = (gw_breaker_bucket){.epoch = epoch};
    return k;
}

static void window_sum(const gw_breaker *b, uint64_t now, uint32_t *calls, uint32_t *failures) {
    uint64_t epoch = now / bucket_width(b);
    *calls = *failures = 0;
    for (int i = 0; i < GW_BREAKER_BUCKETS; i++) {
        const gw_breaker_bucket *k = &b->buckets[i];
        if (k->epoch + GW_BREAKER_BUCKETS <= epoch || k->epoch > epoch) continue;
        *calls += k->calls;
        *failures += k->failures;
    }
}

static void move_to(gw_breaker *b, gw_breaker_state to, uint64_t now, gw_breaker_change *ch) {
    if (!ch->changed) ch->from = b->state;
    ch->changed = true;
    ch->to = to;
    b->state = to;
    b->generation++;
    b->probes_in_flight = b->probe_successes = 0;
    if (to == GW_BREAKER_OPEN) {
        uint64_t cd = b->cfg.cooldown_ns;
        for (int k = 0; k < b->opens && cd < b->cfg.cooldown_max_ns; k++) cd *= 2;
        if (cd > b->cfg.cooldown_max_ns) cd = b->cfg.cooldown_max_ns;
        b->opens++;
        b->total_opens++;
        b->open_until_ns = now + cd;
    } else if (to == GW_BREAKER_CLOSED) {
        b->opens = 0;
        b->consecutive = 0;
        memset(b->buckets, 0, sizeof b->buckets);
    }
}

bool gw_breaker_allow(gw_breaker *b, gw_ticket *t, gw_breaker_change *ch) {
    *ch = (gw_breaker_change){0};
    pthread_mutex_lock(&b->mu);
    uint64_t now = gw_now(b->clock);
    if (b->state == GW_BREAKER_OPEN && now >= b->open_until_ns) move_to(b, GW_BREAKER_HALF_OPEN, now, ch);
    bool ok = false;
    if (b->state == GW_BREAKER_CLOSED) {
        ok = true;
        *t = (gw_ticket){.generation = b->generation, .probe = false};
    } else if (b->state == GW_BREAKER_HALF_OPEN && b->probes_in_flight < b->cfg.probes) {
        ok = true;
        b->probes_in_flight++;
        *t = (gw_ticket){.generation = b->generation, .probe = true};
    }
    if (!ok) b->rejected++;
    pthread_mutex_unlock(&b->mu);
    return ok;
}

static bool should_open(gw_breaker *b, uint64_t now) {
    if (b->cfg.failures > 0 && b->consecutive >= b->cfg.failures) return true;
    if (b->cfg.failure_ratio <= 0) return false;
    uint32_t calls, failures;
    window_sum(b, now, &calls, &failures);
    return calls >= (uint32_t)(b->cfg.min_calls > 0 ? b->cfg.min_calls : 1) &&
           (double)failures >= b->cfg.failure_ratio * (double)calls;
}

void gw_breaker_report(gw_breaker *b, const gw_ticket *t, gw_verdict v, const char *error, gw_breaker_change *ch) {
    *ch = (gw_breaker_change){0};
    pthread_mutex_lock(&b->mu);
    uint64_t now = gw_now(b->clock);
    if (v != GW_VERDICT_NEUTRAL) {
        b->calls++;
        if (v == GW_VERDICT_SUCCESS) b->successes++;
        else b->failures++;
    }
    if (v == GW_VERDICT_FAILURE) {
        snprintf(b->last_error, sizeof b->last_error, "%s", error ? error : "failure");
        b->last_error_ns = now;
    }
    if (t->generation != b->generation) goto out; /* invariant 3 */
    if (t->probe) {
        b->probes_in_flight--;
        if (v == GW_VERDICT_FAILURE) {
            move_to(b, GW_BREAKER_OPEN, now, ch);
        } else if (v == GW_VERDICT_SUCCESS && ++b->probe_successes >= b->cfg.probes) {
            move_to(b, GW_BREAKER_CLOSED, now, ch);
        }
        goto out;
    }
    if (b->state != GW_BREAKER_CLOSED || v == GW_VERDICT_NEUTRAL) goto out;
    gw_breaker_bucket *k = bucket_now(b, now);
    k->calls++;
    if (v == GW_VERDICT_SUCCESS) {
        b->consecutive = 0;
    } else {
        k->failures++;
        b->consecutive++;
        if (should_open(b, now)) move_to(b, GW_BREAKER_OPEN, now, ch);
    }
out:
    pthread_mutex_unlock(&b->mu);
}

void gw_breaker_view_get(gw_breaker *b, gw_breaker_view *v) {
    pthread_mutex_lock(&b->mu);
    uint64_t now = gw_now(b->clock);
    *v = (gw_breaker_view){
        .state = b->state,
        .consecutive = b->consecutive,
        .opens = b->opens,
        .retry_in_ns = b->state == GW_BREAKER_OPEN && b->open_until_ns > now ? b->open_until_ns - now : 0,
        .calls = b->calls,
        .successes = b->successes,
        .failures = b->failures,
        .rejected = b->rejected,
        .total_opens = b->total_opens,
        .has_last_error = b->last_error_ns != 0 || b->last_error[0] != '\0',
        .last_error_age_ns = now > b->last_error_ns ? now - b->last_error_ns : 0,
    };
    window_sum(b, now, &v->window_calls, &v->window_failures);
    memcpy(v->last_error, b->last_error, sizeof v->last_error);
    pthread_mutex_unlock(&b->mu);
}
