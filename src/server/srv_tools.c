/* Tool calling for chat completions (see srv_tools.h). Never executes anything: tool
 * calls are text the model wrote, handed back to the client as OpenAI-shaped values. */
#define _GNU_SOURCE /* memmem */
#include "server/srv_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"

#define NAME_MAX_LEN 64
#define HELD_MAX ((size_t)1 << 30)

static json_t *field(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* OpenAI's rule for function names: 1-64 of a-z A-Z 0-9 _ - */
static bool valid_name(const char *s, size_t n) {
    if (n == 0 || n > NAME_MAX_LEN) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool check_tool(const json_t *t, size_t i, srv_error *e) {
    char param[64];
    snprintf(param, sizeof param, "tools[%zu]", i);
    if (!json_is_object(t)) return srv_invalid(e, param, "each tool must be an object");
    snprintf(param, sizeof param, "tools[%zu].type", i);
    json_t *type = json_object_get(t, "type");
    if (!json_is_string(type)) return srv_invalid(e, param, "each tool needs a string 'type' (\"function\")");
    if (strcmp(json_string_value(type), "function") != 0)
        return srv_invalid(e, param, "tool type '%.40s' is not supported (only 'function')", json_string_value(type));
    snprintf(param, sizeof param, "tools[%zu].function", i);
    json_t *fn = json_object_get(t, "function");
    if (!json_is_object(fn)) return srv_invalid(e, param, "a function tool needs a 'function' object");
    snprintf(param, sizeof param, "tools[%zu].function.name", i);
    json_t *name = json_object_get(fn, "name");
    if (!json_is_string(name) || !valid_name(json_string_value(name), json_string_length(name)))
        return srv_invalid(e, param, "a function name must be 1 to %d characters of a-z, A-Z, 0-9, _ and -",
                           NAME_MAX_LEN);
    json_t *desc = field(fn, "description"), *params = field(fn, "parameters"), *strict = field(fn, "strict");
    snprintf(param, sizeof param, "tools[%zu].function.description", i);
    if (desc && !json_is_string(desc)) return srv_invalid(e, param, "'description' must be a string");
    snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
    if (params && !json_is_object(params)) return srv_invalid(e, param, "'parameters' must be a JSON Schema object");
    snprintf(param, sizeof param, "tools[%zu].function.strict", i);
    if (strict && !json_is_boolean(strict)) return srv_invalid(e, param, "'strict' must be a boolean");
    return true;
}

bool srv_tools_has(const json_t *tools, const char *name) {
    for (size_t i = 0; i < json_array_size(tools); i++) {
        json_t *n = json_object_get(json_object_get(json_array_get(tools, i), "function"), "name");
        if (json_is_string(n) && !strcmp(json_string_value(n), name)) return true;
    }
    return false;
}

/* tool_choice: "auto", "none", a named function and "required" with one tool. */
static bool check_choice(const json_t *choice, const json_t *tools, bool *none, const char **forced, srv_error *e) {
    *none = false;
    *forced = NULL;
    if (!choice) return true;
    if (json_is_string(choice)) {
        const char *s = json_string_value(choice);
        if (!strcmp(s, "none")) {
            *none = true;
            return true;
        }
        if (!strcmp(s, "auto")) return true;
        if (strcmp(s, "required") != 0)
            return srv_invalid(e, "tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or a named function");
        if (!tools) return srv_invalid(e, "tool_choice", "'tool_choice' \"required\" needs 'tools'");
        if (json_array_size(tools) == 1) {
            *forced = json_string_value(json_object_get(json_object_get(json_array_get(tools, 0), "function"), "name"));
            return true;
        }
        return srv_invalid(e, "tool_choice",
                           "'tool_choice' \"required\" with several tools is not supported: choosing among them "
                           "needs constrained decoding; name the function to call, or use \"auto\"");
    }
    json_t *type = json_is_object(choice) ? json_object_get(choice, "type") : NULL;
    json_t *name = json_object_get(json_object_get(choice, "function"), "name");
    if (!json_is_string(type) || strcmp(json_string_value(type), "function") != 0 || !json_is_string(name))
        return srv_invalid(e, "tool_choice",
                           "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                           "\"function\": {\"name\": ...}}");
    if (!tools || !srv_tools_has(tools, json_string_value(name)))
        return srv_invalid(e, "tool_choice", "'tool_choice' names the function '%.64s', which is not in 'tools'",
                           json_string_value(name));
    *forced = json_string_value(name);
    return true;
}

bool srv_tools_parse_request(const json_t *root, const json_t **tools, const char **forced, srv_error *e) {
    *tools = NULL;
    *forced = NULL;
    if (field(root, "functions")) return srv_invalid(e, "functions", "'functions' is deprecated and not supported: send 'tools'");
    if (field(root, "function_call"))
        return srv_invalid(e, "function_call", "'function_call' is deprecated and not supported: send 'tool_choice'");
    json_t *t = field(root, "tools");
    if (t) {
        if (!json_is_array(t)) return srv_invalid(e, "tools", "'tools' must be an array");
        for (size_t i = 0; i < json_array_size(t); i++)
            if (!check_tool(json_array_get(t, i), i, e)) return false;
        if (json_array_size(t) == 0) t = NULL;
    }
    json_t *ptc = field(root, "parallel_tool_calls");
    if (ptc && !json_is_boolean(ptc)) return srv_invalid(e, "parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
    bool none = false;
    if (!check_choice(field(root, "tool_choice"), t, &none, forced, e)) return false;
    *tools = none ? NULL : t;
    return true;
}

/* ---- reading tool calls out of text ------------------------------------------------ */

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

static void trim(const char **s, size_t *n) {
    while (*n && is_space(**s)) (*s)++, (*n)--;
    while (*n && is_space((*s)[*n - 1])) (*n)--;
}

void srv_tools_call_id(char *out, size_t cap) {
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t a = sampler_random_seed(), b = sampler_random_seed();
    size_t n = (size_t)snprintf(out, cap, "call_");
    for (int i = 0; i < 24 && n + 1 < cap; i++) {
        uint64_t *r = i < 12 ? &a : &b;
        out[n++] = alnum[*r % 62];
        *r /= 62;
    }
    out[n] = '\0';
}

json_t *srv_tools_call_new(const json_t *name, const json_t *args) {
    if (!json_is_string(name) || !valid_name(json_string_value(name), json_string_length(name)) ||
        !(!args || json_is_object(args) || json_is_string(args)))
        return NULL;
    char *text = args && !json_is_string(args) ? json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_t *astr = json_is_string(args) ? json_incref((json_t *)args) : !args ? json_string("{}") : text ? json_string(text) : NULL;
    free(text);
    char id[40];
    srv_tools_call_id(id, sizeof id);
    return astr ? json_pack("{s:s, s:s, s:{s:O, s:o}}", "id", id, "type", "function", "function", "name", name,
                            "arguments", astr)
                : NULL;
}

/* One block's body: {"name": ..., "arguments": {...}} ("parameters" is read too, as some
 * models write it). NULL when it is not such an object. */
static json_t *parse_call(const char *body, size_t n) {
    trim(&body, &n);
    json_t *obj = json_loadb(body, n, JSON_REJECT_DUPLICATES, NULL);
    json_t *args = json_object_get(obj, "arguments");
    if (!args) args = json_object_get(obj, "parameters");
    json_t *call = srv_tools_call_new(json_object_get(obj, "name"), args);
    json_decref(obj);
    return call;
}

json_t *srv_tools_extract(const char *text, size_t len, bool first_only, json_t **content) {
    *content = NULL;
    const size_t lo = strlen(SRV_TOOL_CALL_OPEN), lc = strlen(SRV_TOOL_CALL_CLOSE);
    json_t *calls = json_array();
    srv_buf outside = {.max = len + 1};
    size_t pos = 0;
    bool ok = calls != NULL;
    while (ok && pos < len) {
        const char *open = memmem(text + pos, len - pos, SRV_TOOL_CALL_OPEN, lo);
        size_t stop = open ? (size_t)(open - text) : len;
        ok = srv_buf_add(&outside, text + pos, stop - pos);
        if (!open) break;
        size_t body = stop + lo;
        const char *close = memmem(text + body, len - body, SRV_TOOL_CALL_CLOSE, lc);
        json_t *call = close ? parse_call(text + body, (size_t)(close - text) - body) : NULL;
        ok = ok && call && json_array_append_new(calls, call) == 0;
        if (!call) break;
        pos = (size_t)(close - text) + lc;
    }
    return srv_tools_calls_read(calls, ok, &outside, first_only, content);
}

json_t *srv_tools_calls_read(json_t *calls, bool ok, srv_buf *outside, bool first_only, json_t **content) {
    *content = NULL;
    if (ok && json_array_size(calls) > 0) {
        const char *c = outside->data ? outside->data : "";
        size_t n = outside->len;
        trim(&c, &n);
        *content = n ? srv_json_text(c, n) : json_null();
        ok = *content != NULL;
    }
    srv_buf_free(outside);
    while (ok && first_only && json_array_size(calls) > 1) json_array_remove(calls, json_array_size(calls) - 1);
    if (!ok || json_array_size(calls) == 0) {
        json_decref(calls);
        json_decref(*content);
        *content = NULL;
        return NULL;
    }
    return calls;
}

/* ---- forced calls ------------------------------------------------------------------ */

bool srv_tools_prefill(const char *name, srv_buf *out) {
    return srv_buf_addf(out, SRV_TOOL_CALL_OPEN "\n{\"name\": \"%s\", \"arguments\": ", name);
}

/* Length of text without trailing spaces and, when the call ended at its own end, the
 * text closing it (closed_by: "}", "}]" or ""; spaces allowed between its characters). */
static size_t forced_args_len(const char *text, size_t len, const char *closed_by) {
    while (len && is_space(text[len - 1])) len--;
    for (size_t k = closed_by ? strlen(closed_by) : 0; k > 0 && len && text[len - 1] == closed_by[k - 1]; k--) {
        len--;
        while (len && is_space(text[len - 1])) len--;
    }
    return len;
}

json_t *srv_tools_forced_call(const char *name, const char *text, size_t len, const char *closed_by) {
    char id[40];
    srv_tools_call_id(id, sizeof id);
    json_t *args = srv_json_text(text ? text : "", text ? forced_args_len(text, len, closed_by) : 0);
    return json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", id, "type", "function", "function", "name", name, "arguments",
                     args);
}

/* ---- streaming --------------------------------------------------------------------- */

bool srv_tool_stream_forced(srv_tool_stream *ts, const char *text, size_t len, bool end, const char *closed_by,
                            srv_buf *release) {
    if (!ts->held.max) ts->held.max = HELD_MAX;
    if (!srv_buf_add(&ts->held, text, len)) return false;
    size_t n = ts->held.len, out = n;
    if (end) {
        out = forced_args_len(ts->held.data, n, closed_by);
    } else {
        /* what was held before is all closing characters: only the new text is looked at,
         * so a long run of them costs one pass, not one per token */
        const char *h = ts->held.data;
        while (out > n - len && (is_space(h[out - 1]) || h[out - 1] == '}' || h[out - 1] == ']')) out--;
        if (out == n - len) out = 0;
    }
    if (!srv_buf_add(release, ts->held.data, out)) return false;
    srv_buf_consume(&ts->held, end ? n : out);
    return true;
}

void srv_tool_stream_free(srv_tool_stream *ts) {
    srv_buf_free(&ts->held);
    *ts = (srv_tool_stream){0};
}
