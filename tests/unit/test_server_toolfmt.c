/* Tool-call reply formats (srv_toolfmt.h): the format is read from the chat template
 * (each fixture family's real template, and templates that teach none); what a template
 * renders for an assistant's tool call in history is read back as that call; replies in
 * the Llama 3 JSON and Mistral [TOOL_CALLS] forms become OpenAI tool calls, anything
 * malformed or not a call stays content, whole; streams hold back only what may still be
 * a call; a forced call knows whether its own end or a user's stop string ended it; each
 * format lists the markers generation must show when they are control tokens. */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/mem.h"
#include "chat/chat.h"
#include "server/srv_job.h"
#include "server/srv_prompt.h"
#include "server/srv_toolfmt.h"
#include "testutil.h"

static json_t *tools;

static int setup(void **state) {
    (void)state;
    tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},"
                       "{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}]",
                       0, NULL);
    return tools ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    json_decref(tools);
    return 0;
}

static const char *call_name(const json_t *calls, size_t i) {
    return json_string_value(json_object_get(json_object_get(json_array_get(calls, i), "function"), "name"));
}

static const char *call_args(const json_t *calls, size_t i) {
    return json_string_value(json_object_get(json_object_get(json_array_get(calls, i), "function"), "arguments"));
}

/* The calls read from text in format f; fails the test when there are none. */
static json_t *must_read(srv_toolfmt f, const char *text, bool first_only, json_t **content) {
    json_t *calls = srv_toolfmt_extract(f, tools, text, strlen(text), first_only, content);
    if (!calls) fail_msg("%s: not read as calls: %s", srv_toolfmt_name(f), text);
    return calls;
}

static void must_stay_content(srv_toolfmt f, const char *text) {
    json_t *content = NULL;
    json_t *calls = srv_toolfmt_extract(f, tools, text, strlen(text), false, &content);
    if (calls) fail_msg("%s: read as %zu call(s), should stay content: %s", srv_toolfmt_name(f), json_array_size(calls), text);
    assert_null(content);
}

/* ---- the format comes from the template ------------------------------------------- */

/* Each format's markers (the texts generation must show where they are control tokens):
 * exactly those its replies are read by, and the opening of a forced call holds them. */
static void test_markers(void **state) {
    (void)state;
    static const struct {
        srv_toolfmt f;
        const char *joined; /* the markers, space-separated */
    } cases[] = {
        {SRV_TOOLFMT_TAGGED, "<tool_call> </tool_call>"},
        {SRV_TOOLFMT_LLAMA, "<|python_tag|>"},
        {SRV_TOOLFMT_MISTRAL, "[TOOL_CALLS] [ARGS] [CALL_ID]"},
        {SRV_TOOLFMT_MISTRAL_ARGS, "[TOOL_CALLS] [ARGS] [CALL_ID]"},
        {SRV_TOOLFMT_NONE, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *const *m = NULL;
        size_t n = srv_toolfmt_markers(cases[i].f, &m);
        assert_true(n <= SRV_TOOLFMT_MAX_MARKERS);
        char joined[128] = "";
        for (size_t k = 0; k < n; k++) {
            if (k) strcat(joined, " ");
            strcat(joined, m[k]);
        }
        if (strcmp(joined, cases[i].joined) != 0)
            fail_msg("%s: markers '%s', expected '%s'", srv_toolfmt_name(cases[i].f), joined, cases[i].joined);
    }
    const srv_toolfmt opened[] = {SRV_TOOLFMT_TAGGED, SRV_TOOLFMT_MISTRAL, SRV_TOOLFMT_MISTRAL_ARGS};
    for (size_t i = 0; i < 3; i++) {
        const char *const *m = NULL;
        srv_toolfmt_markers(opened[i], &m);
        srv_buf out = {.max = 4096};
        const char *stop = NULL, *close = NULL;
        assert_true(srv_toolfmt_forced_open(opened[i], "f", &out, &stop, &close));
        if (!out.data || !memmem(out.data, out.len, m[0], strlen(m[0])))
            fail_msg("%s: forced opening '%.*s' lacks marker %s", srv_toolfmt_name(opened[i]), (int)out.len,
                     out.data ? out.data : "", m[0]);
        srv_buf_free(&out);
    }
}

static void test_format_of_template(void **state) {
    (void)state;
    assert_int_equal(srv_toolfmt_of_template(srv_builtin_chat_template, strlen(srv_builtin_chat_template)),
                     SRV_TOOLFMT_TAGGED);
    const char *plain = "{% for m in messages %}{{ m.content }}{% endfor %}";
    assert_int_equal(srv_toolfmt_of_template(plain, strlen(plain)), SRV_TOOLFMT_NONE);
    assert_int_equal(srv_toolfmt_of_template(NULL, 0), SRV_TOOLFMT_NONE);
    if (!fixtures_available()) {
        printf("SKIP (fixture templates): fixtures not found\n");
        return;
    }
    static const struct {
        const char *dir;
        srv_toolfmt fmt;
    } cases[] = {
        {"templates/meta-llama-Llama-3.1-8B-Instruct", SRV_TOOLFMT_LLAMA},
        {"templates/meta-llama-Llama-3.2-3B-Instruct", SRV_TOOLFMT_LLAMA},
        {"templates/meta-llama-Llama-3.3-70B-Instruct", SRV_TOOLFMT_LLAMA},
        {"templates/mistralai-Mistral-Nemo-Instruct-2407", SRV_TOOLFMT_MISTRAL},
        {"templates/mistralai-Ministral-3-14B-Reasoning-2512", SRV_TOOLFMT_MISTRAL_ARGS},
        {"templates/Mistral-Small-3.2-24B-Instruct-2506", SRV_TOOLFMT_MISTRAL_ARGS},
        {"templates/unsloth-mistral-Devstral-Small-2507", SRV_TOOLFMT_MISTRAL_ARGS},
        {"templates/Qwen-Qwen2.5-7B-Instruct", SRV_TOOLFMT_TAGGED},
        {"templates/Qwen-Qwen3-0.6B", SRV_TOOLFMT_TAGGED},
        {"templates/NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use", SRV_TOOLFMT_TAGGED},
        {"templates/NousResearch-Hermes-3-Llama-3.1-8B-tool_use", SRV_TOOLFMT_TAGGED},
        /* templates that teach none of these forms: replies are never read */
        {"templates/google-gemma-2-2b-it", SRV_TOOLFMT_NONE},
        {"templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B", SRV_TOOLFMT_NONE},
        {"templates/meetkai-functionary-medium-v3.1", SRV_TOOLFMT_NONE},
        {"templates/fireworks-ai-llama-3-firefunction-v2", SRV_TOOLFMT_NONE},
        {"templates/CohereForAI-c4ai-command-r-plus-tool_use", SRV_TOOLFMT_NONE},
        {"extra/templates/microsoft-Phi-3.5-mini-instruct", SRV_TOOLFMT_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "%s/template.jinja", cases[i].dir);
        size_t len = 0;
        char *src = read_file(fixture_path(rel), &len);
        if (!src) fail_msg("cannot read %s", rel);
        srv_toolfmt got = srv_toolfmt_of_template(src, len);
        if (got != cases[i].fmt)
            fail_msg("%s: format %s, expected %s", cases[i].dir, srv_toolfmt_name(got), srv_toolfmt_name(cases[i].fmt));
        free(src);
    }
}

/* What a family's template renders for an assistant turn with tool calls (the form its
 * model was trained to write) is read back as those calls. */
static void test_rendered_history_reads_back(void **state) {
    (void)state;
    if (!fixtures_available()) {
        printf("SKIP: fixtures not found\n");
        return;
    }
    static const struct {
        const char *dir;
        const char *from, *to; /* the assistant's call lies between these in the rendering */
        int n_calls;
    } cases[] = {
        {"meta-llama-Llama-3.1-8B-Instruct", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>", 1},
        {"meta-llama-Llama-3.2-3B-Instruct", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>", 1},
        {"meta-llama-Llama-3.3-70B-Instruct", "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>", 1},
        {"mistralai-Mistral-Nemo-Instruct-2407", "[/INST]", "</s>", 2},
        {"mistralai-Ministral-3-14B-Reasoning-2512", "[/INST]", "</s>", 2},
        {"Mistral-Small-3.2-24B-Instruct-2506", "[/INST]", "</s>", 2},
        {"unsloth-mistral-Devstral-Small-2507", "[/INST]", "</s>", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "templates/%s/template.jinja", cases[i].dir);
        size_t len = 0;
        char *src = read_file(fixture_path(rel), &len);
        assert_non_null(src);
        srv_toolfmt f = srv_toolfmt_of_template(src, len);
        chat_template *t = NULL;
        hearth_err err;
        if (chat_template_new(src, len, &t, &err) != HEARTH_OK) fail_msg("%s: %s", cases[i].dir, err.msg);
        char ctx[1024];
        snprintf(ctx, sizeof ctx,
                 "{\"bos_token\":\"<s>\",\"eos_token\":\"</s>\",\"add_generation_prompt\":false,\"messages\":["
                 "{\"role\":\"user\",\"content\":\"Weather in Zürich?\"},{\"role\":\"assistant\",\"content\":\"\","
                 "\"tool_calls\":[{\"id\":\"abcDEF123\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                 "\"arguments\":{\"city\":\"Zürich\",\"days\":2}}}%s]}]}",
                 cases[i].n_calls == 2 ? ",{\"id\":\"xyz789ABC\",\"type\":\"function\",\"function\":{\"name\":"
                                         "\"get_time\",\"arguments\":{}}}"
                                       : "");
        json_t *c = json_loads(ctx, 0, NULL);
        assert_non_null(c);
        char *out = NULL;
        size_t out_len = 0;
        if (chat_template_render(t, c, NULL, &out, &out_len, &err) != HEARTH_OK) fail_msg("%s: %s", cases[i].dir, err.msg);
        const char *a = strstr(out, cases[i].from);
        if (!a) fail_msg("%s: no '%s' in %s", cases[i].dir, cases[i].from, out);
        a += strlen(cases[i].from);
        const char *b = strstr(a, cases[i].to);
        assert_non_null(b);
        json_t *content = NULL;
        json_t *calls = srv_toolfmt_extract(f, tools, a, (size_t)(b - a), false, &content);
        if (!calls) fail_msg("%s: the rendered call is not read back: %.*s", cases[i].dir, (int)(b - a), a);
        assert_int_equal(json_array_size(calls), cases[i].n_calls);
        assert_string_equal(call_name(calls, 0), "get_weather");
        json_t *args = json_loads(call_args(calls, 0), 0, NULL);
        json_t *want = json_loads("{\"city\":\"Zürich\",\"days\":2}", 0, NULL);
        if (!json_equal(args, want)) fail_msg("%s: arguments %s", cases[i].dir, call_args(calls, 0));
        if (cases[i].n_calls == 2) assert_string_equal(call_name(calls, 1), "get_time");
        assert_true(json_is_null(content));
        json_decref(args);
        json_decref(want);
        json_decref(calls);
        json_decref(c);
        mem_free(out);
        chat_template_free(t);
        free(src);
    }
}

/* ---- Llama 3: the whole reply is calls ---------------------------------------------- */

static void test_llama_replies(void **state) {
    (void)state;
    json_t *content = NULL;
    json_t *calls = must_read(SRV_TOOLFMT_LLAMA, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", false, &content);
    assert_int_equal(json_array_size(calls), 1);
    assert_string_equal(call_name(calls, 0), "get_weather");
    assert_string_equal(call_args(calls, 0), "{\"city\":\"Oslo\"}");
    assert_true(!strncmp(json_string_value(json_object_get(json_array_get(calls, 0), "id")), "call_", 5));
    assert_true(json_is_null(content));
    json_decref(calls);

    /* after <|python_tag|>, with "arguments", unicode kept, spaces around */
    calls = must_read(SRV_TOOLFMT_LLAMA, "\n<|python_tag|>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich 東京 \\u00e9\"}}\n",
                      false, &content);
    assert_string_equal(call_args(calls, 0), "{\"city\":\"Zürich 東京 é\"}");
    json_decref(calls);
    json_decref(content);

    /* several, separated by ';' or newlines; parallel_tool_calls false keeps the first */
    const char *several = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}; "
                          "{\"name\": \"get_time\", \"parameters\": {}}\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Rome\"}}";
    calls = must_read(SRV_TOOLFMT_LLAMA, several, false, &content);
    assert_int_equal(json_array_size(calls), 3);
    assert_string_equal(call_name(calls, 1), "get_time");
    assert_string_equal(call_args(calls, 1), "{}");
    assert_string_equal(call_args(calls, 2), "{\"city\":\"Rome\"}");
    json_decref(calls);
    json_decref(content);
    calls = must_read(SRV_TOOLFMT_LLAMA, several, true, &content);
    assert_int_equal(json_array_size(calls), 1);
    assert_string_equal(call_args(calls, 0), "{\"city\":\"Oslo\"}");
    json_decref(calls);
    json_decref(content);

    const char *content_only[] = {
        "The weather is fine.",
        "Here: {\"name\": \"get_weather\", \"parameters\": {}}",                     /* text before the call */
        "{\"name\": \"get_weather\", \"parameters\": {}} Done.",                    /* text after it */
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Os",              /* cut by length */
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": Oslo}}",            /* not JSON */
        "{\"name\": \"Bob\", \"parameters\": {\"age\": 3}}",                        /* not one of the tools */
        "{\"name\": \"get_weather\"}",                                               /* a JSON answer: no arguments */
        "{\"name\": \"get_weather\", \"parameters\": [1]}",                          /* arguments not an object */
        "{\"name\": \"get_weather\", \"parameters\": {}}; {\"name\": \"nope\", \"parameters\": {}}", /* one bad call */
        "{\"name\": \"get_weather\", \"name\": \"get_time\", \"parameters\": {}}",   /* duplicate key */
        "<|python_tag|>",
        "<|python_tag|>brave_search.call(query=\"x\")",                             /* a built-in tool: not a function */
        "",
    };
    for (size_t i = 0; i < sizeof content_only / sizeof content_only[0]; i++) must_stay_content(SRV_TOOLFMT_LLAMA, content_only[i]);
    /* a format that is not taught reads nothing */
    must_stay_content(SRV_TOOLFMT_NONE, "{\"name\": \"get_weather\", \"parameters\": {}}");
    must_stay_content(SRV_TOOLFMT_NONE, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {}}]");
    must_stay_content(SRV_TOOLFMT_MISTRAL, "{\"name\": \"get_weather\", \"parameters\": {}}");
    must_stay_content(SRV_TOOLFMT_TAGGED, "{\"name\": \"get_weather\", \"parameters\": {}}");
}

/* ---- Mistral: [TOOL_CALLS] ------------------------------------------------------------ */

static void test_mistral_replies(void **state) {
    (void)state;
    json_t *content = NULL;
    /* Nemo: a JSON array (ids the model wrote are not kept: OpenAI ids are given) */
    json_t *calls = must_read(SRV_TOOLFMT_MISTRAL,
                              "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}, \"id\": \"abcDEF123\"}, "
                              "{\"name\": \"get_time\", \"arguments\": \"{}\"}]",
                              false, &content);
    assert_int_equal(json_array_size(calls), 2);
    assert_string_equal(call_args(calls, 0), "{\"city\":\"Oslo\"}");
    assert_string_equal(call_args(calls, 1), "{}");
    assert_string_not_equal(json_string_value(json_object_get(json_array_get(calls, 0), "id")), "abcDEF123");
    assert_true(json_is_null(content));
    json_decref(calls);

    /* text before the marker is content */
    calls = must_read(SRV_TOOLFMT_MISTRAL, "Let me check.\n[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {}}]\n", false,
                      &content);
    assert_string_equal(json_string_value(content), "Let me check.");
    json_decref(calls);
    json_decref(content);

    /* Ministral 3 / Devstral: name[ARGS]{...}, one marker per call; Small 3.2 adds [CALL_ID] */
    calls = must_read(SRV_TOOLFMT_MISTRAL,
                      "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Zürich\"}[TOOL_CALLS]get_time[CALL_ID]abcDEF123[ARGS]{}", false,
                      &content);
    assert_int_equal(json_array_size(calls), 2);
    assert_string_equal(call_name(calls, 0), "get_weather");
    assert_string_equal(call_args(calls, 0), "{\"city\":\"Zürich\"}");
    assert_string_equal(call_name(calls, 1), "get_time");
    json_decref(calls);
    json_decref(content);
    /* several after one marker; parallel_tool_calls false keeps the first */
    calls = must_read(SRV_TOOLFMT_MISTRAL, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Oslo\"} get_time[ARGS]{}", false, &content);
    assert_int_equal(json_array_size(calls), 2);
    json_decref(calls);
    json_decref(content);
    calls = must_read(SRV_TOOLFMT_MISTRAL, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Oslo\"} get_time[ARGS]{}", true, &content);
    assert_int_equal(json_array_size(calls), 1);
    assert_string_equal(call_name(calls, 0), "get_weather");
    json_decref(calls);
    json_decref(content);
    /* text after the calls stays content */
    calls = must_read(SRV_TOOLFMT_MISTRAL, "[TOOL_CALLS]get_time[ARGS]{} and that is all", false, &content);
    assert_string_equal(json_string_value(content), "and that is all");
    json_decref(calls);
    json_decref(content);

    const char *content_only[] = {
        "No calls today.",
        "[TOOL_CALLS]",
        "[TOOL_CALLS][]",
        "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Os",       /* cut by length */
        "[TOOL_CALLS]get_weather[ARGS]{\"city\": ",                                      /* cut by length */
        "[TOOL_CALLS][{\"arguments\": {}}]",                                              /* no name */
        "[TOOL_CALLS][{\"name\": \"get weather\", \"arguments\": {}}]",                   /* not a function name */
        "[TOOL_CALLS]get_weather{\"city\": \"Oslo\"}",                                    /* no [ARGS] */
        "[TOOL_CALLS]get_weather[ARGS]\"Oslo\"",                                          /* arguments not an object */
        "[TOOL_CALLS]get_time[ARGS]{}[TOOL_CALLS]oops",                                   /* one bad call */
        "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {}}, 5]",               /* not an object */
    };
    for (size_t i = 0; i < sizeof content_only / sizeof content_only[0]; i++) must_stay_content(SRV_TOOLFMT_MISTRAL, content_only[i]);
}

/* ---- streaming ------------------------------------------------------------------------ */

static char *released(srv_buf *b) {
    static char out[1024];
    snprintf(out, sizeof out, "%.*s", (int)b->len, b->data ? b->data : "");
    srv_buf_consume(b, b->len);
    return out;
}

static void feed(srv_toolfmt f, srv_tool_stream *ts, const char *text, srv_buf *rel) {
    assert_true(srv_toolfmt_feed(f, ts, text, strlen(text), rel));
}

static json_t *finish(srv_toolfmt f, srv_tool_stream *ts, srv_buf *rel) {
    bool nomem = true;
    json_t *calls = srv_toolfmt_finish(f, tools, ts, false, rel, &nomem);
    assert_false(nomem);
    return calls;
}

static void test_stream_llama(void **state) {
    (void)state;
    const srv_toolfmt f = SRV_TOOLFMT_LLAMA;
    srv_buf rel = {.max = 1 << 20};
    srv_tool_stream ts = {0};
    /* a reply opening with '{' is held whole, then read as a call */
    feed(f, &ts, "\n{\"name\": \"get_", &rel);
    assert_string_equal(released(&rel), "");
    feed(f, &ts, "weather\", \"parameters\": {\"city\": \"Oslo\"}}", &rel);
    assert_string_equal(released(&rel), "");
    json_t *calls = finish(f, &ts, &rel);
    assert_int_equal(json_array_size(calls), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(calls, 0), "index")), 0);
    assert_string_equal(call_args(calls, 0), "{\"city\":\"Oslo\"}");
    assert_string_equal(released(&rel), "");
    json_decref(calls);
    srv_tool_stream_free(&ts);

    /* <|python_tag|> arriving in pieces is held; two calls get indexes 0 and 1 */
    feed(f, &ts, "<|pyth", &rel);
    feed(f, &ts, "on_tag|>{\"name\": \"get_time\", \"parameters\": {}};", &rel);
    feed(f, &ts, "{\"name\": \"get_weather\", \"parameters\": {}}", &rel);
    assert_string_equal(released(&rel), "");
    calls = finish(f, &ts, &rel);
    assert_int_equal(json_array_size(calls), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(calls, 1), "index")), 1);
    json_decref(calls);
    srv_tool_stream_free(&ts);

    /* any other opening goes out at once, and everything after it too */
    feed(f, &ts, "  ", &rel);
    assert_string_equal(released(&rel), "");
    feed(f, &ts, "Sunny", &rel);
    assert_string_equal(released(&rel), "  Sunny");
    feed(f, &ts, " {\"name\": \"get_time\", \"parameters\": {}}", &rel);
    assert_string_equal(released(&rel), " {\"name\": \"get_time\", \"parameters\": {}}");
    assert_null(finish(f, &ts, &rel));
    assert_string_equal(released(&rel), "");
    srv_tool_stream_free(&ts);

    /* '<' that does not become the tag is released */
    feed(f, &ts, "<|py", &rel);
    assert_string_equal(released(&rel), "");
    feed(f, &ts, "x", &rel);
    assert_string_equal(released(&rel), "<|pyx");
    srv_tool_stream_free(&ts);

    /* a partial call at the end of the stream (cut by length) comes out as content */
    feed(f, &ts, "{\"name\": \"get_weather\", \"parameters\": {\"ci", &rel);
    assert_string_equal(released(&rel), "");
    assert_null(finish(f, &ts, &rel));
    assert_string_equal(released(&rel), "{\"name\": \"get_weather\", \"parameters\": {\"ci");
    srv_tool_stream_free(&ts);

    /* a JSON answer held in case it was a call goes out whole */
    feed(f, &ts, "{\"answer\": 42}", &rel);
    assert_null(finish(f, &ts, &rel));
    assert_string_equal(released(&rel), "{\"answer\": 42}");
    srv_tool_stream_free(&ts);
    srv_buf_free(&rel);
}

static void test_stream_mistral(void **state) {
    (void)state;
    const srv_toolfmt f = SRV_TOOLFMT_MISTRAL;
    srv_buf rel = {.max = 1 << 20};
    srv_tool_stream ts = {0};
    /* content goes out as it comes; a possible marker start is held */
    feed(f, &ts, "Checking [TOOL_", &rel);
    assert_string_equal(released(&rel), "Checking ");
    feed(f, &ts, "CALLS]get_weather[ARGS]{\"city\": ", &rel);
    assert_string_equal(released(&rel), "");
    feed(f, &ts, "\"Zürich\"}", &rel);
    json_t *calls = finish(f, &ts, &rel);
    assert_int_equal(json_array_size(calls), 1);
    assert_string_equal(call_args(calls, 0), "{\"city\":\"Zürich\"}");
    assert_string_equal(released(&rel), "");
    json_decref(calls);
    srv_tool_stream_free(&ts);

    /* a bracket that is not the marker is released */
    feed(f, &ts, "see [1", &rel);
    assert_string_equal(released(&rel), "see [1");
    feed(f, &ts, "] and [", &rel);
    assert_string_equal(released(&rel), "] and ");
    assert_null(finish(f, &ts, &rel));
    assert_string_equal(released(&rel), "[");
    srv_tool_stream_free(&ts);

    /* a partial call at the end comes out as the text it was */
    feed(f, &ts, "[TOOL_CALLS][{\"name\": \"get_weather\", \"argu", &rel);
    assert_string_equal(released(&rel), "");
    assert_null(finish(f, &ts, &rel));
    assert_string_equal(released(&rel), "[TOOL_CALLS][{\"name\": \"get_weather\", \"argu");
    srv_tool_stream_free(&ts);

    /* the tagged form is streamed as before through the same entry points */
    feed(SRV_TOOLFMT_TAGGED, &ts, "a <tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>", &rel);
    assert_string_equal(released(&rel), "a ");
    calls = finish(SRV_TOOLFMT_TAGGED, &ts, &rel);
    assert_int_equal(json_array_size(calls), 1);
    json_decref(calls);
    srv_tool_stream_free(&ts);
    /* a template with no tool form streams everything */
    feed(SRV_TOOLFMT_NONE, &ts, "[TOOL_CALLS]{", &rel);
    assert_string_equal(released(&rel), "[TOOL_CALLS]{");
    assert_null(finish(SRV_TOOLFMT_NONE, &ts, &rel));
    srv_tool_stream_free(&ts);
    srv_buf_free(&rel);
}

/* Whole replies and streams agree: for every way of cutting a reply into two pieces and
 * for byte-by-byte feeding, the streamed calls equal the whole reply's, and the streamed
 * content equals its content (the whole reply trims once, the stream around the calls:
 * compared without spaces). */
static void squeeze(const char *s, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t') out[k++] = s[i];
    out[k] = '\0';
}

static void check_stream_equals_whole(srv_toolfmt f, const char *text) {
    size_t len = strlen(text);
    json_t *content = NULL;
    json_t *whole = srv_toolfmt_extract(f, tools, text, len, false, &content);
    char want[1024], got[1024];
    if (whole) squeeze(json_is_string(content) ? json_string_value(content) : "", json_is_string(content) ? json_string_length(content) : 0, want, sizeof want);
    else squeeze(text, len, want, sizeof want);
    for (size_t cut = 0; cut <= len + 1; cut++) {
        srv_buf rel = {.max = 1 << 20};
        srv_tool_stream ts = {0};
        if (cut <= len) {
            assert_true(srv_toolfmt_feed(f, &ts, text, cut, &rel));
            assert_true(srv_toolfmt_feed(f, &ts, text + cut, len - cut, &rel));
        } else {
            for (size_t i = 0; i < len; i++) assert_true(srv_toolfmt_feed(f, &ts, text + i, 1, &rel));
        }
        bool nomem = true;
        json_t *calls = srv_toolfmt_finish(f, tools, &ts, false, &rel, &nomem);
        assert_false(nomem);
        squeeze(rel.data ? rel.data : "", rel.len, got, sizeof got);
        if (strcmp(got, want) != 0) fail_msg("%s, cut %zu of '%s': content '%s', whole reply '%s'", srv_toolfmt_name(f), cut, text, got, want);
        if ((calls == NULL) != (whole == NULL) || json_array_size(calls) != json_array_size(whole))
            fail_msg("%s, cut %zu of '%s': %zu calls streamed, %zu whole", srv_toolfmt_name(f), cut, text, json_array_size(calls),
                     json_array_size(whole));
        for (size_t i = 0; i < json_array_size(calls); i++) {
            assert_string_equal(call_name(calls, i), call_name(whole, i));
            assert_string_equal(call_args(calls, i), call_args(whole, i));
        }
        json_decref(calls);
        srv_tool_stream_free(&ts);
        srv_buf_free(&rel);
    }
    json_decref(whole);
    json_decref(content);
}

static void test_stream_equals_whole(void **state) {
    (void)state;
    static const struct {
        srv_toolfmt f;
        const char *text;
    } cases[] = {
        {SRV_TOOLFMT_LLAMA, " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Zürich\"}};\n{\"name\": \"get_time\", \"parameters\": {}}"},
        {SRV_TOOLFMT_LLAMA, "<|python_tag|>{\"name\": \"get_time\", \"arguments\": {}}"},
        {SRV_TOOLFMT_LLAMA, "{\"name\": \"get_time\", \"parameters\": {}} and text"},
        {SRV_TOOLFMT_LLAMA, "Plain words {\"name\": \"get_time\", \"parameters\": {}}"},
        {SRV_TOOLFMT_LLAMA, "<|python_ta"},
        {SRV_TOOLFMT_MISTRAL, "Sure. [TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}] after"},
        {SRV_TOOLFMT_MISTRAL, "[TOOL_CALLS]get_weather[CALL_ID]abcDEF123[ARGS]{\"city\": \"東京\"}[TOOL_CALLS]get_time[ARGS]{}"},
        {SRV_TOOLFMT_MISTRAL, "[TOOL [TOOL_CALLS]get_time[ARGS]{\"x\": "},
        {SRV_TOOLFMT_MISTRAL, "a [TOOL_CALL b [TOOL_CALLS"},
        {SRV_TOOLFMT_TAGGED, "x <tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call> y"},
        {SRV_TOOLFMT_NONE, "[TOOL_CALLS]get_time[ARGS]{}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_stream_equals_whole(cases[i].f, cases[i].text);
}

/* A forced call's own end (the form's stop string, kept last, or an end-of-generation
 * token) closes it; the user's stop strings and length limits do not. */
static void test_forced_call_closed(void **state) {
    (void)state;
    srv_job j = {0};
    j.stop[0] = "\n\n";
    j.stop[1] = "END";
    j.stop[2] = SRV_TOOL_CALL_CLOSE;
    j.n_stop = 3; /* two of the user's, then the call's end */
    j.call_stop = true;
    j.call_close = "}";
    j.n_choices = 1;
    sched_event ev = {.finish = SCHED_FINISH_STOP, .stop_index = 2};
    assert_string_equal(srv_job_call_closed_by(&j, 0, &ev), "}");
    ev.stop_index = -1;
    assert_string_equal(srv_job_call_closed_by(&j, 0, &ev), "}");
    ev.stop_index = 0;
    assert_null(srv_job_call_closed_by(&j, 0, &ev));
    ev.stop_index = 1;
    assert_null(srv_job_call_closed_by(&j, 0, &ev));
    ev = (sched_event){.finish = SCHED_FINISH_LENGTH, .stop_index = -1};
    assert_null(srv_job_call_closed_by(&j, 0, &ev));
    /* the same read from what a whole reply recorded */
    j.ch[0].finish = SCHED_FINISH_STOP;
    j.ch[0].stop_index = 1;
    assert_null(srv_job_call_closed_by(&j, 0, NULL));
    j.ch[0].stop_index = 2;
    assert_string_equal(srv_job_call_closed_by(&j, 0, NULL), "}");
    /* the user's stop strings include the call's end: it matches there first, and still
       closes the call */
    j.stop[1] = SRV_TOOL_CALL_CLOSE;
    j.ch[0].stop_index = 1;
    assert_string_equal(srv_job_call_closed_by(&j, 0, NULL), "}");
    j.stop[1] = "END";
    /* a form without a stop string (the end of the turn ends the call): every stop string
       is the user's */
    j.call_stop = false;
    j.call_close = "}]";
    assert_null(srv_job_call_closed_by(&j, 0, NULL));
    j.ch[0].stop_index = -1;
    assert_string_equal(srv_job_call_closed_by(&j, 0, NULL), "}]");
}

/* Each form's forced opening, and its closing text dropped from the arguments only when
 * the call ended at its own end. */
static void test_forced_openings(void **state) {
    (void)state;
    static const struct {
        srv_toolfmt f;
        const char *open, *stop, *close;
        const char *generated, *args; /* the model's text after the opening, closed */
    } cases[] = {
        {SRV_TOOLFMT_TAGGED, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": ", "</tool_call>", "}", "{\"tz\": \"CET\"}}\n",
         "{\"tz\": \"CET\"}"},
        {SRV_TOOLFMT_LLAMA, "{\"name\": \"get_time\", \"parameters\": ", NULL, "}", "{\"tz\": \"CET\"} }", "{\"tz\": \"CET\"}"},
        {SRV_TOOLFMT_MISTRAL, "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": ", NULL, "}]", "{\"tz\": \"CET\"}} ]",
         "{\"tz\": \"CET\"}"},
        {SRV_TOOLFMT_MISTRAL_ARGS, "[TOOL_CALLS]get_time[ARGS]", NULL, "", "{\"tz\": \"CET\"}\n", "{\"tz\": \"CET\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        srv_buf b = {.max = 4096};
        const char *stop = "x", *close = "x";
        assert_true(srv_toolfmt_forced_open(cases[i].f, "get_time", &b, &stop, &close));
        assert_int_equal(b.len, strlen(cases[i].open));
        assert_memory_equal(b.data, cases[i].open, b.len);
        if (cases[i].stop) assert_string_equal(stop, cases[i].stop);
        else assert_null(stop);
        assert_string_equal(close, cases[i].close);
        srv_buf_free(&b);
        /* whole reply and stream agree: closed, the closing text goes; not closed, it stays */
        const char *g = cases[i].generated;
        json_t *call = srv_tools_forced_call("get_time", g, strlen(g), close);
        const char *got = json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
        if (strcmp(got, cases[i].args)) fail_msg("%s: arguments '%s', expected '%s'", srv_toolfmt_name(cases[i].f), got, cases[i].args);
        json_decref(call);
        srv_buf rel = {.max = 4096};
        srv_tool_stream ts = {0};
        for (size_t k = 0; g[k]; k++) assert_true(srv_tool_stream_forced(&ts, g + k, 1, false, NULL, &rel));
        assert_true(srv_tool_stream_forced(&ts, "", 0, true, close, &rel));
        assert_string_equal(released(&rel), cases[i].args);
        srv_tool_stream_free(&ts);
        call = srv_tools_forced_call("get_time", g, strlen(g), NULL); /* the user's stop: kept */
        got = json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
        size_t n = strlen(g);
        while (n && (g[n - 1] == ' ' || g[n - 1] == '\n')) n--;
        assert_int_equal(strlen(got), n);
        json_decref(call);
        srv_buf_free(&rel);
    }
    srv_buf b = {.max = 4096};
    const char *stop, *close;
    assert_false(srv_toolfmt_forced_open(SRV_TOOLFMT_NONE, "get_time", &b, &stop, &close));
    srv_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_markers),
        cmocka_unit_test(test_format_of_template),
        cmocka_unit_test(test_rendered_history_reads_back),
        cmocka_unit_test(test_llama_replies),
        cmocka_unit_test(test_mistral_replies),
        cmocka_unit_test(test_stream_llama),
        cmocka_unit_test(test_stream_mistral),
        cmocka_unit_test(test_stream_equals_whole),
        cmocka_unit_test(test_forced_call_closed),
        cmocka_unit_test(test_forced_openings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
