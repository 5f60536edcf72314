/* libFuzzer target: reading tool calls out of replies (srv_toolfmt). Byte 0 picks the
 * format (mod 5) and parallel_tool_calls, bytes 1-4 how the reply is cut into stream feeds; the
 * rest is the reply. The streamed reading must agree with the whole reply's: the same
 * calls (names and arguments), the same content apart from spaces (the whole reply trims
 * once, the stream around the calls), every byte released when there is no call, and
 * every call an OpenAI-shaped object. The reply is made valid UTF-8 first, as generated
 * text always is. */
#include <stdlib.h>
#include <string.h>

#include "fz_util.h"
#include "server/srv_toolfmt.h"

static json_t *tools;

static char *squeezed(const char *s, size_t n) {
    char *out = malloc(n + 1);
    if (!out) fz_fail("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t') out[k++] = s[i];
    out[k] = '\0';
    return out;
}

static const char *field(const json_t *call, const char *key) {
    const json_t *v = json_object_get(json_object_get(call, "function"), key);
    if (!json_is_string(v)) fz_fail("a call without a string function.%s", key);
    return json_string_value(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tools)
        tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},"
                           "{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]",
                           0, NULL);
    fz_in in = {data, size};
    uint8_t mode = fz_u8(&in);
    srv_toolfmt f = (srv_toolfmt)(mode % 5);
    bool first_only = (mode / 5) & 1;
    uint32_t cut_state = fz_u32(&in);
    /* generated text is valid UTF-8 (the detokenizer replaces what is not): so is the reply */
    json_t *reply = srv_json_text((const char *)in.p, in.n);
    if (!reply) fz_fail("out of memory");
    const char *text = json_string_value(reply);
    size_t len = json_string_length(reply);

    json_t *content = NULL;
    json_t *whole = srv_toolfmt_extract(f, tools, text, len, first_only, &content);
    srv_buf rel = {.max = (size_t)1 << 30};
    srv_tool_stream ts = {0};
    size_t pos = 0;
    while (pos < len) {
        cut_state = cut_state * 1103515245u + 12345u;
        size_t piece = 1 + (cut_state >> 16) % 16;
        if (piece > len - pos) piece = len - pos;
        if (!srv_toolfmt_feed(f, &ts, text + pos, piece, &rel)) fz_fail("feed failed");
        pos += piece;
    }
    bool nomem = false;
    json_t *calls = srv_toolfmt_finish(f, tools, &ts, first_only, &rel, &nomem);
    if (nomem) fz_fail("finish: out of memory");
    if ((calls == NULL) != (whole == NULL) || json_array_size(calls) != json_array_size(whole))
        fz_fail("%zu calls streamed, %zu in the whole reply", json_array_size(calls), json_array_size(whole));
    if (first_only && json_array_size(whole) > 1) fz_fail("parallel_tool_calls false kept %zu calls", json_array_size(whole));
    for (size_t i = 0; i < json_array_size(whole); i++) {
        const json_t *w = json_array_get(whole, i), *s = json_array_get(calls, i);
        if (strcmp(field(w, "name"), field(s, "name")) || strcmp(field(w, "arguments"), field(s, "arguments")))
            fz_fail("call %zu differs streamed", i);
        if (json_integer_value(json_object_get(s, "index")) != (json_int_t)i) fz_fail("call %zu has a wrong index", i);
    }
    if (!whole && (rel.len != len || (len && memcmp(rel.data, text, len))))
        fz_fail("no call, but the stream released %zu of %zu bytes differently", rel.len, len);
    if (whole) {
        char *a = squeezed(json_is_string(content) ? json_string_value(content) : "",
                           json_is_string(content) ? json_string_length(content) : 0);
        char *b = squeezed(rel.data ? rel.data : "", rel.len);
        if (strcmp(a, b)) fz_fail("content '%s' whole, '%s' streamed", a, b);
        free(a);
        free(b);
    }
    json_decref(whole);
    json_decref(content);
    json_decref(calls);
    json_decref(reply);
    srv_tool_stream_free(&ts);
    srv_buf_free(&rel);
    return 0;
}
