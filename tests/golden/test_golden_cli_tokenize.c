/* `hearth tokenize` on the fixture models: the ids printed equal the library's, --raw
 * drops BOS, special-token text typed by the user stays text, --stdin reads exact bytes,
 * and usage/runtime errors give one "hearth: error:" line with exit 2/1. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

/* The library's ids for text as the CLI line "id id ...\n". */
static char *library_line(const char *model_rel, const char *text, size_t len, bool add_special) {
    hearth_err err = {0};
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    assert_int_equal(gguf_open(fixture_path(model_rel), &f, &err), HEARTH_OK);
    assert_int_equal(tok_load(f, &v, &err), HEARTH_OK);
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(tok_encode(v, text, len, add_special, false, &ids, &n, &err), HEARTH_OK);
    char *line = malloc(n * 12 + 2);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += (size_t)sprintf(line + k, i ? " %d" : "%d", ids[i]);
    strcpy(line + k, "\n");
    mem_free(ids);
    tok_free(v);
    gguf_close(f);
    return line;
}

static char *run(const char *fmt, const char *a, const char *b, int *rc, char **errout) {
    char args[4096];
    snprintf(args, sizeof args, fmt, a, b);
    char *out = NULL;
    *rc = run_hearth(args, &out, errout);
    return out;
}

static void expect_cli(const char *model_rel, const char *text, bool raw) {
    char model[1024];
    snprintf(model, sizeof model, "%s", fixture_path(model_rel));
    int rc;
    char *err = NULL;
    char *out = run(raw ? "tokenize -m '%s' --raw '%s'" : "tokenize -m '%s' '%s'", model, text, &rc, &err);
    char *want = library_line(model_rel, text, strlen(text), !raw);
    if (rc != 0 || strcmp(out, want) != 0)
        print_error("hearth tokenize%s \"%s\": rc %d\n  got      %s  expected %s  stderr %s\n", raw ? " --raw" : "", text, rc,
                    out, want, err);
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
    free(out);
    free(err);
    free(want);
}

static void test_matches_library(void **state) {
    expect_cli("models/llama-spm-f16.gguf", "Hello world! 3.14", false);
    expect_cli("models/llama-spm-f16.gguf", "Hello world! 3.14", true);
    expect_cli("models/qwen2t-bpe-q8_0.gguf", "def f(x):\n    return x", false);
    expect_cli("models/bert-wpm-f16.gguf", "what is machine learning?", false);
}

static void test_raw_drops_bos(void **state) {
    char model[1024];
    snprintf(model, sizeof model, "%s", fixture_path("models/llama-spm-f16.gguf"));
    int rc;
    char *out = run("tokenize -m '%s' '%s'", model, "Hello", &rc, NULL);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "1 15043\n");
    free(out);
    out = run("tokenize -m '%s' --raw '%s'", model, "Hello", &rc, NULL);
    assert_string_equal(out, "15043\n");
    free(out);
}

static void test_special_text_stays_text(void **state) {
    char model[1024];
    int rc;
    snprintf(model, sizeof model, "%s", fixture_path("models/llama-spm-f16.gguf"));
    char *out = run("tokenize -m '%s' --raw '%s'", model, "<s>", &rc, NULL);
    assert_int_equal(rc, 0);
    assert_string_not_equal(out, "1\n");
    assert_null(strstr(out, " 1 "));
    assert_true(strncmp(out, "1 ", 2) != 0);
    free(out);
    snprintf(model, sizeof model, "%s", fixture_path("models/qwen2t-bpe-q8_0.gguf"));
    out = run("tokenize -m '%s' '%s'", model, "<|endoftext|>", &rc, NULL);
    assert_int_equal(rc, 0);
    assert_null(strstr(out, "50256"));
    assert_true(strchr(out, ' ') != NULL); /* several ids */
    free(out);
}

static void test_stdin_exact_bytes(void **state) {
    char path[] = "/tmp/hearth-tok-stdinXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] = "  tab\there\n\nend \xc3\xbc\n"; /* leading spaces, trailing newline */
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    char model[1024];
    snprintf(model, sizeof model, "%s", fixture_path("models/qwen2t-bpe-q8_0.gguf"));
    int rc;
    char *out = run("tokenize -m '%s' --stdin < '%s'", model, path, &rc, NULL);
    char *want = library_line("models/qwen2t-bpe-q8_0.gguf", text, sizeof text - 1, true);
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
    free(out);
    free(want);
    out = run("tokenize -m '%s' --stdin < '%s'", model, "/dev/null", &rc, NULL);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "\n");
    free(out);
    unlink(path);
}

static void expect_error(const char *args, int want_rc, const char *needle) {
    char *out = NULL, *err = NULL;
    int rc = run_hearth(args, &out, &err);
    if (rc != want_rc || !err || strncmp(err, "hearth: error: ", 15) != 0 || !strstr(err, needle))
        print_error("hearth %s: rc %d (want %d), stderr \"%s\" (want \"%s\")\n", args, rc, want_rc, err ? err : "", needle);
    assert_int_equal(rc, want_rc);
    assert_non_null(err);
    assert_int_equal(strncmp(err, "hearth: error: ", 15), 0);
    assert_non_null(strstr(err, needle));
    assert_int_equal(strchr(err, '\n') - err + 1, (long)strlen(err)); /* one line */
    assert_string_equal(out, "");
    free(out);
    free(err);
}

static void test_errors(void **state) {
    char args[2048];
    expect_error("tokenize 'x'", 2, "missing -m FILE");
    expect_error("tokenize -m", 2, "missing FILE");
    expect_error("tokenize -m /nonexistent.gguf", 2, "missing TEXT");
    expect_error("tokenize -m /nonexistent.gguf --bogus x", 2, "unknown option --bogus");
    expect_error("tokenize -m /nonexistent.gguf a b", 2, "more than one TEXT");
    expect_error("tokenize -m /nonexistent.gguf --stdin x", 2, "either --stdin or TEXT");
    expect_error("tokenize -m /nonexistent.gguf x", 1, "/nonexistent.gguf");
    snprintf(args, sizeof args, "tokenize -m '%s' x", fixture_path("adapters/lora-llama-spm-r8.gguf"));
    expect_error(args, 1, "tokenizer.ggml.model is missing");
    snprintf(args, sizeof args, "tokenize -m '%s' x", fixture_path("ref/llama-spm-f16/ref.json"));
    expect_error(args, 1, "ref.json");
}

int main(void) {
    if (!fixtures_available()) return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_library),     cmocka_unit_test(test_raw_drops_bos),
        cmocka_unit_test(test_special_text_stays_text), cmocka_unit_test(test_stdin_exact_bytes),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
