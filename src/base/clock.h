/* Monotonic and wall clocks. */
#ifndef BASE_CLOCK_H
#define BASE_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ns(void);   /* monotonic nanoseconds, for durations */
double clock_mono_s(void);      /* the same in seconds */
int64_t clock_unix_s(void);     /* wall clock, seconds since the epoch */

#endif
