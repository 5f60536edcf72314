/* `hearth logits` and `hearth run` as a user runs them: the logits file equals what the
 * library computes, --temp 0 prints the greedy continuation's text, seeds repeat and
 * differ, and every broken input (missing file, text file, truncated GGUF, unknown
 * architecture, unsupported tensor type, prompt longer than the context, bad usage)
 * ends with exit 1 or 2 and exactly one "hearth: error:" line, never a signal. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "engine/generate.h"
#include "gguf/types.h"
#include "gguf_edit.h"
#include "kernels/kernels.h"

#define F16_MODEL "models/llama-spm-f16.gguf"
#define TINY_MODEL "models/llama-2-tiny-random.gguf"

static char model_f16[1024], model_tiny[1024];

static int setup(void **state) {
    snprintf(model_f16, sizeof model_f16, "%s", fixture_path(F16_MODEL));
    snprintf(model_tiny, sizeof model_tiny, "%s", fixture_path(TINY_MODEL));
    return 0;
}

static void tmp_path(char *buf, size_t cap, const char *what) {
    snprintf(buf, cap, "/tmp/hearth-cli-model-%d-%s", (int)getpid(), what);
}

typedef struct lib_rows {
    float *data;
    int64_t rows;
} lib_rows;

static hearth_status keep_row(void *ud, int64_t index, const float *logits, int64_t n_vocab, hearth_err *err) {
    lib_rows *r = ud;
    memcpy(r->data + r->rows * n_vocab, logits, (size_t)n_vocab * sizeof(float));
    r->rows++;
    return HEARTH_OK;
}

/* The library's logits for text (tokenized like `hearth logits`). */
static lib_rows library_logits(const char *path, const char *text, bool all, json_t **tokens_out) {
    hearth_err err;
    gen_model *gm = NULL;
    gen_engine *e = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(gen_model_open(path, &gm, &err), HEARTH_OK);
    assert_int_equal(tok_encode(gm->vocab, text, strlen(text), true, false, &ids, &n, &err), HEARTH_OK);
    gen_config cfg = {.n_threads = 1, .all_logits = all};
    assert_int_equal(gen_engine_new(gm->model, gm->vocab, &cfg, &e, &err), HEARTH_OK);
    int64_t n_vocab = model_hp(gm->model)->n_vocab;
    lib_rows r = {malloc((size_t)((all ? (int64_t)n : 1) * n_vocab) * sizeof(float)), 0};
    assert_int_equal(gen_eval(e, ids, n, all, keep_row, &r, &err), HEARTH_OK);
    *tokens_out = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(*tokens_out, json_integer(ids[i]));
    mem_free(ids);
    gen_engine_free(e);
    gen_model_close(gm);
    return r;
}

static void check_logits_run(const char *extra_args, const char *text, bool all) {
    char out_path[256], args[4096];
    tmp_path(out_path, sizeof out_path, "logits.f32");
    snprintf(args, sizeof args, "logits -m '%s' -o '%s' -t 2 %s %s", model_f16, out_path, all ? "--all" : "",
             extra_args);
    char *out = NULL, *errout = NULL;
    int code = run_hearth(args, &out, &errout);
    if (code != 0) fail_msg("hearth %s: exit %d, stderr: %s", args, code, errout);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    if (!j) fail_msg("stdout is not one JSON object: '%s' (%s)", out, jerr.text);
    json_t *lib_tokens;
    lib_rows lib = library_logits(model_f16, text, all, &lib_tokens);
    if (!json_equal(json_object_get(j, "tokens"), lib_tokens))
        fail_msg("tokens differ: cli %s", out);
    assert_int_equal(json_integer_value(json_object_get(j, "n_vocab")), 32000);
    assert_int_equal(json_integer_value(json_object_get(j, "rows")), lib.rows);
    size_t len;
    char *file = read_file(out_path, &len);
    assert_non_null(file);
    assert_int_equal(len, (size_t)lib.rows * 32000 * sizeof(float));
    const float *got = (const float *)file;
    for (int64_t i = 0; i < lib.rows * 32000; i++)
        if (fabsf(got[i] - lib.data[i]) > 1e-5f * fmaxf(1.0f, fabsf(lib.data[i])))
            fail_msg("logit %lld: file %g, library %g", (long long)i, got[i], lib.data[i]);
    free(file);
    free(lib.data);
    json_decref(lib_tokens);
    json_decref(j);
    free(out);
    free(errout);
    unlink(out_path);
}

static void test_logits_file(void **state) {
    if (!fixtures_available()) return;
    check_logits_run("-p 'The capital of France is'", "The capital of France is", true);
    check_logits_run("-p 'The capital of France is'", "The capital of France is", false);
    char in_path[256], args[512];
    tmp_path(in_path, sizeof in_path, "prompt.txt");
    FILE *f = fopen(in_path, "wb");
    fputs("Hello world!\n\tTabs", f);
    fclose(f);
    snprintf(args, sizeof args, "--stdin < '%s'", in_path);
    check_logits_run(args, "Hello world!\n\tTabs", true);
    unlink(in_path);
}

static char *run_text(const char *args_fmt, const char *model_path, const char *extra) {
    char args[4096];
    snprintf(args, sizeof args, args_fmt, model_path, extra);
    char *out = NULL, *errout = NULL;
    int code = run_hearth(args, &out, &errout);
    if (code != 0) fail_msg("hearth %s: exit %d, stderr: %s", args, code, errout);
    if (!strstr(errout, "tokens/s")) fail_msg("no timings on stderr: %s", errout);
    free(errout);
    return out;
}

static void test_run_greedy_text(void **state) {
    if (!fixtures_available()) return;
    size_t len;
    char *ref = read_file(fixture_path("ref/llama-spm-f16/ref.json"), &len);
    json_t *root = json_loads(ref, 0, NULL);
    json_t *c0 = json_array_get(json_object_get(root, "cases"), 0), *greedy = json_object_get(c0, "greedy");
    hearth_err err;
    gen_model *gm = NULL;
    assert_int_equal(gen_model_open(model_f16, &gm, &err), HEARTH_OK);
    tok_stream *s = tok_stream_new(gm->vocab, NULL, 0);
    char expected[4096] = "";
    size_t n_exp = 0;
    char *piece;
    size_t n;
    for (size_t i = 0; i < json_array_size(greedy); i++) {
        assert_int_equal(tok_stream_push(s, (int32_t)json_integer_value(json_array_get(greedy, i)), &piece, &n, &err),
                         HEARTH_OK);
        memcpy(expected + n_exp, piece, n);
        n_exp += n;
    }
    assert_int_equal(tok_stream_flush(s, &piece, &n, &err), HEARTH_OK);
    memcpy(expected + n_exp, piece, n);
    n_exp += n;
    expected[n_exp] = '\0';

    char extra[1024];
    snprintf(extra, sizeof extra, "-p '%s'", json_string_value(json_object_get(c0, "prompt")));
    char *out = run_text("run -m '%s' -n 24 --temp 0 -t 2 %s", model_f16, extra);
    if (strcmp(out, expected) != 0) fail_msg("run --temp 0 printed\n'%s'\nexpected the greedy text\n'%s'", out, expected);
    free(out);
    tok_stream_free(s);
    gen_model_close(gm);
    json_decref(root);
    free(ref);
}

static void test_run_seeds(void **state) {
    if (!fixtures_available()) return;
    const char *fmt = "run -m '%s' -p 'Once upon a time' -n 16 --temp 1 --top-k 0 --top-p 1 --min-p 0 %s";
    char *a = run_text(fmt, model_f16, "--seed 7");
    char *b = run_text(fmt, model_f16, "--seed 7");
    char *c = run_text(fmt, model_f16, "--seed 8");
    assert_true(strlen(a) > 0);
    if (strcmp(a, b) != 0) fail_msg("same seed, different text:\n'%s'\n'%s'", a, b);
    if (strcmp(a, c) == 0) fail_msg("seeds 7 and 8 gave the same text '%s'", a);
    free(a), free(b), free(c);
}

/* Runs args; expects exit code `code`, nothing on stdout, one error line containing needle. */
static void expect_error(const char *args, int code, const char *needle) {
    char *out = NULL, *errout = NULL;
    int got = run_hearth(args, &out, &errout);
    if (got != code) fail_msg("hearth %s: exit %d (want %d), stderr: %s", args, got, code, errout);
    size_t len = strlen(errout);
    bool one_line = len > 0 && errout[len - 1] == '\n' && strchr(errout, '\n') == errout + len - 1;
    if (strncmp(errout, "hearth: error: ", 15) != 0 || !one_line)
        fail_msg("hearth %s: stderr is not one 'hearth: error:' line: '%s'", args, errout);
    if (needle && !strstr(errout, needle)) fail_msg("hearth %s: '%s' does not mention '%s'", args, errout, needle);
    free(out);
    free(errout);
}

static void both_commands(const char *model_path, int code, const char *needle) {
    char args[2048], out_path[256];
    tmp_path(out_path, sizeof out_path, "err.f32");
    snprintf(args, sizeof args, "run -m '%s' -p 'hello' -n 2", model_path);
    expect_error(args, code, needle);
    snprintf(args, sizeof args, "logits -m '%s' -p 'hello' -o '%s'", model_path, out_path);
    expect_error(args, code, needle);
    assert_int_not_equal(access(out_path, F_OK), 0); /* no output file left behind */
}

static void test_errors(void **state) {
    if (!fixtures_available()) return;
    char path[256];
    both_commands("/nonexistent/model.gguf", 1, "model.gguf");

    tmp_path(path, sizeof path, "text.gguf");
    FILE *f = fopen(path, "wb");
    fputs("this is a text file, not a model\n", f);
    fclose(f);
    both_commands(path, 1, "GGUF");

    size_t len;
    char *bytes = read_file(model_tiny, &len);
    f = fopen(path, "wb");
    fwrite(bytes, 1, len / 2, f);
    fclose(f);
    free(bytes);
    both_commands(path, 1, NULL);

    assert_int_equal(gguf_edit_copy(model_tiny, &(gguf_edit){.set_str_key = "general.architecture",
                                                                 .set_str_val = "gpt2"}, path, NULL, NULL), 0);
    both_commands(path, 1, "unsupported architecture 'gpt2'");

    for (uint32_t t = 0; t < GGML_TYPE_LIMIT; t++) {
        const ggml_type_info *ti = ggml_type_get(t);
        if (!ti || !ti->name || kern_traits(t) || 32 % ti->block_elems != 0) continue;
        assert_int_equal(gguf_edit_copy(model_tiny, &(gguf_edit){.retype_tensor = "blk.0.ffn_down.weight",
                                                                     .new_type = t}, path, NULL, NULL), 0);
        both_commands(path, 1, "which Hearth does not support");
        break;
    }

    assert_int_equal(gguf_edit_copy(model_tiny, &(gguf_edit){.drop_tensor = "blk.0.attn_k.weight"}, path, NULL,
                                    NULL), 0);
    both_commands(path, 1, "missing tensor 'blk.0.attn_k.weight'");
    unlink(path);

    char args[2048];
    snprintf(args, sizeof args, "run -m '%s' --ctx 4 -p 'a prompt that is longer than four tokens'", model_tiny);
    expect_error(args, 1, "longer than the context");
    tmp_path(path, sizeof path, "ctx.f32");
    snprintf(args, sizeof args, "logits -m '%s' --ctx 4 -o '%s' -p 'a prompt that is longer than four tokens'",
             model_tiny, path);
    expect_error(args, 1, "longer than the context");

    expect_error("run -p hello", 2, "-m");
    expect_error("logits -m x.gguf -p hi", 2, "-o");
    snprintf(args, sizeof args, "run -m '%s' -p hi --temp warm", model_tiny);
    expect_error(args, 2, "--temp");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logits_file),
        cmocka_unit_test(test_run_greedy_text),
        cmocka_unit_test(test_run_seeds),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
