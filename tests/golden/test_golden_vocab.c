/* Golden tokenizer checks against ../shared/fixtures: the reference's test vectors for each
 * vocabulary (vocab/NAME.inp -> NAME.out, exact ids), the prompts of every ref/<model>/ref.json
 * (exact ids with the model's BOS), and a smoke test of the held-out vocabularies in
 * extra/vocab (every text encodes and decodes; byte-level BPE decodes back to the text). */
#include "testutil.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

typedef struct texts {
    char **v;
    size_t *len;
    size_t n;
} texts;

/* Splits an .inp file the way the reference's test does: each text ends at the next
 * "\n__ggml_vocab_test__\n"; a remainder after the last separator is one more text. */
static texts split_inp(const char *raw, size_t n) {
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof SEP - 1;
    texts t = {0};
    size_t pos = 0;
    while (pos < n) {
        const char *next = NULL;
        for (size_t i = pos; i + sep_len <= n; i++)
            if (memcmp(raw + i, SEP, sep_len) == 0) {
                next = raw + i;
                break;
            }
        size_t end = next ? (size_t)(next - raw) : n;
        t.v = realloc(t.v, (t.n + 1) * sizeof *t.v);
        t.len = realloc(t.len, (t.n + 1) * sizeof *t.len);
        t.v[t.n] = malloc(end - pos + 1);
        memcpy(t.v[t.n], raw + pos, end - pos);
        t.v[t.n][end - pos] = '\0';
        t.len[t.n++] = end - pos;
        if (!next) break;
        pos = end + sep_len;
    }
    return t;
}

static void free_texts(texts *t) {
    for (size_t i = 0; i < t->n; i++) free(t->v[i]);
    free(t->v);
    free(t->len);
}

static tok_vocab *load_vocab(const char *rel, gguf_file **file) {
    hearth_err err = {0};
    gguf_file *f = NULL;
    if (gguf_open(fixture_path(rel), &f, &err) != HEARTH_OK) {
        print_error("%s: %s\n", rel, err.msg);
        return NULL;
    }
    tok_vocab *v = NULL;
    if (tok_load(f, &v, &err) != HEARTH_OK) print_error("%s: tok_load: %s\n", rel, err.msg);
    if (file) *file = f;
    else gguf_close(f);
    return v;
}

/* " id id id" (the .out line format, each id after a space). */
static char *format_ids(const int32_t *ids, size_t n) {
    char *s = malloc(n * 12 + 1);
    size_t k = 0;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) k += (size_t)sprintf(s + k, " %d", ids[i]);
    return s;
}

static void print_escaped(const char *label, const char *s, size_t n) {
    print_message("%s \"", label);
    for (size_t i = 0; i < n && i < 200; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') print_message("\\n");
        else if (c == '\t') print_message("\\t");
        else if (c < 0x20) print_message("\\x%02x", c);
        else print_message("%c", c);
    }
    print_message("\"\n");
}

static void check_vectors(const char *name) {
    char rel[256], inp_rel[300], out_rel[300];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    snprintf(inp_rel, sizeof inp_rel, "%s.inp", rel);
    snprintf(out_rel, sizeof out_rel, "%s.out", rel);
    tok_vocab *v = load_vocab(rel, NULL);
    assert_non_null(v);
    size_t inp_len = 0, out_len = 0;
    char *inp = read_file(fixture_path(inp_rel), &inp_len);
    char *out = read_file(fixture_path(out_rel), &out_len);
    assert_non_null(inp);
    assert_non_null(out);
    texts cases = split_inp(inp, inp_len);

    size_t n_lines = 0, failures = 0;
    for (char *line = out;; n_lines++) {
        char *nl = strchr(line, '\n');
        if (!nl) {
            if (*line) n_lines++;
            break;
        }
        line = nl + 1;
    }
    if (n_lines != cases.n) print_error("%s: %zu texts but %zu expected lines\n", name, cases.n, n_lines);
    assert_int_equal(n_lines, cases.n);

    char *cursor = out;
    for (size_t i = 0; i < cases.n; i++) {
        char *nl = strchr(cursor, '\n');
        if (nl) *nl = '\0';
        const char *expected = cursor;
        cursor = nl ? nl + 1 : cursor + strlen(cursor);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        hearth_err err = {0};
        assert_int_equal(tok_encode(v, cases.v[i], cases.len[i], false, false, &ids, &n_ids, &err), HEARTH_OK);
        char *got = format_ids(ids, n_ids);
        if (strcmp(got, expected) != 0) {
            failures++;
            print_error("%s: text %zu differs\n", name, i);
            print_escaped("  text    ", cases.v[i], cases.len[i]);
            print_message("  expected%s\n  got     %s\n", expected, got);
        }
        free(got);
        mem_free(ids);
    }
    print_message("%s: %zu/%zu vectors match\n", name, cases.n - failures, cases.n);
    assert_int_equal(failures, 0);
    free_texts(&cases);
    free(inp);
    free(out);
    tok_free(v);
}

static void test_llama_spm(void **state) { check_vectors("llama-spm"); }
static void test_phi3(void **state) { check_vectors("phi-3"); }
static void test_gpt2(void **state) { check_vectors("gpt-2"); }
static void test_deepseek_llm(void **state) { check_vectors("deepseek-llm"); }
static void test_bert_bge(void **state) { check_vectors("bert-bge"); }

/* ref/<dir>/ref.json prompts: the model file is models/<dir>.gguf, or the LoRA base. */
static void check_ref(const char *dir) {
    char rel[256], model_rel[256];
    snprintf(rel, sizeof rel, "ref/%s/ref.json", dir);
    snprintf(model_rel, sizeof model_rel, "models/%s.gguf", strncmp(dir, "lora-", 5) == 0 ? "llama-spm-f16" : dir);
    json_error_t jerr;
    json_t *root = json_load_file(fixture_path(rel), 0, &jerr);
    assert_non_null(root);
    json_t *cases = json_object_get(root, "cases");
    assert_true(json_is_array(cases));
    tok_vocab *v = load_vocab(model_rel, NULL);
    assert_non_null(v);
    size_t idx;
    json_t *c;
    json_array_foreach(cases, idx, c) {
        const char *prompt = json_string_value(json_object_get(c, "prompt"));
        size_t plen = json_string_length(json_object_get(c, "prompt"));
        json_t *want = json_object_get(c, "tokens");
        assert_non_null(prompt);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        hearth_err err = {0};
        assert_int_equal(tok_encode(v, prompt, plen, true, false, &ids, &n_ids, &err), HEARTH_OK);
        int32_t *exp = malloc((json_array_size(want) + 1) * sizeof *exp);
        for (size_t k = 0; k < json_array_size(want); k++) exp[k] = (int32_t)json_integer_value(json_array_get(want, k));
        char *got_s = format_ids(ids, n_ids), *exp_s = format_ids(exp, json_array_size(want));
        if (strcmp(got_s, exp_s) != 0) {
            print_error("%s case %zu differs\n", dir, idx);
            print_escaped("  prompt  ", prompt, plen);
            print_message("  expected%s\n  got     %s\n", exp_s, got_s);
        }
        assert_string_equal(got_s, exp_s);
        free(got_s);
        free(exp_s);
        free(exp);
        mem_free(ids);
    }
    print_message("%s: %zu prompts match\n", dir, json_array_size(cases));
    tok_free(v);
    json_decref(root);
}

static void test_ref_prompts(void **state) {
    const char *dirs[] = {"llama-spm-f16", "llama-spm-q8_0", "llama-spm-q4_0", "llama-spm-q4_k_m",
                          "llama-2-tiny-random", "qwen2t-bpe-q8_0", "lora-r8-s1", "lora-r8-s05"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) check_ref(dirs[i]);
}

/* Every text encodes and decodes; byte-level BPE gives the text back exactly. */
static void smoke_vocab(const char *rel, bool expect_roundtrip) {
    char inp_rel[300];
    snprintf(inp_rel, sizeof inp_rel, "%s.inp", rel);
    tok_vocab *v = load_vocab(rel, NULL);
    assert_non_null(v);
    size_t inp_len = 0;
    char *inp = read_file(fixture_path(inp_rel), &inp_len);
    assert_non_null(inp);
    texts cases = split_inp(inp, inp_len);
    size_t roundtrips = 0;
    for (size_t i = 0; i < cases.n; i++) {
        int32_t *ids = NULL;
        size_t n_ids = 0;
        hearth_err err = {0};
        assert_int_equal(tok_encode(v, cases.v[i], cases.len[i], false, false, &ids, &n_ids, &err), HEARTH_OK);
        for (size_t k = 0; k < n_ids; k++) assert_true(ids[k] >= 0 && ids[k] < tok_n_vocab(v));
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(tok_decode(v, ids, n_ids, false, &text, &len, &err), HEARTH_OK);
        if (len == cases.len[i] && memcmp(text, cases.v[i], len) == 0) {
            roundtrips++;
        } else if (expect_roundtrip) {
            print_error("%s: text %zu does not decode back\n", rel, i);
            print_escaped("  text   ", cases.v[i], cases.len[i]);
            print_escaped("  decoded", text, len);
        }
        mem_free(text);
        mem_free(ids);
    }
    print_message("%s (%s, pre '%s'): %zu texts, %zu decode back exactly\n", rel, tok_kind_name(v), tok_pre_name(v),
                  cases.n, roundtrips);
    if (expect_roundtrip) assert_int_equal(roundtrips, cases.n);
    free_texts(&cases);
    free(inp);
    tok_free(v);
}

static void test_extra_vocab_smoke(void **state) {
    const char *names[] = {"deepseek-coder", "falcon", "mpt", "refact", "starcoder"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "extra/vocab/ggml-vocab-%s.gguf", names[i]);
        smoke_vocab(rel, true);
    }
}

static void test_vocab_roundtrip(void **state) {
    smoke_vocab("vocab/ggml-vocab-gpt-2.gguf", true);
    smoke_vocab("vocab/ggml-vocab-deepseek-llm.gguf", true);
    smoke_vocab("vocab/ggml-vocab-llama-spm.gguf", true);
    smoke_vocab("vocab/ggml-vocab-phi-3.gguf", true);
    smoke_vocab("vocab/ggml-vocab-bert-bge.gguf", false);
}

int main(void) {
    if (!fixtures_available()) return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_spm),   cmocka_unit_test(test_phi3),         cmocka_unit_test(test_gpt2),
        cmocka_unit_test(test_deepseek_llm), cmocka_unit_test(test_bert_bge),    cmocka_unit_test(test_ref_prompts),
        cmocka_unit_test(test_extra_vocab_smoke), cmocka_unit_test(test_vocab_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
