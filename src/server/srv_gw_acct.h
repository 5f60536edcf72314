/* Token accounting of routed requests, so that they show in the request log and the
 * metrics like direct ones (TTFT, inter-token gaps, prompt and completion tokens).
 * Two sources: a local target's own engine timing, published by srv_gw_local_call to
 * the srv_gw_acct bound to the calling thread (fallback and weighted routes run local
 * attempts on that thread; attempts on other threads, as race and shadow use, publish
 * nothing), and, for any target, what the streamed events themselves show (the time of
 * the first event, content events, the usage of the last chunk). Never touches a
 * connection. */
#ifndef SERVER_SRV_GW_ACCT_H
#define SERVER_SRV_GW_ACCT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "obs/obs.h"

typedef struct srv_gw_acct {
    pthread_mutex_t mu;
    bool set;                  /* a local attempt published */
    char target[96];           /* "local:MODEL" of that attempt */
    obs_trace trace;           /* its engine timing (start_ns: that attempt's start) */
    int64_t prompt_tokens;
} srv_gw_acct;

void srv_gw_acct_init(srv_gw_acct *a);
void srv_gw_acct_destroy(srv_gw_acct *a);
/* Binds a to the calling thread (NULL unbinds); srv_gw_acct_current returns it. */
void srv_gw_acct_bind(srv_gw_acct *a);
srv_gw_acct *srv_gw_acct_current(void);
/* A local attempt's numbers so far (thread-safe). */
void srv_gw_acct_publish(srv_gw_acct *a, const char *model, const obs_trace *t, int64_t prompt_tokens);
/* When the last publication came from target: copies its timing and token count into
 * *trace (keeping trace->start_ns) and its prompt size into *prompt_tokens; true. */
bool srv_gw_acct_take(srv_gw_acct *a, const char *target, obs_trace *trace, int64_t *prompt_tokens);

/* What a routed stream's events show (for targets without published numbers). */
typedef struct srv_gw_events {
    uint64_t first_ns;         /* clock_mono_ns of the first event with content; 0 none */
    int64_t content_events;    /* events carrying text: one token each, as an estimate */
    int64_t usage_prompt, usage_completion; /* from a chunk's usage; -1 none */
} srv_gw_events;

void srv_gw_events_init(srv_gw_events *e);
/* One SSE data payload (a JSON chunk) about to reach the client. */
void srv_gw_events_add(srv_gw_events *e, const char *data, size_t len);
/* Fills *trace's first token time and token count, and *prompt_tokens when known. */
void srv_gw_events_apply(const srv_gw_events *e, obs_trace *trace, int64_t *prompt_tokens);

#endif
