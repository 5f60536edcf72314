/* Chat templates, control flow and scoping: for loops and the loop object, loop
 * filters and else, break/continue, tuple unpacking, set (plain, tuple, namespace
 * attribute, block), macros (defaults, varargs/kwargs, recursion, caller), with, filter
 * blocks, and Jinja2's scoping rules. Expected texts are what Jinja2 renders. */
#include "chat_check.h"

static void test_loops(void **state) {
    check_render("{% for i in range(3) %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }}|{% endfor %}",
                 "1/0/3/2/True/False/3|2/1/2/1/False/False/3|3/2/1/0/False/True/3|");
    check_render("{% for i in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }},{% endfor %}",
                 "-2,1-3,2-,");
    check_render("{% for m in [1,2,3] %}{{ loop.cycle('a','b') }}{% if loop.changed(m > 1) %}!{% endif %}{% endfor %}",
                 "a!b!a");
    check_render("{% for a in [1,2] %}{% set outer = loop %}{% for b in [3,4] %}{{ outer.index }}{{ loop.index }} {% endfor %}{% endfor %}",
                 "11 12 21 22 ");
    check_render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}",
                 "a=1;b=2;");
    check_render("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
                 "0134");
    check_render("{% for i in [] %}x{% else %}empty{% endfor %}",
                 "empty");
    check_render("{% for i in range(5) if i is odd %}{{ i }}/{{ loop.length }} {% else %}none{% endfor %}",
                 "1/2 3/2 ");
    check_render("{% for c in 'ab' %}{{ c }}.{% endfor %}{% for k in {'x': 1, 'y': 2} %}{{ k }}{% endfor %}",
                 "a.b.xy");
    check_render_ctx("{% for m in messages %}{{ loop.index }}:{{ m.role }}={{ m['content'] }}{{ m.missing }};{% endfor %}",
                     "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}",
                     "1:user=hi;2:assistant=yo;");
}

static void test_scoping(void **state) {
    check_render("{% for i in range(3) %}{% if i == 0 %}{% set x = 'a' %}{% endif %}[{{ x }}]{% endfor %}",
                 "[a][][]");
    check_render("{% set x = 1 %}{% for i in range(3) %}{% if i == 1 %}{% set x = 5 %}{% endif %}[{{ x }}]{% endfor %}{{ x }}",
                 "[1][5][1]1");
    check_render("{% if true %}{% set y = 2 %}{% endif %}{{ y }}",
                 "2");
    check_render("{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}",
                 "2");
    check_render("{% macro m() %}{% set z = 9 %}{{ z }}{% endmacro %}{{ m() }}[{{ z }}]",
                 "9[]");
    check_render("{% filter upper %}{% set z = 3 %}a{% endfilter %}[{{ z }}]",
                 "A[]");
    check_render("{% set ns = namespace(a=1, found=false) %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% if i == 1 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.a }} {{ ns.found }} {{ ns.missing is defined }}",
                 "4 True False");
    check_render("{% set a, b = 'xy' %}{{ b }}{{ a }}",
                 "yx");
    check_render("{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set c = 1, 2 %}{{ c }}",
                 "12(1, 2)");
    check_render_ctx("{% set messages = messages[1:] %}{{ messages|length }}",
                     "{\"messages\": [1, 2, 3]}",
                     "2");
}

static void test_macros(void **state) {
    check_render("{% macro m(a) %}[{{ a }}{{ varargs }}{{ kwargs }}]{% endmacro %}{{ m(1, 2, 3, z=4) }}",
                 "[1(2, 3){'z': 4}]");
    check_render("{% macro m(a, b) %}{{ a }}{{ b }}{% endmacro %}[{{ m(1) }}]",
                 "[1]");
    check_render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
                 "54321");
    check_render("{% macro m(a, b=2, c='x') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ m(1) }}|{{ m(1, 3) }}|{{ m(1, c='y') }}|{{ m(a=5) }}",
                 "1-2-x|1-3-x|1-2-y|5-2-x");
    check_render("{% macro m(a, b=a * 2) %}{{ b }}{% endmacro %}{{ m(4) }}",
                 "8");
    check_render("{% macro outer() %}<{{ caller() }}>{% endmacro %}{% call outer() %}inside{% endcall %}",
                 "<inside>");
    check_render("{% macro outer() %}<{{ caller(5) }}>{% endmacro %}{% call(x) outer() %}got {{ x }}{% endcall %}",
                 "<got 5>");
    check_render("{% macro m() %}x{% endmacro %}{{ m is callable }} {{ m() ~ m() }}",
                 "True xx");
}

static void test_blocks(void **state) {
    check_render("{% set d = dict(a=1, b=2) %}{{ d }}{{ dict(d, c=3) }}{{ namespace(d).a }}",
                 "{'a': 1, 'b': 2}{'a': 1, 'b': 2, 'c': 3}1");
    check_render("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]",
                 "3[]");
    check_render("{% set x | upper %}ab{% endset %}{{ x }}",
                 "AB");
    check_render("{% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}]",
                 "[block 2]");
    check_render("{% set x | trim %}   padded   {% endset %}[{{ x }}]",
                 "[padded]");
    check_render("{% filter upper %}hello {{ 'world' }}{% endfilter %}",
                 "HELLO WORLD");
    check_render("{% filter trim %}\n  text  \n{% endfilter %}|",
                 "text|");
}

static void test_conditionals(void **state) {
    check_render("{% if x is not defined %}nd{% elif x %}t{% else %}f{% endif %}",
                 "nd");
    check_render_ctx("{% if x %}t{% elif y %}y{% else %}e{% endif %}",
                     "{\"x\": 0, \"y\": [1]}",
                     "y");
    check_render("{{ 'abc' if false }}|{{ 'yes' if 1 else 'no' }}|{{ not none }}|{{ 1 and 2 }}|{{ 0 or 'x' }}|{{ none or [] }}",
                 "|yes|True|2|x|[]");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loops),
        cmocka_unit_test(test_scoping),
        cmocka_unit_test(test_macros),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_conditionals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
