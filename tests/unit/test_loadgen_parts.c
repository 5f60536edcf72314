/* Load generator pieces: the SSE parser gives the same answer wherever the body is cut
 * (every split point of completions and chat streams, CRLF and CR line ends, comments,
 * multi-line data), reports usage, [DONE], error frames and malformed bodies; percentiles
 * interpolate and stay ordered; prompts are reproducible per seed and differ per request. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "loadgen/loadgen.h"
#include "loadgen/loadgen_sse.h"

static const char completions_stream[] =
    "data: {\"choices\":[{\"index\":0,\"text\":\"Hello\"}]}\n\n"
    ": keep-alive comment\n\n"
    "data: {\"choices\":[{\"index\":0,\"text\":\" w\\u00f6rld\"}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3}}\n\n"
    "data: [DONE]\n\n";

static const char chat_stream_crlf[] =
    "event: message\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\r\n\r\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"}}]}\r\r"
    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n"
    "data: [DONE]\r\n\r\n";

/* Feeds text cut at `cut` (and at every byte when cut is 0). */
static void feed_split(loadgen_sse *p, const char *text, size_t cut) {
    size_t n = strlen(text);
    if (cut == 0) {
        for (size_t i = 0; i < n; i++) loadgen_sse_feed(p, text + i, 1);
        return;
    }
    loadgen_sse_feed(p, text, cut);
    loadgen_sse_feed(p, text + cut, n - cut);
}

static void check_every_split(const char *text, long chunks, long usage) {
    for (size_t cut = 0; cut < strlen(text); cut++) {
        loadgen_sse p;
        loadgen_sse_init(&p);
        feed_split(&p, text, cut);
        if (p.content_chunks != chunks || p.usage_tokens != usage || !p.done || p.malformed || p.stream_error)
            fail_msg("cut at %zu: chunks %ld (want %ld), usage %ld (want %ld), done %d, malformed %d (%s)", cut,
                     p.content_chunks, chunks, p.usage_tokens, usage, p.done, p.malformed, p.why);
        loadgen_sse_free(&p);
    }
}

static void test_completions_any_split(void **state) { check_every_split(completions_stream, 2, 3); }

static void test_chat_crlf_any_split(void **state) { check_every_split(chat_stream_crlf, 2, -1); }

static void test_multiline_data_and_native_content(void **state) {
    loadgen_sse p;
    loadgen_sse_init(&p);
    const char *body = "data: {\"content\":\ndata: \"tok\", \"tokens_predicted\": 7}\n\ndata:[DONE]\n\n";
    assert_true(loadgen_sse_feed(&p, body, strlen(body)));
    assert_int_equal(p.content_chunks, 1);
    assert_int_equal(p.usage_tokens, 7);
    assert_true(p.done);
    loadgen_sse_free(&p);
}

static void test_error_frame(void **state) {
    loadgen_sse p;
    loadgen_sse_init(&p);
    const char *body = "data: {\"choices\":[{\"text\":\"a\"}]}\n\n"
                       "data: {\"error\":{\"message\":\"deadline passed\",\"code\":\"timeout\"}}\n\n";
    assert_false(loadgen_sse_feed(&p, body, strlen(body)));
    assert_true(p.stream_error);
    assert_false(p.done);
    assert_int_equal(p.content_chunks, 1);
    assert_string_equal(p.why, "deadline passed");
    loadgen_sse_free(&p);
}

static void expect_malformed(const char *body, const char *why_part) {
    loadgen_sse p;
    loadgen_sse_init(&p);
    bool ok = loadgen_sse_feed(&p, body, strlen(body));
    if (ok || !p.malformed || !strstr(p.why, why_part))
        fail_msg("body %s: ok %d malformed %d why '%s' (want '%s')", body, ok, p.malformed, p.why, why_part);
    loadgen_sse_free(&p);
}

static void test_malformed(void **state) {
    expect_malformed("data: {\"choices\": [\n\n", "not a JSON object");
    expect_malformed("data: [1,2]\n\n", "not a JSON object");
    expect_malformed("{\"choices\":[]}\n\n", "not an SSE line");
    expect_malformed("<html>busy</html>\n", "not an SSE line");
}

static void test_line_cap(void **state) {
    loadgen_sse p;
    loadgen_sse_init(&p);
    char *big = mem_alloc(LOADGEN_SSE_MAX / 4);
    assert_non_null(big);
    memset(big, 'x', LOADGEN_SSE_MAX / 4);
    bool ok = loadgen_sse_feed(&p, "data: ", 6);
    for (int i = 0; i < 5 && ok; i++) ok = loadgen_sse_feed(&p, big, LOADGEN_SSE_MAX / 4);
    assert_false(ok);
    assert_true(p.malformed);
    assert_non_null(strstr(p.why, "1 MiB"));
    mem_free(big);
    loadgen_sse_free(&p);
}

static void test_bytes_after_done_ignored(void **state) {
    loadgen_sse p;
    loadgen_sse_init(&p);
    const char *body = "data: [DONE]\n\ngarbage\n\n";
    assert_true(loadgen_sse_feed(&p, body, strlen(body)));
    assert_true(p.done);
    assert_false(p.malformed);
    loadgen_sse_free(&p);
}

static void test_percentiles(void **state) {
    double v[] = {5, 1, 4, 2, 3}; /* sorted 1..5 */
    loadgen_summary s = loadgen_summarize(v, 5);
    assert_int_equal(s.n, 5);
    assert_float_equal(s.min, 1, 1e-12);
    assert_float_equal(s.max, 5, 1e-12);
    assert_float_equal(s.mean, 3, 1e-12);
    assert_float_equal(s.p50, 3, 1e-12);
    assert_float_equal(s.p90, 4.6, 1e-12);
    assert_float_equal(s.p99, 4.96, 1e-12);
    double one = 7;
    s = loadgen_summarize(&one, 1);
    assert_float_equal(s.p50, 7, 1e-12);
    assert_float_equal(s.p99, 7, 1e-12);
    s = loadgen_summarize(NULL, 0);
    assert_int_equal(s.n, 0);
    assert_float_equal(s.p99, 0, 1e-12);
}

static void test_prompts(void **state) {
    char *a = loadgen_prompt(1, 0, 128), *b = loadgen_prompt(1, 0, 128), *c = loadgen_prompt(1, 1, 128),
         *d = loadgen_prompt(2, 0, 128);
    assert_non_null(a);
    assert_string_equal(a, b);
    if (!strcmp(a, c) || !strcmp(a, d)) fail_msg("prompts repeat across requests or seeds: %s", a);
    size_t words = 1;
    for (const char *p = a; *p; p++) words += *p == ' ';
    assert_int_equal(words, 128);
    /* requests must not share a long prefix (it would be served from the prefix cache) */
    size_t common = 0;
    while (a[common] && a[common] == c[common]) common++;
    if (common > 40) fail_msg("requests 0 and 1 share %zu bytes of prefix", common);
    mem_free(a);
    mem_free(b);
    mem_free(c);
    mem_free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completions_any_split),
        cmocka_unit_test(test_chat_crlf_any_split),
        cmocka_unit_test(test_multiline_data_and_native_content),
        cmocka_unit_test(test_error_frame),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_line_cap),
        cmocka_unit_test(test_bytes_after_done_ignored),
        cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_prompts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
