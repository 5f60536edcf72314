/* UTF-8 helpers: strict decoding, encoding round trips, incomplete-suffix detection. */
#include "testutil.h"

#include <string.h>

#include "base/utf8.h"

static void test_decode_valid(void **state) {
    uint32_t cp;
    assert_int_equal(utf8_decode("A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(utf8_decode("\xC3\xBC", 2, &cp), 2);
    assert_int_equal(cp, 0xFC);
    assert_int_equal(utf8_decode("\xE6\x97\xA5", 3, &cp), 3);
    assert_int_equal(cp, 0x65E5);
    assert_int_equal(utf8_decode("\xF0\x9F\xA6\x99", 4, &cp), 4);
    assert_int_equal(cp, 0x1F999);
}

static void test_decode_invalid(void **state) {
    uint32_t cp;
    assert_int_equal(utf8_decode("\xC0\x80", 2, &cp), 0);          /* overlong */
    assert_int_equal(utf8_decode("\xED\xA0\x80", 3, &cp), 0);      /* surrogate */
    assert_int_equal(utf8_decode("\xF4\x90\x80\x80", 4, &cp), 0);  /* > U+10FFFF */
    assert_int_equal(utf8_decode("\xE6\x97", 2, &cp), 0);          /* truncated */
    assert_int_equal(utf8_decode("\x80", 1, &cp), 0);              /* stray continuation */
}

static void test_encode_roundtrip(void **state) {
    const uint32_t cps[] = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char buf[4];
        uint32_t back = 0xFFFFFFFF;
        size_t n = utf8_encode(cps[i], buf);
        assert_true(n > 0);
        assert_int_equal(utf8_decode(buf, n, &back), n);
        assert_int_equal(back, cps[i]);
    }
    char buf[4];
    assert_int_equal(utf8_encode(0xD800, buf), 0);
    assert_int_equal(utf8_encode(0x110000, buf), 0);
}

static void test_complete_prefix(void **state) {
    const char *s = "ab\xF0\x9F\xA6\x99";
    assert_int_equal(utf8_complete_prefix(s, 6), 6);
    assert_int_equal(utf8_complete_prefix(s, 5), 2);
    assert_int_equal(utf8_complete_prefix(s, 4), 2);
    assert_int_equal(utf8_complete_prefix(s, 3), 2);
    assert_int_equal(utf8_complete_prefix(s, 2), 2);
    assert_int_equal(utf8_complete_prefix("a\x80", 2), 2); /* invalid byte: emit it */
    assert_int_equal(utf8_complete_prefix("\xE6\x41", 2), 2); /* broken sequence: emit */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_valid),
        cmocka_unit_test(test_decode_invalid),
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_complete_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
