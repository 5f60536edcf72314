/* Streaming detokenizer: a character split over byte tokens comes out only when complete,
 * invalid bytes become U+FFFD, the output is valid UTF-8 after every push, flush
 * releases (as U+FFFD) what can never complete, and exactly the control tokens of the
 * stream's list are written as text (in a built vocabulary and in a fixture's). */
#include "testutil.h"

#include "base/utf8.h"
#include "tok_test_vocab.h"

enum { UNK = 0, BOS, EOS, BYTE0, T_HI = BYTE0 + 256, T_CALLS, T_THINK, T_USER, N_TOKENS };

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
    toks[T_CALLS] = (test_tok){"[TOOL_CALLS]", 0, TOK_TYPE_CONTROL};
    toks[T_THINK] = (test_tok){"[THINK]", 0, TOK_TYPE_CONTROL};
    toks[T_USER] = (test_tok){"<u>", 0, TOK_TYPE_USER_DEFINED};
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
    tok_stream *s = tok_stream_new(v, NULL, 0);
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
    tok_stream *s = tok_stream_new(v, NULL, 0);
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

/* Pushes ids[0..n) through a stream showing shown[0..n_shown) and returns the text. */
static void stream_text(const tok_vocab *v, const int32_t *shown, size_t n_shown, const int32_t *ids, size_t n,
                        char *acc, size_t *len) {
    tok_stream *s = tok_stream_new(v, shown, n_shown);
    assert_non_null(s);
    *len = 0;
    for (size_t i = 0; i < n; i++) push(s, ids[i], acc, len);
    acc[*len] = '\0';
    tok_stream_free(s);
}

static void test_shown_control(void **state) {
    tok_vocab *v = stream_vocab();
    const int32_t ids[] = {BOS, T_THINK, T_HI, T_CALLS, UNK, T_USER, EOS};
    char acc[128];
    size_t len = 0;
    stream_text(v, NULL, 0, ids, 7, acc, &len);
    assert_string_equal(acc, " hi<u>"); /* no list: no control token is text */
    const int32_t calls[] = {T_CALLS};
    stream_text(v, calls, 1, ids, 7, acc, &len);
    assert_string_equal(acc, " hi[TOOL_CALLS]<u>");
    /* a listed id that is not a control token changes nothing; unknown stays silent */
    const int32_t mixed[] = {EOS, T_HI, UNK, T_CALLS, BOS};
    stream_text(v, mixed, 5, ids, 7, acc, &len);
    assert_string_equal(acc, "<s> hi[TOOL_CALLS]<u></s>");
    /* the list is copied: the caller's array may change afterwards */
    int32_t list[] = {T_THINK};
    tok_stream *s = tok_stream_new(v, list, 1);
    list[0] = T_CALLS;
    len = 0;
    push(s, T_THINK, acc, &len);
    push(s, T_CALLS, acc, &len);
    acc[len] = '\0';
    assert_string_equal(acc, "[THINK]");
    tok_stream_free(s);
    assert_int_equal(tok_control_id(v, "[THINK]", 7), T_THINK);
    assert_int_equal(tok_control_id(v, "<u>", 3), -1); /* user-defined, not control */
    assert_int_equal(tok_control_id(v, "[ARGS]", 6), -1);
    tok_free(v);
}

/* A real vocabulary's control tokens (phi-3: <|user|>, <|end|>, ...): the listed one is
 * written, the others are not. */
static void test_shown_control_fixture(void **state) {
    if (!fixtures_available()) {
        printf("SKIP: fixtures not found\n");
        return;
    }
    gguf_file *f = NULL;
    hearth_err err = {0};
    if (gguf_open(fixture_path("vocab/ggml-vocab-phi-3.gguf"), &f, &err) != HEARTH_OK) fail_msg("%s", err.msg);
    tok_vocab *v = NULL;
    assert_int_equal(tok_load(f, &v, &err), HEARTH_OK);
    gguf_close(f);
    int32_t user = tok_control_id(v, "<|user|>", 8), end = tok_control_id(v, "<|end|>", 7);
    if (user < 0 || end < 0) fail_msg("phi-3: <|user|> %d, <|end|> %d: expected control tokens", user, end);
    int32_t *hi = NULL;
    size_t n_hi = 0;
    assert_int_equal(tok_encode(v, "Hi there", 8, false, false, &hi, &n_hi, &err), HEARTH_OK);
    int32_t ids[16];
    size_t n = 0;
    ids[n++] = user;
    for (size_t i = 0; i < n_hi && n < 15; i++) ids[n++] = hi[i];
    ids[n++] = end;
    mem_free(hi);
    char acc[256];
    size_t len = 0;
    stream_text(v, &user, 1, ids, n, acc, &len);
    assert_string_equal(acc, "<|user|> Hi there");
    stream_text(v, &end, 1, ids, n, acc, &len);
    assert_string_equal(acc, " Hi there<|end|>");
    stream_text(v, NULL, 0, ids, n, acc, &len);
    assert_string_equal(acc, " Hi there");
    tok_free(v);
}

/* Every prefix of a byte-token sequence streams out valid UTF-8 that adds up to the text. */
static void test_all_splits(void **state) {
    tok_vocab *v = stream_vocab();
    const char *text = "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80z";
    size_t tl = strlen(text);
    tok_stream *s = tok_stream_new(v, NULL, 0);
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
        cmocka_unit_test(test_shown_control),
        cmocka_unit_test(test_shown_control_fixture),
        cmocka_unit_test(test_all_splits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
