/* SPM tokenizer on a small hand-made vocabulary: merges by score (ties to the left),
 * the space prefix, byte fallback, BOS/EOS, special and user-defined tokens, strip
 * attributes, and decoding back (leading-space rule, byte tokens, control tokens). */
#include "testutil.h"

#include "tok_test_vocab.h"

#define SP "\xe2\x96\x81" /* U+2581 */

enum {
    UNK = 0, BOS = 1, EOS = 2, BYTE0 = 3, /* <0x00>..<0xFF> at 3..258 */
    T_SP = 259, T_SP_H, T_SP_HE, T_LL, T_LLO, T_SP_HELLO, T_SP_W, T_OR, T_LD, T_ORLD, T_SP_WORLD,
    T_H, T_E, T_L, T_O, T_X, T_Y, T_Z, T_XY, T_YZ, T_P, T_Q, T_R, T_PQ, T_QR, T_USER, T_END, N_TOKENS,
};

static char byte_names[256][8];

static tok_vocab *spm_vocab(void (*edit)(tok_spec *)) {
    static test_tok toks[N_TOKENS];
    toks[UNK] = (test_tok){"<unk>", 0, TOK_TYPE_UNKNOWN};
    toks[BOS] = (test_tok){"<s>", 0, TOK_TYPE_CONTROL};
    toks[EOS] = (test_tok){"</s>", 0, TOK_TYPE_CONTROL};
    for (int b = 0; b < 256; b++) {
        snprintf(byte_names[b], sizeof byte_names[b], "<0x%02X>", b);
        toks[BYTE0 + b] = (test_tok){byte_names[b], 0, TOK_TYPE_BYTE};
    }
    toks[T_SP] = (test_tok){SP, -1, 0};
    toks[T_SP_H] = (test_tok){SP "h", -5, 0};
    toks[T_SP_HE] = (test_tok){SP "he", -4, 0};
    toks[T_LL] = (test_tok){"ll", -2, 0};
    toks[T_LLO] = (test_tok){"llo", -3, 0};
    toks[T_SP_HELLO] = (test_tok){SP "hello", -1.5f, 0};
    toks[T_SP_W] = (test_tok){SP "w", -6, 0};
    toks[T_OR] = (test_tok){"or", -2, 0};
    toks[T_LD] = (test_tok){"ld", -2.5f, 0};
    toks[T_ORLD] = (test_tok){"orld", -3, 0};
    toks[T_SP_WORLD] = (test_tok){SP "world", -1, 0};
    toks[T_H] = (test_tok){"h", -10, 0};
    toks[T_E] = (test_tok){"e", -10, 0};
    toks[T_L] = (test_tok){"l", -10, 0};
    toks[T_O] = (test_tok){"o", -10, 0};
    toks[T_X] = (test_tok){"x", -10, 0};
    toks[T_Y] = (test_tok){"y", -10, 0};
    toks[T_Z] = (test_tok){"z", -10, 0};
    toks[T_XY] = (test_tok){"xy", -1, 0};
    toks[T_YZ] = (test_tok){"yz", -1, 0};
    toks[T_P] = (test_tok){"p", -10, 0};
    toks[T_Q] = (test_tok){"q", -10, 0};
    toks[T_R] = (test_tok){"r", -10, 0};
    toks[T_PQ] = (test_tok){"pq", -1, 0};
    toks[T_QR] = (test_tok){"qr", -0.5f, 0};
    toks[T_USER] = (test_tok){"<|u|>", 0, TOK_TYPE_USER_DEFINED};
    toks[T_END] = (test_tok){"<|end|>", 0, TOK_TYPE_CONTROL};
    return test_vocab("llama", NULL, toks, N_TOKENS, NULL, 0, edit);
}

static void no_prefix(tok_spec *s) { s->add_space_prefix = 0; }
static void with_eos(tok_spec *s) { s->add_eos = 1; }
static void phi3_name(tok_spec *s) {
    s->name = "Phi3";
    s->name_len = 4;
}

static void test_merges_by_score(void **state) {
    tok_vocab *v = spm_vocab(NULL);
    EXPECT_IDS(v, "hello world", false, false, T_SP_HELLO, T_SP_WORLD);
    EXPECT_IDS(v, " hello", false, false, T_SP, T_SP_HELLO);
    tok_free(v);
    v = spm_vocab(no_prefix);
    EXPECT_IDS(v, "xyz", false, false, T_XY, T_Z);  /* equal scores: the leftmost pair first */
    EXPECT_IDS(v, "pqr", false, false, T_P, T_QR);  /* the higher score wins wherever it is */
    EXPECT_IDS(v, "hello", false, false, T_H, T_E, T_LLO);
    tok_free(v);
}

static void test_byte_fallback(void **state) {
    tok_vocab *v = spm_vocab(NULL);
    /* é is no token: its two UTF-8 bytes become <0xC3> <0xA9>. */
    EXPECT_IDS(v, "h\xc3\xa9llo", false, false, T_SP_H, BYTE0 + 0xC3, BYTE0 + 0xA9, T_LLO);
    EXPECT_IDS(v, "\n", false, false, T_SP, BYTE0 + '\n');
    tok_free(v);
}

static void test_bos_eos_and_empty(void **state) {
    tok_vocab *v = spm_vocab(NULL);
    assert_true(tok_adds_bos(v));
    assert_false(tok_adds_eos(v));
    EXPECT_IDS(v, "hello", true, false, BOS, T_SP_HELLO);
    EXPECT_IDS(v, "", true, false, BOS);
    EXPECT_NO_IDS(v, "", false, false);
    assert_int_equal(tok_bos(v), BOS);
    assert_int_equal(tok_eos(v), EOS);
    assert_true(tok_is_eog(v, EOS));
    assert_false(tok_is_eog(v, BOS));
    assert_true(tok_is_control(v, BOS));
    assert_false(tok_is_control(v, T_SP_HELLO));
    assert_false(tok_is_control(v, -1));
    assert_false(tok_is_control(v, N_TOKENS));
    tok_free(v);
    v = spm_vocab(with_eos);
    EXPECT_IDS(v, "hello", true, false, BOS, T_SP_HELLO, EOS);
    tok_free(v);
}

static void test_special_text(void **state) {
    tok_vocab *v = spm_vocab(NULL);
    /* Parsed: <s> is the BOS token and the text after it gets the space prefix again. */
    EXPECT_IDS(v, "<s>hello", false, true, BOS, T_SP_HELLO);
    EXPECT_IDS(v, "hello</s>", false, true, T_SP_HELLO, EOS);
    /* Not parsed: the characters of "<s>" are plain text (bytes here). */
    EXPECT_IDS(v, "<s>hello", false, false, T_SP, BYTE0 + '<', BYTE0 + 's', BYTE0 + '>', T_H, T_E, T_LLO);
    /* User-defined tokens are matched whole either way. */
    EXPECT_IDS(v, "hello<|u|>hello", false, false, T_SP_HELLO, T_USER, T_SP_HELLO);
    EXPECT_IDS(v, "hello<|u|>hello", false, true, T_SP_HELLO, T_USER, T_SP_HELLO);
    assert_true(tok_is_eog(v, T_END)); /* recognised as an end-of-turn text */
    /* Without the phi-3 strip rule the newline after <|end|> stays. */
    EXPECT_IDS(v, "<|end|>\nhello", false, true, T_END, T_SP, BYTE0 + '\n', T_H, T_E, T_LLO);
    tok_free(v);
}

static void test_phi3_rstrip(void **state) {
    tok_vocab *v = spm_vocab(phi3_name);
    EXPECT_IDS(v, "<|end|>\n hello", false, true, T_END, T_SP_HELLO);
    EXPECT_IDS(v, "<s> hello", false, true, BOS, T_SP, T_SP_HELLO); /* <s> keeps what follows */
    tok_free(v);
}

static void test_decode(void **state) {
    tok_vocab *v = spm_vocab(NULL);
    const int32_t hw[] = {T_SP_HELLO, T_SP_WORLD};
    expect_decode(v, hw, 2, false, "hello world", 11);
    const int32_t with_bos[] = {BOS, T_SP_HELLO};
    expect_decode(v, with_bos, 2, false, " hello", 6); /* the reference keeps the space after BOS */
    expect_decode(v, with_bos, 2, true, "<s> hello", 9);
    const int32_t bytes[] = {BYTE0 + 0xC3, BYTE0 + 0xA9};
    expect_decode(v, bytes, 2, false, "\xc3\xa9", 2);

    char buf[16];
    assert_int_equal(tok_piece(v, T_SP_HELLO, false, buf, sizeof buf), 6);
    assert_memory_equal(buf, " hello", 6);
    assert_int_equal(tok_piece(v, UNK, false, buf, sizeof buf), 0);
    assert_int_equal(tok_piece(v, UNK, true, buf, sizeof buf), 5);
    assert_memory_equal(buf, "<unk>", 5);
    assert_int_equal(tok_piece(v, T_SP_HELLO, false, buf, 3), 6); /* length even when cut */
    assert_memory_equal(buf, " he", 3);
    assert_int_equal(tok_piece(v, N_TOKENS, true, buf, sizeof buf), 0);

    const int32_t bad[] = {T_SP_HELLO, N_TOKENS};
    char *out = NULL;
    size_t len = 0;
    hearth_err err = {0};
    assert_int_equal(tok_decode(v, bad, 2, false, &out, &len, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "position 1"));
    tok_free(v);
}

static void test_roundtrip(void **state) {
    tok_vocab *v = spm_vocab(NULL);
    const char *texts[] = {"hello world", "  h\xc3\xa9llo\tw\xc3\xb6rld  ", "\n\nxyz pqr", "\xf0\x9f\xa6\x99!", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        hearth_err err = {0};
        assert_int_equal(tok_encode(v, texts[i], strlen(texts[i]), false, false, &ids, &n, &err), HEARTH_OK);
        expect_decode(v, ids, n, false, texts[i], strlen(texts[i]));
        mem_free(ids);
    }
    tok_free(v);
}

static void test_invalid_utf8_is_bytes(void **state) {
    tok_vocab *v = spm_vocab(no_prefix);
    /* A lone lead byte swallows what follows as one symbol, which falls back to bytes. */
    EXPECT_IDS(v, "\xe6xy", false, false, BYTE0 + 0xE6, BYTE0 + 'x', BYTE0 + 'y');
    EXPECT_IDS(v, "\xff", false, false, BYTE0 + 0xFF);
    tok_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merges_by_score), cmocka_unit_test(test_byte_fallback),
        cmocka_unit_test(test_bos_eos_and_empty), cmocka_unit_test(test_special_text),
        cmocka_unit_test(test_phi3_rstrip),     cmocka_unit_test(test_decode),
        cmocka_unit_test(test_roundtrip),       cmocka_unit_test(test_invalid_utf8_is_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
