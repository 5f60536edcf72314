/* The max_queue_wait model key: a duration (0 or absent: off) given per model, in
 * defaults, by HEARTH_MAX_QUEUE_WAIT or as the setting models.max_queue_wait; bad values
 * refused with their place; the dump reads back to the same bound; and changing it alone
 * does not make a reload load the model again (it applies to the next request). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "base/mem.h"
#include "config/config.h"

static cfg_config *build(const char *yaml, const cfg_setting *set, size_t n, cfg_errors *errs) {
    cfg_config *c = NULL;
    hearth_err err = {0};
    cfg_build_text(yaml, strlen(yaml), "t.yaml", true, set, n, &c, errs, &err);
    return c;
}

static cfg_config *build_ok(const char *yaml, const cfg_setting *set, size_t n) {
    cfg_errors errs;
    cfg_config *c = build(yaml, set, n, &errs);
    if (!c) fail_msg("expected a valid config, got: %s", errs.n ? errs.msg[0] : "?");
    return c;
}

static void expect_s(double want, double got, const char *what) {
    if (!(fabs(want - got) < 1e-12)) fail_msg("%s: max_queue_wait %g s expected, got %g s", what, want, got);
}

static void test_parse_and_defaults(void **state) {
    unsetenv("HEARTH_MAX_QUEUE_WAIT");
    cfg_config *c = build_ok("defaults: {max_queue_wait: 750ms}\n"
                             "models:\n  - {name: a, path: /a.gguf}\n  - {name: b, path: /b.gguf, max_queue_wait: 2s}\n"
                             "  - {name: c, path: /c.gguf, max_queue_wait: 0}\n",
                             NULL, 0);
    expect_s(0.75, c->models[0].max_queue_wait_s, "from defaults");
    expect_s(2, c->models[1].max_queue_wait_s, "own value");
    expect_s(0, c->models[2].max_queue_wait_s, "own 0 (off) over defaults");
    cfg_free(c);
    c = build_ok("models:\n  - {name: a, path: /a.gguf}\n", NULL, 0);
    expect_s(0, c->models[0].max_queue_wait_s, "built-in default (off)");
    cfg_free(c);
}

static void test_env_and_settings(void **state) {
    const char *yaml = "models:\n  - {name: a, path: /a.gguf, max_queue_wait: 3s}\n";
    setenv("HEARTH_MAX_QUEUE_WAIT", "250ms", 1);
    cfg_config *c = build_ok(yaml, NULL, 0);
    expect_s(0.25, c->models[0].max_queue_wait_s, "environment over the file");
    cfg_free(c);
    cfg_setting set = {"models.max_queue_wait", "1.5s", "flag --max-queue-wait"};
    c = build_ok(yaml, &set, 1);
    expect_s(1.5, c->models[0].max_queue_wait_s, "setting over the environment");
    expect_s(1.5, c->defaults.max_queue_wait_s, "setting reaches the defaults");
    cfg_free(c);
    unsetenv("HEARTH_MAX_QUEUE_WAIT");
}

static void test_bad_values(void **state) {
    static const char *const bad[] = {"-1s", "abc", "2h", "forever", "1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "models:\n  - name: a\n    path: /a.gguf\n    max_queue_wait: '%s'\n", bad[i]);
        cfg_errors errs;
        cfg_config *c = build(yaml, NULL, 0, &errs);
        if (c) fail_msg("max_queue_wait '%s' was accepted as %g s", bad[i], c->models[0].max_queue_wait_s);
        if (errs.n < 1 || !strstr(errs.msg[0], "t.yaml:4:") || !strstr(errs.msg[0], "max_queue_wait"))
            fail_msg("max_queue_wait '%s': message without place or key: %s", bad[i], errs.n ? errs.msg[0] : "(none)");
    }
    cfg_setting set = {"models.max_queue_wait", "soon", "flag --max-queue-wait"};
    cfg_errors errs;
    cfg_config *c = build("models:\n  - {name: a, path: /a.gguf}\n", &set, 1, &errs);
    assert_null(c);
    if (errs.n < 1 || !strstr(errs.msg[0], "flag --max-queue-wait")) fail_msg("message: %s", errs.msg[0]);
}

static void test_dump_and_reload(void **state) {
    cfg_config *c = build_ok("defaults: {max_queue_wait: 1.25s}\nmodels:\n  - {name: a, path: /a.gguf}\n"
                             "  - {name: b, path: /a.gguf, max_queue_wait: 40ms}\n  - {name: c, path: /a.gguf,"
                             " max_queue_wait: 0}\n",
                             NULL, 0);
    char *one = cfg_dump(c);
    assert_non_null(one);
    cfg_config *d = build_ok(one, NULL, 0);
    char *two = cfg_dump(d);
    assert_string_equal(one, two);
    for (size_t i = 0; i < 3; i++) expect_s(c->models[i].max_queue_wait_s, d->models[i].max_queue_wait_s, "dumped");
    /* a and b differ only in the bound: the same loaded model */
    assert_true(cfg_model_same_load(&c->models[0], &c->models[1]));
    mem_free(one);
    mem_free(two);
    cfg_free(c);
    cfg_free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_defaults),
        cmocka_unit_test(test_env_and_settings),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_dump_and_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
