/* The real clock behind gw_clock (see gw_clock.h). */
#include "gateway/gw_clock.h"

#include <errno.h>
#include <time.h>

#include "base/clock.h"

static uint64_t real_now(void *ud) {
    (void)ud;
    return clock_mono_ns();
}

static void real_sleep(void *ud, uint64_t ns) {
    (void)ud;
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const gw_clock real_clock = {.now_ns = real_now, .sleep_ns = real_sleep, .ud = 0};

const gw_clock *gw_clock_real(void) { return &real_clock; }
