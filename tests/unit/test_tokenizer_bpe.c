/* Byte-level BPE on a small vocabulary: the GPT-2 byte mapping, merge ranks, whole-word
 * tokens under ignore_merges, the pre-tokenizer splits of several families, user-defined
 * and control tokens, and exact round trips of arbitrary bytes. */
#include "testutil.h"

#include "tok_test_vocab.h"

enum { T_HE = 256, T_LL, T_HELL, T_HELLO, T_GW, T_OR, T_GWOR, T_LD, T_GWORLD, T_AB, T_BC, T_XYZ, T_EOT, T_USER, N_TOKENS };

static char byte_text[256][4];

static int32_t byte_id(unsigned char b) { return b; } /* the vocabulary puts byte b's character at id b */

static tok_vocab *bpe_vocab(const char *pre) {
    static test_tok toks[N_TOKENS];
    for (int b = 0; b < 256; b++) {
        size_t n = tok_utf8_put(tok_byte_to_cp((uint8_t)b), byte_text[b]);
        byte_text[b][n] = '\0';
        toks[b] = (test_tok){byte_text[b], 0, 0};
    }
    toks[T_HE] = (test_tok){"he", 0, 0};
    toks[T_LL] = (test_tok){"ll", 0, 0};
    toks[T_HELL] = (test_tok){"hell", 0, 0};
    toks[T_HELLO] = (test_tok){"hello", 0, 0};
    toks[T_GW] = (test_tok){"\xc4\xa0w", 0, 0}; /* "Ġw": Ġ is the mapped space */
    toks[T_OR] = (test_tok){"or", 0, 0};
    toks[T_GWOR] = (test_tok){"\xc4\xa0wor", 0, 0};
    toks[T_LD] = (test_tok){"ld", 0, 0};
    toks[T_GWORLD] = (test_tok){"\xc4\xa0world", 0, 0};
    toks[T_AB] = (test_tok){"ab", 0, 0};
    toks[T_BC] = (test_tok){"bc", 0, 0};
    toks[T_XYZ] = (test_tok){"xyz", 0, 0};
    toks[T_EOT] = (test_tok){"<|endoftext|>", 0, TOK_TYPE_CONTROL};
    toks[T_USER] = (test_tok){"<|user|>", 0, TOK_TYPE_USER_DEFINED};
    static const char *const merges[] = {
        "b c", "h e", "l l", "he ll", "hell o", "\xc4\xa0 w", "o r", "\xc4\xa0w or", "l d", "\xc4\xa0wor ld", "a b",
    };
    return test_vocab("gpt2", pre, toks, N_TOKENS, merges, sizeof merges / sizeof merges[0], NULL);
}

static void test_byte_mapping(void **state) {
    int seen[512] = {0};
    for (int b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_to_cp((uint8_t)b);
        assert_true(cp < 512);
        assert_int_equal(seen[cp]++, 0);
        assert_int_equal(tok_cp_to_byte(cp), b);
    }
    assert_int_equal(tok_byte_to_cp(' '), 0x120); /* Ġ */
    assert_int_equal(tok_byte_to_cp('\n'), 0x10A); /* Ċ */
    assert_int_equal(tok_byte_to_cp('A'), 'A');
    assert_int_equal(tok_cp_to_byte(0x2581), -1);
}

static void test_merges_by_rank(void **state) {
    tok_vocab *v = bpe_vocab("gpt-2");
    EXPECT_IDS(v, "hello world", false, false, T_HELLO, T_GWORLD);
    EXPECT_IDS(v, "abc", false, false, byte_id('a'), T_BC); /* "b c" ranks before "a b" */
    EXPECT_IDS(v, "xyz", false, false, byte_id('x'), byte_id('y'), byte_id('z'));
    EXPECT_IDS(v, "\xc3\xa9", false, false, byte_id(0xC3), byte_id(0xA9));
    assert_false(tok_adds_bos(v)); /* gpt-2 vocabularies add no BOS by default */
    EXPECT_IDS(v, "hello", true, false, T_HELLO);
    tok_free(v);
}

static void test_ignore_merges(void **state) {
    tok_vocab *v = bpe_vocab("llama-bpe");
    EXPECT_IDS(v, "xyz", false, false, T_XYZ); /* a pre-token that is a token stays whole */
    assert_true(tok_adds_bos(v)); /* llama3 vocabularies add BOS; without a bos_token_id key it is id 11 */
    assert_int_equal(tok_bos(v), 11);
    tok_free(v);
}

static void test_special_tokens(void **state) {
    tok_vocab *v = bpe_vocab("gpt-2");
    EXPECT_IDS(v, "hello<|endoftext|>", false, true, T_HELLO, T_EOT);
    int32_t *ids = NULL;
    size_t n = 0;
    hearth_err err = {0};
    assert_int_equal(tok_encode(v, "<|endoftext|>", 13, false, false, &ids, &n, &err), HEARTH_OK);
    assert_true(n > 1);
    for (size_t i = 0; i < n; i++) assert_int_not_equal(ids[i], T_EOT);
    mem_free(ids);
    EXPECT_IDS(v, "hello<|user|> world", false, false, T_HELLO, T_USER, T_GWORLD);
    assert_true(tok_is_eog(v, T_EOT));
    const int32_t seq[] = {T_HELLO, T_EOT, T_USER};
    expect_decode(v, seq, 3, false, "hello<|user|>", 13);
    expect_decode(v, seq, 3, true, "hello<|endoftext|><|user|>", 26);
    tok_free(v);
}

static char *join_words(const char *pre, const char *text) {
    const tok_pre_info *info = tok_pre_lookup(pre, strlen(pre));
    assert_non_null(info);
    tok_pretok *p = NULL;
    hearth_err err = {0};
    assert_int_equal(tok_pretok_new(info->regex_set, &p, &err), HEARTH_OK);
    size_t n_cps = 0, *bounds = NULL, n_words = 0;
    uint32_t *cps = tok_utf8_to_cps(text, strlen(text), &n_cps);
    assert_true(tok_pretok_split(p, cps, n_cps, &bounds, &n_words));
    char *out = calloc(1, strlen(text) * 2 + n_words * 2 + 2);
    size_t a = 0, k = 0;
    for (size_t w = 0; w < n_words; a = bounds[w++]) {
        if (bounds[w] == a) continue;
        out[k++] = '|';
        for (size_t i = a; i < bounds[w]; i++) k += tok_utf8_put(cps[i], out + k);
    }
    out[k++] = '|';
    mem_free(bounds);
    mem_free(cps);
    tok_pretok_free(p);
    return out;
}

#define EXPECT_SPLIT(pre, text, want)                                                              \
    do {                                                                                           \
        char *got_ = join_words(pre, text);                                                        \
        if (strcmp(got_, want) != 0) print_error("%s split of \"%s\":\n  expected %s\n  got      %s\n", pre, text, want, got_); \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

static void test_pre_tokenizers(void **state) {
    EXPECT_SPLIT("gpt-2", "Hello, world's  123 x\n", "|Hello|,| world|'s| | 123| x|\n|");
    EXPECT_SPLIT("gpt-2", "a\xc2\xa0\xc2\xa0" "b", "|a|\xc2\xa0|\xc2\xa0|b|"); /* NBSP is whitespace */
    EXPECT_SPLIT("llama3", "12345 abc\n\n  x", "|123|45| abc|\n\n| | x|");
    EXPECT_SPLIT("llama3", "I'VE done", "|I|'VE| done|");
    EXPECT_SPLIT("qwen2", "123 ab", "|1|2|3| ab|");
    EXPECT_SPLIT("starcoder", "x 123", "|x| |1|2|3|");
    EXPECT_SPLIT("default", "a+=b 12345", "|a|+=|b| |123|45|");
    EXPECT_SPLIT("falcon", "1234567", "|123|456|7|");
    EXPECT_SPLIT("deepseek-coder", "ab12\ncd", "|ab|1|2|\n|cd|");
    EXPECT_SPLIT("deepseek-llm", "hi \xe4\xbd\xa0\xe5\xa5\xbd 42", "|hi| |\xe4\xbd\xa0\xe5\xa5\xbd| |42|");
    assert_null(tok_pre_lookup("no-such-pre", 11));
    assert_non_null(tok_pre_lookup("gpt-neox", 8));
}

static void test_roundtrip_all_bytes(void **state) {
    tok_vocab *v = bpe_vocab("gpt-2");
    char text[512];
    for (int i = 0; i < 512; i++) text[i] = (char)(i * 7 + 3);
    int32_t *ids = NULL;
    size_t n = 0;
    hearth_err err = {0};
    /* Invalid UTF-8 turns into U+FFFD in pre-tokenization (as in the reference), so only
     * valid text round-trips: use each byte below 0x80 and some multi-byte characters. */
    const char *valid = "\x01\x7f tab\there \xc3\xa9\xe6\x97\xa5\xf0\x9f\xa6\x99 <|endoftext|> hello  world\n";
    assert_int_equal(tok_encode(v, valid, strlen(valid), false, false, &ids, &n, &err), HEARTH_OK);
    expect_decode(v, ids, n, false, valid, strlen(valid));
    mem_free(ids);
    assert_int_equal(tok_encode(v, text, sizeof text, false, false, &ids, &n, &err), HEARTH_OK);
    for (size_t i = 0; i < n; i++) assert_true(ids[i] >= 0 && ids[i] < N_TOKENS);
    mem_free(ids);
    tok_free(v);
}

static void test_unknown_pre_refused(void **state) {
    tok_spec spec;
    tok_spec_init(&spec);
    spec.model = "gpt2";
    spec.model_len = 4;
    spec.pre = "kimi-k2";
    spec.pre_len = 7;
    const char *texts[] = {"a"};
    uint32_t lens[] = {1};
    spec.n_tokens = 1;
    spec.tok_text = texts;
    spec.tok_len = lens;
    tok_vocab *v = NULL;
    hearth_err err = {0};
    assert_int_equal(tok_build(&spec, &v, &err), HEARTH_ERR_UNSUPPORTED);
    assert_null(v);
    assert_non_null(strstr(err.msg, "tokenizer.ggml.pre 'kimi-k2'"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_mapping),      cmocka_unit_test(test_merges_by_rank),
        cmocka_unit_test(test_ignore_merges),     cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_pre_tokenizers),    cmocka_unit_test(test_roundtrip_all_bytes),
        cmocka_unit_test(test_unknown_pre_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
