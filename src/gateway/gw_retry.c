/* Backoff, Retry-After and the retry budget (see gw_retry.h). */
#include "gateway/gw_retry.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_RETRY_AFTER_S 31536000LL /* a year: anything longer is not a wait */

uint64_t gw_rand64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t gw_backoff_ns(uint64_t base_ns, uint64_t cap_ns, unsigned retry, uint64_t *rng) {
    uint64_t ceiling = base_ns;
    for (unsigned k = 0; k < retry && ceiling < cap_ns; k++) ceiling = ceiling > UINT64_MAX / 2 ? UINT64_MAX : ceiling * 2;
    if (ceiling > cap_ns) ceiling = cap_ns;
    if (ceiling == 0) return 0;
    uint64_t r = gw_rand64(rng);
    return ceiling == UINT64_MAX ? r : r % (ceiling + 1);
}

static int month_index(const char *m) {
    static const char *names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++)
        if (!strcmp(m, names[i])) return i;
    return -1;
}

static bool valid_tm(const struct tm *t) {
    return t->tm_mon >= 0 && t->tm_mday >= 1 && t->tm_mday <= 31 && t->tm_hour >= 0 && t->tm_hour <= 23 &&
           t->tm_min >= 0 && t->tm_min <= 59 && t->tm_sec >= 0 && t->tm_sec <= 60 && t->tm_year >= 70 &&
           t->tm_year <= 1100;
}

/* HTTP-date (RFC 9110 section 5.6.7) as unix seconds; false when it is none of the
 * three forms. */
static bool parse_http_date(const char *v, int64_t *out) {
    struct tm t = {0};
    char wd[16], mon[4], zone[4];
    int day, year, h, m, s, used = 0;
    if (sscanf(v, "%3[A-Za-z], %2d %3s %4d %2d:%2d:%2d %3s%n", wd, &day, mon, &year, &h, &m, &s, zone, &used) == 8 &&
        v[used] == '\0' && !strcmp(zone, "GMT")) {
        t.tm_year = year - 1900; /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    } else if (sscanf(v, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d %3s%n", wd, &day, mon, &year, &h, &m, &s, zone,
                      &used) == 8 &&
               v[used] == '\0' && !strcmp(zone, "GMT")) {
        t.tm_year = year < 70 ? year + 100 : year; /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
    } else if (sscanf(v, "%3[A-Za-z] %3s %2d %2d:%2d:%2d %4d%n", wd, mon, &day, &h, &m, &s, &year, &used) == 7 &&
               v[used] == '\0') {
        t.tm_year = year - 1900; /* asctime: Sun Nov  6 08:49:37 1994 */
    } else {
        return false;
    }
    t.tm_mon = month_index(mon);
    t.tm_mday = day;
    t.tm_hour = h;
    t.tm_min = m;
    t.tm_sec = s;
    if (!valid_tm(&t)) return false;
    time_t when = timegm(&t);
    if (when == (time_t)-1) return false;
    *out = (int64_t)when;
    return true;
}

bool gw_retry_after_parse(const char *value, int64_t now_unix_s, int64_t *ms) {
    while (*value == ' ' || *value == '\t') value++;
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t' || value[n - 1] == '\r' || value[n - 1] == '\n')) n--;
    if (n == 0 || n > 64) return false;
    char v[65];
    memcpy(v, value, n);
    v[n] = '\0';
    if (isdigit((unsigned char)v[0])) {
        int64_t s = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)v[i])) return false;
            if (s < MAX_RETRY_AFTER_S) s = s * 10 + (v[i] - '0');
        }
        *ms = (s > MAX_RETRY_AFTER_S ? MAX_RETRY_AFTER_S : s) * 1000;
        return true;
    }
    int64_t when;
    if (!parse_http_date(v, &when)) return false;
    int64_t d = when - now_unix_s;
    if (d < 0) d = 0;
    if (d > MAX_RETRY_AFTER_S) d = MAX_RETRY_AFTER_S;
    *ms = d * 1000;
    return true;
}

void gw_budget_init(gw_budget *b, double ratio, double min_per_s, double burst, const gw_clock *clock) {
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->clock = clock;
    b->ratio = ratio > 0 ? ratio : 0;
    b->min_per_s = min_per_s > 0 ? min_per_s : 0;
    b->burst = burst >= 1 ? burst : 1;
    b->tokens = b->burst;
    b->last_ns = gw_now(clock);
}

void gw_budget_destroy(gw_budget *b) { pthread_mutex_destroy(&b->mu); }

static void refill(gw_budget *b, double add) {
    uint64_t now = gw_now(b->clock);
    if (now > b->last_ns) add += (double)(now - b->last_ns) * 1e-9 * b->min_per_s;
    b->last_ns = now;
    b->tokens += add;
    if (b->tokens > b->burst) b->tokens = b->burst;
}

void gw_budget_deposit(gw_budget *b) {
    pthread_mutex_lock(&b->mu);
    b->requests++;
    refill(b, b->ratio);
    pthread_mutex_unlock(&b->mu);
}

bool gw_budget_withdraw(gw_budget *b) {
    pthread_mutex_lock(&b->mu);
    refill(b, 0);
    bool ok = b->tokens >= 1.0;
    if (ok) {
        b->tokens -= 1.0;
        b->retries++;
    } else {
        b->refused++;
    }
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void gw_budget_view_get(gw_budget *b, gw_budget_view *v) {
    pthread_mutex_lock(&b->mu);
    refill(b, 0);
    *v = (gw_budget_view){.tokens = b->tokens, .requests = b->requests, .retries = b->retries, .refused = b->refused};
    pthread_mutex_unlock(&b->mu);
}
