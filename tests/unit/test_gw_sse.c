/* The gateway's SSE parser: events come out the same however the bytes are split
 * (every split point, CRLF across feeds), multi-line data, comments and unknown fields,
 * and hostile input (over-long line, oversize event, NUL, invalid UTF-8) is an error
 * naming the problem; the gateway's JSON config is checked field by field. */
#include "testutil.h"

#include "gateway/gw_sse.h"
#include "gw_test_util.h"

typedef struct seen {
    char out[4096];
    size_t len;
    int n;
    int stop_after; /* 0: never */
} seen;

static bool on_event(void *ud, const char *type, const char *data, size_t len) {
    seen *s = ud;
    s->n++;
    s->len += (size_t)snprintf(s->out + s->len, sizeof s->out - s->len, "[%s|%.*s]", type, (int)len, data);
    return !(s->stop_after && s->n >= s->stop_after);
}

static const char STREAM[] = ": keep-alive comment\r\n"
                             "data: {\"a\":1}\r\n\r\n"
                             "event: ping\n"
                             "data:first\n"
                             "data:  second\n"
                             "id: 7\n"
                             "retry: 100\n"
                             "unknownfield\n"
                             "\n"
                             "data\r"
                             "\r"
                             "data: [DONE]\n\n";
static const char WANT[] = "[message|{\"a\":1}][ping|first\n second][message|][message|[DONE]]";

static void test_events_whatever_the_split(void **state) {
    size_t n = sizeof STREAM - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        seen s = {0};
        gw_sse p;
        gw_sse_init(&p, 0, 0, on_event, &s);
        hearth_err err = {0};
        assert_int_equal(gw_sse_feed(&p, STREAM, cut, &err), HEARTH_OK);
        assert_int_equal(gw_sse_feed(&p, STREAM + cut, n - cut, &err), HEARTH_OK);
        assert_true(gw_sse_finish(&p));
        if (strcmp(s.out, WANT) != 0) fail_msg("split at %zu:\n got  %s\n want %s", cut, s.out, WANT);
        gw_sse_free(&p);
    }
    /* and one byte at a time */
    seen s = {0};
    gw_sse p;
    gw_sse_init(&p, 0, 0, on_event, &s);
    hearth_err err = {0};
    for (size_t i = 0; i < n; i++) assert_int_equal(gw_sse_feed(&p, STREAM + i, 1, &err), HEARTH_OK);
    assert_string_equal(s.out, WANT);
    gw_sse_free(&p);
}

static void test_unfinished_event_is_dropped(void **state) {
    seen s = {0};
    gw_sse p;
    gw_sse_init(&p, 0, 0, on_event, &s);
    hearth_err err = {0};
    const char *t = "data: one\n\ndata: two\n";
    assert_int_equal(gw_sse_feed(&p, t, strlen(t), &err), HEARTH_OK);
    assert_false(gw_sse_finish(&p));
    assert_string_equal(s.out, "[message|one]");
    gw_sse_free(&p);
}

static void expect_error(const char *input, size_t len, size_t max_line, size_t max_event, const char *words) {
    seen s = {0};
    gw_sse p;
    gw_sse_init(&p, max_line, max_event, on_event, &s);
    hearth_err err = {0};
    hearth_status st = gw_sse_feed(&p, input, len, &err);
    if (st != HEARTH_ERR_FORMAT) fail_msg("status %d, want FORMAT (%s)", st, words);
    if (!strstr(err.msg, words)) fail_msg("message '%s' does not say '%s'", err.msg, words);
    gw_sse_free(&p);
}

static void test_hostile_input_is_an_error(void **state) {
    size_t big = (size_t)10 << 20;
    char *line = malloc(big + 16);
    assert_non_null(line);
    memcpy(line, "data: ", 6);
    memset(line + 6, 'x', big);
    expect_error(line, big + 6, 0, 0, "longer than 1048576");
    free(line);
    expect_error("data: abcdefgh\n", 15, 8, 0, "longer than 8");
    expect_error("data: 123456\ndata: 123456\n", 26, 0, 10, "exceeds 10");
    expect_error("data: a\0b\n", 10, 0, 0, "NUL");
    expect_error("data: \xff\xfe\n", 9, 0, 0, "UTF-8");
    expect_error("event: 0123456789012345678901234567890123456789012345678901234567890123456789\n", 78, 0, 0, "event type");
}

static void test_reader_can_stop(void **state) {
    seen s = {.stop_after = 1};
    gw_sse p;
    gw_sse_init(&p, 0, 0, on_event, &s);
    hearth_err err = {0};
    const char *t = "data: 1\n\ndata: 2\n\n";
    assert_int_equal(gw_sse_feed(&p, t, strlen(t), &err), HEARTH_ERR_CANCELLED);
    assert_int_equal(s.n, 1);
    gw_sse_free(&p);
}

/* ---- config ---- */

static void expect_config_error(const char *json, const char *words) {
    json_error_t je;
    json_t *root = json_loads(json, 0, &je);
    if (!root) fail_msg("bad test JSON: %s", je.text);
    gw_config *c = NULL;
    hearth_err err = {0};
    hearth_status st = gw_config_parse(root, &c, &err);
    json_decref(root);
    if (st != HEARTH_ERR_INVALID) fail_msg("status %d for %s, want INVALID", st, json);
    assert_null(c);
    if (!strstr(err.msg, words)) fail_msg("message '%s' does not say '%s'", err.msg, words);
}

static void test_config_good(void **state) {
    gw_config *c = gwt_config(
        "{\"providers\":[{\"name\":\"up\",\"base_url\":\"http://127.0.0.1:1/v1\",\"api_key_env\":\"K\","
        "\"models\":{\"fast\":\"gpt-x\"},\"timeouts\":{\"connect_s\":1.5,\"first_byte_s\":2},\"max_attempts\":3}],"
        "\"routes\":[{\"name\":\"chat\",\"targets\":[\"local:m\",\"up/fast\"]},"
        "{\"name\":\"ab\",\"strategy\":\"weighted\",\"sticky\":true,\"targets\":[{\"target\":\"local:m\",\"weight\":70},"
        "{\"target\":\"up/fast\",\"weight\":30}]},"
        "{\"name\":\"r\",\"strategy\":\"collaborate\",\"collaborate\":\"race\",\"targets\":[\"local:m\",\"up/fast\"]}],"
        "\"breaker\":{\"failures\":3,\"cooldown_s\":10},\"retry\":{\"base_s\":0.05,\"budget_ratio\":0.2},\"seed\":9}");
    assert_non_null(c);
    assert_int_equal(c->n_providers, 1);
    assert_int_equal(c->providers[0].connect_timeout_ms, 1500);
    assert_int_equal(c->providers[0].first_byte_timeout_ms, 2000);
    assert_int_equal(c->providers[0].total_timeout_ms, 600000); /* default kept */
    assert_int_equal(c->providers[0].max_attempts, 3);
    assert_string_equal(c->providers[0].models[0].upstream, "gpt-x");
    assert_int_equal(c->n_routes, 3);
    assert_int_equal(c->routes[0].strategy, GW_FALLBACK);
    assert_int_equal(c->routes[1].strategy, GW_WEIGHTED);
    assert_true(c->routes[1].sticky);
    assert_int_equal(c->routes[1].targets[0].weight, 70);
    assert_int_equal(c->routes[2].strategy, GW_RACE);
    assert_int_equal(c->breaker.failures, 3);
    assert_int_equal(c->breaker.cooldown_ns, 10000000000ull);
    assert_int_equal(c->retry.base_ms, 50);
    assert_int_equal(c->retry.cap_ms, 8000);
    assert_int_equal(c->seed, 9);
    gw_config_free(c);
}

static void test_config_errors_name_the_field(void **state) {
    expect_config_error("{\"routes\":[{\"name\":\"a\",\"targets\":[\"nope/x\"]}]}", "routes[0].targets[0]: no provider named 'nope'");
    expect_config_error("{\"routes\":[{\"name\":\"a\",\"targets\":[]}]}", "routes[0].targets must be");
    expect_config_error("{\"routes\":[{\"name\":\"a\",\"targets\":[\"local:x\"],\"stategy\":\"race\"}]}",
                        "routes[0].stategy is not a known field");
    expect_config_error("{\"providers\":[{\"name\":\"p\",\"base_url\":\"http://h\",\"timeouts\":{\"connect_s\":-1}}]}",
                        "providers[0].timeouts.connect_s must be between");
    expect_config_error("{\"providers\":[{\"name\":\"p\"}]}", "providers[0].base_url is required");
    expect_config_error("{\"providers\":[{\"name\":\"p\",\"base_url\":\"http://h\",\"kind\":\"anthropic\"}]}",
                        "providers[0].kind");
    expect_config_error("{\"routes\":[{\"name\":\"a\",\"strategy\":\"weighted\",\"targets\":[{\"target\":\"local:x\",\"weight\":0}]}]}",
                        "add up to 0");
    expect_config_error("{\"routes\":[{\"name\":\"a\",\"strategy\":\"collaborate\",\"collaborate\":\"shadow\",\"targets\":[\"local:x\"]}]}",
                        "exactly 2");
    expect_config_error("{\"routes\":[{\"name\":\"a\",\"targets\":[\"local:x\"]},{\"name\":\"a\",\"targets\":[\"local:y\"]}]}",
                        "routes[1].name 'a' is used twice");
    expect_config_error("{\"breaker\":{\"cooldown_s\":60,\"cooldown_max_s\":10}}", "cooldown_max_s");
    expect_config_error("{\"routes\":[{\"name\":\"a\",\"sticky\":true,\"targets\":[\"local:x\"]}]}", "only for weighted");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_whatever_the_split),
        cmocka_unit_test(test_unfinished_event_is_dropped),
        cmocka_unit_test(test_hostile_input_is_an_error),
        cmocka_unit_test(test_reader_can_stop),
        cmocka_unit_test(test_config_good),
        cmocka_unit_test(test_config_errors_name_the_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
