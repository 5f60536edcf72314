/* Monotonic and wall clocks. */
#ifndef BASE_CLOCK_H
#define BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

uint64_t clock_mono_ns(void);   /* monotonic nanoseconds, for durations */
double clock_mono_s(void);      /* the same in seconds */
int64_t clock_unix_s(void);     /* wall clock, seconds since the epoch */
/* The reading of clock_id (CLOCK_REALTIME, or CLOCK_MONOTONIC for condition variables
 * set to it) plus ms milliseconds: the deadline pthread_cond_timedwait takes. */
void clock_timespec_in(clockid_t clock_id, int64_t ms, struct timespec *ts);

#endif
