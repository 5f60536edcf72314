/* Token accounting of routed requests (see srv_gw_acct.h). Never blocks beyond a short
 * mutex hold and never parses more of an event than its usage and its content. */
#define _GNU_SOURCE /* memmem */
#include "server/srv_gw_acct.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"

static __thread srv_gw_acct *bound;

void srv_gw_acct_init(srv_gw_acct *a) {
    *a = (srv_gw_acct){.prompt_tokens = -1};
    pthread_mutex_init(&a->mu, NULL);
}

void srv_gw_acct_destroy(srv_gw_acct *a) { pthread_mutex_destroy(&a->mu); }

void srv_gw_acct_bind(srv_gw_acct *a) { bound = a; }

srv_gw_acct *srv_gw_acct_current(void) { return bound; }

void srv_gw_acct_publish(srv_gw_acct *a, const char *model, const obs_trace *t, int64_t prompt_tokens) {
    pthread_mutex_lock(&a->mu);
    a->set = true;
    snprintf(a->target, sizeof a->target, "local:%s", model);
    a->trace = *t;
    a->prompt_tokens = prompt_tokens;
    pthread_mutex_unlock(&a->mu);
}

bool srv_gw_acct_take(srv_gw_acct *a, const char *target, obs_trace *trace, int64_t *prompt_tokens) {
    pthread_mutex_lock(&a->mu);
    bool match = a->set && !strcmp(a->target, target);
    if (match) {
        uint64_t start = trace->start_ns;
        *trace = a->trace;
        trace->start_ns = start; /* TTFT counts from the client's request, routing included */
        if (a->prompt_tokens >= 0) *prompt_tokens = a->prompt_tokens;
    }
    pthread_mutex_unlock(&a->mu);
    return match;
}

void srv_gw_events_init(srv_gw_events *e) {
    *e = (srv_gw_events){.usage_prompt = -1, .usage_completion = -1};
}

static bool has_text(const json_t *choice) {
    const json_t *delta = json_object_get(choice, "delta");
    const char *s = json_string_value(delta ? json_object_get(delta, "content") : json_object_get(choice, "text"));
    return s && *s;
}

void srv_gw_events_add(srv_gw_events *e, const char *data, size_t len) {
    bool usage = memmem(data, len, "\"usage\":{", 9) != NULL;
    if (!usage && !memmem(data, len, "\"content\":\"", 11) && !memmem(data, len, "\"text\":\"", 8)) return;
    json_t *j = json_loadb(data, len, 0, NULL);
    const json_t *u = json_object_get(j, "usage");
    if (json_is_object(u)) {
        const json_t *p = json_object_get(u, "prompt_tokens"), *c = json_object_get(u, "completion_tokens");
        if (json_is_integer(p)) e->usage_prompt = json_integer_value(p);
        if (json_is_integer(c)) e->usage_completion = json_integer_value(c);
    }
    size_t i;
    const json_t *choice;
    bool text = false;
    json_array_foreach(json_object_get(j, "choices"), i, choice) text |= has_text(choice);
    if (text) {
        if (!e->first_ns) e->first_ns = clock_mono_ns();
        e->content_events++;
    }
    json_decref(j);
}

void srv_gw_events_apply(const srv_gw_events *e, obs_trace *trace, int64_t *prompt_tokens) {
    if (e->first_ns && !trace->first_token_ns) trace->first_token_ns = e->first_ns;
    trace->tokens = e->usage_completion >= 0 ? e->usage_completion : e->content_events;
    if (e->usage_prompt >= 0) *prompt_tokens = e->usage_prompt;
}
