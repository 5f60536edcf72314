/* Tool calling: the request's tool fields are checked (forcing a call is refused), tool
 * calls written in the <tool_call> form become OpenAI tool calls (whole replies and
 * streams held back only where a block may start), and the built-in template lists the
 * tools and writes earlier calls in the form it teaches. No model needed. */
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
#include "server/srv_prompt.h"
#include "server/srv_tools.h"
#include "server/srv_toolfmt.h"

static const char *TOOL = "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\"}}}";

static const char *forced;

/* Parses the tool fields of body; returns the param of the refusal ("" when accepted).
 * The forced function, if any, is left in `forced`. */
static const char *check(const char *body, const json_t **tools_out) {
    static srv_error e;
    static json_t *root;
    json_decref(root);
    root = json_loads(body, 0, NULL);
    assert_non_null(root);
    const json_t *tools = NULL;
    memset(&e, 0, sizeof e);
    bool ok = srv_tools_parse_request(root, &tools, &forced, &e);
    if (tools_out) *tools_out = tools;
    if (ok) return "";
    assert_int_equal(e.status, 400);
    return e.param;
}

static void test_request_fields(void **state) {
    (void)state;
    char body[512];
    const json_t *tools = NULL;
    snprintf(body, sizeof body, "{\"tools\":[%s],\"tool_choice\":\"auto\"}", TOOL);
    assert_string_equal(check(body, &tools), "");
    assert_int_equal(json_array_size(tools), 1);
    snprintf(body, sizeof body, "{\"tools\":[%s],\"tool_choice\":\"none\",\"parallel_tool_calls\":false}", TOOL);
    assert_string_equal(check(body, &tools), "");
    assert_null(tools); /* "none": the template is not told about the tools */
    assert_string_equal(check("{\"tool_choice\":\"auto\"}", &tools), "");
    assert_null(tools);
    assert_null(forced);
    snprintf(body, sizeof body, "{\"tools\":[%s],\"tool_choice\":\"required\"}", TOOL);
    assert_string_equal(check(body, NULL), "");
    assert_string_equal(forced, "get_weather"); /* one tool: "required" calls it */
    snprintf(body, sizeof body, "{\"tools\":[%s,%s],\"tool_choice\":\"required\"}", TOOL, TOOL);
    assert_string_equal(check(body, NULL), "tool_choice"); /* choosing among several is not possible */
    snprintf(body, sizeof body, "{\"tools\":[%s],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}}", TOOL);
    assert_string_equal(check(body, NULL), "");
    assert_string_equal(forced, "get_weather");
    snprintf(body, sizeof body, "{\"tools\":[%s],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"other\"}}}", TOOL);
    assert_string_equal(check(body, NULL), "tool_choice");
    assert_string_equal(check("{\"tool_choice\":\"required\"}", NULL), "tool_choice");
    snprintf(body, sizeof body, "{\"tools\":[%s],\"tool_choice\":\"sometimes\"}", TOOL);
    assert_string_equal(check(body, NULL), "tool_choice");
    snprintf(body, sizeof body, "{\"tools\":[%s],\"parallel_tool_calls\":\"yes\"}", TOOL);
    assert_string_equal(check(body, NULL), "parallel_tool_calls");
    assert_string_equal(check("{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get weather\"}}]}", NULL),
                        "tools[0].function.name");
    assert_string_equal(check("{\"tools\":[{\"type\":\"retrieval\"}]}", NULL), "tools[0].type");
    assert_string_equal(check("{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":[]}}]}", NULL),
                        "tools[0].function.parameters");
    assert_string_equal(check("{\"tools\":{}}", NULL), "tools");
    assert_string_equal(check("{\"functions\":[{\"name\":\"f\"}]}", NULL), "functions");
    assert_string_equal(check("{\"function_call\":\"auto\"}", NULL), "function_call");
    check("{}", NULL);
}

static const char *call_name(const json_t *call) {
    return json_string_value(json_object_get(json_object_get(call, "function"), "name"));
}

static const char *call_args(const json_t *call) {
    return json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
}

static void test_extract(void **state) {
    (void)state;
    json_t *content = NULL;
    const char *plain = "No tools needed: it is sunny.";
    assert_null(srv_tools_extract(plain, strlen(plain), false, &content));

    const char *one = "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"days\": 2}}\n</tool_call>\n";
    json_t *calls = srv_tools_extract(one, strlen(one), false, &content);
    assert_non_null(calls);
    assert_int_equal(json_array_size(calls), 1);
    json_t *c0 = json_array_get(calls, 0);
    assert_string_equal(json_string_value(json_object_get(c0, "type")), "function");
    assert_true(!strncmp(json_string_value(json_object_get(c0, "id")), "call_", 5));
    assert_string_equal(call_name(c0), "get_weather");
    assert_string_equal(call_args(c0), "{\"city\":\"Oslo\",\"days\":2}"); /* the model's key order */
    assert_string_equal(json_string_value(content), "Let me look.");
    json_decref(calls);
    json_decref(content);

    const char *two = "<tool_call>{\"name\":\"a\",\"arguments\":\"{\\\"x\\\":1}\"}</tool_call>\n"
                      "<tool_call>{\"name\":\"b\",\"parameters\":{}}</tool_call>";
    calls = srv_tools_extract(two, strlen(two), true, &content); /* parallel_tool_calls: false */
    assert_int_equal(json_array_size(calls), 1);
    assert_string_equal(call_name(json_array_get(calls, 0)), "a");
    json_decref(calls);
    json_decref(content);
    calls = srv_tools_extract(two, strlen(two), false, &content);
    assert_int_equal(json_array_size(calls), 2);
    assert_string_equal(call_args(json_array_get(calls, 0)), "{\"x\":1}"); /* a string stays as written */
    assert_string_equal(call_name(json_array_get(calls, 1)), "b");
    assert_string_equal(call_args(json_array_get(calls, 1)), "{}");
    assert_true(json_is_null(content));
    assert_string_not_equal(json_string_value(json_object_get(json_array_get(calls, 0), "id")),
                            json_string_value(json_object_get(json_array_get(calls, 1), "id")));
    json_decref(calls);
    json_decref(content);

    const char *bad[] = {
        "<tool_call>{\"name\": \"f\", \"arguments\": {\"x\": </tool_call>", /* not JSON */
        "<tool_call>{\"name\": \"f\", \"arguments\": {}}",                  /* never closed (cut by length) */
        "<tool_call>{\"arguments\": {}}</tool_call>",                       /* no name */
        "<tool_call>{\"name\":\"a\",\"arguments\":{}}</tool_call><tool_call>oops</tool_call>", /* one bad block */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        content = NULL;
        if (srv_tools_extract(bad[i], strlen(bad[i]), false, &content)) fail_msg("case %zu: read as a tool call: %s", i, bad[i]);
        assert_null(content);
    }
}

static char *released(srv_buf *b) {
    static char out[512];
    snprintf(out, sizeof out, "%.*s", (int)b->len, b->data ? b->data : "");
    srv_buf_consume(b, b->len);
    return out;
}

static void test_stream_filter(void **state) {
    (void)state;
    srv_buf rel = {.max = 1 << 20};
    srv_tool_stream ts = {0};
    bool nomem = true;
    /* content goes out at once; only a possible opening tag is held */
    assert_true(srv_toolfmt_feed(SRV_TOOLFMT_TAGGED, &ts, "Checking <to", strlen("Checking <to"), &rel));
    assert_string_equal(released(&rel), "Checking ");
    assert_true(srv_toolfmt_feed(SRV_TOOLFMT_TAGGED, &ts, "ol_call>\n{\"name\": \"get_weather\", ", strlen("ol_call>\n{\"name\": \"get_weather\", "), &rel));
    assert_string_equal(released(&rel), "");
    assert_true(srv_toolfmt_feed(SRV_TOOLFMT_TAGGED, &ts, "\"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>", strlen("\"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"), &rel));
    json_t *calls = srv_toolfmt_finish(SRV_TOOLFMT_TAGGED, NULL, &ts, false, &rel, &nomem);
    assert_false(nomem);
    assert_int_equal(json_array_size(calls), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(calls, 0), "index")), 0);
    assert_string_equal(call_args(json_array_get(calls, 0)), "{\"city\":\"Oslo\"}");
    assert_string_equal(released(&rel), "");
    json_decref(calls);
    srv_tool_stream_free(&ts);

    /* a tag-like start that turns out to be text is released whole */
    assert_true(srv_toolfmt_feed(SRV_TOOLFMT_TAGGED, &ts, "a <tool", strlen("a <tool"), &rel));
    assert_string_equal(released(&rel), "a ");
    assert_true(srv_toolfmt_feed(SRV_TOOLFMT_TAGGED, &ts, "box> b", strlen("box> b"), &rel));
    assert_string_equal(released(&rel), "<toolbox> b");
    assert_true(srv_toolfmt_feed(SRV_TOOLFMT_TAGGED, &ts, " <", strlen(" <"), &rel));
    assert_null(srv_toolfmt_finish(SRV_TOOLFMT_TAGGED, NULL, &ts, false, &rel, &nomem));
    assert_string_equal(released(&rel), " <");
    srv_tool_stream_free(&ts);

    /* a block that does not parse comes out as the text it was */
    const char *broken = "<tool_call>{\"name\": nope}</tool_call>";
    assert_true(srv_toolfmt_feed(SRV_TOOLFMT_TAGGED, &ts, broken, strlen(broken), &rel));
    assert_string_equal(released(&rel), "");
    assert_null(srv_toolfmt_finish(SRV_TOOLFMT_TAGGED, NULL, &ts, false, &rel, &nomem));
    assert_false(nomem);
    assert_string_equal(released(&rel), broken);
    srv_tool_stream_free(&ts);
    srv_buf_free(&rel);
}

static void test_forced_call(void **state) {
    (void)state;
    srv_buf b = {.max = 4096};
    assert_true(srv_tools_prefill("get_weather", &b));
    assert_int_equal(b.len, strlen("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "));
    assert_memory_equal(b.data, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": ", b.len);
    srv_buf_free(&b);
    /* the model closed the call: its closing brace is not part of the arguments */
    const char *text = "{\"city\": \"Oslo\"}}\n";
    json_t *call = srv_tools_forced_call("get_weather", text, strlen(text), "}");
    assert_string_equal(call_name(call), "get_weather");
    assert_string_equal(call_args(call), "{\"city\": \"Oslo\"}");
    assert_true(!strncmp(json_string_value(json_object_get(call, "id")), "call_", 5));
    json_decref(call);
    /* cut by length: the text as generated */
    call = srv_tools_forced_call("get_weather", "{\"city\": \"Os", 12, NULL);
    assert_string_equal(call_args(call), "{\"city\": \"Os");
    json_decref(call);
    /* streamed: closing braces and spaces wait until it is known whether they end the call */
    srv_buf rel = {.max = 1 << 20};
    srv_tool_stream ts = {0};
    assert_true(srv_tool_stream_forced(&ts, "{\"a\": {\"b\": 1}", strlen("{\"a\": {\"b\": 1}"), false, NULL, &rel));
    assert_string_equal(released(&rel), "{\"a\": {\"b\": 1");
    assert_true(srv_tool_stream_forced(&ts, "}} ", 3, false, NULL, &rel));
    assert_string_equal(released(&rel), "");
    assert_true(srv_tool_stream_forced(&ts, "\n", 1, true, "}", &rel));
    assert_string_equal(released(&rel), "}}");
    srv_tool_stream_free(&ts);
    /* a long run of closing characters, fed a piece at a time, waits whole; the text
     * after it releases it all */
    for (int i = 0; i < 300; i++) {
        assert_true(srv_tool_stream_forced(&ts, i % 3 ? " }" : "]", i % 3 ? 2 : 1, false, NULL, &rel));
        if (rel.len) fail_msg("piece %d released %zu bytes of closing characters", i, rel.len);
    }
    assert_true(srv_tool_stream_forced(&ts, "x}", 2, false, NULL, &rel));
    assert_int_equal(rel.len, 200 * 2 + 100 + 1);
    assert_int_equal(rel.data[rel.len - 1], 'x');
    assert_int_equal(ts.held.len, 1);
    srv_buf_consume(&rel, rel.len);
    srv_tool_stream_free(&ts);
    srv_buf_free(&rel);
}

static char *render_builtin(const char *context) {
    chat_template *t = NULL;
    hearth_err err;
    assert_int_equal(chat_template_new(srv_builtin_chat_template, strlen(srv_builtin_chat_template), &t, &err), HEARTH_OK);
    json_t *ctx = json_loads(context, 0, NULL);
    assert_non_null(ctx);
    char *text = NULL;
    size_t len = 0;
    hearth_status st = chat_template_render(t, ctx, NULL, &text, &len, &err);
    if (st != HEARTH_OK) fail_msg("render: %s", err.msg);
    json_decref(ctx);
    chat_template_free(t);
    return text;
}

static void test_builtin_template(void **state) {
    (void)state;
    char *plain = render_builtin("{\"add_generation_prompt\":true,\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                                 "{\"role\":\"user\",\"content\":\"Hi\"}]}");
    assert_string_equal(plain, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                               "<|im_start|>assistant\n");
    mem_free(plain);
    char ctx[1024];
    snprintf(ctx, sizeof ctx,
             "{\"add_generation_prompt\":true,\"tools\":[%s],\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
             "{\"role\":\"user\",\"content\":\"Weather?\"},{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
             "[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}}]},"
             "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"12C\"}]}",
             TOOL);
    char *text = render_builtin(ctx);
    /* one system turn: the client's system text, then the tools */
    assert_true(!strncmp(text, "<|im_start|>system\nBe brief.\n\n", 29));
    assert_non_null(strstr(text, "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""));
    assert_null(strstr(text + 10, "<|im_start|>system"));
    assert_non_null(strstr(text, "<|im_start|>assistant\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                                 "{\"city\":\"Oslo\"}}\n</tool_call><|im_end|>\n"));
    assert_non_null(strstr(text, "<|im_start|>tool\n12C<|im_end|>\n<|im_start|>assistant\n"));
    mem_free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_stream_filter),
        cmocka_unit_test(test_forced_call),
        cmocka_unit_test(test_builtin_template),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
