/* Tool-call markers that are control tokens, through `hearth serve`: a synthetic model
 * (written here, no fixture needed) whose vocabulary makes [TOOL_CALLS], [ARGS],
 * <|python_tag|>, <tool_call>, </tool_call> and also [THINK] control tokens, under three
 * chat templates (Mistral name[ARGS] form, Llama 3 form, the built-in <tool_call> one).
 * A request with tools shows exactly its format's markers: the call is recognised, and
 * [THINK] (another control token the model writes) never appears in content, plain or
 * streamed. A forced <tool_call> call ends at a </tool_call> control token. Without tools,
 * no control token is text.
 * The random model is steered at temperature 0 with logit_bias (request fields): biases
 * spaced far apart with repeat_penalty 100 write the biased tokens once each, highest
 * bias first (a written token's logit drops to about 1). Multi-character tokens (the
 * calls' JSON) never appear in the prompts: the SPM vocabulary has no pieces to merge
 * into them, so prompts are single characters. */
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
    {"[TOOL_CALLS]", SPM_CONTROL},
    {"[ARGS]", SPM_CONTROL},
    {"<|python_tag|>", SPM_CONTROL},
    {"<tool_call>", SPM_CONTROL},
    {"</tool_call>", SPM_CONTROL},
    {"[THINK]", SPM_CONTROL},
    {"get_weather", SPM_NORMAL},
    {"{\"city\":\"Oslo\"}", SPM_NORMAL},
    {"{\"name\":\"get_weather\",\"parameters\":{\"city\":\"Oslo\"}}", SPM_NORMAL},
    {"{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}", SPM_NORMAL},
    {"{\"city\":\"Oslo\"}}", SPM_NORMAL},
};
enum { N_EXTRA = sizeof EXTRA / sizeof EXTRA[0], FIRST_EXTRA = SPM_FIRST_EXTRA };
enum {
    T_CALLS = FIRST_EXTRA, T_ARGS, T_PYTAG, T_TC_OPEN, T_TC_CLOSE, T_THINK,
    T_NAME, T_ARGVAL, T_LLAMA_CALL, T_TAGGED_CALL, T_FORCED_ARGS, N_TOKENS
};

static const char MISTRAL_TEMPLATE[] =
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}[INST]{{ message['content'] }}[/INST]"
    "{%- elif message['tool_calls'] -%}[TOOL_CALLS]{%- for call in message['tool_calls'] -%}"
    "{{ call['function']['name'] }}[ARGS]{{ call['function']['arguments'] }}{%- endfor -%}</s>"
    "{%- else -%}{{ message['content'] }}</s>{%- endif -%}"
    "{%- endfor -%}";

static const char LLAMA_TEMPLATE[] =
    "{%- for message in messages -%}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{%- if message['tool_calls'] -%}"
    "{{ '{\"name\": \"' + message['tool_calls'][0]['function']['name'] + '\", \"parameters\": ' + "
    "message['tool_calls'][0]['function']['arguments'] + '}' }}"
    "{%- else -%}{{ message['content'] }}{%- endif -%}<|eot_id|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|start_header_id|>assistant<|end_header_id|>\n\n{%- endif -%}";

static char dir[64] = "/tmp/hearth-toolctl-XXXXXX";
static srvtest server;
static bool up;

static int setup(void **state) {
    (void)state;
    const spm_served models[] = {{"chatml", NULL}, {"mistral", MISTRAL_TEMPLATE}, {"llama", LLAMA_TEMPLATE}};
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

/* A chat request: the user asks about the weather; the model writes ids[i] in order
 * (biases 100, 82, 64, ... with repeat_penalty 100), n tokens in all; extra adds fields. */
static void body_of(char *out, size_t cap, const char *model, bool stream, bool tools, const int *ids, int n,
                    const char *extra) {
    char bias[512] = "";
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(bias + len, sizeof bias - len, "%s\"%d\":%d", i ? "," : "", ids[i], 100 - 18 * i);
    snprintf(out, cap,
             "{\"model\":\"%s\",\"stream\":%s,\"temperature\":0,\"repeat_penalty\":100,\"max_tokens\":%d,"
             "\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather like in Oslo today, please?\"}],"
             "\"logit_bias\":{%s}%s%s%s%s}",
             model, stream ? "true" : "false", n, bias, tools ? "," : "", tools ? TOOLS : "", extra[0] ? "," : "",
             extra);
}

static json_t *post(const char *body, bool stream) {
    return srvtest_post_ok(&server, "/v1/chat/completions", body, stream);
}

static json_t *choice0(json_t *reply) { return json_array_get(json_object_get(reply, "choices"), 0); }

/* What a reply said, plain or streamed: content, the first call's name and arguments,
 * the number of calls, the finish reason. */
typedef struct reply {
    char content[1024], name[64], args[256], finish[32];
    size_t n_calls;
    json_int_t completion_tokens;
} reply;

static void cat(char *dst, size_t cap, const char *s) {
    if (s) strncat(dst, s, cap - strlen(dst) - 1);
}

static void read_calls(json_t *calls, reply *out) {
    for (size_t k = 0; k < json_array_size(calls); k++) {
        json_t *call = json_array_get(calls, k);
        json_t *fn = json_object_get(call, "function");
        if (json_object_get(call, "id")) out->n_calls++;
        cat(out->name, sizeof out->name, json_string_value(json_object_get(fn, "name")));
        cat(out->args, sizeof out->args, json_string_value(json_object_get(fn, "arguments")));
    }
}

static void ask(const char *model, bool stream, bool tools, const int *ids, int n, const char *extra, reply *out) {
    memset(out, 0, sizeof *out);
    char body[4096];
    body_of(body, sizeof body, model, stream, tools, ids, n, extra);
    json_t *j = post(body, stream);
    if (!stream) {
        json_t *msg = json_object_get(choice0(j), "message");
        cat(out->content, sizeof out->content, json_string_value(json_object_get(msg, "content")));
        read_calls(json_object_get(msg, "tool_calls"), out);
        cat(out->finish, sizeof out->finish, json_string_value(json_object_get(choice0(j), "finish_reason")));
        out->completion_tokens = json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens"));
    } else {
        size_t i;
        json_t *chunk;
        json_array_foreach(j, i, chunk) {
            json_t *delta = json_object_get(choice0(chunk), "delta");
            cat(out->content, sizeof out->content, json_string_value(json_object_get(delta, "content")));
            read_calls(json_object_get(delta, "tool_calls"), out);
            const char *fin = json_string_value(json_object_get(choice0(chunk), "finish_reason"));
            if (fin) snprintf(out->finish, sizeof out->finish, "%s", fin);
        }
        out->completion_tokens = -1; /* streams carry no usage unless asked */
    }
    json_decref(j);
}

/* The reply is one call of get_weather with {"city": "Oslo"}, no content, n tokens
 * before the end of the turn (not counted; unknown for a stream). */
static void expect_call(const char *what, const reply *r, int n) {
    json_t *args = json_loads(r->args, 0, NULL);
    const char *city = json_string_value(json_object_get(args, "city"));
    bool ok = r->n_calls == 1 && !strcmp(r->name, "get_weather") && city && !strcmp(city, "Oslo") &&
              r->content[0] == '\0' && !strcmp(r->finish, "tool_calls") && (r->completion_tokens < 0 || r->completion_tokens == n);
    json_decref(args);
    if (!ok)
        fail_msg("%s: %zu calls, name '%s', arguments '%s', content '%s', finish '%s', %lld tokens; expected one "
                 "get_weather call with city Oslo, no content, finish tool_calls, %d tokens",
                 what, r->n_calls, r->name, r->args, r->content, r->finish, (long long)r->completion_tokens, n);
}

/* ids end with the end of the turn: the call ends the reply with finish tool_calls. */
static void expect_both(const char *model, const int *ids, int n) {
    reply r;
    char what[64];
    for (int stream = 0; stream < 2; stream++) {
        ask(model, stream, true, ids, n, "", &r);
        snprintf(what, sizeof what, "%s%s", model, stream ? " streamed" : "");
        expect_call(what, &r, n - 1);
    }
}

/* [THINK] [TOOL_CALLS] get_weather [ARGS] {"city":"Oslo"}: a call, and no [THINK]. */
static void test_mistral_markers_shown_think_not(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_THINK, T_CALLS, T_NAME, T_ARGS, T_ARGVAL, T_EOS};
    expect_both("mistral", ids, 6);
}

/* [THINK] <|python_tag|> {"name": ..., "parameters": ...}: the whole reply is a call only
 * when [THINK] is no text. */
static void test_llama_python_tag_shown_think_not(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_THINK, T_PYTAG, T_LLAMA_CALL, T_EOS};
    expect_both("llama", ids, 4);
}

/* A tagged-format model whose <tool_call> and </tool_call> are control tokens. */
static void test_tagged_control_markers_yield_calls(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_THINK, T_TC_OPEN, T_TAGGED_CALL, T_TC_CLOSE, T_EOS};
    expect_both("chatml", ids, 5);
}

/* A forced call in the tagged form ends at the </tool_call> control token (its stop
 * string): the arguments are what came before, without the call's closing brace. */
static void test_forced_tagged_call_ends_at_control_close(void **state) {
    (void)state;
    if (!up) skip();
    const int ids[] = {T_FORCED_ARGS, T_TC_CLOSE, T_THINK};
    reply r;
    ask("chatml", false, true, ids, 3, "\"tool_choice\":\"required\"", &r);
    if (strcmp(r.args, "{\"city\":\"Oslo\"}") != 0 || strcmp(r.finish, "tool_calls") != 0 || r.completion_tokens != 2)
        fail_msg("arguments '%s', finish '%s' after %lld tokens; expected {\"city\":\"Oslo\"}, tool_calls, 2",
                 r.args, r.finish, (long long)r.completion_tokens);
}

/* Without tools the reply is not read: no control token is text, markers included. */
static void test_no_tools_no_control_text(void **state) {
    (void)state;
    if (!up) skip();
    const char *models[] = {"mistral", "llama", "chatml"};
    const int ids[] = {T_THINK, T_CALLS, T_PYTAG, T_TC_OPEN, T_NAME};
    for (size_t i = 0; i < 3; i++) {
        reply r;
        ask(models[i], false, false, ids, 5, "", &r);
        if (strcmp(r.content, "get_weather") != 0 || r.n_calls != 0)
            fail_msg("%s without tools: content '%s', %zu calls; expected 'get_weather' and none", models[i],
                     r.content, r.n_calls);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mistral_markers_shown_think_not),
        cmocka_unit_test(test_llama_python_tag_shown_think_not),
        cmocka_unit_test(test_tagged_control_markers_yield_calls),
        cmocka_unit_test(test_forced_tagged_call_ends_at_control_close),
        cmocka_unit_test(test_no_tools_no_control_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
