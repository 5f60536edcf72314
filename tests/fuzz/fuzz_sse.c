/* libFuzzer target: the upstream server-sent-events parser (gw_sse). Bytes 0-2 pick the
 * line and event limits and an event after which the reader stops, bytes 3-6 how the
 * stream is cut into feeds; the rest is the stream. The events, the error (or none) and
 * the clean-end flag must equal those of a plain reference reading the whole stream at
 * once, however it is cut. */
#include <stdlib.h>
#include <string.h>

#include "base/utf8.h"
#include "fz_util.h"
#include "gateway/gw_sse.h"

/* Events as "type\0" + 8-byte length + data, one after another. */
typedef struct evlog {
    char *buf;
    size_t len, cap, n, stop_at;
} evlog;

static void put(evlog *l, const void *p, size_t n) {
    if (l->len + n > l->cap) {
        l->cap = (l->len + n) * 2 + 64;
        l->buf = realloc(l->buf, l->cap);
        if (!l->buf) fz_fail("out of memory");
    }
    memcpy(l->buf + l->len, p, n);
    l->len += n;
}

static bool record(evlog *l, const char *type, const char *data, size_t len) {
    uint64_t n = len;
    put(l, type, strlen(type) + 1);
    put(l, &n, sizeof n);
    put(l, data, len);
    l->n++;
    return !(l->stop_at && l->n == l->stop_at);
}

static bool on_event(void *ud, const char *type, const char *data, size_t len) {
    if (strnlen(type, 64) == 64) fz_fail("event type not terminated within 64 bytes");
    if (data[len] != '\0') fz_fail("event data of %zu bytes not NUL-terminated", len);
    return record(ud, type, data, len);
}

/* The reference: the format's rules over the whole stream. */
static hearth_status reference(const uint8_t *s, size_t n, size_t max_line, size_t max_event, evlog *l, bool *clean) {
    char type[64] = "message";
    char *data = malloc(n + 1);
    size_t dlen = 0;
    bool has = false;
    hearth_status st = HEARTH_OK;
    size_t i = 0;
    *clean = true;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '\n' && s[j] != '\r') j++;
        const char *line = (const char *)s + i;
        size_t len = j - i;
        if (len > max_line) {
            st = HEARTH_ERR_FORMAT;
            break;
        }
        if (j == n) { /* a line the stream did not end */
            *clean = false;
            break;
        }
        if (memchr(line, '\0', len) || !utf8_valid(line, len)) {
            st = HEARTH_ERR_FORMAT;
            break;
        }
        if (len == 0) {
            bool go_on = true;
            if (has) {
                data[dlen] = '\0';
                go_on = record(l, type, data, dlen);
            }
            has = false;
            dlen = 0;
            strcpy(type, "message");
            if (!go_on) {
                st = HEARTH_ERR_CANCELLED;
                break;
            }
        } else if (line[0] != ':') {
            const char *colon = memchr(line, ':', len);
            size_t name_len = colon ? (size_t)(colon - line) : len;
            const char *value = colon ? colon + 1 : line + len;
            size_t vlen = (size_t)(line + len - value);
            if (vlen && value[0] == ' ') value++, vlen--;
            if (name_len == 4 && !memcmp(line, "data", 4)) {
                if (dlen + vlen + (has ? 1 : 0) > max_event) {
                    st = HEARTH_ERR_FORMAT;
                    break;
                }
                if (has) data[dlen++] = '\n';
                memcpy(data + dlen, value, vlen);
                dlen += vlen;
                has = true;
            } else if (name_len == 5 && !memcmp(line, "event", 5)) {
                if (vlen >= sizeof type) {
                    st = HEARTH_ERR_FORMAT;
                    break;
                }
                memcpy(type, value, vlen);
                type[vlen] = '\0';
            }
        }
        i = j + 1;
        if (s[j] == '\r' && i < n && s[i] == '\n') i++;
    }
    if (st == HEARTH_OK && *clean) *clean = !has;
    free(data);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t size) {
    fz_in in = {bytes, size};
    uint8_t b0 = fz_u8(&in), b1 = fz_u8(&in), b2 = fz_u8(&in);
    uint32_t cuts = fz_u32(&in);
    size_t max_line = b0 ? 1 + b0 % 64 : 0, max_event = b1 ? b1 % 128 + 1 : 0;
    const uint8_t *s = in.p;
    size_t n = in.n;

    evlog got = {.stop_at = b2 % 8}, want = {.stop_at = b2 % 8};
    gw_sse p;
    gw_sse_init(&p, max_line, max_event, on_event, &got);
    hearth_status st = HEARTH_OK;
    hearth_err err = {0};
    size_t pos = 0;
    while (pos < n && st == HEARTH_OK) {
        cuts = cuts * 1103515245u + 12345u;
        size_t piece = cuts % 8 == 0 ? n - pos : 1 + (cuts >> 8) % 17;
        if (piece > n - pos) piece = n - pos;
        st = gw_sse_feed(&p, (const char *)s + pos, piece, &err);
        pos += piece;
    }
    if (st != HEARTH_OK && !err.msg[0]) fz_fail("error %d without a message", st);
    bool clean = st == HEARTH_OK ? gw_sse_finish(&p) : false;
    gw_sse_free(&p);

    bool want_clean;
    hearth_status want_st = reference(s, n, max_line ? max_line : GW_SSE_MAX_LINE,
                                      max_event ? max_event : GW_SSE_MAX_EVENT, &want, &want_clean);
    if (st != want_st) fz_fail("status %d, reference %d (%s)", st, want_st, err.msg);
    if (got.n != want.n || got.len != want.len || (got.len && memcmp(got.buf, want.buf, got.len) != 0))
        fz_fail("%zu events (%zu bytes), reference %zu (%zu bytes)", got.n, got.len, want.n, want.len);
    if (st == HEARTH_OK && clean != want_clean) fz_fail("clean end %d, reference %d", clean, want_clean);
    free(got.buf);
    free(want.buf);
    return 0;
}
