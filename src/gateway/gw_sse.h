/* Incremental parser of a text/event-stream body (the WHATWG server-sent events
 * format): bytes go in as they arrive, whole events come out. Lines end with LF, CR or
 * CRLF (also when split across feeds); "data" lines are joined with LF; comments and
 * "id"/"retry" fields are ignored. Limits make a hostile stream an error, never a crash
 * or an unbounded buffer: a line longer than max_line, an event's data longer than
 * max_event, a NUL byte or invalid UTF-8 is a FORMAT error. Never touches a socket. */
#ifndef GATEWAY_GW_SSE_H
#define GATEWAY_GW_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "hearth.h"

#define GW_SSE_MAX_LINE ((size_t)1 << 20)  /* default: 1 MiB */
#define GW_SSE_MAX_EVENT ((size_t)8 << 20) /* default: 8 MiB */

/* One dispatched event: its type ("message" unless an "event" field said otherwise)
 * and data (NUL-terminated, len bytes). Return false to stop parsing (CANCELLED). */
typedef bool (*gw_sse_event_fn)(void *ud, const char *type, const char *data, size_t len);

typedef struct gw_sse {
    size_t max_line, max_event;
    gw_sse_event_fn on_event;
    void *ud;
    char *line;            /* the line being read */
    size_t line_len, line_cap;
    char *data;            /* the event being assembled */
    size_t data_len, data_cap;
    bool has_data;
    char type[64];
    bool after_cr;         /* the last byte was CR: a following LF ends nothing */
    size_t events;         /* dispatched so far */
} gw_sse;

/* max_line / max_event 0: the defaults. */
void gw_sse_init(gw_sse *p, size_t max_line, size_t max_event, gw_sse_event_fn on_event, void *ud);
void gw_sse_free(gw_sse *p);

/* Feeds n bytes. Errors: FORMAT (limits, NUL, invalid UTF-8; the message says which
 * line), NOMEM, CANCELLED (the callback said stop). After an error, feed no more. */
hearth_status gw_sse_feed(gw_sse *p, const char *buf, size_t n, hearth_err *err);

/* The body ended. A pending line or an event not closed by a blank line is dropped, as
 * the format says. True when nothing was pending (the body ended between events). */
bool gw_sse_finish(gw_sse *p);

#endif
