/* Chat templates, lexing and parsing: whitespace control, trim_blocks and
 * lstrip_blocks as Hugging Face sets them, comments, raw blocks, string escapes,
 * newline normalisation, and syntax errors that name their line. Expected texts are
 * what Jinja2 renders with the same settings. */
#include "chat_check.h"

static void test_trim_blocks(void **state) {
    /* the first newline after a block tag goes; after {{ }} it stays */
    check_render("{% if true %}\nyes\n{% endif %}\nend", "yes\nend");
    check_render("{{ 'a' }}\n{{ 'b' }}", "a\nb");
    check_render("{% if true +%}\nkept{% endif %}", "\nkept");
    check_render("{# note #}\ntext", "text");
}

static void test_lstrip_blocks(void **state) {
    check_render("line1\n  {% if true %}\n  yes\n  {% endif %}\nend", "line1\n  yes\nend");
    check_render("  {# indented comment #}\nx", "x");
    check_render("  {%+ if true %}x{% endif %}", "  x");
    /* only whitespace since the start of the line is stripped */
    check_render("a {% if true %}b{% endif %}", "a b");
    check_render("\t {{ 'v' }}", "\t v");
}

static void test_whitespace_control(void **state) {
    check_render("a  {%- if true -%}  x  {%- endif -%}  b", "axb");
    check_render("a\n\n  {{- 'x' -}}  \n\nb", "axb");
    check_render("{%- set x = 1 -%}  {{ x }}", "1");
    check_render("a {#- c -#} b", "ab");
}

static void test_trailing_newline_and_crlf(void **state) {
    check_render("x\n", "x");
    check_render("x\n\n", "x\n");
    check_render("a\r\nb\rc", "a\nb\nc");
    check_render("{% if true %}\r\nx{% endif %}", "x");
}

static void test_raw(void **state) {
    check_render("{% raw %}  {{ not parsed }} {% endraw %}\nafter", "  {{ not parsed }} after");
    check_render("  {%- raw -%}  {{ x }}  {%- endraw -%}  z", "{{ x }}z");
}

static void test_strings_and_literals(void **state) {
    check_render("{{ 'a\\nb\\t\\\\\\'' }}", "a\nb\t\\'");
    check_render("{{ \"\\u00e9\\x41\" }}", "\xC3\xA9" "A");
    check_render("{{ 'a' \"b\" 'c' }}", "abc");
    check_render("{{ 1_000 }} {{ 1.5e3 }} {{ True }} {{ none }}", "1000 1500.0 True None");
    check_render("{{ {'a': {'b': 1}} }}", "{'a': {'b': 1}}");
    check_render("{{ ('x',) }}{{ () }}{{ (1, 2) }}", "('x',)()(1, 2)");
}

static void test_precedence(void **state) {
    check_render("{{ 2 + 3 * 4 }} {{ 10 - 2 - 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ not 1 == 2 }}",
                 "14 5 64 4 True");
    check_render("{{ 1 if false else 2 if false else 3 }}", "3");
    check_render("{{ 'a' ~ (1 + 2) }}", "a3");
    check_error("{{ 'a' ~ 1 + 2 }}", HEARTH_ERR_FORMAT, "can only concatenate str (not \"int\") to str");
    check_render("{{ -3|abs }}", "3");
    check_render("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }}", "True False");
}

static void test_syntax_errors(void **state) {
    check_error("{% if x %}\nno end", HEARTH_ERR_FORMAT, "line 2");
    check_error("a\nb\n{{ 1 + }}", HEARTH_ERR_FORMAT, "line 3");
    check_error("{% endif %}", HEARTH_ERR_FORMAT, "unknown tag 'endif'");
    check_error("{% include 'x' %}", HEARTH_ERR_FORMAT, "'include' is not supported");
    check_error("{% extends 'base' %}", HEARTH_ERR_FORMAT, "'extends' is not supported");
    check_error("{% import 'm' as m %}", HEARTH_ERR_FORMAT, "'import' is not supported");
    check_error("{{ 'unterminated }}", HEARTH_ERR_FORMAT, "unterminated string");
    check_error("{# never closed", HEARTH_ERR_FORMAT, "comment");
    check_error("{% raw %} no end", HEARTH_ERR_FORMAT, "endraw");
    check_error("{{ x", HEARTH_ERR_FORMAT, "unexpected end of template");
    check_error("\xff", HEARTH_ERR_FORMAT, "UTF-8");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trim_blocks),
        cmocka_unit_test(test_lstrip_blocks),
        cmocka_unit_test(test_whitespace_control),
        cmocka_unit_test(test_trailing_newline_and_crlf),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_strings_and_literals),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_syntax_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
