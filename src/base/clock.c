/* Clock readings (see clock.h). */
#include "base/clock.h"

#include <time.h>

uint64_t clock_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double clock_mono_s(void) { return (double)clock_mono_ns() * 1e-9; }

int64_t clock_unix_s(void) { return (int64_t)time(NULL); }

void clock_timespec_in(clockid_t clock_id, int64_t ms, struct timespec *ts) {
    clock_gettime(clock_id, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}
