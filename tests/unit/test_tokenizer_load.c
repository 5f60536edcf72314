/* tok_load on GGUF files written in memory: a well-formed vocabulary loads; each kind of
 * malformed tokenizer.ggml.* metadata is refused with the right status and a message that
 * names the key; every allocation failure during load and encode ends cleanly. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "tokenizer/tokenizer.h"

#define N 8
static const char *const TOKENS[N] = {"<unk>", "<s>", "</s>", "<0x0A>", "\xe2\x96\x81", "a", "\xe2\x96\x81" "a", "b"};
static const int32_t TYPES[N] = {2, 3, 3, 6, 1, 1, 1, 1};
static const float SCORES[N] = {0, 0, 0, 0, -1, -2, -0.5f, -3};

typedef void (*edit_fn)(gguf_writer *w);

/* Writes a valid SPM vocabulary, lets edit change it, and loads it. */
static hearth_status load_with(edit_fn edit, tok_vocab **out, hearth_err *err) {
    gguf_writer *w = gguf_writer_new();
    assert_non_null(w);
    hearth_err werr = {0};
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama", &werr), HEARTH_OK);
    assert_int_equal(gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", &werr), HEARTH_OK);
    assert_int_equal(gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", TOKENS, N, &werr), HEARTH_OK);
    assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_V_INT32, TYPES, N, &werr), HEARTH_OK);
    assert_int_equal(gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_V_FLOAT32, SCORES, N, &werr), HEARTH_OK);
    assert_int_equal(gguf_writer_set_int(w, "tokenizer.ggml.bos_token_id", GGUF_V_UINT32, 1, &werr), HEARTH_OK);
    assert_int_equal(gguf_writer_set_int(w, "tokenizer.ggml.eos_token_id", GGUF_V_UINT32, 2, &werr), HEARTH_OK);
    if (edit) edit(w);
    void *buf = NULL;
    size_t size = 0;
    assert_int_equal(gguf_writer_write_memory(w, &buf, &size, &werr), HEARTH_OK);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(buf, size, "test.gguf", &f, &werr), HEARTH_OK);
    hearth_status st = tok_load(f, out, err);
    gguf_close(f); /* the vocabulary must not depend on the file */
    mem_free(buf);
    return st;
}

static void set_ok(gguf_writer *w, hearth_status st) { assert_int_equal(st, HEARTH_OK); }

static void test_valid_vocab(void **state) {
    tok_vocab *v = NULL;
    hearth_err err = {0};
    assert_int_equal(load_with(NULL, &v, &err), HEARTH_OK);
    assert_int_equal(tok_n_vocab(v), N);
    assert_string_equal(tok_kind_name(v), "SPM");
    int32_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(tok_encode(v, "a\n", 2, true, false, &ids, &n, &err), HEARTH_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 6); /* "▁a" */
    assert_int_equal(ids[2], 3); /* <0x0A> */
    mem_free(ids);
    size_t len = 0;
    const char *t = tok_text(v, 1, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(t, "<s>", 3);
    assert_null(tok_text(v, N, &len));
    tok_free(v);
    tok_free(NULL);
}

static void no_model(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_str(w, "tokenizer.ggml.model", "", &e));
}
static void unknown_model(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_str(w, "tokenizer.ggml.model", "t5x", &e));
}
static void model_not_string(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_int(w, "tokenizer.ggml.model", GGUF_V_UINT32, 3, &e));
}
static void tokens_not_strings(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_arr(w, "tokenizer.ggml.tokens", GGUF_V_INT32, TYPES, N, &e));
}
static void types_short(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_V_INT32, TYPES, N - 1, &e));
}
static void type_bad_value(gguf_writer *w) {
    hearth_err e;
    int32_t types[N];
    memcpy(types, TYPES, sizeof types);
    types[5] = 9;
    set_ok(w, gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_V_INT32, types, N, &e));
}
static void scores_long(gguf_writer *w) {
    hearth_err e;
    float s[N + 1] = {0};
    set_ok(w, gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_V_FLOAT32, s, N + 1, &e));
}
static void scores_strings(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_str_arr(w, "tokenizer.ggml.scores", TOKENS, N, &e));
}
static void bos_out_of_range(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_int(w, "tokenizer.ggml.bos_token_id", GGUF_V_UINT32, N, &e));
}
static void eos_negative(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_int(w, "tokenizer.ggml.eos_token_id", GGUF_V_INT32, -5, &e));
}
static void unk_string(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_str(w, "tokenizer.ggml.unknown_token_id", "0", &e));
}
static void add_bos_int(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_int(w, "tokenizer.ggml.add_bos_token", GGUF_V_UINT8, 1, &e));
}
static void bad_byte_token(gguf_writer *w) {
    hearth_err e;
    const char *t[N];
    memcpy(t, TOKENS, sizeof t);
    t[3] = "<0xZZ>";
    set_ok(w, gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", t, N, &e));
}
static void gpt2_without_merges(gguf_writer *w) {
    hearth_err e;
    set_ok(w, gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", &e));
    set_ok(w, gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2", &e));
}
static void gpt2_unknown_pre(gguf_writer *w) {
    hearth_err e;
    const char *merges[] = {"a b"};
    set_ok(w, gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", &e));
    set_ok(w, gguf_writer_set_str(w, "tokenizer.ggml.pre", "chameleon", &e));
    set_ok(w, gguf_writer_set_str_arr(w, "tokenizer.ggml.merges", merges, 1, &e));
}

typedef struct bad_case {
    const char *what;
    edit_fn edit;
    hearth_status status;
    const char *needle; /* must appear in the message */
} bad_case;

static void test_malformed_metadata(void **state) {
    const bad_case cases[] = {
        {"unknown model", unknown_model, HEARTH_ERR_UNSUPPORTED, "tokenizer.ggml.model 't5x'"},
        {"empty model", no_model, HEARTH_ERR_UNSUPPORTED, "tokenizer.ggml.model"},
        {"model not a string", model_not_string, HEARTH_ERR_FORMAT, "tokenizer.ggml.model is not a string"},
        {"tokens not strings", tokens_not_strings, HEARTH_ERR_FORMAT, "tokenizer.ggml.tokens is not an array of strings"},
        {"token_type too short", types_short, HEARTH_ERR_FORMAT, "tokenizer.ggml.token_type has 7 entries"},
        {"token_type value", type_bad_value, HEARTH_ERR_FORMAT, "tokenizer.ggml.token_type[5] = 9"},
        {"scores too long", scores_long, HEARTH_ERR_FORMAT, "tokenizer.ggml.scores has 9 entries"},
        {"scores not numbers", scores_strings, HEARTH_ERR_FORMAT, "tokenizer.ggml.scores is not an array of numbers"},
        {"bos out of range", bos_out_of_range, HEARTH_ERR_FORMAT, "tokenizer.ggml.bos_token_id = 8 is out of range"},
        {"eos negative", eos_negative, HEARTH_ERR_FORMAT, "tokenizer.ggml.eos_token_id = -5"},
        {"unk a string", unk_string, HEARTH_ERR_FORMAT, "tokenizer.ggml.unknown_token_id is not an integer"},
        {"add_bos not bool", add_bos_int, HEARTH_ERR_FORMAT, "tokenizer.ggml.add_bos_token is not a bool"},
        {"bad byte token", bad_byte_token, HEARTH_ERR_FORMAT, "tokenizer.ggml.tokens[3]"},
        {"gpt2 without merges", gpt2_without_merges, HEARTH_ERR_FORMAT, "tokenizer.ggml.merges is missing"},
        {"unknown pre-tokenizer", gpt2_unknown_pre, HEARTH_ERR_UNSUPPORTED, "tokenizer.ggml.pre 'chameleon'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tok_vocab *v = (tok_vocab *)0x1;
        hearth_err err = {0};
        hearth_status st = load_with(cases[i].edit, &v, &err);
        if (st != cases[i].status || !strstr(err.msg, cases[i].needle))
            print_error("%s: status %d (want %d), message \"%s\" (want \"%s\")\n", cases[i].what, st, cases[i].status,
                        err.msg, cases[i].needle);
        assert_int_equal(st, cases[i].status);
        assert_non_null(strstr(err.msg, cases[i].needle));
        assert_null(v);
    }
}

static void test_no_vocabulary(void **state) {
    gguf_writer *w = gguf_writer_new();
    hearth_err err = {0};
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama", &err), HEARTH_OK);
    void *buf = NULL;
    size_t size = 0;
    assert_int_equal(gguf_writer_write_memory(w, &buf, &size, &err), HEARTH_OK);
    gguf_writer_free(w);
    gguf_file *f = NULL;
    assert_int_equal(gguf_open_memory(buf, size, "x.gguf", &f, &err), HEARTH_OK);
    tok_vocab *v = NULL;
    assert_int_equal(tok_load(f, &v, &err), HEARTH_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tokenizer.ggml.model is missing"));
    gguf_close(f);
    mem_free(buf);
}

/* Fails each allocation of load + encode + decode in turn: every failure is NOMEM and
 * leaves nothing behind; without injection the same steps succeed. */
static void test_allocation_failures(void **state) {
    for (long k = 1;; k++) {
        tok_vocab *v = NULL;
        hearth_err err = {0};
        int32_t *ids = NULL;
        size_t n = 0;
        char *text = NULL;
        size_t len = 0;
        gguf_writer *w = gguf_writer_new();
        const char *merges[] = {"a b", "b c"};
        const char *toks[] = {"a", "b", "c", "ab", "bc", "\xc4\xa0", "<|endoftext|>"};
        const int32_t types[] = {1, 1, 1, 1, 1, 1, 3};
        gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2", &err);
        gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama3", &err);
        gguf_writer_set_str_arr(w, "tokenizer.ggml.tokens", toks, 7, &err);
        gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_V_INT32, types, 7, &err);
        gguf_writer_set_str_arr(w, "tokenizer.ggml.merges", merges, 2, &err);
        gguf_writer_set_int(w, "tokenizer.ggml.bos_token_id", GGUF_V_UINT32, 6, &err);
        void *buf = NULL;
        size_t size = 0;
        assert_int_equal(gguf_writer_write_memory(w, &buf, &size, &err), HEARTH_OK);
        gguf_writer_free(w);
        gguf_file *f = NULL;
        assert_int_equal(gguf_open_memory(buf, size, "x.gguf", &f, &err), HEARTH_OK);

        mem_fail_at(k);
        hearth_status st = tok_load(f, &v, &err);
        if (st == HEARTH_OK) st = tok_encode(v, "abc abc<|endoftext|>", 20, true, true, &ids, &n, &err);
        if (st == HEARTH_OK) st = tok_decode(v, ids, n, true, &text, &len, &err);
        long made = mem_fail_at(0);
        if (st != HEARTH_OK) {
            if (st != HEARTH_ERR_NOMEM) print_error("allocation %ld: %s\n", k, err.msg);
            assert_int_equal(st, HEARTH_ERR_NOMEM);
            assert_true(err.msg[0] != '\0');
        }
        bool done = st == HEARTH_OK;
        if (done) {
            assert_string_equal(text, "<|endoftext|>abc abc<|endoftext|>");
            assert_true(made < k); /* nothing was made to fail */
        }
        mem_free(text);
        mem_free(ids);
        tok_free(v);
        gguf_close(f);
        mem_free(buf);
        if (done) break;
        assert_true(k < 100000);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_vocab),
        cmocka_unit_test(test_malformed_metadata),
        cmocka_unit_test(test_no_vocabulary),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
