/* Token buckets and the constant-time comparison (see srv_bucket.h). Pure arithmetic:
 * no lock, no clock, no allocation. */
#include "server/srv_bucket.h"

#include <math.h>

#define MAX_RETRY_S 3600

static void refill(srv_bucket *b, uint64_t now_ns) {
    if (now_ns > b->last_ns) {
        b->level += (double)(now_ns - b->last_ns) / 1e9 * b->per_s;
        if (b->level > b->capacity) b->level = b->capacity;
    }
    b->last_ns = now_ns > b->last_ns ? now_ns : b->last_ns;
}

void srv_bucket_init(srv_bucket *b, int64_t per_minute, uint64_t now_ns) {
    b->capacity = (double)per_minute;
    b->per_s = (double)per_minute / 60.0;
    b->level = b->capacity;
    b->last_ns = now_ns;
}

void srv_bucket_set_rate(srv_bucket *b, int64_t per_minute, uint64_t now_ns) {
    refill(b, now_ns);
    b->capacity = (double)per_minute;
    b->per_s = (double)per_minute / 60.0;
    if (b->level > b->capacity) b->level = b->capacity;
}

static int seconds_until(const srv_bucket *b, double need) {
    double s = ceil((need - b->level) / b->per_s - 1e-9);
    return s < 1 ? 1 : s > MAX_RETRY_S ? MAX_RETRY_S : (int)s;
}

bool srv_bucket_take(srv_bucket *b, double n, uint64_t now_ns, int *retry_after_s) {
    refill(b, now_ns);
    if (b->level >= n) {
        b->level -= n;
        return true;
    }
    *retry_after_s = seconds_until(b, n);
    return false;
}

bool srv_bucket_ready(srv_bucket *b, uint64_t now_ns, int *retry_after_s) {
    refill(b, now_ns);
    if (b->level >= 1) return true;
    *retry_after_s = seconds_until(b, 1);
    return false;
}

void srv_bucket_charge(srv_bucket *b, double n, uint64_t now_ns) {
    refill(b, now_ns);
    b->level -= n;
}

bool srv_ct_equal(const void *a, const void *b, size_t n) {
    const volatile unsigned char *x = a, *y = b;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)(x[i] ^ y[i]);
    return diff == 0;
}
