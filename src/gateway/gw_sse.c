/* Incremental server-sent events parser (see gw_sse.h). Each byte is looked at once;
 * buffers grow geometrically up to their limits, never beyond. */
#include "gateway/gw_sse.h"

#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/utf8.h"

void gw_sse_init(gw_sse *p, size_t max_line, size_t max_event, gw_sse_event_fn on_event, void *ud) {
    *p = (gw_sse){
        .max_line = max_line ? max_line : GW_SSE_MAX_LINE,
        .max_event = max_event ? max_event : GW_SSE_MAX_EVENT,
        .on_event = on_event,
        .ud = ud,
    };
    strcpy(p->type, "message");
}

void gw_sse_free(gw_sse *p) {
    mem_free(p->line);
    mem_free(p->data);
    p->line = p->data = NULL;
}

/* Makes room for `more` bytes plus a NUL in *buf, never past limit + 1 bytes. */
static bool reserve(char **buf, size_t *cap, size_t len, size_t more, size_t limit) {
    size_t need = len + more + 1;
    if (need <= *cap) return true;
    size_t grow = *cap ? *cap * 2 : 256;
    if (grow < need) grow = need;
    if (grow > limit + 1) grow = limit + 1;
    char *nb = mem_realloc(*buf, grow);
    if (!nb) return false;
    *buf = nb;
    *cap = grow;
    return true;
}

static hearth_status dispatch(gw_sse *p, hearth_err *err) {
    hearth_status st = HEARTH_OK;
    if (p->has_data) {
        p->data[p->data_len] = '\0';
        p->events++;
        if (!p->on_event(p->ud, p->type, p->data, p->data_len))
            st = err_set(err, HEARTH_ERR_CANCELLED, "event stream: the reader stopped");
    }
    p->has_data = false;
    p->data_len = 0;
    strcpy(p->type, "message");
    return st;
}

static hearth_status field(gw_sse *p, const char *line, size_t len, hearth_err *err) {
    const char *colon = memchr(line, ':', len);
    size_t name_len = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = (size_t)(line + len - value);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (name_len == 4 && !memcmp(line, "data", 4)) {
        size_t add = value_len + (p->has_data ? 1 : 0);
        if (p->data_len + add > p->max_event)
            return err_set(err, HEARTH_ERR_FORMAT, "event stream: an event's data exceeds %zu bytes", p->max_event);
        if (!reserve(&p->data, &p->data_cap, p->data_len, add, p->max_event))
            return err_set(err, HEARTH_ERR_NOMEM, "event stream: out of memory");
        if (p->has_data) p->data[p->data_len++] = '\n';
        memcpy(p->data + p->data_len, value, value_len);
        p->data_len += value_len;
        p->has_data = true;
    } else if (name_len == 5 && !memcmp(line, "event", 5)) {
        if (value_len >= sizeof p->type)
            return err_set(err, HEARTH_ERR_FORMAT, "event stream: an event type is longer than %zu bytes",
                           sizeof p->type - 1);
        memcpy(p->type, value, value_len);
        p->type[value_len] = '\0';
    }
    return HEARTH_OK;
}

static hearth_status end_line(gw_sse *p, hearth_err *err) {
    const char *line = p->line ? p->line : "";
    size_t len = p->line_len;
    p->line_len = 0;
    if (memchr(line, '\0', len)) return err_set(err, HEARTH_ERR_FORMAT, "event stream: a line holds a NUL byte");
    if (!utf8_valid(line, len)) return err_set(err, HEARTH_ERR_FORMAT, "event stream: a line is not valid UTF-8");
    if (len == 0) return dispatch(p, err);
    if (line[0] == ':') return HEARTH_OK;
    return field(p, line, len, err);
}

hearth_status gw_sse_feed(gw_sse *p, const char *buf, size_t n, hearth_err *err) {
    size_t i = 0;
    while (i < n) {
        if (p->after_cr && buf[i] == '\n') {
            p->after_cr = false;
            i++;
            continue;
        }
        p->after_cr = false;
        size_t j = i;
        while (j < n && buf[j] != '\n' && buf[j] != '\r') j++;
        size_t seg = j - i;
        if (seg > 0) {
            if (p->line_len + seg > p->max_line)
                return err_set(err, HEARTH_ERR_FORMAT, "event stream: a line is longer than %zu bytes", p->max_line);
            if (!reserve(&p->line, &p->line_cap, p->line_len, seg, p->max_line))
                return err_set(err, HEARTH_ERR_NOMEM, "event stream: out of memory");
            memcpy(p->line + p->line_len, buf + i, seg);
            p->line_len += seg;
        }
        if (j == n) break;
        p->after_cr = buf[j] == '\r';
        hearth_status st = end_line(p, err);
        if (st != HEARTH_OK) return st;
        i = j + 1;
    }
    return HEARTH_OK;
}

bool gw_sse_finish(gw_sse *p) {
    bool clean = p->line_len == 0 && !p->has_data;
    p->line_len = 0;
    p->has_data = false;
    p->data_len = 0;
    return clean;
}
