/* Incremental SSE parser for streamed completions (see loadgen_sse.h). Reads only what
 * the server sent; never trusts a length or nesting from it beyond LOADGEN_SSE_MAX. */
#include "loadgen/loadgen_sse.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"

void loadgen_sse_init(loadgen_sse *p) {
    memset(p, 0, sizeof *p);
    p->usage_tokens = -1;
}

void loadgen_sse_free(loadgen_sse *p) {
    if (!p) return;
    mem_free(p->line);
    mem_free(p->data);
    p->line = p->data = NULL;
}

static bool ended(const loadgen_sse *p) { return p->done || p->stream_error || p->malformed; }

static bool fail(loadgen_sse *p, const char *why) {
    p->malformed = true;
    snprintf(p->why, sizeof p->why, "%s", why);
    return false;
}

/* Appends n bytes to *buf (NUL-terminated), growing it up to LOADGEN_SSE_MAX. */
static bool append(loadgen_sse *p, char **buf, size_t *len, size_t *cap, const char *src, size_t n) {
    if (n > LOADGEN_SSE_MAX - *len) return fail(p, "an SSE line or event is longer than 1 MiB");
    if (*len + n + 1 > *cap) {
        size_t want = *cap ? *cap : 256;
        while (want < *len + n + 1) want *= 2;
        char *grown = mem_realloc(*buf, want);
        if (!grown) return fail(p, "out of memory");
        *buf = grown;
        *cap = want;
    }
    memcpy(*buf + *len, src, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

static bool nonempty_string(json_t *v) { return json_is_string(v) && json_string_length(v) > 0; }

/* One complete event's data: [DONE], an error frame, or a completion chunk. */
static bool dispatch(loadgen_sse *p) {
    const char *d = p->data ? p->data : "";
    if (!strcmp(d, "[DONE]")) {
        p->done = true;
        return true;
    }
    json_error_t je;
    json_t *root = json_loadb(d, p->data_len, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        char why[sizeof p->why];
        snprintf(why, sizeof why, "an SSE event is not a JSON object: %.120s", d);
        return fail(p, why);
    }
    json_t *error = json_object_get(root, "error");
    if (error) {
        json_t *msg = json_object_get(error, "message");
        p->stream_error = true;
        snprintf(p->why, sizeof p->why, "%s", json_is_string(msg) ? json_string_value(msg) : "error frame");
        json_decref(root);
        return false;
    }
    bool content = nonempty_string(json_object_get(root, "content")); /* llama.cpp native */
    json_t *choices = json_object_get(root, "choices");
    size_t i;
    json_t *c;
    json_array_foreach(choices, i, c) {
        if (nonempty_string(json_object_get(c, "text")) ||
            nonempty_string(json_object_get(json_object_get(c, "delta"), "content")))
            content = true;
    }
    if (content) p->content_chunks++;
    json_t *usage = json_object_get(root, "usage");
    json_t *n = json_object_get(usage, "completion_tokens");
    if (!json_is_integer(n)) n = json_object_get(root, "tokens_predicted");
    if (json_is_integer(n) && json_integer_value(n) >= 0) p->usage_tokens = (long)json_integer_value(n);
    json_decref(root);
    return true;
}

/* One line, without its terminator. */
static bool on_line(loadgen_sse *p) {
    const char *l = p->line ? p->line : "";
    size_t n = p->line_len;
    p->line_len = 0;
    if (n == 0) { /* blank line: the event ends */
        bool ok = !p->has_data || dispatch(p);
        p->data_len = 0;
        p->has_data = false;
        return ok;
    }
    if (l[0] == ':') return true; /* comment (keep-alive) */
    const char *colon = memchr(l, ':', n);
    size_t name_len = colon ? (size_t)(colon - l) : n;
    if (name_len != 4 || memcmp(l, "data", 4)) {
        static const char *known[] = {"event", "id", "retry"};
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strlen(known[k]) == name_len && !memcmp(l, known[k], name_len)) return true;
        char why[sizeof p->why];
        snprintf(why, sizeof why, "not an SSE line: %.120s", l);
        return fail(p, why);
    }
    const char *v = colon ? colon + 1 : l + n;
    if (v < l + n && *v == ' ') v++;
    if (p->has_data && !append(p, &p->data, &p->data_len, &p->data_cap, "\n", 1)) return false;
    p->has_data = true;
    return append(p, &p->data, &p->data_len, &p->data_cap, v, (size_t)(l + n - v));
}

bool loadgen_sse_feed(loadgen_sse *p, const char *buf, size_t n) {
    size_t i = 0;
    while (i < n && !ended(p)) {
        if (p->after_cr && buf[i] == '\n') i++;
        p->after_cr = false;
        size_t start = i;
        while (i < n && buf[i] != '\n' && buf[i] != '\r') i++;
        if (i > start && !append(p, &p->line, &p->line_len, &p->line_cap, buf + start, i - start)) return false;
        if (i == n) break;
        p->after_cr = buf[i] == '\r';
        i++;
        if (!on_line(p)) return false;
    }
    return !(p->stream_error || p->malformed);
}
