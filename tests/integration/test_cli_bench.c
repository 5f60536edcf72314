/* `hearth bench` on a small synthetic model: --json is exactly an array of
 * {"test","tps_mean","tps_sd"} with pp<P>, tg<N> and tg<N>x<B> entries and positive
 * speeds; the text form is a markdown table with the model columns; usage errors exit 2
 * and a bad model file exits 1 with one line. No timing is asserted. */
#include "testutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char model_path[64];

static int run(const char *args, char **out, char **err) {
    int code = run_hearth(args, out, err);
    assert_non_null(*out);
    assert_non_null(*err);
    return code;
}

static int setup(void **state) {
    snprintf(model_path, sizeof model_path, "/tmp/hearth-bench-%d.gguf", (int)getpid());
    char args[256], *out, *err;
    snprintf(args, sizeof args, "mkmodel --arch llama --dim 128 --layers 2 --heads 4 --kv-heads 2 --ffn 256 "
                                "--vocab 512 --type q8_0 -o %s", model_path);
    int code = run_hearth(args, &out, &err);
    if (code != 0) printf("mkmodel failed: %s\n", err ? err : "");
    free(out), free(err);
    return code;
}

static int teardown(void **state) {
    unlink(model_path);
    return 0;
}

static void test_json(void **state) {
    char args[256], *out, *err;
    snprintf(args, sizeof args, "bench -m %s -p 32 -n 8 -t 2 -r 2 --batch 3 --json", model_path);
    assert_int_equal(run(args, &out, &err), 0);
    json_error_t je;
    json_t *root = json_loads(out, 0, &je);
    if (!root) fail_msg("not JSON (%s): %s", je.text, out);
    assert_true(json_is_array(root));
    assert_int_equal(json_array_size(root), 3);
    const char *names[] = {"pp32", "tg8", "tg8x3"};
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(root, i);
        assert_int_equal(json_object_size(e), 3);
        assert_string_equal(json_string_value(json_object_get(e, "test")), names[i]);
        json_t *mean = json_object_get(e, "tps_mean"), *sd = json_object_get(e, "tps_sd");
        assert_true(json_is_number(mean) && json_is_number(sd));
        if (!(json_number_value(mean) > 0 && json_number_value(sd) >= 0))
            fail_msg("%s: mean %g sd %g", names[i], json_number_value(mean), json_number_value(sd));
    }
    json_decref(root);
    free(out), free(err);

    snprintf(args, sizeof args, "bench -m %s -p 0 -n 4 -r 1 --json", model_path);
    assert_int_equal(run(args, &out, &err), 0);
    root = json_loads(out, 0, &je);
    assert_non_null(root);
    assert_int_equal(json_array_size(root), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(root, 0), "test")), "tg4");
    json_decref(root);
    free(out), free(err);
}

static void test_table(void **state) {
    char args[256], *out, *err;
    snprintf(args, sizeof args, "bench -m %s -p 16 -n 4 -r 1", model_path);
    assert_int_equal(run(args, &out, &err), 0);
    assert_non_null(strstr(out, "| model | size | params | threads | cpu path | test | t/s |"));
    assert_non_null(strstr(out, "| llama Q8_0 |"));
    assert_non_null(strstr(out, "| pp16 |"));
    assert_non_null(strstr(out, "| tg4 |"));
    assert_non_null(strstr(out, " ± "));
    free(out), free(err);
}

static void test_errors(void **state) {
    char *out, *err;
    assert_int_equal(run("bench", &out, &err), 2);
    assert_non_null(strstr(err, "usage: hearth bench"));
    free(out), free(err);
    assert_int_equal(run("bench -m x.gguf -r 0", &out, &err), 2);
    free(out), free(err);
    assert_int_equal(run("bench -m x.gguf --bogus", &out, &err), 2);
    free(out), free(err);
    assert_int_equal(run("bench -m /nonexistent/model.gguf", &out, &err), 1);
    assert_non_null(strstr(err, "hearth: error: /nonexistent/model.gguf"));
    assert_null(strchr(strchr(err, '\n') + 1, '\n'));
    free(out), free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
