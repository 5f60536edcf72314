/* Chat templates, values: printing (Python str/repr of numbers, strings, lists,
 * dicts, tuples), arithmetic, slicing, string and dict methods, the filters and tests
 * the chat templates use, tojson formatting (Hugging Face's json.dumps settings),
 * Markup from |safe, and undefined values. Expected texts are what Jinja2 renders. */
#include "chat_check.h"

static void test_printing_and_numbers(void **state) {
    check_render("{{ 9007199254740993 }} {{ 1.0e16 }} {{ 1.5e-7 }} {{ 100.0 }} {{ -0.0 }} {{ 1/3 }} {{ 0.1 + 0.2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 10 / 5 }}",
                 "9007199254740993 1e+16 1.5e-07 100.0 -0.0 0.3333333333333333 0.30000000000000004 3 -4 2 3.5 2.0");
    check_render("{{ \"It's\" }} {{ ['It\\'s', \"a\\\"b\"] }} {{ ['\\n', '\\x00', '\xc3""\xa9""', '\\u200b'] }} {{ none }} {{ [none, true, 1.5] }}",
                 "It's [\"It's\", 'a\"b'] ['\\n', '\\x00', '\xc3""\xa9""', '\\u200b'] None [None, True, 1.5]");
    check_render("{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 * 2 }} {{ 10 / 4 }} {{ 1e100 }} {{ 123456789.0 * 1000000000 }} {{ 3 % 2.5 }} {{ -7.5 // 2 }}",
                 "1024 0.5 3.0 2.5 1e+100 1.23456789e+17 0.5 -4.0");
    check_render("{{ 'a' ~ 1 ~ none ~ true }} {{ 'x' in 'xyz' }} {{ 2 not in [1,2] }} {{ 'k' in {'k': 1} }} {{ 1 == 1.0 }} {{ true == 1 }} {{ [1,2] < [1,3] }}",
                 "a1NoneTrue True False True True True True");
    check_render_ctx("{{ n + 1 }} {{ f * 2 }} {{ s }} {{ l }} {{ o }} {{ n is integer }} {{ f is float }}",
                     "{\"n\": 3, \"f\": 2.5, \"s\": \"\\u00e9\", \"l\": [1, 2], \"o\": {\"z\": 1, \"a\": 2}}",
                     "4 5.0 \xc3""\xa9"" [1, 2] {'z': 1, 'a': 2} True True");
    check_render("{{ '{} and {}'.format(1, 'x') }} {{ \"%s-%d\" % ('a', 3) }} {{ \"%.2f\" % 3.14159 }} {{ ', '.join(['a','b']) }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }}",
                 "1 and x a-3 3.14 a, b ababab [1, 1] [1, 2]");
}

static void test_slicing(void **state) {
    check_render("{{ 'hello'[1:3] }}{{ 'hello'[::-1] }}{{ 'hello'[-2:] }}{{ [1,2,3,4,5][1::2] }}{{ [1,2,3][-1] }}{{ 'h\xc3""\xa9""llo'[1] }}{{ 'h\xc3""\xa9""llo'[::2] }}{{ 'abc'[5:] }}{{ (1,2,3)[1:] }}",
                 "elollehlo[2, 4]3\xc3""\xa9""hlo(2, 3)");
    check_render_ctx("{{ [1,2,3][1:] }} {{ [1,2,3][:-1] }} {{ 'abc'[-10:2] }} {{ [1,2,3][::-2] }} {{ messages[-1].content }}",
                     "{\"messages\": [{\"content\": \"a\"}, {\"content\": \"b\"}]}",
                     "[2, 3] [1, 2] ab [3, 1] b");
}

static void test_string_methods(void **state) {
    check_render("{{ 'a,b,,c'.split(',') }}{{ ' a b  c '.split() }}{{ 'a b c'.split(' ', 1) }}{{ 'a,b,c'.rsplit(',', 1) }}{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x','c')) }}{{ 'hello'.replace('l','L') }}",
                 "['a', 'b', '', 'c']['a', 'b', 'c']['a', 'b c']['a,b', 'c']TrueTrueheLLo");
    check_render("{{ \"  hi  \"|trim }}|{{ \"xxhixx\"|trim('x') }}|{{ \"hello wORLD\"|title }}|{{ \"hELLO\"|capitalize }}|{{ \"a-b c(d\"|title }}|{{ \"o'neil x\".title() }}",
                 "hi|hi|Hello World|Hello|A-B C(D|O'Neil X");
    check_render("{{ '  x '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}|{{ 'abc'.find('c') }}|{{ 'abc'.find('z') }}|{{ 'a-b-c'.count('-') }}|{{ 'A1'.isdigit() }}|{{ 'a\\nb'.splitlines() }}",
                 "x|axx|xxa|2|-1|2|False|['a', 'b']");
    check_render("{{ '\xc3""\x89""t\xc3""\xa9""'|upper }} {{ '\xc3""\x89""T\xc3""\x89""'|lower }} {{ 'na\xc3""\xaf""ve caf\xc3""\xa9""'|title }} {{ '\xe6""\x97""\xa5""\xe6""\x9c""\xac""\xe8""\xaa""\x9e""'|length }} {{ '\xe6""\x97""\xa5""\xe6""\x9c""\xac""\xe8""\xaa""\x9e""'[1:] }}",
                 "\xc3""\x89""T\xc3""\x89"" \xc3""\xa9""t\xc3""\xa9"" Na\xc3""\xaf""ve Caf\xc3""\xa9"" 3 \xe6""\x9c""\xac""\xe8""\xaa""\x9e""");
}

static void test_filters(void **state) {
    check_render("{{ [3,1,2]|sort }}{{ [3,1,2]|sort(reverse=true) }}{{ ['b','A','c']|sort }}{{ ['b','A','c']|sort(case_sensitive=true) }}{{ [{'n':2},{'n':1}]|sort(attribute='n') }}",
                 "[1, 2, 3][3, 2, 1]['A', 'b', 'c']['A', 'b', 'c'][{'n': 1}, {'n': 2}]");
    check_render("{{ [1,2,2,3,1]|unique|list }}{{ ['a','A','b']|unique|list }}{{ [1,2,3]|first }}{{ [1,2,3]|last }}{{ [1,2,3]|length }}{{ 'h\xc3""\xa9""llo'|length }}{{ {'a':1}|length }}",
                 "[1, 2, 3]['a', 'b']13351");
    check_render("{{ \"a\\nb\\n\\nc\"|indent(2) }}|{{ \"a\\nb\"|indent(2, true) }}|{{ \"a\\n\\nb\"|indent(2, blank=true) }}|{{ \"x\"|indent('> ', first=true) }}",
                 "a\n  b\n\n  c|  a\n  b|a\n  \n  b|> x");
    check_render("{{ [1,2,3,4]|select('odd')|list }}{{ [1,2,3,4]|reject('odd')|list }}{{ [{'t':'a'},{'t':'b'}]|selectattr('t','equalto','a')|list }}{{ [{'t':'a'},{'x':1}]|selectattr('t','defined')|list }}{{ [{'t':'a'},{'t':'b'}]|rejectattr('t','eq','a')|list }}{{ none|selectattr('x')|list }}",
                 "[1, 3][2, 4][{'t': 'a'}][{'t': 'a'}][{'t': 'b'}][]");
    check_render("{{ [{'a':'x'},{'a':'y'}]|map(attribute='a')|join('-') }}{{ ['a','b']|map('upper')|list }}{{ [{'a':{'b':1}}]|map(attribute='a.b')|list }}{{ [{}]|map(attribute='q', default='z')|list }}{{ ['a', 'b']|join(', ') }}",
                 "x-y['A', 'B'][1]['z']a, b");
    check_render("{{ {'a':1}.get('a') }}{{ {'a':1}.get('b') }}{{ {'a':1}.get('b', 5) }}{{ {'a':1}.keys()|list }}{{ {'a':1}.values()|list }}{{ {'a':1}.items()|list }}{{ {'items': 3}['items'] }}",
                 "1None5['a'][1][('a', 1)]3");
    check_render("{{ [1,2,3,4,5]|batch(2)|list }}{{ [1,2,3]|sum }}{{ [3,1]|max }}{{ [3,1]|min }}{{ 'a b c'|wordcount }}{{ [1,2]|reverse|list }}{{ 'abc'|reverse }}{{ '42'|int + 1 }}{{ 'x'|int }}{{ '3.5'|float }}{{ 2.567|round(1) }}{{ {'b':1,'a':2}|dictsort }}",
                 "[[1, 2], [3, 4], [5]]6313[2, 1]cba4303.52.6[('a', 2), ('b', 1)]");
    check_render("{% set tools = none %}{{ tools | selectattr('type', 'equalto', 'code') | list | length }}",
                 "0");
}

static void test_tests(void **state) {
    check_render("{{ 1 is number }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 1 is iterable }}{{ none is none }}{{ true is boolean }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}{{ 4 is divisibleby 2 }}{{ 3 is even }}{{ 1 is in [1] }}{{ 'a' is lower }}{{ 2 is gt 1 }}{{ [] is sequence }}{{ x is undefined }}",
                 "TrueTrueTrueTrueFalseTrueTrueTrueFalseTrueTrueFalseTrueTrueTrueTrueTrue");
    check_render("{{ false is sameas false }} {{ none is sameas none }} {{ 3 is odd }} {{ 'ABC' is upper }} {{ x is callable }} {{ range is callable }}",
                 "True True True True True True");
}

static void test_tojson(void **state) {
    check_render("{{ {'b':1,'a':2}|tojson }}{{ [1,'\xc3""\xa9""',none,true,1.5,{'k':'v'}]|tojson }}{{ \"a\\\"b\\\\c\\n\\t\\u0001\"|tojson }}{{ {'b':1,'a':2}|tojson(sort_keys=true) }}{{ [1,[2]]|tojson(separators=(',', ':')) }}",
                 "{\"b\": 1, \"a\": 2}[1, \"\xc3""\xa9""\", null, true, 1.5, {\"k\": \"v\"}]\"a\\\"b\\\\c\\n\\t\\u0001\"{\"a\": 2, \"b\": 1}[1,[2]]");
    check_render("{{ {'a':{'b':[]},'c':[1,{}]}|tojson(indent=2) }}",
                 "{\n  \"a\": {\n    \"b\": []\n  },\n  \"c\": [\n    1,\n    {}\n  ]\n}");
    check_render_ctx("{{ tools|tojson }}",
                     "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"b\": 1, \"a\": [1.5, null, true, \"\\u00e9\\u4e2d\\ud83d\\ude00\"]}}}]}",
                     "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"b\": 1, \"a\": [1.5, null, true, \"\xc3""\xa9""\xe4""\xb8""\xad""\xf0""\x9f""\x98""\x80""\"]}}}]");
    check_render_ctx("{{ x|tojson(indent=4) }}|{{ x|tojson(ensure_ascii=true) }}",
                     "{\"x\": {\"k\": [\"\\u00e9\\ud83d\\ude00\", {}], \"e\": []}}",
                     "{\n    \"k\": [\n        \"\xc3""\xa9""\xf0""\x9f""\x98""\x80""\",\n        {}\n    ],\n    \"e\": []\n}|{\"k\": [\"\\u00e9\\ud83d\\ude00\", {}], \"e\": []}");
    check_render("{{ 1.0|tojson }} {{ 1e20|tojson }} {{ 'a\\u2028b\\x7f'|tojson }} {{ {1: 'x', none: 'y', true: 'z'}|tojson }}",
                 "1.0 1e+20 \"a\xe2""\x80""\xa8""b\" {\"1\": \"z\", \"null\": \"y\"}");
}

static void test_markup_and_undefined(void **state) {
    check_render("{{ 'x'|safe + '<b>' }} {{ '<b>' + 'x'|safe }} {{ '<b>' ~ 'x'|safe }} {{ '<&>\"\\''|e }}",
                 "x&lt;b&gt; &lt;b&gt;x <b>x &lt;&amp;&gt;&#34;&#39;");
    check_render("{{ x }}|{{ x|default('d') }}|{{ none|default('d') }}|{{ ''|default('d', true) }}|{{ x is defined }}|{{ x|length }}|{{ x|list }}|{% for i in x %}no{% endfor %}|{{ x ~ 'a' }}|{{ x == x }}",
                 "|d|None|d|False|0|[]||a|True");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_printing_and_numbers),
        cmocka_unit_test(test_slicing),
        cmocka_unit_test(test_string_methods),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_tests),
        cmocka_unit_test(test_tojson),
        cmocka_unit_test(test_markup_and_undefined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
