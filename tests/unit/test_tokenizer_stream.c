/* Streaming detokenizer: a character split over byte tokens comes out only when complete,
 * invalid bytes become U+FFFD, the output is valid UTF-8 after every push, and flush
 * releases (as U+FFFD) what can never complete. */
#include "testutil.h"

#include "base/utf8.h"
#include "tok_test_vocab.h"

enum { UNK = 0, BOS, EOS, BYTE0, T_HI = BYTE0 + 256, N_TOKENS };

static char names[256][8];

static tok_vocab *stream_vocab(void) {
    static test_tok toks[N_TOKENS];
    toks[UNK] = (test_tok){"<unk>", 0, TOK_TYPE_UNKNOWN};
    toks[BOS] = (test_tok){"<s>", 0, TOK_TYPE_CONTROL};
    toks[EOS] = (test_tok){"</s>", 0, TOK_TYPE_CONTROL};
    for (int b = 0; b < 256; b++) {
        snprintf(names[b], sizeof names[b], "<0x%02X>", b);
        toks[BYTE0 + b] = (test_tok){names[b], 0, TOK_TYPE_BYTE};
    }
    toks[T_HI] = (test_tok){"\xe2\x96\x81hi", 0, 0};
    return test_vocab("llama", NULL, toks, N_TOKENS, NULL, 0, NULL);
}

/* Pushes id and appends what came out to acc; returns the number of bytes emitted. */
static size_t push(tok_stream *s, int32_t id, char *acc, size_t *acc_len) {
    char *out = NULL;
    size_t n = 0;
    hearth_err err = {0};
    assert_int_equal(tok_stream_push(s, id, &out, &n, &err), HEARTH_OK);
    assert_true(utf8_valid(out, n));
    memcpy(acc + *acc_len, out, n);
    *acc_len += n;
    return n;
}

static void test_split_character(void **state) {
    tok_vocab *v = stream_vocab();
    tok_stream *s = tok_stream_new(v, false);
    assert_non_null(s);
    char acc[64];
    size_t len = 0;
    /* "🦙" = F0 9F A6 99 over four byte tokens, then "é" = C3 A9, then " hi". */
    assert_int_equal(push(s, BYTE0 + 0xF0, acc, &len), 0);
    assert_int_equal(push(s, BYTE0 + 0x9F, acc, &len), 0);
    assert_int_equal(push(s, BYTE0 + 0xA6, acc, &len), 0);
    assert_int_equal(push(s, BYTE0 + 0x99, acc, &len), 4);
    assert_int_equal(push(s, BOS, acc, &len), 0); /* control tokens are not rendered */
    assert_int_equal(push(s, BYTE0 + 0xC3, acc, &len), 0);
    assert_int_equal(push(s, BYTE0 + 0xA9, acc, &len), 2);
    assert_int_equal(push(s, T_HI, acc, &len), 3);
    assert_int_equal(len, 9);
    assert_memory_equal(acc, "\xf0\x9f\xa6\x99\xc3\xa9 hi", 9);
    char *out = NULL;
    size_t n = 1;
    hearth_err err = {0};
    assert_int_equal(tok_stream_flush(s, &out, &n, &err), HEARTH_OK);
    assert_int_equal(n, 0);
    tok_stream_free(s);
    tok_free(v);
}

static void test_invalid_bytes(void **state) {
    tok_vocab *v = stream_vocab();
    tok_stream *s = tok_stream_new(v, false);
    char acc[64];
    size_t len = 0;
    assert_int_equal(push(s, BYTE0 + 0xFF, acc, &len), 3); /* never valid */
    assert_int_equal(push(s, BYTE0 + 0xE6, acc, &len), 0); /* may complete... */
    assert_int_equal(push(s, T_HI, acc, &len), 6);         /* ...but does not */
    assert_int_equal(push(s, BYTE0 + 0xE0, acc, &len), 0);
    assert_int_equal(push(s, BYTE0 + 0x80, acc, &len), 6); /* E0 80 is overlong: two replacements */
    assert_memory_equal(acc, "\xef\xbf\xbd\xef\xbf\xbd hi\xef\xbf\xbd\xef\xbf\xbd", len);
    assert_int_equal(push(s, BYTE0 + 0xE6, acc, &len), 0);
    char *out = NULL;
    size_t n = 0;
    hearth_err err = {0};
    assert_int_equal(tok_stream_flush(s, &out, &n, &err), HEARTH_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "\xef\xbf\xbd", 3);
    /* The stream is reusable after a flush. */
    len = 0;
    assert_int_equal(push(s, T_HI, acc, &len), 3);
    assert_int_equal(tok_stream_push(s, N_TOKENS, &out, &n, &err), HEARTH_ERR_INVALID);
    assert_int_equal(tok_stream_push(s, -1, &out, &n, &err), HEARTH_ERR_INVALID);
    tok_stream_free(s);
    tok_stream_free(NULL);
    tok_free(v);
}

static void test_render_special(void **state) {
    tok_vocab *v = stream_vocab();
    tok_stream *s = tok_stream_new(v, true);
    char acc[64];
    size_t len = 0;
    push(s, BOS, acc, &len);
    push(s, T_HI, acc, &len);
    push(s, EOS, acc, &len);
    assert_int_equal(len, 10);
    assert_memory_equal(acc, "<s> hi</s>", 10);
    tok_stream_free(s);
    tok_free(v);
}

/* Every prefix of a byte-token sequence streams out valid UTF-8 that adds up to the text. */
static void test_all_splits(void **state) {
    tok_vocab *v = stream_vocab();
    const char *text = "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80z";
    size_t tl = strlen(text);
    tok_stream *s = tok_stream_new(v, false);
    char acc[64];
    size_t len = 0;
    for (size_t i = 0; i < tl; i++) push(s, BYTE0 + (unsigned char)text[i], acc, &len);
    assert_int_equal(len, tl);
    assert_memory_equal(acc, text, tl);
    tok_stream_free(s);
    tok_free(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_character),
        cmocka_unit_test(test_invalid_bytes),
        cmocka_unit_test(test_render_special),
        cmocka_unit_test(test_all_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
