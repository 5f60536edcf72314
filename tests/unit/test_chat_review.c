/* Chat templates, defects found in review: formatting widths that overflowed while being
 * read, repeats of empty sequences that spun without limit, reverse searches whose work
 * grew with the product of the text's and the needle's lengths, and comparisons of
 * shared structures whose work grew exponentially. Each case must end
 * quickly with the Python answer or a clear error. */
#include <stdlib.h>

#include "chat_check.h"

static void test_percent_width_overflow(void **state) {
    check_error("{{ '%99999999999999999999d' % 1 }}", HEARTH_ERR_FORMAT, "width too big");
    check_error("{{ '%.99999999999999999999f' % 1.5 }}", HEARTH_ERR_FORMAT, "width too big");
    check_error("{{ '%-18446744073709551617s' % 'x' }}", HEARTH_ERR_FORMAT, "width too big");
    check_error("{{ '%*d' % (-9223372036854775807 - 1, 5) }}", HEARTH_ERR_FORMAT, "width too big");
    check_render("{{ '%*d|' % (-4, 5) }}", "5   |");
    check_render("{{ '%5s|%-4d|' % ('ab', 7) }}", "   ab|7   |");
    check_error("{{ '{4294967296}'.format('x') }}", HEARTH_ERR_FORMAT, "IndexError");
    check_render("{{ '{1}{0}'.format('a', 'b') }}", "ba");
    /* '0' before the width pads with zeros whatever the alignment (Python 3.10+) */
    check_render("{{ '{:<08}'.format(5) }}|{{ '{:^08}'.format(5) }}|{{ '{:x<08}'.format(5) }}|{{ '{:08}'.format('ab') }}|"
                 "{{ '{:=08}'.format(-5) }}|{{ '{:08.2f}'.format(-1.5) }}|{{ '{:05c}'.format(65) }}",
                 "50000000|00050000|5xxxxxxx|ab000000|-0000005|-0001.50|0000A");
    check_render("{{ '{:#010x}'.format(1234567) }}|{{ '{:#010b}'.format(-5) }}|{{ '{:*=#10o}'.format(8) }}|"
                 "{{ '{:>#8x}'.format(255) }}|{{ '{:#x}'.format(-255) }}",
                 "0x0012d687|-0b0000101|0o******10|    0xff|-0xff");
}

static void test_truncate_huge_bounds(void **state) {
    check_render("{{ 'abc def'|truncate(9223372036854775807) }}|{{ 'abc def'|truncate(5, leeway=9223372036854775807) }}",
                 "abc def|abc def");
    check_render("{{ 'abc defgh'|truncate(7, leeway=0) }}", "abc...");
}

static void test_empty_repeat(void **state) {
    check_render("{{ '' * 10**18 }}|", "|");
    check_render("{{ ([] * 10**18)|length }}", "0");
    check_render("{{ 10**18 * '' }}|{{ (10**18 * ())|length }}", "|0");
}

/* Needle 'a' * (n / 2) in 'a' * n: a backward search that compares the whole needle at
 * every position does n * n / 4 byte comparisons. */
static void test_reverse_search_linear(void **state) {
    const char *ctx = "{\"n\": 400000}";
    check_render_ctx("{% set s = 'a' * n %}{% set t = 'a' * (n // 2) %}"
                     "{{ s.rfind(t) }} {{ s.rindex(t) }} {{ s.rpartition(t)[0]|length }} "
                     "{{ s.rsplit(t)|length }} {{ (s ~ 'b').rfind(t ~ 'c') }}",
                     ctx, "200000 200000 200000 3 -1");
    check_render("{{ 'abcabc'.rfind('bc') }} {{ 'abcabc'.rfind('bc', 0, 4) }} {{ 'abcabc'.rpartition('b') }} "
                 "{{ 'a,b,,c'.rsplit(',', 2) }} {{ 'xyx'.rfind('') }} {{ 'aaaa'.rsplit('aa') }}",
                 "4 1 ('abca', 'b', 'c') ['a,b', '', 'c'] 3 ['', '', '']");
    /* an end before the start finds nothing, not even "" */
    check_render("{{ 'abcdef'.rfind('', 4, 2) }} {{ 'abcdef'.find('', 5, -3) }} {{ 'abc'.count('', 2, 1) }} "
                 "{{ 'abc'.endswith('', 3, 1) }} {{ 'abc'.startswith('', 2, 0) }} {{ 'abc'.find('', 1, 1) }} "
                 "{{ 'abc'.count('', 1, 2) }}",
                 "-1 -1 0 False False 1 2");
}

/* Lists sharing their sublists: 2**60 leaves reachable from 61 lists. Comparing two of
 * them visited every path. */
static void test_shared_structure_compare(void **state) {
    const char *build = "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(60) %}"
                        "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}";
    char src[512];
    snprintf(src, sizeof src, "%s%s", build, "{{ ns.a == ns.a }} {{ ns.a in [ns.a] }} {{ [ns.a, ns.a]|unique|list|length }}");
    check_render(src, "True True 1");
    snprintf(src, sizeof src, "%s%s", build, "{{ ns.a == ns.b }}");
    check_error(src, HEARTH_ERR_RANGE, "evaluation steps");
    snprintf(src, sizeof src, "%s%s", build, "{{ [ns.a, ns.b]|sort|length }}");
    check_error(src, HEARTH_ERR_RANGE, "evaluation steps");
    check_render("{% set l = [1, [2]] %}{{ l == [1, [2]] }} {{ l == l }} {{ [1, [2]] < [1, [3]] }} {{ {'a': [1]} == {'a': [1]} }}",
                 "True True True True");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_width_overflow),
        cmocka_unit_test(test_truncate_huge_bounds),
        cmocka_unit_test(test_empty_repeat),
        cmocka_unit_test(test_reverse_search_linear),
        cmocka_unit_test(test_shared_structure_compare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
