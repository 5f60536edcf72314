/* Reasoning in chat replies (srv_reasoning.h): which fixture templates read replies for
 * <think> blocks and which never do; which fixture renderings open the block in the
 * prompt, and, rendering real templates, how enable_thinking changes that; the whole
 * split of replies (think block, opened block, skipped thinking, a reply cut inside the
 * block, markers inside the answer); the streamed split agrees with the whole one for
 * every cut of a reply into two and three pieces and for one byte at a time, and never
 * lets part of a marker out; the request controls reasoning_format and
 * chat_template_kwargs are validated. */
#include <dirent.h>
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
#include "server/srv_reasoning.h"
#include "testutil.h"

/* The fixture templates whose source writes or strips </think>. */
static const char *const THINKING[] = {
    "Bielik-11B-v3.0-Instruct", "GLM-4.7-Flash", "MiroThinker", "Qwen-QwQ-32B", "Qwen-Qwen3-0.6B", "Reka-Edge",
    "StepFun3.5-Flash", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
    "deepseek-ai-DeepSeek-V3.1", "deepseek-ai-DeepSeek-V4", "llama-cpp-deepseek-r1", "llama-cpp-rwkv-world",
    "stepfun-ai-Step-3.5-Flash",
};
/* Those whose expected rendering of basic.input.json ends inside an opened block. */
static const char *const OPENS[] = {
    "GLM-4.7-Flash", "StepFun3.5-Flash", "deepseek-ai-DeepSeek-R1-Distill-Llama-8B", "llama-cpp-deepseek-r1",
    "stepfun-ai-Step-3.5-Flash",
};

static bool listed(const char *const *list, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], name)) return true;
    return false;
}

static void test_fixture_templates(void **state) {
    (void)state;
    if (!fixtures_available()) {
        printf("SKIP (fixture templates): fixtures not found\n");
        return;
    }
    char dirpath[512];
    snprintf(dirpath, sizeof dirpath, "%s", fixture_path("templates"));
    DIR *d = opendir(dirpath);
    assert_non_null(d);
    size_t seen = 0, reading = 0, opened = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.') continue;
        char rel[512];
        snprintf(rel, sizeof rel, "templates/%s/template.jinja", ent->d_name);
        size_t len = 0;
        char *src = read_file(fixture_path(rel), &len);
        if (!src) continue;
        seen++;
        bool want = listed(THINKING, sizeof THINKING / sizeof *THINKING, ent->d_name);
        bool got = srv_reasoning_of_template(src, len);
        free(src);
        if (got != want) fail_msg("%s: reads reasoning %d, expected %d", ent->d_name, got, want);
        reading += got;
        snprintf(rel, sizeof rel, "templates/%s/basic.expected.txt", ent->d_name);
        char *rendered = read_file(fixture_path(rel), &len);
        if (!rendered) continue;
        bool want_open = listed(OPENS, sizeof OPENS / sizeof *OPENS, ent->d_name);
        bool got_open = srv_reasoning_opened(rendered, len);
        free(rendered);
        if (got_open != want_open) fail_msg("%s: prompt opens a think block %d, expected %d", ent->d_name, got_open, want_open);
        opened += got_open;
    }
    closedir(d);
    if (seen < 40 || reading != sizeof THINKING / sizeof *THINKING || opened != sizeof OPENS / sizeof *OPENS)
        fail_msg("%zu templates, %zu read reasoning, %zu open the block; expected >= 40, %zu, %zu", seen, reading,
                 opened, sizeof THINKING / sizeof *THINKING, sizeof OPENS / sizeof *OPENS);
}

static void test_template_snippets(void **state) {
    (void)state;
    const char *plain = "{% for m in messages %}{{ m['content'] }}{% endfor %}";
    const char *seed = "<seed:think>{{ m }}</seed:think>";
    const char *qwen = "{%- if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>{% endif %}";
    assert_false(srv_reasoning_of_template(plain, strlen(plain)));
    assert_false(srv_reasoning_of_template(seed, strlen(seed)));
    assert_true(srv_reasoning_of_template(qwen, strlen(qwen)));
    assert_true(srv_reasoning_opened("<|Assistant|><think>\n", 21));
    assert_false(srv_reasoning_opened("<|Assistant|><think>\n</think>\n\n", 31));
    assert_false(srv_reasoning_opened("think>", 6));
    assert_false(srv_reasoning_opened("", 0));
}

/* Whether a real template's prompt opens the block depends on the request: QwQ's and the
 * R1 distill's close an empty block unless enable_thinking is set, Qwen3's opens none
 * unless it is false (then it closes one), GLM's opens one unless it is false. */
static void expect_opened(const char *name, const char *kwargs_json, bool want) {
    char rel[256];
    snprintf(rel, sizeof rel, "templates/%s/template.jinja", name);
    size_t len = 0;
    char *src = read_file(fixture_path(rel), &len);
    assert_non_null(src);
    chat_template *t = NULL;
    hearth_err err = {0};
    if (chat_template_new(src, len, &t, &err) != HEARTH_OK) fail_msg("%s: %s", name, err.msg);
    free(src);
    snprintf(rel, sizeof rel, "templates/%s/basic.input.json", name);
    json_t *ctx = json_load_file(fixture_path(rel), 0, NULL);
    assert_non_null(ctx);
    json_t *kw = kwargs_json ? json_loads(kwargs_json, 0, NULL) : NULL;
    if (kw) json_object_update(ctx, kw);
    json_decref(kw);
    char *text = NULL;
    size_t n = 0;
    if (chat_template_render(t, ctx, NULL, &text, &n, &err) != HEARTH_OK) fail_msg("%s: %s", name, err.msg);
    bool got = srv_reasoning_opened(text, n);
    if (got != want)
        fail_msg("%s with %s: prompt opens a block %d, expected %d; it ends '%s'", name, kwargs_json ? kwargs_json : "{}",
                 got, want, n > 40 ? text + n - 40 : text);
    mem_free(text);
    json_decref(ctx);
    chat_template_free(t);
}

static void test_opened_per_request(void **state) {
    (void)state;
    if (!fixtures_available()) {
        printf("SKIP (fixture templates): fixtures not found\n");
        return;
    }
    expect_opened("Qwen-QwQ-32B", NULL, false);
    expect_opened("Qwen-QwQ-32B", "{\"enable_thinking\": true}", true);
    expect_opened("deepseek-ai-DeepSeek-R1-Distill-Qwen-32B", "{\"enable_thinking\": true}", true);
    expect_opened("Qwen-Qwen3-0.6B", NULL, false);
    expect_opened("Qwen-Qwen3-0.6B", "{\"enable_thinking\": false}", false);
    expect_opened("GLM-4.7-Flash", NULL, true);
    expect_opened("GLM-4.7-Flash", "{\"enable_thinking\": false}", false);
    expect_opened("llama-cpp-deepseek-r1", NULL, true);
}

typedef struct split_case {
    bool opened;
    const char *reply, *reasoning, *content;
} split_case;

static const split_case CASES[] = {
    {false, "<think>\nLet me see.\n</think>\n\nThe answer is 4.", "Let me see.\n", "The answer is 4."},
    {false, "  \n<think>x</think>y", "x", "y"},
    {true, "\nLet me see.</think>\n\n4", "Let me see.", "4"},
    {false, "No thinking here. <think>not read</think>", "", "No thinking here. <think>not read</think>"},
    {false, "\n\nPlain", "", "Plain"},
    {false, "<think>cut by max_tokens <", "cut by max_tokens <", ""},
    {true, "cut inside </thin", "cut inside </thin", ""},
    {false, "<thin", "", "<thin"},
    {false, "<think></think>", "", ""},
    {false, "<think>a < b </ c </think2 </think>\n<tool_call>{}</tool_call> done</think>",
     "a < b </ c </think2 ", "<tool_call>{}</tool_call> done</think>"},
    {true, "<<</</t</think></think>", "<<</</t", "</think>"},
    {false, "", "", ""},
    {true, "", "", ""},
};
enum { N_CASES = sizeof CASES / sizeof CASES[0] };

static void check(const char *what, const split_case *c, const char *r, size_t rl, const char *t, size_t tl) {
    if (rl != strlen(c->reasoning) || (rl && memcmp(r, c->reasoning, rl) != 0) || tl != strlen(c->content) ||
        (tl && memcmp(t, c->content, tl) != 0))
        fail_msg("%s of '%s' (opened %d): reasoning '%.*s' content '%.*s'; expected '%s' and '%s'", what, c->reply,
                 c->opened, (int)rl, r ? r : "", (int)tl, t ? t : "", c->reasoning, c->content);
}

static void test_whole_split(void **state) {
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const split_case *c = &CASES[i];
        size_t ro, rl, co, cl;
        srv_reason_split(c->opened, c->reply, strlen(c->reply), &ro, &rl, &co, &cl);
        check("whole split", c, c->reply + ro, rl, c->reply + co, cl);
    }
}

/* Streams `reply` cut at a and b (a <= b) and returns the two parts. */
static void stream3(bool opened, const char *reply, size_t a, size_t b, srv_buf *r, srv_buf *t) {
    srv_reason_stream rs;
    srv_reason_stream_init(&rs, opened);
    size_t n = strlen(reply);
    assert_true(srv_reason_feed(&rs, reply, a, r, t));
    assert_true(srv_reason_feed(&rs, reply + a, b - a, r, t));
    assert_true(srv_reason_feed(&rs, reply + b, n - b, r, t));
    assert_true(srv_reason_finish(&rs, r, t));
}

static void test_stream_agrees_with_whole(void **state) {
    (void)state;
    char what[64];
    for (size_t i = 0; i < N_CASES; i++) {
        const split_case *c = &CASES[i];
        size_t n = strlen(c->reply);
        for (size_t a = 0; a <= n; a++)
            for (size_t b = a; b <= n; b++) {
                srv_buf r = {.max = 1 << 20}, t = {.max = 1 << 20};
                stream3(c->opened, c->reply, a, b, &r, &t);
                snprintf(what, sizeof what, "stream cut at %zu, %zu", a, b);
                check(what, c, r.data, r.len, t.data, t.len);
                srv_buf_free(&r);
                srv_buf_free(&t);
            }
        srv_reason_stream rs;
        srv_reason_stream_init(&rs, c->opened);
        srv_buf r = {.max = 1 << 20}, t = {.max = 1 << 20};
        for (size_t k = 0; k < n; k++) assert_true(srv_reason_feed(&rs, c->reply + k, 1, &r, &t));
        assert_true(srv_reason_finish(&rs, &r, &t));
        check("byte by byte", c, r.data, r.len, t.data, t.len);
        srv_buf_free(&r);
        srv_buf_free(&t);
    }
}

/* Nothing of a marker goes out before it is known not to be one: after "<think>x</thi"
 * only "x" is reasoning, and no content has gone out. */
static void test_stream_holds_partial_markers(void **state) {
    (void)state;
    srv_reason_stream rs;
    srv_reason_stream_init(&rs, false);
    srv_buf r = {.max = 1 << 20}, t = {.max = 1 << 20};
    assert_true(srv_reason_feed(&rs, "<thi", 4, &r, &t));
    if (r.len || t.len) fail_msg("after '<thi': reasoning '%.*s' content '%.*s'; expected nothing out", (int)r.len,
                                 r.data, (int)t.len, t.data);
    assert_true(srv_reason_feed(&rs, "nk>x</thi", 9, &r, &t));
    if (r.len != 1 || r.data[0] != 'x' || t.len)
        fail_msg("after '<think>x</thi': reasoning '%.*s' content '%.*s'; expected 'x' and nothing", (int)r.len,
                 r.data, (int)t.len, t.data ? t.data : "");
    assert_true(srv_reason_feed(&rs, "nk> ok", 6, &r, &t));
    if (r.len != 1 || t.len != 2 || memcmp(t.data, "ok", 2) != 0)
        fail_msg("reasoning '%.*s' content '%.*s'; expected 'x' and 'ok'", (int)r.len, r.data, (int)t.len,
                 t.data ? t.data : "");
    srv_buf_free(&r);
    srv_buf_free(&t);
}

static void expect_400(const char *body, const char *param) {
    json_t *root = json_loads(body, 0, NULL);
    assert_non_null(root);
    bool none = false;
    const json_t *kw = NULL;
    srv_error e = {0};
    bool ok = srv_reasoning_parse_request(root, &none, &kw, &e);
    if (ok || e.status != 400 || strcmp(e.param, param) != 0)
        fail_msg("%s: ok %d status %d param '%s' (%s); expected 400 on %s", body, ok, e.status, e.param,
                 e.message, param);
    json_decref(root);
}

static void test_request_controls(void **state) {
    (void)state;
    json_t *root = json_loads("{\"reasoning_format\":\"none\",\"chat_template_kwargs\":{\"enable_thinking\":false}}", 0,
                              NULL);
    bool none = false;
    const json_t *kw = NULL;
    srv_error e = {0};
    assert_true(srv_reasoning_parse_request(root, &none, &kw, &e));
    assert_true(none);
    assert_true(kw && json_is_false(json_object_get(kw, "enable_thinking")));
    json_decref(root);
    root = json_loads("{\"reasoning_format\":\"auto\"}", 0, NULL);
    assert_true(srv_reasoning_parse_request(root, &none, &kw, &e));
    assert_false(none);
    assert_null(kw);
    json_decref(root);
    expect_400("{\"reasoning_format\":\"deepseek-legacy\"}", "reasoning_format");
    expect_400("{\"reasoning_format\":1}", "reasoning_format");
    expect_400("{\"chat_template_kwargs\":[1]}", "chat_template_kwargs");
    expect_400("{\"chat_template_kwargs\":\"enable_thinking\"}", "chat_template_kwargs");
    expect_400("{\"chat_template_kwargs\":{\"messages\":[]}}", "chat_template_kwargs");
    expect_400("{\"chat_template_kwargs\":{\"tools\":null}}", "chat_template_kwargs");
    expect_400("{\"chat_template_kwargs\":{\"add_generation_prompt\":false}}", "chat_template_kwargs");
    char *big = malloc(SRV_REASON_KWARGS_MAX_BYTES + 64);
    assert_non_null(big);
    int n = snprintf(big, 64, "{\"chat_template_kwargs\":{\"x\":\"");
    memset(big + n, 'a', SRV_REASON_KWARGS_MAX_BYTES);
    strcpy(big + n + SRV_REASON_KWARGS_MAX_BYTES, "\"}}");
    expect_400(big, "chat_template_kwargs");
    free(big);
    char many[4096];
    size_t len = (size_t)snprintf(many, sizeof many, "{\"chat_template_kwargs\":{");
    for (int i = 0; i <= SRV_REASON_KWARGS_MAX_KEYS; i++)
        len += (size_t)snprintf(many + len, sizeof many - len, "%s\"k%d\":1", i ? "," : "", i);
    snprintf(many + len, sizeof many - len, "}}");
    expect_400(many, "chat_template_kwargs");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_templates),      cmocka_unit_test(test_template_snippets),
        cmocka_unit_test(test_opened_per_request),
        cmocka_unit_test(test_whole_split),            cmocka_unit_test(test_stream_agrees_with_whole),
        cmocka_unit_test(test_stream_holds_partial_markers), cmocka_unit_test(test_request_controls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
