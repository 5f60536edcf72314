/* Stop-string matching across streamed pieces (contract in stop.h). The buffer holds the
 * bytes released by the last call followed by the bytes held back; held back are the
 * longest tail that is a proper prefix of some stop string plus an unfinished UTF-8
 * character. It must never release a byte that a later piece could make part of a match. */
#define _GNU_SOURCE   /* memmem */
#include "engine/stop.h"

#include <string.h>

#include "base/checked.h"
#include "base/err.h"
#include "base/mem.h"
#include "base/utf8.h"

struct stop_matcher {
    char *stops[STOP_MAX_STRINGS];
    size_t lens[STOP_MAX_STRINGS];
    size_t n;
    char *buf;
    size_t cap;
    size_t out_len;   /* buf[0..out_len): released by the last call */
    size_t held;      /* buf[out_len..out_len + held): not released yet */
    int matched;      /* index of the stop that matched, -1 while none has */
};

stop_matcher *stop_matcher_new(const char *const *stops, size_t n, hearth_err *err) {
    if (n > STOP_MAX_STRINGS) {
        err_set(err, HEARTH_ERR_INVALID, "stop: %zu stop strings given, at most %d allowed", n, STOP_MAX_STRINGS);
        return NULL;
    }
    if (n > 0 && !stops) {
        err_set(err, HEARTH_ERR_INVALID, "stop: %zu stop strings announced but none given", n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = stops[i] ? strnlen(stops[i], STOP_MAX_LEN + 1) : 0;
        if (len == 0) {
            err_set(err, HEARTH_ERR_INVALID, "stop: stop string %zu is empty", i);
            return NULL;
        }
        if (len > STOP_MAX_LEN) {
            err_set(err, HEARTH_ERR_INVALID, "stop: stop string %zu is longer than %d bytes", i, STOP_MAX_LEN);
            return NULL;
        }
        if (!utf8_valid(stops[i], len)) {
            err_set(err, HEARTH_ERR_INVALID, "stop: stop string %zu is not valid UTF-8", i);
            return NULL;
        }
    }
    stop_matcher *m = mem_calloc(1, sizeof *m);
    if (!m) goto nomem;
    m->matched = -1;
    for (size_t i = 0; i < n; i++) {
        m->lens[i] = strlen(stops[i]);
        m->stops[i] = mem_strndup(stops[i], m->lens[i]);
        if (!m->stops[i]) goto nomem;
        m->n++;
    }
    return m;
nomem:
    stop_matcher_free(m);
    err_set(err, HEARTH_ERR_NOMEM, "stop: out of memory");
    return NULL;
}

void stop_matcher_free(stop_matcher *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n; i++) mem_free(m->stops[i]);
    mem_free(m->buf);
    mem_free(m);
}

/* Length of the longest tail of s[0..len) that is a proper prefix of some stop string. */
static size_t stop_partial_tail(const stop_matcher *m, const char *s, size_t len) {
    size_t longest = 0;
    for (size_t i = 0; i < m->n; i++) {
        size_t k = m->lens[i] - 1 < len ? m->lens[i] - 1 : len;
        for (; k > longest; k--)
            if (memcmp(s + len - k, m->stops[i], k) == 0) {
                longest = k;
                break;
            }
    }
    return longest;
}

hearth_status stop_matcher_feed(stop_matcher *m, const char *text, size_t len, const char **emit,
                                size_t *emit_len, bool *stopped) {
    *emit = "";
    *emit_len = 0;
    *stopped = m->matched >= 0;
    if (*stopped) return HEARTH_OK;

    size_t total;
    if (!ck_add(m->held, len, &total)) return HEARTH_ERR_NOMEM;
    if (m->out_len > 0) memmove(m->buf, m->buf + m->out_len, m->held);
    m->out_len = 0;
    if (total == 0) return HEARTH_OK;
    if (total > m->cap) {
        size_t cap = m->cap < 64 ? 64 : m->cap;
        while (cap < total) cap = cap > SIZE_MAX / 2 ? total : cap * 2;
        char *grown = mem_realloc(m->buf, cap);
        if (!grown) return HEARTH_ERR_NOMEM;
        m->buf = grown;
        m->cap = cap;
    }
    if (len > 0) memcpy(m->buf + m->held, text, len);

    size_t best_start = 0, best_end = SIZE_MAX;
    for (size_t i = 0; i < m->n; i++) {
        const char *hit = memmem(m->buf, total, m->stops[i], m->lens[i]);
        if (!hit) continue;
        size_t start = (size_t)(hit - m->buf), end = start + m->lens[i];
        if (end < best_end || (end == best_end && start < best_start)) {
            best_start = start;
            best_end = end;
            m->matched = (int)i;
        }
    }
    if (m->matched >= 0) {
        m->out_len = best_start;
        m->held = 0;
        *stopped = true;
    } else {
        m->out_len = utf8_complete_prefix(m->buf, total - stop_partial_tail(m, m->buf, total));
        m->held = total - m->out_len;
    }
    *emit = m->buf;
    *emit_len = m->out_len;
    return HEARTH_OK;
}

void stop_matcher_finish(stop_matcher *m, const char **emit, size_t *emit_len) {
    *emit = m->buf ? m->buf + m->out_len : "";
    *emit_len = m->held;
    m->out_len += m->held;
    m->held = 0;
}

int stop_matcher_matched(const stop_matcher *m) { return m->matched; }

void stop_matcher_reset(stop_matcher *m) {
    m->out_len = 0;
    m->held = 0;
    m->matched = -1;
}
