/* `hearth mkmodel` from the command line: usage and exit codes, one-line errors that
 * name the bad parameter, byte-identical output for the same seed, other bytes for
 * another seed, and a copied vocabulary. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"

static char path_a[64], path_b[64];

static int run(const char *args, char **out, char **err) {
    int code = run_hearth(args, out, err);
    assert_non_null(*out);
    assert_non_null(*err);
    return code;
}

static int lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

/* Runs args (a mkmodel command line), expects exit code `code` and, for failures, one
 * stderr line containing needle. */
static void expect(const char *args, int code, const char *needle) {
    char *out, *err;
    int got = run(args, &out, &err);
    if (got != code) fail_msg("'%s' exited %d, want %d; stderr: %s", args, got, code, err);
    if (needle && !strstr(err, needle)) fail_msg("'%s': stderr '%s' lacks '%s'", args, err, needle);
    if (code == 1 && lines(err) != 1) fail_msg("'%s': %d stderr lines: %s", args, lines(err), err);
    free(out), free(err);
}

static void test_usage_and_errors(void **state) {
    char *out, *err, args[512];
    assert_int_equal(run("mkmodel --help", &out, &err), 0);
    assert_non_null(strstr(out, "usage: hearth mkmodel"));
    assert_non_null(strstr(out, "tinyllama-1.1b"));
    free(out), free(err);

    snprintf(args, sizeof args, "mkmodel --arch llama -o %s", path_a);
    expect(args, 2, "--type is required");
    snprintf(args, sizeof args, "mkmodel --type q8_0 -o %s", path_a);
    expect(args, 2, "--arch or --preset");
    snprintf(args, sizeof args, "mkmodel --arch gpt9 --type q8_0 -o %s", path_a);
    expect(args, 2, "unknown architecture 'gpt9'");
    snprintf(args, sizeof args, "mkmodel --preset huge --type q8_0 -o %s", path_a);
    expect(args, 2, "unknown preset 'huge'");
    snprintf(args, sizeof args, "mkmodel --arch llama --type q9_9 -o %s", path_a);
    expect(args, 2, "unknown type 'q9_9'");
    snprintf(args, sizeof args, "mkmodel --arch llama --type q8_0 --vocab 12 -o %s", path_a);
    expect(args, 2, "--vocab");
    snprintf(args, sizeof args, "mkmodel --arch llama --type q8_0 --dim 256 --heads 4 --kv-heads 3 -o %s", path_a);
    expect(args, 1, "KV heads");
    snprintf(args, sizeof args, "mkmodel --arch llama --type q8_0 --vocab-from /nonexistent.gguf -o %s", path_a);
    expect(args, 1, "/nonexistent.gguf");
    expect("mkmodel --arch llama --type q8_0 --vocab 300 --dim 64 --layers 1 -o /nonexistent-dir/x.gguf", 1,
           "/nonexistent-dir/x.gguf");
    assert_int_equal(access(path_a, F_OK), -1);
}

static void test_same_seed_same_bytes(void **state) {
    char args[512];
    const char *shape = "--arch qwen2 --dim 128 --layers 2 --heads 4 --kv-heads 2 --ffn 256 --vocab 600 --type Q4_K_M";
    snprintf(args, sizeof args, "mkmodel %s --seed 11 -t 1 -o %s", shape, path_a);
    expect(args, 0, NULL);
    snprintf(args, sizeof args, "mkmodel %s --seed 11 -t 2 -o %s", shape, path_b);
    expect(args, 0, NULL);
    size_t na, nb;
    char *a = read_file(path_a, &na), *b = read_file(path_b, &nb);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(b);
    snprintf(args, sizeof args, "mkmodel %s --seed 12 -o %s", shape, path_b);
    expect(args, 0, NULL);
    b = read_file(path_b, &nb);
    assert_true(na != nb || memcmp(a, b, na) != 0);
    free(a), free(b);
    unlink(path_a), unlink(path_b);
}

static void test_vocab_from(void **state) {
    if (!fixtures_available()) return;
    char args[768];
    snprintf(args, sizeof args, "mkmodel --arch qwen3 --dim 64 --heads 2 --layers 1 --type f16 --vocab-from %s -o %s",
             fixture_path("models/qwen2t-bpe-q8_0.gguf"), path_a);
    expect(args, 0, NULL);
    gguf_file *f = NULL;
    hearth_err e = {0};
    if (gguf_open(path_a, &f, &e)) fail_msg("%s", e.msg);
    assert_int_equal(gguf_find_tensor(f, "token_embd.weight")->ne[1], 50257);
    gguf_str pre;
    assert_true(gguf_get_str(f, "tokenizer.ggml.pre", &pre) && gguf_str_eq(pre, "gpt-2"));
    gguf_close(f);
    unlink(path_a);
}

int main(void) {
    snprintf(path_a, sizeof path_a, "/tmp/hearth-mk-a-%d.gguf", (int)getpid());
    snprintf(path_b, sizeof path_b, "/tmp/hearth-mk-b-%d.gguf", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_and_errors),
        cmocka_unit_test(test_same_seed_same_bytes),
        cmocka_unit_test(test_vocab_from),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
