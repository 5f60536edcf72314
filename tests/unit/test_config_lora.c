/* Configuration of LoRA adapters: `--lora PATH[:SCALE]` (setting model.lora) adds an
 * adapter named after its file to the -m model, repeatable, with scale checks and a
 * clear error without -m; adapter names with ':' or used twice in one model are refused
 * with the key that is wrong. */
#include "testutil.h"

#include <string.h>

#include "config/config.h"

static void test_cli_lora(void **state) {
    cfg_setting set[] = {
        {"model", "/m/base.gguf", "flag -m"},
        {"model.lora", "/a/support-v2.gguf", "flag --lora"},
        {"model.lora", "/a/terse.gguf:0.5", "flag --lora"},
    };
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    if (cfg_build_text("", 0, "t.yaml", false, set, 3, &c, &errs, &err) != HEARTH_OK) fail_msg("%s", err.msg);
    assert_int_equal(c->n_models, 1);
    const cfg_model *m = &c->models[0];
    assert_int_equal(m->n_adapters, 2);
    assert_string_equal(m->adapters[0].name, "support-v2");
    assert_string_equal(m->adapters[0].path, "/a/support-v2.gguf");
    assert_true(m->adapters[0].scale == 1.0);
    assert_string_equal(m->adapters[1].name, "terse");
    assert_string_equal(m->adapters[1].path, "/a/terse.gguf");
    assert_true(m->adapters[1].scale == 0.5);
    cfg_free(c);
}

static void expect_error(const char *yaml, const cfg_setting *set, size_t n, const char *want) {
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    hearth_status st = cfg_build_text(yaml, strlen(yaml), "t.yaml", false, set, n, &c, &errs, &err);
    if (st != HEARTH_ERR_INVALID) fail_msg("accepted (status %d), expected an error containing '%s'", st, want);
    if (!strstr(err.msg, want)) fail_msg("error '%s' does not contain '%s'", err.msg, want);
}

static void test_bad_adapters(void **state) {
    cfg_setting no_model[] = {{"model.lora", "/a/x.gguf", "flag --lora"}};
    expect_error("", no_model, 1, "needs a model given with -m");
    cfg_setting bad_scale[] = {{"model", "/m/base.gguf", "flag -m"}, {"model.lora", "/a/x.gguf:500", "flag --lora"}};
    expect_error("", bad_scale, 2, "scale must be a number from -100 to 100");
    expect_error("models:\n  - {name: a, path: /a.gguf, adapters: [{name: s, path: /s}, {name: s, path: /t}]}\n",
                 NULL, 0, "models[0].adapters[1].name: model 'a' has two adapters named 's'");
    expect_error("models:\n  - {name: a, path: /a.gguf, adapters: [{name: 'x:y', path: /s}]}\n", NULL, 0,
                 "adapter name 'x:y' may not contain ':'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_lora),
        cmocka_unit_test(test_bad_adapters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
