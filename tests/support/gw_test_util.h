/* Gateway test helpers: a virtual clock (sleeps advance it at once and are recorded),
 * a scriptable local target, a collecting sink, and config building from JSON text. */
#ifndef TESTS_GW_TEST_UTIL_H
#define TESTS_GW_TEST_UTIL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw.h"

/* ---- virtual clock ---- */
typedef struct vclock {
    _Atomic uint64_t now;
    _Atomic uint64_t slept;      /* total virtual sleep */
    _Atomic uint64_t sleeps;     /* calls */
    gw_clock clock;
} vclock;

static uint64_t vclock_now(void *ud) { return atomic_load(&((vclock *)ud)->now); }
static void vclock_sleep(void *ud, uint64_t ns) {
    vclock *c = ud;
    atomic_fetch_add(&c->now, ns);
    atomic_fetch_add(&c->slept, ns);
    atomic_fetch_add(&c->sleeps, 1);
}
static inline void vclock_init(vclock *c, uint64_t start) {
    atomic_init(&c->now, start);
    atomic_init(&c->slept, 0);
    atomic_init(&c->sleeps, 0);
    c->clock = (gw_clock){.now_ns = vclock_now, .sleep_ns = vclock_sleep, .ud = c};
}
static inline void vclock_advance(vclock *c, uint64_t ns) { atomic_fetch_add(&c->now, ns); }

/* ---- collecting sink ---- */
typedef struct collect {
    pthread_mutex_t mu;
    int events;
    char text[1 << 16];          /* chunks / body, concatenated */
    size_t len;
    int bodies;
    _Atomic int gone;
} collect;

static inline void collect_init(collect *c) {
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
}
static void collect_add(collect *c, const char *d, size_t n) {
    pthread_mutex_lock(&c->mu);
    if (c->len + n < sizeof c->text) {
        memcpy(c->text + c->len, d, n);
        c->len += n;
        c->text[c->len] = '\0';
    }
    pthread_mutex_unlock(&c->mu);
}
static bool collect_event(void *ud, const char *d, size_t n) {
    collect *c = ud;
    c->events++;
    collect_add(c, d, n);
    return !atomic_load(&c->gone);
}
static bool collect_body(void *ud, const char *d, size_t n) {
    collect *c = ud;
    c->bodies++;
    collect_add(c, d, n);
    return !atomic_load(&c->gone);
}
static bool collect_gone(void *ud) { return atomic_load(&((collect *)ud)->gone) != 0; }
static inline gw_sink collect_sink(collect *c) {
    return (gw_sink){.event = collect_event, .body = collect_body, .gone = collect_gone, .ud = c};
}

/* ---- config from JSON text (fails the test on a parse error) ---- */
static inline gw_config *gwt_config(const char *text) {
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root) {
        fprintf(stderr, "bad test JSON: %s (line %d)\n%s\n", je.text, je.line, text);
        return NULL;
    }
    gw_config *c = NULL;
    hearth_err err = {0};
    if (gw_config_parse(root, &c, &err) != HEARTH_OK) fprintf(stderr, "gw_config_parse: %s\n", err.msg);
    json_decref(root);
    return c;
}

#endif
