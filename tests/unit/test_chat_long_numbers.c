/* Number literals of any length in templates. The lexer copied a literal into a 128-byte
 * buffer: past 127 digits the digits were dropped (a 200-digit float became a 127-digit
 * one) and a '.' after 127 digits wrote one byte past the buffer (UBSan, found by
 * fuzz_chat_template). Regression test for both. */
#include <stdlib.h>
#include <string.h>

#include "chat_check.h"

/* "{{ " digits '.' "5 " op " }}" with n_digits copies of '5' before the dot. */
static char *expr(size_t n_digits, const char *tail) {
    char *s = malloc(n_digits + strlen(tail) + 16);
    strcpy(s, "{{ ");
    memset(s + 3, '5', n_digits);
    strcpy(s + 3 + n_digits, tail);
    return s;
}

static void test_long_float_literals(void **state) {
    for (size_t n = 120; n <= 300; n += n < 135 ? 1 : 55) {
        char *src = expr(n, ".5_5 > 5e1 }}"); /* '_' is dropped from the literal */
        check_render(src, "True");
        free(src);
    }
    /* 5.55e199 (every digit counts) between 1e199 and 1e200 */
    char big[512] = "{{ ";
    memset(big + 3, '5', 200);
    strcpy(big + 203, ".5 > 1e199 and 1e200 > ");
    size_t k = strlen(big);
    memset(big + k, '5', 200);
    strcpy(big + k + 200, ".5 }}");
    check_render(big, "True");
}

static void test_long_integer_literals(void **state) {
    check_render("{{ 9223372036854775807 }}", "9223372036854775807");
    char *src = expr(200, " }}");
    check_error(src, HEARTH_ERR_FORMAT, "integer literal too large");
    free(src);
    check_render("{{ 1_000_000 }}", "1000000");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_float_literals),
        cmocka_unit_test(test_long_integer_literals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
