/* Chat templates, sandbox and errors: hostile templates (huge loops, runaway macro
 * recursion, huge output, deep nesting, self-referencing structures, memory hogs) end
 * with a clear error instead of hanging or crashing; the sandbox refuses what Jinja2's
 * immutable sandbox refuses; errors carry their kind, message and line; failed
 * allocations unwind cleanly; one compiled template renders from several threads. */
#include <pthread.h>
#include <stdlib.h>

#include "chat_check.h"

static void test_step_budget(void **state) {
    check_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", HEARTH_ERR_RANGE,
                "budget of 10000000 evaluation steps");
    check_error("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}{% endfor %}",
                HEARTH_ERR_RANGE, "evaluation steps");
    chat_limits lim = {.max_steps = 1000};
    check_error_lim("{% for i in range(2000) %}x{% endfor %}", NULL, &lim, HEARTH_ERR_RANGE, "budget of 1000");
    check_error_lim("{{ range(5000)|map('string')|join }}", NULL, &lim, HEARTH_ERR_RANGE, "budget of 1000");
}

static void test_sandbox_range(void **state) {
    check_error("{% for i in range(10**9) %}{% endfor %}", HEARTH_ERR_RANGE,
                "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    check_render("{{ range(100000)|length }}", "100000");
}

static void test_recursion(void **state) {
    check_error("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", HEARTH_ERR_RANGE,
                "RecursionError: maximum macro call depth (100) exceeded");
    check_error("{% macro f() %}{% for i in range(10) %}{{ f() }}{% endfor %}{% endmacro %}{{ f() }}", HEARTH_ERR_RANGE,
                "macro call depth");
    chat_limits lim = {.max_depth = 5};
    check_error_lim("{% macro f(n) %}{{ n }}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, &lim, HEARTH_ERR_RANGE,
                    "depth (5)");
    check_error("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", HEARTH_ERR_RANGE, "nested too deeply");
}

static void test_deep_nesting(void **state) {
    char *src = malloc(40000);
    strcpy(src, "{{ ");
    for (int i = 0; i < 5000; i++) strcat(src, "(");
    strcat(src, "1");
    for (int i = 0; i < 5000; i++) strcat(src, ")");
    strcat(src, " }}");
    check_error(src, HEARTH_ERR_FORMAT, "template nested too deeply");
    strcpy(src, "{{ 1");
    for (int i = 0; i < 5000; i++) strcat(src, " + 1");
    strcat(src, " }}");
    check_error(src, HEARTH_ERR_RANGE, "nested deeper than");
    free(src);
}

static void test_output_limits(void **state) {
    check_error("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", HEARTH_ERR_RANGE,
                "exceed the limit of 16777216 bytes");
    check_error("{{ 'x' * 10**9 }}", HEARTH_ERR_RANGE, "output limit");
    check_error("{{ [1] * 10**9 }}", HEARTH_ERR_RANGE, "limit");
    check_error("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                HEARTH_ERR_RANGE, "limit");
    chat_limits lim = {.max_output = 100};
    check_error_lim("{% for i in range(101) %}x{% endfor %}", NULL, &lim, HEARTH_ERR_RANGE, "limit of 100 bytes");
    chat_limits mem = {.max_memory = 1 << 16};
    check_error_lim("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = ns.l + ['abc' ~ i] %}"
                    "{% endfor %}",
                    NULL, &mem, HEARTH_ERR_RANGE, "memory budget");
}

static void test_security(void **state) {
    check_error("{% set l = [] %}{{ l.append(1) }}", HEARTH_ERR_FORMAT,
                "SecurityError: access to attribute 'append' of 'list' object is unsafe.");
    check_error("{% set d = {} %}{% set x = d.update({'a': 1}) %}", HEARTH_ERR_FORMAT,
                "SecurityError: access to attribute 'update' of 'dict' object is unsafe.");
    check_error("{{ {'a': 1}.pop('a') }}", HEARTH_ERR_FORMAT, "SecurityError");
    check_error("{% set x = 1 %}{% set x.y = 2 %}", HEARTH_ERR_FORMAT,
                "TemplateRuntimeError: cannot assign attribute on non-namespace object");
}

static void test_errors(void **state) {
    check_error("{{ raise_exception('Only user and assistant roles are supported!') }}", HEARTH_ERR_INVALID,
                "Only user and assistant roles are supported!");
    char *out;
    hearth_err err = {0};
    assert_int_equal(chat_try("x{{ raise_exception('exact message') }}", NULL, NULL, &out, &err), HEARTH_ERR_INVALID);
    assert_string_equal(err.msg, "exact message");
    assert_null(out);
    check_error("line one\n{{ functions }}\n{{ functions.x }}", HEARTH_ERR_FORMAT,
                "UndefinedError: 'functions' is undefined (template line 3)");
    check_error("{{ m.description }}", HEARTH_ERR_FORMAT, "'m' is undefined");
    check_render_ctx("[{{ m.f.description }}]", "{\"m\": {\"f\": {}}}", "[]");
    check_error_lim("{{ m.x.y }}", "{\"m\": {}}", NULL, HEARTH_ERR_FORMAT,
                    "UndefinedError: 'dict object' has no attribute 'x'");
    check_error_lim("{{ 'a' + m }}", "{\"m\": {}}", NULL, HEARTH_ERR_FORMAT,
                    "TypeError: can only concatenate str (not \"dict\") to str");
    check_error("{{ [1, 2]|map('string')|tojson }}", HEARTH_ERR_FORMAT,
                "TypeError: Object of type generator is not JSON serializable");
    check_error("{{ x|tojson }}", HEARTH_ERR_FORMAT, "Object of type Undefined is not JSON serializable");
    check_error("{{ 1 / 0 }}", HEARTH_ERR_FORMAT, "ZeroDivisionError");
    check_error("{{ 1 < 'a' }}", HEARTH_ERR_FORMAT, "'<' not supported between instances of 'int' and 'str'");
    check_error("{% for x in 5 %}{% endfor %}", HEARTH_ERR_FORMAT, "'int' object is not iterable");
    check_error("{{ x|from_json }}", HEARTH_ERR_FORMAT, "No filter named 'from_json' found.");
    check_error("{{ 2 ** 100 }}", HEARTH_ERR_FORMAT, "OverflowError");
    /* an unknown filter only fails when it runs, as Jinja2 does inside a branch */
    check_render("{% if false %}{{ x|from_json }}{% endif %}ok", "ok");
}

static void test_bad_context(void **state) {
    chat_template *t = NULL;
    hearth_err err = {0};
    assert_int_equal(chat_template_new("x", 1, &t, &err), HEARTH_OK);
    json_t *arr = json_array();
    char *out = NULL;
    assert_int_equal(chat_template_render(t, arr, NULL, &out, NULL, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "JSON object"));
    assert_int_equal(chat_template_render(t, NULL, NULL, &out, NULL, &err), HEARTH_OK);
    assert_string_equal(out, "x");
    mem_free(out);
    json_decref(arr);
    chat_template_free(t);
    chat_template_free(NULL);
}

static void test_strftime_now(void **state) {
    setenv("HEARTH_NOW", "2026-11-23 12:00:00", 1);
    check_render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%A %H:%M') }}", "23 Nov 2026|Monday 12:00");
    unsetenv("HEARTH_NOW");
    char *out;
    hearth_err err = {0};
    assert_int_equal(chat_try("{{ strftime_now('%Y') }}", NULL, NULL, &out, &err), HEARTH_OK);
    assert_int_equal(strlen(out), 4);
    mem_free(out);
}

static const char *const fail_src =
    "{%- set ns = namespace(sys='') -%}{%- macro show(m) -%}<{{ m.role|upper }}>{{ m.content|trim }}{%- endmacro -%}"
    "{%- for m in messages -%}{%- if m.role == 'system' %}{% set ns.sys = m.content %}{% endif -%}"
    "{{ show(m) }}{{ m|tojson(indent=1) }}{{ m.content.split(' ')|map('upper')|join(',') }}"
    "{%- endfor -%}{{ tools|selectattr('type', 'equalto', 'function')|list|tojson }}{{ ns.sys[::-1] }}";
static const char *const fail_ctx =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"be nice\"}, {\"role\": \"user\", \"content\": \" hi there \"}],"
    " \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]}";

static void test_allocation_failures(void **state) {
    char *want;
    hearth_err err = {0};
    assert_int_equal(chat_try(fail_src, fail_ctx, NULL, &want, &err), HEARTH_OK);
    int failures = 0;
    for (long n = 1;; n++) {
        char *out = NULL;
        mem_fail_at(n);
        hearth_status st = chat_try(fail_src, fail_ctx, NULL, &out, &err);
        mem_fail_at(0);
        if (st == HEARTH_OK) {
            assert_string_equal(out, want);
            mem_free(out);
            break;
        }
        if (st != HEARTH_ERR_NOMEM) printf("allocation %ld failed: status %d: %s\n", n, st, err.msg);
        assert_int_equal(st, HEARTH_ERR_NOMEM);
        assert_null(out);
        failures++;
    }
    printf("allocation failure injected at %d points, each ended cleanly\n", failures);
    assert_true(failures > 20);
    mem_free(want);
}

typedef struct worker {
    const chat_template *t;
    json_t *ctx;
    char *out;
} worker;

static void *render_many(void *arg) {
    worker *w = arg;
    for (int i = 0; i < 50; i++) {
        char *out = NULL;
        hearth_err err;
        if (chat_template_render(w->t, w->ctx, NULL, &out, NULL, &err) != HEARTH_OK) return NULL;
        mem_free(w->out);
        w->out = out;
    }
    return arg;
}

static void test_threads_share_template(void **state) {
    chat_template *t = NULL;
    hearth_err err = {0};
    assert_int_equal(chat_template_new(fail_src, strlen(fail_src), &t, &err), HEARTH_OK);
    json_t *ctx = json_loads(fail_ctx, 0, NULL);
    worker w[2] = {{t, ctx, NULL}, {t, ctx, NULL}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, render_many, &w[i]), 0);
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_non_null(r);
    }
    assert_string_equal(w[0].out, w[1].out);
    mem_free(w[0].out);
    mem_free(w[1].out);
    json_decref(ctx);
    chat_template_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_budget),
        cmocka_unit_test(test_sandbox_range),
        cmocka_unit_test(test_recursion),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_output_limits),
        cmocka_unit_test(test_security),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bad_context),
        cmocka_unit_test(test_strftime_now),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_threads_share_template),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
