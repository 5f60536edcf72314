/* The gateway's clock, injectable so tests can drive breakers, retry budgets and
 * backoff sleeps in virtual time. Network timeouts of remote providers always run on the
 * real monotonic clock (they wait on sockets); everything that decides *when* to try a
 * target again reads this clock. Never used for wall-clock dates. */
#ifndef GATEWAY_GW_CLOCK_H
#define GATEWAY_GW_CLOCK_H

#include <stdint.h>

typedef struct gw_clock {
    uint64_t (*now_ns)(void *ud);            /* monotonic nanoseconds */
    void (*sleep_ns)(void *ud, uint64_t ns); /* callers sleep in slices of <= 50 ms */
    void *ud;
} gw_clock;

/* The real monotonic clock and nanosleep. */
const gw_clock *gw_clock_real(void);

static inline uint64_t gw_now(const gw_clock *c) { return c->now_ns(c->ud); }

#endif
