/* libFuzzer target: the stop-string matcher. Input: a few stop strings, a text and a way
 * to cut it into pieces. What the matcher releases (plus its final flush) must equal a
 * plain reference: the text before the first position where a stop string ends (the
 * longest one when several end there), or the whole text; cutting the text differently
 * must not change it, and nothing is released after a stop. */
#include <stdlib.h>
#include <string.h>

#include "engine/stop.h"
#include "fz_util.h"

/* Bytes of text released by the reference matcher; *hit = whether a stop matched. */
static size_t reference(const char *text, size_t len, char stops[][STOP_MAX_LEN + 1], const size_t *lens,
                        size_t n, bool *hit) {
    for (size_t end = 1; end <= len; end++) {
        size_t best = 0;
        for (size_t k = 0; k < n; k++)
            if (lens[k] <= end && lens[k] > best && !memcmp(text + end - lens[k], stops[k], lens[k])) best = lens[k];
        if (best) {
            *hit = true;
            return end - best;
        }
    }
    *hit = false;
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_in in = {data, size};
    static char stops[STOP_MAX_STRINGS][STOP_MAX_LEN + 1];
    size_t lens[STOP_MAX_STRINGS];
    const char *ptrs[STOP_MAX_STRINGS];
    size_t n = fz_u8(&in) % 5;
    for (size_t k = 0; k < n; k++) {
        lens[k] = 1 + fz_u8(&in) % 12;
        for (size_t i = 0; i < lens[k]; i++) stops[k][i] = (char)fz_u8(&in);
        stops[k][lens[k]] = '\0';
        ptrs[k] = stops[k];
    }
    uint32_t cut_state = fz_u32(&in);
    const char *text = (const char *)in.p;
    size_t len = in.n;

    hearth_err err = {0};
    stop_matcher *m = stop_matcher_new(ptrs, n, &err);
    if (!m) {
        if (!err.msg[0]) fz_fail("refusal without a message");
        return 0;
    }
    /* an embedded NUL makes the stop string shorter than fed: use what the matcher saw */
    for (size_t k = 0; k < n; k++) lens[k] = strlen(stops[k]);
    bool hit;
    size_t want = reference(text, len, stops, lens, n, &hit);

    char *got = malloc(len + 1);
    size_t got_len = 0, pos = 0;
    bool stopped = false;
    while (pos < len) {
        cut_state = cut_state * 1103515245u + 12345u;
        size_t piece = (cut_state >> 16) % 9;
        if (piece > len - pos) piece = len - pos;
        const char *emit;
        size_t emit_len;
        bool now;
        if (stop_matcher_feed(m, text + pos, piece, &emit, &emit_len, &now)) fz_fail("feed failed");
        if (stopped && emit_len) fz_fail("released %zu bytes after the stop", emit_len);
        if (got_len + emit_len > len) fz_fail("released more bytes than fed");
        memcpy(got + got_len, emit, emit_len);
        got_len += emit_len;
        stopped = stopped || now;
        pos += piece;
    }
    if (!stopped) {
        const char *emit;
        size_t emit_len;
        stop_matcher_finish(m, &emit, &emit_len);
        if (got_len + emit_len > len) fz_fail("finish released more bytes than fed");
        memcpy(got + got_len, emit, emit_len);
        got_len += emit_len;
    }
    if (stopped != hit) fz_fail("stopped %d, reference %d", stopped, hit);
    if (got_len != want || memcmp(got, text, want)) fz_fail("released %zu bytes, reference %zu", got_len, want);
    if (hit && stop_matcher_matched(m) < 0) fz_fail("stopped but no stop string recorded");
    free(got);
    stop_matcher_free(m);
    return 0;
}
