/* Tool-call reply formats (see srv_toolfmt.h). Reads text the model wrote; never executes
 * anything, and never turns a reply into a call unless every call in it parses. */
#define _GNU_SOURCE /* memmem */
#include "server/srv_toolfmt.h"

#include <string.h>

#define HELD_MAX ((size_t)1 << 30)
#define LOAD_FLAGS (JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES)

static bool has(const char *src, size_t len, const char *needle) {
    return memmem(src, len, needle, strlen(needle)) != NULL;
}

srv_toolfmt srv_toolfmt_of_template(const char *src, size_t len) {
    if (!src) return SRV_TOOLFMT_NONE;
    if (has(src, len, SRV_TOOL_CALL_OPEN)) return SRV_TOOLFMT_TAGGED;
    if (has(src, len, SRV_TOOLFMT_MISTRAL_MARK)) return has(src, len, "[ARGS]") ? SRV_TOOLFMT_MISTRAL_ARGS : SRV_TOOLFMT_MISTRAL;
    if (has(src, len, "<|start_header_id|>") && has(src, len, "\"parameters\": ")) return SRV_TOOLFMT_LLAMA;
    return SRV_TOOLFMT_NONE;
}

const char *srv_toolfmt_name(srv_toolfmt f) {
    switch (f) {
    case SRV_TOOLFMT_TAGGED: return "tagged";
    case SRV_TOOLFMT_LLAMA: return "llama";
    case SRV_TOOLFMT_MISTRAL: return "mistral";
    case SRV_TOOLFMT_MISTRAL_ARGS: return "mistral-args";
    case SRV_TOOLFMT_NONE: break;
    }
    return "none";
}

static bool mistral(srv_toolfmt f) { return f == SRV_TOOLFMT_MISTRAL || f == SRV_TOOLFMT_MISTRAL_ARGS; }

#define ARGS_MARK "[ARGS]"
#define CALL_ID_MARK "[CALL_ID]"

size_t srv_toolfmt_markers(srv_toolfmt f, const char *const **markers) {
    static const char *const tagged[] = {SRV_TOOL_CALL_OPEN, SRV_TOOL_CALL_CLOSE};
    static const char *const llama[] = {SRV_TOOLFMT_PYTHON_TAG};
    static const char *const mistral_marks[] = {SRV_TOOLFMT_MISTRAL_MARK, ARGS_MARK, CALL_ID_MARK};
    *markers = NULL;
    switch (f) {
    case SRV_TOOLFMT_TAGGED: *markers = tagged; return 2;
    case SRV_TOOLFMT_LLAMA: *markers = llama; return 1;
    case SRV_TOOLFMT_MISTRAL:
    case SRV_TOOLFMT_MISTRAL_ARGS: *markers = mistral_marks; return 3;
    case SRV_TOOLFMT_NONE: break;
    }
    return 0;
}

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static size_t skip_space(const char *t, size_t len, size_t pos) {
    while (pos < len && is_space(t[pos])) pos++;
    return pos;
}

static bool starts(const char *t, size_t len, size_t pos, const char *s) {
    size_t n = strlen(s);
    return len - pos >= n && !memcmp(t + pos, s, n);
}

/* The JSON object or array at t[pos..len); *end is just past it. */
static json_t *load_at(const char *t, size_t len, size_t pos, size_t *end) {
    json_error_t err;
    json_t *v = json_loadb(t + pos, len - pos, LOAD_FLAGS, &err);
    if (v) *end = pos + (size_t)err.position;
    return v;
}

/* {"name": ..., "arguments"|"parameters": ...} as a call; LLAMA also needs the name in
 * tools and the arguments present. */
static json_t *call_of(const json_t *obj, const json_t *tools, bool llama) {
    if (!json_is_object(obj)) return NULL;
    json_t *name = json_object_get(obj, "name");
    json_t *args = json_object_get(obj, "arguments");
    if (!args) args = json_object_get(obj, "parameters");
    if (llama && (!args || !json_is_string(name) || !srv_tools_has(tools, json_string_value(name)))) return NULL;
    return srv_tools_call_new(name, args);
}

static bool append(json_t *calls, json_t *call) { return call && json_array_append_new(calls, call) == 0; }

/* ---- LLAMA: the whole reply is calls ----------------------------------------------- */

static bool read_llama(const json_t *tools, const char *t, size_t len, json_t *calls) {
    size_t pos = skip_space(t, len, 0);
    if (starts(t, len, pos, SRV_TOOLFMT_PYTHON_TAG)) pos = skip_space(t, len, pos + strlen(SRV_TOOLFMT_PYTHON_TAG));
    if (pos == len) return false;
    while (pos < len) {
        if (t[pos] != '{') return false;
        size_t end = 0;
        json_t *obj = load_at(t, len, pos, &end);
        bool ok = obj && append(calls, call_of(obj, tools, true));
        json_decref(obj);
        if (!ok) return false;
        pos = skip_space(t, len, end);
        if (pos < len && t[pos] == ';') pos = skip_space(t, len, pos + 1);
    }
    return true;
}

/* ---- MISTRAL: [TOOL_CALLS] then an array, or name[ARGS]{...} --------------------------- */

/* name[CALL_ID]id[ARGS]{...} at t[pos..): the call, *end past its arguments. */
static json_t *read_named(const char *t, size_t len, size_t pos, size_t *end) {
    const char *args = memmem(t + pos, len - pos, ARGS_MARK, strlen(ARGS_MARK));
    if (!args) return NULL;
    size_t name_end = (size_t)(args - t);
    const char *id = memmem(t + pos, name_end - pos, CALL_ID_MARK, strlen(CALL_ID_MARK));
    if (id) name_end = (size_t)(id - t);
    while (name_end > pos && is_space(t[name_end - 1])) name_end--;
    json_t *name = json_stringn(t + pos, name_end - pos);
    size_t at = skip_space(t, len, (size_t)(args - t) + strlen(ARGS_MARK));
    json_t *obj = at < len && t[at] == '{' ? load_at(t, len, at, end) : NULL;
    json_t *call = name && obj ? srv_tools_call_new(name, obj) : NULL;
    json_decref(name);
    json_decref(obj);
    return call;
}

/* The calls after one marker at t[pos..); *end past the last. */
static bool read_mistral_calls(const char *t, size_t len, size_t pos, json_t *calls, size_t *end) {
    pos = skip_space(t, len, pos);
    if (pos < len && (t[pos] == '[' || t[pos] == '{')) {
        json_t *v = load_at(t, len, pos, end);
        bool ok = v != NULL && (json_is_object(v) || json_array_size(v) > 0);
        for (size_t i = 0; ok && i < (json_is_array(v) ? json_array_size(v) : 1); i++)
            ok = append(calls, call_of(json_is_array(v) ? json_array_get(v, i) : v, NULL, false));
        json_decref(v);
        return ok;
    }
    if (!append(calls, read_named(t, len, pos, end))) return false;
    /* further calls written name[ARGS]{...} without repeating the marker */
    for (;;) {
        size_t next = skip_space(t, len, *end), after = 0;
        if (next == len || starts(t, len, next, SRV_TOOLFMT_MISTRAL_MARK)) return true;
        json_t *call = read_named(t, len, next, &after);
        if (!call) return true;
        if (!append(calls, call)) return false;
        *end = after;
    }
}

static bool read_mistral(const char *t, size_t len, json_t *calls, srv_buf *outside) {
    const size_t lm = strlen(SRV_TOOLFMT_MISTRAL_MARK);
    size_t pos = 0;
    while (pos < len) {
        const char *m = memmem(t + pos, len - pos, SRV_TOOLFMT_MISTRAL_MARK, lm);
        size_t stop = m ? (size_t)(m - t) : len;
        if (!srv_buf_add(outside, t + pos, stop - pos)) return false;
        if (!m) break;
        size_t end = 0;
        if (!read_mistral_calls(t, len, stop + lm, calls, &end)) return false;
        pos = end;
    }
    return true;
}

json_t *srv_toolfmt_extract(srv_toolfmt f, const json_t *tools, const char *text, size_t len, bool first_only,
                            json_t **content) {
    *content = NULL;
    if (f == SRV_TOOLFMT_TAGGED) return srv_tools_extract(text, len, first_only, content);
    if (f != SRV_TOOLFMT_LLAMA && !mistral(f)) return NULL;
    json_t *calls = json_array();
    srv_buf outside = {.max = len + 1};
    bool ok = calls && (f == SRV_TOOLFMT_LLAMA ? read_llama(tools, text, len, calls)
                                               : read_mistral(text, len, calls, &outside));
    return srv_tools_calls_read(calls, ok, &outside, first_only, content);
}

/* ---- forced calls ------------------------------------------------------------------ */

bool srv_toolfmt_forced_open(srv_toolfmt f, const char *name, srv_buf *out, const char **stop, const char **close) {
    *stop = NULL;
    *close = "}";
    switch (f) {
    case SRV_TOOLFMT_TAGGED:
        *stop = SRV_TOOL_CALL_CLOSE;
        return srv_tools_prefill(name, out);
    case SRV_TOOLFMT_LLAMA: return srv_buf_addf(out, "{\"name\": \"%s\", \"parameters\": ", name);
    case SRV_TOOLFMT_MISTRAL:
        *close = "}]";
        return srv_buf_addf(out, SRV_TOOLFMT_MISTRAL_MARK "[{\"name\": \"%s\", \"arguments\": ", name);
    case SRV_TOOLFMT_MISTRAL_ARGS:
        *close = "";
        return srv_buf_addf(out, SRV_TOOLFMT_MISTRAL_MARK "%s" ARGS_MARK, name);
    case SRV_TOOLFMT_NONE: break;
    }
    return false;
}

/* ---- streaming --------------------------------------------------------------------- */

static bool release_held(srv_tool_stream *ts, size_t n, srv_buf *release) {
    if (!srv_buf_add(release, ts->held.data, n)) return false;
    srv_buf_consume(&ts->held, n);
    return true;
}

/* The marker formats: holds text from the first `marker` on, and a tail that may still
 * complete it. */
static bool hold_marker(srv_tool_stream *ts, const char *marker, const char *text, size_t len, srv_buf *release) {
    if (!ts->held.max) ts->held.max = HELD_MAX;
    if (!srv_buf_add(&ts->held, text, len)) return false;
    if (ts->in_call) return true;
    const size_t lm = strlen(marker);
    const char *h = ts->held.data;
    size_t n = ts->held.len, keep = 0;
    const char *open = n ? memmem(h, n, marker, lm) : NULL;
    if (open) {
        ts->in_call = true;
        keep = n - (size_t)(open - h);
    } else {
        /* the longest tail that the marker could still complete */
        for (size_t k = n < lm - 1 ? n : lm - 1; k > 0; k--)
            if (!memcmp(h + n - k, marker, k)) {
                keep = k;
                break;
            }
    }
    return release_held(ts, n - keep, release);
}

/* LLAMA: a reply that opens (after spaces) with '{' or <|python_tag|> is held whole; any
 * other opening releases everything, now and from then on. */
static bool hold_llama(srv_tool_stream *ts, const char *text, size_t len, srv_buf *release) {
    if (ts->passing) return srv_buf_add(release, text, len);
    if (!ts->held.max) ts->held.max = HELD_MAX;
    if (!srv_buf_add(&ts->held, text, len)) return false;
    if (ts->in_call) return true;
    const char *h = ts->held.data;
    size_t n = ts->held.len, pos = ts->lead = skip_space(h, n, ts->lead);
    const char *tag = SRV_TOOLFMT_PYTHON_TAG;
    size_t rest = n - pos, lt = strlen(tag);
    if (rest == 0 || (rest < lt && !memcmp(h + pos, tag, rest))) return true;
    if (h[pos] == '{' || starts(h, n, pos, tag)) {
        ts->in_call = true;
        return true;
    }
    ts->passing = true;
    return release_held(ts, n, release);
}

bool srv_toolfmt_feed(srv_toolfmt f, srv_tool_stream *ts, const char *text, size_t len, srv_buf *release) {
    switch (f) {
    case SRV_TOOLFMT_TAGGED: return hold_marker(ts, SRV_TOOL_CALL_OPEN, text, len, release);
    case SRV_TOOLFMT_MISTRAL:
    case SRV_TOOLFMT_MISTRAL_ARGS: return hold_marker(ts, SRV_TOOLFMT_MISTRAL_MARK, text, len, release);
    case SRV_TOOLFMT_LLAMA: return hold_llama(ts, text, len, release);
    case SRV_TOOLFMT_NONE: break;
    }
    return srv_buf_add(release, text, len);
}

json_t *srv_toolfmt_finish(srv_toolfmt f, const json_t *tools, srv_tool_stream *ts, bool first_only,
                           srv_buf *release, bool *nomem) {
    *nomem = false;
    json_t *content = NULL;
    json_t *calls = ts->in_call ? srv_toolfmt_extract(f, tools, ts->held.data, ts->held.len, first_only, &content) : NULL;
    if (calls) {
        if (json_is_string(content) && !srv_buf_add(release, json_string_value(content), json_string_length(content)))
            *nomem = true;
        for (size_t i = 0; !*nomem && i < json_array_size(calls); i++)
            if (json_object_set_new(json_array_get(calls, i), "index", json_integer((json_int_t)i)) != 0) *nomem = true;
    } else if (!srv_buf_add(release, ts->held.data, ts->held.len)) {
        *nomem = true;
    }
    json_decref(content);
    srv_buf_consume(&ts->held, ts->held.len);
    if (*nomem) {
        json_decref(calls);
        return NULL;
    }
    return calls;
}
