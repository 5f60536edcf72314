/* Tool-call formats through `hearth serve`: one server, the fixture llama model under
 * five chat templates (built-in ChatML with <tool_call>, Llama 3.1, Mistral Nemo,
 * Ministral 3, Gemma 2 which knows no tools). The random model never writes a real call,
 * so the replies are steered with logit_bias at temperature 0 (a request field, not a
 * test hook): a reply of '{' characters is held back whole on the Llama template and
 * comes out as content, a control token that is not one of the format's markers is
 * never text (tests/integration/test_toolfmt_control.c covers markers that are control
 * tokens, which this fixture's vocabulary lacks), a forced call opens in the template's own form and is closed by
 * its own end, and a forced call ended by the user's own stop string keeps its last
 * brace (plain and streamed). The parsing itself is tested in
 * tests/unit/test_server_toolfmt.c. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "srvtest.h"
#include "testutil.h"

#define MODEL_FILE "models/llama-spm-f16.gguf"
/* token ids in the fixture's SPM vocabulary */
#define TOK_UNK "0"          /* <unk>, never text */
#define TOK_BOS "1"          /* <s>, a control token that is no tool-call marker */
#define TOK_OPEN_BRACE "29912"  /* { */
#define TOK_CLOSE_BRACE "29913" /* } */
#define TOK_X "29916"           /* x */
#define TOK_EOS "2"             /* </s>, the end of a turn */

static char dir[64];
static char cfg_path[128];
static srvtest server;
static bool up;

static int setup(void **state) {
    (void)state;
    if (!fixtures_available()) {
        printf("SKIP: fixtures not found\n");
        return 0;
    }
    snprintf(dir, sizeof dir, "/tmp/hearth-toolfmt-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(cfg_path, sizeof cfg_path, "%s/hearth.yaml", dir);
    char model[512], llama[512], mistral[512], mistral3[512], gemma[512];
    snprintf(model, sizeof model, "%s", fixture_path(MODEL_FILE));
    snprintf(llama, sizeof llama, "%s", fixture_path("templates/meta-llama-Llama-3.1-8B-Instruct/template.jinja"));
    snprintf(mistral, sizeof mistral, "%s", fixture_path("templates/mistralai-Mistral-Nemo-Instruct-2407/template.jinja"));
    snprintf(mistral3, sizeof mistral3, "%s",
             fixture_path("templates/mistralai-Ministral-3-14B-Reasoning-2512/template.jinja"));
    snprintf(gemma, sizeof gemma, "%s", fixture_path("templates/google-gemma-2-2b-it/template.jinja"));
    FILE *f = fopen(cfg_path, "w");
    if (!f) return -1;
    fprintf(f,
            "defaults: {threads: 1, slots: 1, ctx: 1024}\n"
            "models:\n"
            "  - {name: chatml, path: '%s', preload: true}\n"
            "  - {name: llama3, path: '%s', chat_template: '%s', preload: true}\n"
            "  - {name: mistral, path: '%s', chat_template: '%s', preload: true}\n"
            "  - {name: mistral3, path: '%s', chat_template: '%s', preload: true}\n"
            "  - {name: gemma, path: '%s', chat_template: '%s', preload: true}\n",
            model, model, llama, model, mistral, model, mistral3, model, gemma);
    fclose(f);
    char args[256];
    snprintf(args, sizeof args, "-c '%s'", cfg_path);
    up = srvtest_start_args(&server, args);
    return up ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    if (up) assert_int_equal(srvtest_stop(&server), 0);
    if (dir[0]) {
        unlink(cfg_path);
        rmdir(dir);
    }
    return 0;
}

#define NEED_SERVER()                                                                                                  \
    do {                                                                                                               \
        if (!up) skip();                                                                                               \
    } while (0)

static const char *TOOLS = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                           "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]";

/* A chat request to `model`: the user asks about the weather; `extra` adds fields. */
static void chat_body(char *out, size_t cap, const char *model, bool stream, const char *extra) {
    snprintf(out, cap,
             "{\"model\":\"%s\",\"stream\":%s,\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"Weather in Oslo?\"}]%s%s}",
             model, stream ? "true" : "false", extra[0] ? "," : "", extra);
}

static json_t *post_json(const char *body, long *status) {
    srvtest_resp r;
    assert_true(srvtest_http(&server, "POST", "/v1/chat/completions", body, NULL, &r));
    *status = r.status;
    json_t *j = srvtest_json(&r);
    if (!j) fail_msg("not JSON (status %ld): %s", r.status, r.body ? r.body : "");
    srvtest_resp_free(&r);
    return j;
}

static json_t *post_stream(const char *body) {
    srvtest_resp r;
    assert_true(srvtest_http(&server, "POST", "/v1/chat/completions", body, NULL, &r));
    if (r.status != 200) fail_msg("status %ld: %s", r.status, r.body ? r.body : "");
    bool done = false;
    json_t *chunks = srvtest_sse(r.body, &done);
    if (!chunks || !done) fail_msg("bad stream: %s", r.body ? r.body : "");
    srvtest_resp_free(&r);
    return chunks;
}

static json_t *choice0(json_t *reply) { return json_array_get(json_object_get(reply, "choices"), 0); }

/* What a stream said: its content, its calls' arguments, how many chunks carried
 * content, the finish reason. */
typedef struct streamed {
    char content[1024];
    char args[1024];
    int content_chunks, call_chunks;
    char finish[32];
} streamed;

static void read_stream(json_t *chunks, streamed *s) {
    memset(s, 0, sizeof *s);
    size_t i;
    json_t *c;
    json_array_foreach(chunks, i, c) {
        json_t *ch = choice0(c);
        json_t *delta = json_object_get(ch, "delta");
        const char *text = json_string_value(json_object_get(delta, "content"));
        if (text && *text) {
            s->content_chunks++;
            strncat(s->content, text, sizeof s->content - strlen(s->content) - 1);
        }
        json_t *calls = json_object_get(delta, "tool_calls");
        if (calls) s->call_chunks++;
        for (size_t k = 0; k < json_array_size(calls); k++) {
            const char *a = json_string_value(json_object_get(json_object_get(json_array_get(calls, k), "function"), "arguments"));
            if (a) strncat(s->args, a, sizeof s->args - strlen(s->args) - 1);
        }
        const char *fin = json_string_value(json_object_get(ch, "finish_reason"));
        if (fin) snprintf(s->finish, sizeof s->finish, "%s", fin);
    }
}

static const char *content_of(json_t *reply) {
    return json_string_value(json_object_get(json_object_get(choice0(reply), "message"), "content"));
}

/* A Llama reply that opens with '{' is held until the end (it may be a call); when it is
 * not a call it comes out as content, whole, the same plain and streamed. */
static void test_llama_reply_held_then_content(void **state) {
    (void)state;
    NEED_SERVER();
    char body[2048], extra[1024];
    long status = 0;
    snprintf(extra, sizeof extra, "%s,\"max_tokens\":6,\"logit_bias\":{\"" TOK_OPEN_BRACE "\":100}", TOOLS);
    chat_body(body, sizeof body, "llama3", false, extra);
    json_t *plain = post_json(body, &status);
    assert_int_equal(status, 200);
    json_t *msg = json_object_get(choice0(plain), "message");
    assert_string_equal(content_of(plain), "{{{{{{");
    assert_null(json_object_get(msg, "tool_calls"));
    assert_string_equal(json_string_value(json_object_get(choice0(plain), "finish_reason")), "length");

    chat_body(body, sizeof body, "llama3", true, extra);
    json_t *chunks = post_stream(body);
    streamed s;
    read_stream(chunks, &s);
    assert_string_equal(s.content, "{{{{{{");
    assert_int_equal(s.call_chunks, 0);
    if (s.content_chunks != 1) fail_msg("the held reply came out in %d content chunks, not 1", s.content_chunks);
    assert_string_equal(s.finish, "length");
    json_decref(chunks);
    json_decref(plain);

    /* the template is the Llama one: it lists the tool (the prompt grows) */
    chat_body(body, sizeof body, "llama3", false, "\"max_tokens\":1");
    json_t *without = post_json(body, &status);
    snprintf(extra, sizeof extra, "%s,\"max_tokens\":1", TOOLS);
    chat_body(body, sizeof body, "llama3", false, extra);
    json_t *with = post_json(body, &status);
    json_int_t p0 = json_integer_value(json_object_get(json_object_get(without, "usage"), "prompt_tokens"));
    json_int_t p1 = json_integer_value(json_object_get(json_object_get(with, "usage"), "prompt_tokens"));
    if (p1 < p0 + 20) fail_msg("prompt tokens with tools %lld, without %lld", (long long)p1, (long long)p0);
    json_decref(without);
    json_decref(with);
}

/* Control tokens that are not the format's markers (here <s>), and the unknown token,
 * are never text: not for a request read in a format whose markers are control tokens in
 * their families (Llama, Mistral), nor for others. */
static void test_other_control_tokens_never_text(void **state) {
    (void)state;
    NEED_SERVER();
    static const struct {
        const char *model;
        bool tools;
        const char *token;
    } cases[] = {
        {"mistral", true, TOK_BOS}, {"llama3", true, TOK_BOS}, {"mistral3", true, TOK_BOS}, {"mistral", false, TOK_BOS},
        {"chatml", true, TOK_BOS},  {"gemma", true, TOK_BOS},  {"llama3", true, TOK_UNK},   {"mistral", true, TOK_UNK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[2048], extra[1024];
        long status = 0;
        snprintf(extra, sizeof extra, "%s%s\"max_tokens\":3,\"logit_bias\":{\"%s\":100}", cases[i].tools ? TOOLS : "",
                 cases[i].tools ? "," : "", cases[i].token);
        chat_body(body, sizeof body, cases[i].model, false, extra);
        json_t *plain = post_json(body, &status);
        assert_int_equal(status, 200);
        const char *got = content_of(plain);
        if (!got || strcmp(got, "") != 0)
            fail_msg("%s%s, token %s: content '%s', expected ''", cases[i].model, cases[i].tools ? " with tools" : "",
                     cases[i].token, got ? got : "(null)");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(plain, "usage"), "completion_tokens")), 3);
        chat_body(body, sizeof body, cases[i].model, true, extra);
        json_t *chunks = post_stream(body);
        streamed s;
        read_stream(chunks, &s);
        if (strcmp(s.content, "") != 0) fail_msg("%s streamed: content '%s', expected ''", cases[i].model, s.content);
        json_decref(chunks);
        json_decref(plain);
    }
}

/* With ignore_eos the end-of-turn token does not end the reply, and it is never text. */
static void test_end_of_turn_never_text(void **state) {
    (void)state;
    NEED_SERVER();
    char body[2048], extra[1024];
    long status = 0;
    snprintf(extra, sizeof extra, "%s,\"ignore_eos\":true,\"max_tokens\":3,\"logit_bias\":{\"" TOK_EOS "\":100}",
             TOOLS);
    chat_body(body, sizeof body, "llama3", false, extra);
    json_t *plain = post_json(body, &status);
    assert_int_equal(status, 200);
    const char *got = content_of(plain);
    if (!got || strcmp(got, "") != 0) fail_msg("content '%s', expected ''", got ? got : "(null)");
    json_t *usage = json_object_get(plain, "usage");
    assert_int_equal(json_integer_value(json_object_get(usage, "completion_tokens")), 3);
    json_decref(plain);
}

/* A Mistral reply with '[' (a possible start of [TOOL_CALLS]) that never becomes the
 * marker goes out as content, equal plain and streamed; Gemma's template knows no
 * tools, so its replies are never read. */
static void test_mistral_and_no_tool_template_content(void **state) {
    (void)state;
    NEED_SERVER();
    const char *models[] = {"mistral", "gemma"};
    for (size_t i = 0; i < 2; i++) {
        char body[2048], extra[1024];
        long status = 0;
        snprintf(extra, sizeof extra, "%s,\"max_tokens\":5,\"logit_bias\":{\"29961\":100,\"" TOK_OPEN_BRACE "\":100}",
                 TOOLS);
        chat_body(body, sizeof body, models[i], false, extra);
        json_t *plain = post_json(body, &status);
        assert_int_equal(status, 200);
        assert_null(json_object_get(json_object_get(choice0(plain), "message"), "tool_calls"));
        const char *text = content_of(plain);
        assert_non_null(text);
        assert_int_equal(strlen(text), 5);
        chat_body(body, sizeof body, models[i], true, extra);
        json_t *chunks = post_stream(body);
        streamed s;
        read_stream(chunks, &s);
        assert_string_equal(s.content, text);
        assert_int_equal(s.call_chunks, 0);
        json_decref(chunks);
        json_decref(plain);
    }
}

/* Forcing a call writes its opening in the template's own form: the Llama form has no
 * closing tag, so the end of the turn closes the call and its last brace is not part of
 * the arguments (the model writes "}" then </s> here); the Mistral name[ARGS] form has
 * nothing to drop. A template without tool calls refuses. */
static void test_forced_call_in_each_form(void **state) {
    (void)state;
    NEED_SERVER();
    char body[2048], extra[1024];
    long status = 0;
    snprintf(extra, sizeof extra, "%s,\"max_tokens\":8,\"tool_choice\":\"required\","
             "\"logit_bias\":{\"" TOK_CLOSE_BRACE "\":100,\"" TOK_EOS "\":100}", TOOLS);
    chat_body(body, sizeof body, "llama3", false, extra);
    json_t *plain = post_json(body, &status);
    assert_int_equal(status, 200);
    json_t *msg = json_object_get(choice0(plain), "message");
    json_t *call = json_array_get(json_object_get(msg, "tool_calls"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(call, "function"), "name")), "get_weather");
    const char *args = json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
    json_int_t generated = json_integer_value(json_object_get(json_object_get(plain, "usage"), "completion_tokens"));
    if (!args || strcmp(args, "") != 0 || generated != 1)
        fail_msg("llama3: arguments '%s' after %lld tokens, expected '' after 1 ('}' closing the call)", args ? args : "(null)",
                 (long long)generated);
    assert_true(json_is_null(json_object_get(msg, "content")));
    assert_string_equal(json_string_value(json_object_get(choice0(plain), "finish_reason")), "tool_calls");
    json_int_t forced_prompt = json_integer_value(json_object_get(json_object_get(plain, "usage"), "prompt_tokens"));
    json_decref(plain);
    chat_body(body, sizeof body, "llama3", true, extra);
    json_t *chunks = post_stream(body);
    streamed s;
    read_stream(chunks, &s);
    assert_string_equal(s.args, "");
    assert_string_equal(s.content, "");
    assert_string_equal(s.finish, "tool_calls");
    json_decref(chunks);
    /* the prompt ends with the call's opening: longer than the same request's in "auto" */
    snprintf(extra, sizeof extra, "%s,\"max_tokens\":1", TOOLS);
    chat_body(body, sizeof body, "llama3", false, extra);
    json_t *autoreply = post_json(body, &status);
    json_int_t auto_prompt = json_integer_value(json_object_get(json_object_get(autoreply, "usage"), "prompt_tokens"));
    if (forced_prompt < auto_prompt + 8)
        fail_msg("forced prompt %lld tokens, auto %lld: no opening of the call", (long long)forced_prompt, (long long)auto_prompt);
    json_decref(autoreply);

    /* Ministral 3: [TOOL_CALLS]get_weather[ARGS] opens the call; the text is the arguments */
    snprintf(extra, sizeof extra, "%s,\"max_tokens\":6,\"tool_choice\":\"required\","
             "\"logit_bias\":{\"" TOK_CLOSE_BRACE "\":100,\"" TOK_X "\":100}", TOOLS);
    chat_body(body, sizeof body, "mistral3", false, extra);
    plain = post_json(body, &status);
    assert_int_equal(status, 200);
    call = json_array_get(json_object_get(json_object_get(choice0(plain), "message"), "tool_calls"), 0);
    args = json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
    assert_non_null(args);
    assert_int_equal(strlen(args), 6);
    assert_string_equal(json_string_value(json_object_get(choice0(plain), "finish_reason")), "length");
    chat_body(body, sizeof body, "mistral3", true, extra);
    chunks = post_stream(body);
    read_stream(chunks, &s);
    assert_string_equal(s.args, args);
    json_decref(chunks);
    json_decref(plain);

    snprintf(extra, sizeof extra, "%s,\"max_tokens\":2,\"tool_choice\":\"required\"", TOOLS);
    chat_body(body, sizeof body, "gemma", false, extra);
    json_t *r = post_json(body, &status);
    if (status != 400) fail_msg("gemma: status %ld", status);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "error"), "param")), "tool_choice");
    json_decref(r);
}

/* A forced call ended by the user's stop string: the text before the stop is the
 * arguments as written, its last '}' included (only the call's own end drops the brace
 * that closes the call). The model writes "}x}x..." here; stop "x" leaves "}". */
static void test_forced_call_user_stop_keeps_brace(void **state) {
    (void)state;
    NEED_SERVER();
    char body[2048], extra[1024];
    long status = 0;
    const char *bias = "\"logit_bias\":{\"" TOK_CLOSE_BRACE "\":100,\"" TOK_X "\":100}";
    snprintf(extra, sizeof extra, "%s,\"max_tokens\":8,\"tool_choice\":\"required\",%s", TOOLS, bias);
    chat_body(body, sizeof body, "chatml", false, extra);
    json_t *free_run = post_json(body, &status);
    assert_int_equal(status, 200);
    json_t *call = json_array_get(json_object_get(json_object_get(choice0(free_run), "message"), "tool_calls"), 0);
    const char *args = json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
    assert_non_null(args);
    if (strncmp(args, "}x", 2) != 0) fail_msg("the steered model wrote '%s', not '}x...'", args);
    json_decref(free_run);

    snprintf(extra, sizeof extra, "%s,\"max_tokens\":8,\"tool_choice\":\"required\",\"stop\":[\"x\"],%s", TOOLS, bias);
    chat_body(body, sizeof body, "chatml", false, extra);
    json_t *plain = post_json(body, &status);
    assert_int_equal(status, 200);
    call = json_array_get(json_object_get(json_object_get(choice0(plain), "message"), "tool_calls"), 0);
    const char *got = json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
    if (!got || strcmp(got, "}") != 0) fail_msg("plain: arguments '%s', expected '}'", got ? got : "(null)");
    assert_string_equal(json_string_value(json_object_get(choice0(plain), "finish_reason")), "tool_calls");
    json_decref(plain);

    chat_body(body, sizeof body, "chatml", true, extra);
    json_t *chunks = post_stream(body);
    streamed s;
    read_stream(chunks, &s);
    if (strcmp(s.args, "}") != 0) fail_msg("streamed: arguments '%s', expected '}'", s.args);
    assert_string_equal(s.content, "");
    assert_string_equal(s.finish, "tool_calls");
    json_decref(chunks);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forced_call_user_stop_keeps_brace),
        cmocka_unit_test(test_llama_reply_held_then_content),
        cmocka_unit_test(test_other_control_tokens_never_text),
        cmocka_unit_test(test_end_of_turn_never_text),
        cmocka_unit_test(test_mistral_and_no_tool_template_content),
        cmocka_unit_test(test_forced_call_in_each_form),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
