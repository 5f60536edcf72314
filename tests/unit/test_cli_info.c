/* `hearth info`: usage and exit codes, the text and JSON summaries of a fixture model
 * (checked against the reader), and JSON that stays valid for awkward metadata values. */
#include "testutil.h"

#include <math.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "gguf/writer.h"

static int run(const char *args, char **out, char **err) {
    *out = *err = NULL;
    int code = run_hearth(args, out, err);
    assert_non_null(*out);
    assert_non_null(*err);
    return code;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

static void test_usage(void **state) {
    char *out, *err;
    assert_int_equal(run("info --help", &out, &err), 0);
    assert_non_null(strstr(out, "usage: hearth info FILE [--json]"));
    assert_string_equal(err, "");
    free(out), free(err);

    assert_int_equal(run("info", &out, &err), 2);
    assert_non_null(strstr(err, "usage: hearth info"));
    assert_string_equal(out, "");
    free(out), free(err);

    assert_int_equal(run("info --bogus x.gguf", &out, &err), 2);
    assert_non_null(strstr(err, "unknown option '--bogus'"));
    free(out), free(err);

    assert_int_equal(run("info a.gguf b.gguf", &out, &err), 2);
    free(out), free(err);

    assert_int_equal(run("info /nonexistent/model.gguf", &out, &err), 1);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "hearth: error: /nonexistent/model.gguf: cannot open"));
    assert_string_equal(out, "");
    free(out), free(err);
}

/* Parameter count and per-type tensor count, computed from the reader. */
static uint64_t count_params(const gguf_file *f, uint32_t type, uint64_t *n_of_type) {
    uint64_t total = 0;
    *n_of_type = 0;
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        total += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        *n_of_type += t->type == type;
    }
    return total;
}

static void test_fixture_text_and_json(void **state) {
    if (!fixtures_available()) return;
    const char *model = fixture_path("models/llama-spm-f16.gguf");
    char path[4096];
    snprintf(path, sizeof path, "%s", model);
    gguf_file *f = NULL;
    hearth_err e = {0};
    assert_int_equal(gguf_open(path, &f, &e), HEARTH_OK);
    uint64_t n_f16, n_params = count_params(f, GGML_F16, &n_f16);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);

    char args[4200], *out, *err;
    snprintf(args, sizeof args, "info '%s'", path);
    assert_int_equal(run(args, &out, &err), 0);
    assert_string_equal(err, "");
    char want[256];
    const char *lines[] = {"architecture:    llama\n", "gguf version:    3\n", "vocab:           llama, 32000 tokens\n",
                           "chat template:   no\n", "  llama.block_count                       2\n",
                           "  llama.embedding_length                  256\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (!strstr(out, lines[i])) fail_msg("text output lacks '%s':\n%s", lines[i], out);
    snprintf(want, sizeof want, "tensors:         %llu (F32 %llu, F16 %llu)\n",
             (unsigned long long)gguf_tensor_count(f), (unsigned long long)(gguf_tensor_count(f) - n_f16),
             (unsigned long long)n_f16);
    if (!strstr(out, want)) fail_msg("text output lacks '%s':\n%s", want, out);
    snprintf(want, sizeof want, "parameters:      %llu (", (unsigned long long)n_params);
    if (!strstr(out, want)) fail_msg("text output lacks '%s':\n%s", want, out);
    free(out), free(err);

    snprintf(args, sizeof args, "info '%s' --json", path);
    assert_int_equal(run(args, &out, &err), 0);
    assert_string_equal(err, "");
    json_error_t jerr;
    json_t *j = json_loads(out, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) fail_msg("invalid JSON (%s at line %d): %s", jerr.text, jerr.line, out);
    assert_string_equal(json_string_value(json_object_get(j, "file")), path);
    assert_int_equal(json_integer_value(json_object_get(j, "file_size")), st.st_size);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "alignment")), 32);
    assert_string_equal(json_string_value(json_object_get(j, "architecture")), "llama");
    assert_int_equal(json_integer_value(json_object_get(j, "kv_count")), gguf_kv_count(f));
    assert_int_equal(json_integer_value(json_object_get(j, "tensor_count")), gguf_tensor_count(f));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "tensor_types"), "F16")), n_f16);
    assert_int_equal(json_integer_value(json_object_get(j, "n_params")), n_params);
    assert_string_equal(json_string_value(json_object_get(j, "vocab_type")), "llama");
    assert_int_equal(json_integer_value(json_object_get(j, "vocab_size")), 32000);
    assert_true(json_is_false(json_object_get(j, "chat_template")));
    json_t *meta = json_object_get(j, "metadata");
    assert_int_equal(json_object_size(meta), gguf_kv_count(f));
    assert_int_equal(json_integer_value(json_object_get(meta, "llama.block_count")), 2);
    json_t *tokens = json_object_get(meta, "tokenizer.ggml.tokens");
    assert_string_equal(json_string_value(json_object_get(tokens, "type")), "string");
    assert_int_equal(json_integer_value(json_object_get(tokens, "n")), 32000);
    double eps;
    assert_true(gguf_get_float(f, "llama.attention.layer_norm_rms_epsilon", &eps));
    assert_true(json_real_value(json_object_get(meta, "llama.attention.layer_norm_rms_epsilon")) == eps);
    json_decref(j);
    free(out), free(err);
    gguf_close(f);
}

/* Values JSON cannot hold directly still give valid JSON: invalid UTF-8, NaN, 2^64-1. */
static void test_json_awkward_values(void **state) {
    char dir[] = "/tmp/hearth-info-XXXXXX", path[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/odd.gguf", dir);
    gguf_writer *w = gguf_writer_new();
    hearth_err e = {0};
    const char *toks[] = {"<s>", "a", "b"};
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "toy", &e), HEARTH_OK);
    assert_int_equal(gguf_writer_set_strn(w, "toy.bad_utf8", "ok\xff\xfe\0end", 8, &e), HEARTH_OK);
    assert_int_equal(gguf_writer_set_float(w, "toy.nan", GGUF_V_FLOAT32, NAN, &e), HEARTH_OK);
    assert_int_equal(gguf_writer_set_u64(w, "toy.big", UINT64_MAX, &e), HEARTH_OK);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.chat_template", "{{ messages }}", &e), HEARTH_OK);
    assert_int_equal(gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", toks, 3, &e), HEARTH_OK);
    assert_int_equal(gguf_writer_write_file(w, path, &e), HEARTH_OK);
    gguf_writer_free(w);

    char args[200], *out, *err;
    snprintf(args, sizeof args, "info %s --json", path);
    assert_int_equal(run(args, &out, &err), 0);
    json_error_t jerr;
    json_t *j = json_loads(out, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!j) fail_msg("invalid JSON (%s): %s", jerr.text, out);
    json_t *meta = json_object_get(j, "metadata");
    assert_true(json_is_null(json_object_get(meta, "toy.nan")));
    assert_true(json_real_value(json_object_get(meta, "toy.big")) == 18446744073709551615.0);
    json_t *bad = json_object_get(meta, "toy.bad_utf8");
    assert_int_equal(json_string_length(bad), 2 + 3 + 3 + 1 + 3);
    assert_memory_equal(json_string_value(bad), "ok\xef\xbf\xbd\xef\xbf\xbd\0end", 13);
    assert_true(json_is_true(json_object_get(j, "chat_template")));
    assert_int_equal(json_integer_value(json_object_get(j, "vocab_size")), 3);
    assert_true(json_is_null(json_object_get(j, "vocab_type")));
    assert_int_equal(json_integer_value(json_object_get(j, "n_params")), 0);
    json_decref(j);
    free(out), free(err);

    snprintf(args, sizeof args, "info %s", path);
    assert_int_equal(run(args, &out, &err), 0);
    if (!strstr(out, "  toy.bad_utf8                            ok\xff\xfe\\x00end\n") ||
        !strstr(out, "chat template:   yes\n") || !strstr(out, "  toy.nan                                 nan\n"))
        fail_msg("unexpected text output:\n%s", out);
    free(out), free(err);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_fixture_text_and_json),
        cmocka_unit_test(test_json_awkward_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
