/* A fault-injecting OpenAI-style upstream for gateway tests: a raw-socket HTTP/1.1
 * server on 127.0.0.1 that answers each request with the next scripted behaviour (or a
 * default): a good answer (JSON, or SSE when the request asked to stream), an error
 * status with Retry-After, a stall before the headers or mid-stream, a TCP reset,
 * malformed SSE, a 10 MB line, a redirect. It counts the requests it saw and keeps
 * their heads and bodies so a test can check what was sent (e.g. an API key). */
#ifndef TESTS_FAULT_UPSTREAM_H
#define TESTS_FAULT_UPSTREAM_H

#include <stdbool.h>

typedef enum fu_kind {
    FU_OK,              /* 200: JSON, or `chunks` SSE chunks then [DONE] (after delay_ms) */
    FU_STATUS,          /* `status` with an OpenAI error body (and Retry-After if set) */
    FU_STALL_HEADERS,   /* reads the request, sends nothing until the client hangs up */
    FU_STALL_MIDSTREAM, /* 200 and `chunks` chunks, then nothing until the client hangs up */
    FU_RESET_MIDSTREAM, /* 200 and `chunks` chunks, then a TCP reset */
    FU_RESET_AT_ONCE,   /* a TCP reset instead of an answer */
    FU_CLOSE_MIDSTREAM, /* 200 and `chunks` chunks, then a clean close without [DONE] */
    FU_MALFORMED,       /* 200 and one event whose data is not JSON */
    FU_HUGE_LINE,       /* 200 and one 10 MB line */
    FU_REDIRECT,        /* 307 to `location` */
} fu_kind;

typedef struct fu_reply {
    fu_kind kind;
    int status;              /* FU_STATUS */
    const char *retry_after; /* FU_STATUS: Retry-After value, or NULL */
    int chunks;              /* streamed chunks before [DONE] or the fault (0: 3) */
    const char *text;        /* the content of each chunk / the reply (NULL: "hi") */
    int delay_ms;            /* before answering at all */
    const char *location;    /* FU_REDIRECT */
} fu_reply;

typedef struct fu_server fu_server;

/* Listens on a free loopback port; dflt answers every request no script covers. */
fu_server *fu_start(const fu_reply *dflt);
/* The next requests get these behaviours in order (strings must outlive the server). */
void fu_push(fu_server *s, const fu_reply *r);
/* Changes the default behaviour. */
void fu_set_default(fu_server *s, const fu_reply *r);
int fu_port(const fu_server *s);
int fu_requests(fu_server *s);
/* Every request head and body seen so far, concatenated (malloc'd). */
char *fu_seen(fu_server *s);
/* Closes the socket, ends stalled connections, joins everything. */
void fu_stop(fu_server *s);

/* A loopback port nothing listens on (connections are refused). */
int fu_dead_port(void);

#endif
