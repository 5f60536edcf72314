/* Chat templates against the shared fixtures: every case of templates/summary.json
 * renders byte for byte as Hugging Face does (or raises the expected error), a few
 * cases through `hearth template`, and every extra template renders the fixture
 * contexts. Skips when the fixtures are absent. */
#include "testutil.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "chat/chat.h"

#define FIXTURE_NOW "2026-11-23 12:00:00" /* the time strftime_now is pinned to */
#define CONTEXT_MODEL "Qwen-Qwen3-0.6B"    /* whose case contexts feed the extra templates */

static const char *const case_names[] = {"basic", "multiturn", "no_gen_prompt", "tools"};

static char *fixture_text(const char *rel) { return read_file(fixture_path(rel), NULL); }

static chat_template *compile_file(const char *rel) {
    size_t len;
    char *src = read_file(fixture_path(rel), &len);
    if (!src) fail_msg("cannot read %s", fixture_path(rel));
    chat_template *t = NULL;
    hearth_err err = {0};
    if (chat_template_new(src, len, &t, &err) != HEARTH_OK) fail_msg("%s does not compile: %s", rel, err.msg);
    free(src);
    return t;
}

static json_t *load_json(const char *rel) {
    json_error_t jerr;
    json_t *j = json_load_file(fixture_path(rel), 0, &jerr);
    if (!j) fail_msg("cannot parse %s: %s", rel, jerr.text);
    return j;
}

/* Prints the first difference of two texts, with a little context. */
static void show_diff(const char *what, const char *want, size_t wn, const char *got, size_t gn) {
    size_t i = 0;
    while (i < wn && i < gn && want[i] == got[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    printf("%s: differs at byte %zu (expected %zu bytes, got %zu)\n  expected: \"%.*s\"\n  got:      \"%.*s\"\n",
           what, i, wn, gn, (int)((wn - from) < 100 ? wn - from : 100), want + from,
           (int)((gn - from) < 100 ? gn - from : 100), got + from);
}

/* One fixture case; returns true when it passes. */
static bool check_case(const char *model, const char *cs, chat_template *t) {
    char rel[512];
    snprintf(rel, sizeof rel, "templates/%s/%s.input.json", model, cs);
    json_t *ctx = load_json(rel);
    char *out = NULL;
    size_t out_len = 0;
    hearth_err err = {0};
    hearth_status st = chat_template_render(t, ctx, NULL, &out, &out_len, &err);
    json_decref(ctx);
    bool ok;
    snprintf(rel, sizeof rel, "templates/%s/%s.expected.txt", model, cs);
    size_t want_len;
    char *want = read_file(fixture_path(rel), &want_len);
    if (want) {
        ok = st == HEARTH_OK && out_len == want_len && !memcmp(out, want, want_len);
        if (st != HEARTH_OK) printf("%s/%s: render failed: %s\n", model, cs, err.msg);
        else if (!ok) show_diff(rel, want, want_len, out, out_len);
    } else {
        snprintf(rel, sizeof rel, "templates/%s/%s.expected_error.txt", model, cs);
        want = fixture_text(rel);
        if (!want) fail_msg("%s/%s has neither an expected output nor an expected error", model, cs);
        want[strcspn(want, "\n")] = 0;
        const char *tmpl_err = "TemplateError: ";
        if (!strncmp(want, tmpl_err, strlen(tmpl_err)))   /* raise_exception: message verbatim */
            ok = st == HEARTH_ERR_INVALID && !strcmp(err.msg, want + strlen(tmpl_err));
        else if (!strncmp(want, "SecurityError", 13) && st == HEARTH_OK)
            ok = true; /* the fixtures allow rendering what the sandbox forbids */
        else
            ok = st == HEARTH_ERR_FORMAT && !strncmp(err.msg, want, strlen(want));
        if (!ok) printf("%s/%s: expected error \"%s\", got status %d \"%s\"\n", model, cs, want, st,
                        st == HEARTH_OK ? "(rendered)" : err.msg);
    }
    free(want);
    mem_free(out);
    return ok;
}

static void test_fixture_cases(void **state) {
    if (!fixtures_available()) return;
    setenv("HEARTH_NOW", FIXTURE_NOW, 1);
    json_t *summary = load_json("templates/summary.json");
    const char *model;
    json_t *cases;
    int total = 0, passed = 0;
    json_object_foreach(summary, model, cases) {
        char rel[512];
        snprintf(rel, sizeof rel, "templates/%s/template.jinja", model);
        chat_template *t = compile_file(rel);
        const char *cs;
        json_t *kind;
        json_object_foreach(cases, cs, kind) {
            total++;
            passed += check_case(model, cs, t);
        }
        chat_template_free(t);
    }
    json_decref(summary);
    printf("template fixture cases passing exactly: %d of %d\n", passed, total);
    assert_true(total > 0);
    assert_int_equal(passed, total);
}

static void test_cli(void **state) {
    if (!fixtures_available()) return;
    setenv("HEARTH_NOW", FIXTURE_NOW, 1);
    static const char *const rendered[][2] = {
        {"Qwen-Qwen3-0.6B", "tools"},
        {"meta-llama-Llama-3.1-8B-Instruct", "multiturn"},
        {"google-gemma-4-31B-it", "basic"},
    };
    for (size_t i = 0; i < sizeof rendered / sizeof rendered[0]; i++) {
        char args[2048], rel[512];
        snprintf(rel, sizeof rel, "templates/%s/template.jinja", rendered[i][0]);
        snprintf(args, sizeof args, "template '%s'", fixture_path(rel));
        snprintf(rel, sizeof rel, "templates/%s/%s.input.json", rendered[i][0], rendered[i][1]);
        snprintf(args + strlen(args), sizeof args - strlen(args), " '%s'", fixture_path(rel));
        snprintf(rel, sizeof rel, "templates/%s/%s.expected.txt", rendered[i][0], rendered[i][1]);
        size_t want_len;
        char *want = read_file(fixture_path(rel), &want_len);
        char *out = NULL, *errout = NULL;
        int rc = run_hearth(args, &out, &errout);
        if (rc != 0) printf("%s: exit %d, stderr: %s\n", args, rc, errout ? errout : "");
        assert_int_equal(rc, 0);
        if (strlen(out) != want_len || memcmp(out, want, want_len)) show_diff(rel, want, want_len, out, strlen(out));
        assert_int_equal(strlen(out), want_len);
        assert_memory_equal(out, want, want_len);
        free(want);
        free(out);
        free(errout);
    }
    /* raise_exception: message on stderr, exit 1, nothing on stdout */
    char args[2048];
    snprintf(args, sizeof args, "template '%s'", fixture_path("templates/google-gemma-2-2b-it/template.jinja"));
    snprintf(args + strlen(args), sizeof args - strlen(args), " '%s'",
             fixture_path("templates/google-gemma-2-2b-it/basic.input.json"));
    char *out = NULL, *errout = NULL;
    int rc = run_hearth(args, &out, &errout);
    assert_int_equal(rc, 1);
    assert_string_equal(errout, "hearth: error: System role not supported\n");
    assert_string_equal(out, "");
    free(out);
    free(errout);
    /* usage errors */
    rc = run_hearth("template only-one-argument", &out, &errout);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(errout, "usage: hearth template"));
    free(out);
    free(errout);
}

static void test_extra_templates(void **state) {
    if (!fixtures_available()) return;
    setenv("HEARTH_NOW", FIXTURE_NOW, 1);
    static const char *const extras[] = {
        "Apertus-8B-Instruct", "GLM-4.6", "GLM-5.2", "HuggingFaceTB-SmolLM3-3B", "Kimi-K2-Thinking",
        "LFM2.5-Instruct", "NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", "Qwen3.5-4B", "deepseek-ai-DeepSeek-V3.2",
        "ibm-granite-granite-3.3-2B-Instruct", "microsoft-Phi-3.5-mini-instruct", "openai-gpt-oss-120b",
    };
    int rendered = 0, refused = 0;
    for (size_t i = 0; i < sizeof extras / sizeof extras[0]; i++) {
        char rel[512];
        snprintf(rel, sizeof rel, "extra/templates/%s/template.jinja", extras[i]);
        chat_template *t = compile_file(rel);
        for (size_t k = 0; k < sizeof case_names / sizeof case_names[0]; k++) {
            snprintf(rel, sizeof rel, "templates/%s/%s.input.json", CONTEXT_MODEL, case_names[k]);
            json_t *ctx = load_json(rel);
            char *out = NULL;
            size_t out_len = 0;
            hearth_err err = {0};
            hearth_status st = chat_template_render(t, ctx, NULL, &out, &out_len, &err);
            json_decref(ctx);
            if (st == HEARTH_OK) {
                rendered++;
                assert_true(out_len > 0);
            } else {
                /* Only the sandbox's refusal of list.append (as Hugging Face refuses it) is allowed. */
                printf("extra %s/%s raises: %s\n", extras[i], case_names[k], err.msg);
                assert_int_equal(st, HEARTH_ERR_FORMAT);
                assert_non_null(strstr(err.msg, "SecurityError: access to attribute 'append' of 'list' object"));
                refused++;
            }
            mem_free(out);
        }
        chat_template_free(t);
    }
    printf("extra templates: %d renders, %d sandbox refusals\n", rendered, refused);
    assert_true(refused <= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_cases),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_extra_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
