/* Reasoning in chat replies through `hearth serve` (srv_reasoning.h): a synthetic model
 * (written here, no fixture needed) whose vocabulary makes <think>, </think>, <tool_call>
 * and </tool_call> control tokens, under three chat templates: one where the reply may
 * open a think block (Qwen3's way, with enable_thinking), one whose prompt opens it
 * (DeepSeek-R1's way), one that knows no thinking. Plain and streamed replies agree: the
 * block is reasoning_content and the rest content, also when the markers are text split
 * across tokens; a reply cut by max_tokens inside the block is all reasoning with
 * content ""; a <tool_call> inside the block is reasoning, one after it a call;
 * reasoning_format "none" and a template without thinking leave everything in content
 * (control markers hidden as before); chat_template_kwargs reaches the template
 * (enable_thinking false: no block opened); bad kwargs are a 400.
 * The random model is steered at temperature 0 with logit_bias (request fields): biases
 * spaced far apart with repeat_penalty 100 write the biased tokens once each, highest
 * bias first (as in tests/integration/test_toolfmt_control.c). The splitting itself is
 * tested in tests/unit/test_server_reasoning.c. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "spm_model.h"
#include "srvtest.h"
#include "testutil.h"

#define T_EOS 2 /* </s>, the end of the turn */

/* The vocabulary: <unk> <s> </s>, 256 byte tokens, printable ASCII, then these. */
static const spm_token EXTRA[] = {
    {"<think>", SPM_CONTROL},
    {"</think>", SPM_CONTROL},
    {"<tool_call>", SPM_CONTROL},
    {"</tool_call>", SPM_CONTROL},
    {"Pondering", SPM_NORMAL},
    {"\n\nHello", SPM_NORMAL},
    {"{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}", SPM_NORMAL},
    {"<thi", SPM_NORMAL}, /* the markers as text, split across tokens */
    {"nk>Deep", SPM_NORMAL},
    {"</t", SPM_NORMAL},
    {"hink>\n", SPM_NORMAL},
};
enum { N_EXTRA = sizeof EXTRA / sizeof EXTRA[0], FIRST_EXTRA = SPM_FIRST_EXTRA };
enum {
    T_OPEN = FIRST_EXTRA, T_CLOSE, T_TC_OPEN, T_TC_CLOSE, T_PONDER, T_HELLO, T_CALL,
    T_OPEN_A, T_OPEN_B, T_CLOSE_A, T_CLOSE_B, N_TOKENS
};

/* Qwen3's way: a reply may open a think block; enable_thinking false closes an empty one
 * in the prompt. Tool calls in the <tool_call> form. */
static const char THINK_TEMPLATE[] =
    "{%- for message in messages -%}{{ message['role'] }}: {{ message['content'] }}\n"
    "{%- for call in (message['tool_calls'] or []) -%}<tool_call>{{ call['function']['name'] }}</tool_call>"
    "{%- endfor -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}assistant: "
    "{%- if enable_thinking is defined and not enable_thinking -%}<think>\n\n</think>\n\n{%- endif -%}{%- endif -%}";

/* DeepSeek-R1's way: the prompt opens the block, the reply starts inside it. */
static const char OPENED_TEMPLATE[] =
    "{%- for message in messages -%}{{ message['role'] }}: {{ message['content'] }}\n{%- endfor -%}"
    "{%- if add_generation_prompt -%}assistant: "
    "{%- if enable_thinking is defined and not enable_thinking -%}<think>\n\n</think>\n\n"
    "{%- else -%}<think>\n{%- endif -%}{%- endif -%}";

/* A template that knows no thinking. */
static const char PLAIN_TEMPLATE[] =
    "{%- for message in messages -%}{{ message['role'] }}: {{ message['content'] }}\n{%- endfor -%}"
    "{%- if add_generation_prompt -%}assistant: {%- endif -%}";
static char dir[64] = "/tmp/hearth-reason-XXXXXX";
static srvtest server;
static bool up;

static int setup(void **state) {
    (void)state;
    const spm_served models[] = {{"think", THINK_TEMPLATE}, {"opened", OPENED_TEMPLATE}, {"plain", PLAIN_TEMPLATE}};
    up = spm_serve(&server, dir, EXTRA, N_EXTRA, models, 3);
    return up ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    spm_serve_end(&server, up, dir);
    return 0;
}

static const char *TOOLS = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                           "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]";

/* A chat request: the model writes ids[i] in order (biases 100, 88, 76, ... with
 * repeat_penalty 100), max_tokens n; extra adds fields. */
static void body_of(char *out, size_t cap, const char *model, bool stream, const int *ids, int n, const char *extra) {
    char bias[512] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(bias + len, sizeof bias - len, "%s\"%d\":%d", i ? "," : "", ids[i], 100 - 12 * i);
    snprintf(out, cap,
             "{\"model\":\"%s\",\"stream\":%s,\"temperature\":0,\"repeat_penalty\":100,\"max_tokens\":%d,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather like in Oslo today, please?\"}],"
             "\"logit_bias\":{%s}%s%s}",
             model, stream ? "true" : "false", n, bias, extra[0] ? "," : "", extra);
}

static json_t *post(const char *body, bool stream) {
    return srvtest_post_ok(&server, "/v1/chat/completions", body, stream);
}

static json_t *choice0(json_t *reply) { return json_array_get(json_object_get(reply, "choices"), 0); }

/* What a reply said, plain or streamed. */
typedef struct reply {
    char reasoning[512], content[512], name[64], finish[32];
    bool has_reasoning; /* reasoning_content was sent */
    bool content_null;  /* plain: message.content was null */
    size_t n_calls;
} reply;

static void cat(char *dst, size_t cap, const char *s) {
    if (s) strncat(dst, s, cap - strlen(dst) - 1);
}

static void read_calls(json_t *calls, reply *out) {
    for (size_t k = 0; k < json_array_size(calls); k++) {
        json_t *call = json_array_get(calls, k);
        if (json_object_get(call, "id")) out->n_calls++;
        cat(out->name, sizeof out->name, json_string_value(json_object_get(json_object_get(call, "function"), "name")));
    }
}

static void read_part(json_t *obj, reply *out) {
    json_t *r = json_object_get(obj, "reasoning_content");
    if (r) {
        out->has_reasoning = true;
        if (!json_is_string(r)) fail_msg("reasoning_content is not a string");
        cat(out->reasoning, sizeof out->reasoning, json_string_value(r));
    }
    cat(out->content, sizeof out->content, json_string_value(json_object_get(obj, "content")));
    read_calls(json_object_get(obj, "tool_calls"), out);
}

static void ask(const char *model, bool stream, const int *ids, int n, const char *extra, reply *out) {
    memset(out, 0, sizeof *out);
    char body[4096];
    body_of(body, sizeof body, model, stream, ids, n, extra);
    json_t *j = post(body, stream);
    if (!stream) {
        json_t *msg = json_object_get(choice0(j), "message");
        read_part(msg, out);
        out->content_null = json_is_null(json_object_get(msg, "content"));
        cat(out->finish, sizeof out->finish, json_string_value(json_object_get(choice0(j), "finish_reason")));
    } else {
        size_t i;
        json_t *chunk;
        json_array_foreach(j, i, chunk) {
            json_t *delta = json_object_get(choice0(chunk), "delta");
            if (json_object_get(delta, "reasoning_content") && json_object_get(delta, "content"))
                fail_msg("a delta carries both reasoning_content and content");
            read_part(delta, out);
            const char *fin = json_string_value(json_object_get(choice0(chunk), "finish_reason"));
            if (fin) snprintf(out->finish, sizeof out->finish, "%s", fin);
        }
    }
    json_decref(j);
}

/* Plain and streamed replies say reasoning (NULL: none sent), content, calls, finish. */
static void expect(const char *model, const int *ids, int n, const char *extra, const char *reasoning,
                   const char *content, size_t n_calls, const char *finish) {
    for (int stream = 0; stream < 2; stream++) {
        reply r;
        ask(model, stream, ids, n, extra, &r);
        bool ok = r.has_reasoning == (reasoning != NULL) && (!reasoning || !strcmp(r.reasoning, reasoning)) &&
                  !strcmp(r.content, content) && r.n_calls == n_calls && !strcmp(r.finish, finish);
        if (!ok)
            fail_msg("%s%s %s: reasoning %s'%s' content '%s' %zu calls finish '%s'; expected reasoning %s'%s' content "
                     "'%s' %zu calls finish '%s'",
                     model, stream ? " streamed" : "", extra, r.has_reasoning ? "" : "(none) ", r.reasoning, r.content,
                     r.n_calls, r.finish, reasoning ? "" : "(none) ", reasoning ? reasoning : "", content, n_calls,
                     finish);
        if (!stream && n_calls == 0 && r.content_null) fail_msg("%s %s: content null; expected a string", model, extra);
    }
}

static void test_think_block_split(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_OPEN, T_PONDER, T_CLOSE, T_HELLO, T_EOS};
    expect("think", ids, 5, "", "Pondering", "Hello", 0, "stop");
}

/* Markers written as text across tokens: no part of them reaches either field. */
static void test_text_markers_across_tokens(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_OPEN_A, T_OPEN_B, T_CLOSE_A, T_CLOSE_B, T_HELLO, T_EOS};
    expect("think", ids, 6, "", "Deep", "Hello", 0, "stop");
}

static void test_opened_block_split(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_PONDER, T_CLOSE, T_HELLO, T_EOS};
    expect("opened", ids, 4, "", "Pondering", "Hello", 0, "stop");
}

/* The model may skip thinking: a reply that opens no block is all answer. */
static void test_no_block_is_answer(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_PONDER, T_HELLO, T_EOS};
    expect("think", ids, 3, "", NULL, "Pondering\n\nHello", 0, "stop");
}

static void test_cut_inside_block(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_OPEN, T_PONDER, T_HELLO};
    expect("think", ids, 3, "", "Pondering\n\nHello", "", 0, "length");
    const int opened_ids[] = {T_PONDER, T_HELLO};
    expect("opened", opened_ids, 2, "", "Pondering\n\nHello", "", 0, "length");
}

static void test_call_inside_block_is_reasoning(void **state) {
    (void)state;
    if (!up) skip();
    char extra[512];
    snprintf(extra, sizeof extra, "%s", TOOLS);
    const int ids[] = {T_OPEN, T_TC_OPEN, T_CALL, T_TC_CLOSE, T_CLOSE, T_HELLO, T_EOS};
    expect("think", ids, 7, extra,
           "<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}</tool_call>", "Hello", 0, "stop");
}

static void test_call_after_block(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_OPEN, T_PONDER, T_CLOSE, T_TC_OPEN, T_CALL, T_TC_CLOSE, T_EOS};
    expect("think", ids, 7, TOOLS, "Pondering", "", 1, "tool_calls");
}

/* reasoning_format "none", and a template without thinking: everything is content, and
 * the think markers, control tokens, are no text (as before this feature). */
static void test_not_split(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_OPEN, T_PONDER, T_CLOSE, T_HELLO, T_EOS};
    expect("think", ids, 5, "\"reasoning_format\":\"none\"", NULL, "Pondering\n\nHello", 0, "stop");
    expect("plain", ids, 5, "", NULL, "Pondering\n\nHello", 0, "stop");
    expect("plain", ids, 5, "\"chat_template_kwargs\":{\"enable_thinking\":false}", NULL, "Pondering\n\nHello", 0,
           "stop");
}

/* enable_thinking false reaches the template: its prompt closes an empty block, so the
 * reply is the answer; by default the prompt opens the block and the reply is reasoning. */
static void test_kwargs_reach_template(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_PONDER, T_HELLO, T_EOS};
    expect("opened", ids, 3, "", "Pondering\n\nHello", "", 0, "stop");
    expect("opened", ids, 3, "\"chat_template_kwargs\":{\"enable_thinking\":false}", NULL, "Pondering\n\nHello", 0,
           "stop");
}

static void test_bad_kwargs_400(void **state) {
    (void)state;
    if (!up) skip();
    const char *bad[] = {"\"chat_template_kwargs\":{\"messages\":[]}", "\"chat_template_kwargs\":true",
                         "\"reasoning_format\":\"hidden\""};
    for (size_t i = 0; i < 3; i++) {
        char body[1024];
        const int ids[] = {T_HELLO};
        body_of(body, sizeof body, "think", false, ids, 1, bad[i]);
        srvtest_resp r;
        assert_true(srvtest_http(&server, "POST", "/v1/chat/completions", body, NULL, &r));
        if (r.status != 400) fail_msg("%s: status %ld (%s); expected 400", bad[i], r.status, r.body ? r.body : "");
        srvtest_resp_free(&r);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_think_block_split),      cmocka_unit_test(test_text_markers_across_tokens),
        cmocka_unit_test(test_opened_block_split),
        cmocka_unit_test(test_no_block_is_answer),     cmocka_unit_test(test_cut_inside_block),
        cmocka_unit_test(test_call_inside_block_is_reasoning), cmocka_unit_test(test_call_after_block),
        cmocka_unit_test(test_not_split),              cmocka_unit_test(test_kwargs_reach_template),
        cmocka_unit_test(test_bad_kwargs_400),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
