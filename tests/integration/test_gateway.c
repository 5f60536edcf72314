/* The gateway against a fault-injecting upstream on loopback (tests/support/
 * fault_upstream.c) and a scripted local target: fallback on every retryable failure and
 * none on a 400; no retry once a streamed byte reached the client; retries on one target
 * honour Retry-After and back off (virtual clock); the breaker opens after 5 failures,
 * skips the target at once while open, half-opens and closes; weighted splits; race and
 * shadow; the provider key reaches only its host and never a report or log. */
#include "testutil.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "fault_upstream.h"
#include "srvtest.h"
#include "gw_test_util.h"

/* ---- a scripted local target: the model name says what it does ---------------------- */

typedef struct local_count {
    char model[32];
    _Atomic int calls;
} local_count;

static local_count counts[16];
static pthread_mutex_t counts_mu = PTHREAD_MUTEX_INITIALIZER;

static int local_calls(const char *model) {
    for (size_t i = 0; i < 16; i++)
        if (!strcmp(counts[i].model, model)) return atomic_load(&counts[i].calls);
    return 0;
}

static void count_call(const char *model) {
    pthread_mutex_lock(&counts_mu);
    for (size_t i = 0; i < 16; i++) {
        if (!strcmp(counts[i].model, model) || !counts[i].model[0]) {
            snprintf(counts[i].model, sizeof counts[i].model, "%s", model);
            atomic_fetch_add(&counts[i].calls, 1);
            break;
        }
    }
    pthread_mutex_unlock(&counts_mu);
}

/* "busy": 503; "slow*": answers after 1 s unless cancelled; anything else answers its name. */
static void local_call(void *ud, const char *model, const gw_request *req, const gw_sink *sink, gw_outcome *out) {
    (void)ud;
    count_call(model);
    if (!strcmp(model, "busy")) {
        out->kind = GW_OUT_SERVER;
        out->http_status = 503;
        snprintf(out->msg, sizeof out->msg, "local model busy");
        return;
    }
    if (!strncmp(model, "slow", 4)) {
        for (int i = 0; i < 100; i++) {
            if (sink->gone && sink->gone(sink->ud)) {
                out->kind = GW_OUT_CANCELLED;
                snprintf(out->msg, sizeof out->msg, "cancelled");
                return;
            }
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
    }
    char buf[256];
    bool ok;
    if (req->stream) {
        snprintf(buf, sizeof buf, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"}}]}", model);
        ok = sink->event(sink->ud, buf, strlen(buf));
    } else {
        snprintf(buf, sizeof buf, "{\"choices\":[{\"index\":0,\"message\":{\"content\":\"%s\"}}]}", model);
        ok = sink->body(sink->ud, buf, strlen(buf));
    }
    out->kind = ok ? GW_OUT_OK : GW_OUT_CANCELLED;
    out->http_status = ok ? 200 : 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

static vclock vc;
static char logbuf[1 << 16];
static size_t loglen;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static gw_shadow_record last_shadow;
static char last_shadow_texts[2][64];
static _Atomic int shadows_seen;

static void log_line(void *ud, const char *level, const json_t *fields) {
    (void)ud;
    char *s = json_dumps(fields, JSON_COMPACT);
    pthread_mutex_lock(&log_mu);
    if (s && loglen + strlen(s) + 2 < sizeof logbuf)
        loglen += (size_t)snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s %s\n", level, s);
    pthread_mutex_unlock(&log_mu);
    free(s);
}

static void on_shadow(void *ud, const gw_shadow_record *r) {
    (void)ud;
    last_shadow = *r;
    snprintf(last_shadow_texts[0], 64, "%.*s", (int)r->primary.text_len, r->primary.text ? r->primary.text : "");
    snprintf(last_shadow_texts[1], 64, "%.*s", (int)r->shadow.text_len, r->shadow.text ? r->shadow.text : "");
    last_shadow.primary.text = last_shadow.shadow.text = NULL;
    atomic_fetch_add(&shadows_seen, 1);
}

static gw *make(const char *json, bool virtual_clock) {
    gw_config *c = gwt_config(json);
    if (!c) fail_msg("config refused");
    gw_env env = {.local = {.call = local_call}, .log = log_line, .on_shadow = on_shadow};
    if (virtual_clock) {
        vclock_init(&vc, 1000000000000ull);
        env.clock = &vc.clock;
    }
    gw *g = NULL;
    hearth_err err = {0};
    if (gw_new(c, &env, &g, &err) != HEARTH_OK) fail_msg("gw_new: %s", err.msg);
    gw_config_free(c);
    loglen = 0;
    logbuf[0] = '\0';
    return g;
}

static json_t *body_of(const char *model) { return json_pack("{s:s, s:[{s:s, s:s}], s:i}", "model", model, "messages", "role", "user", "content", "hello", "top_k", 5); }

/* Runs one request on route `model`. */
static void run(gw *g, const char *model, bool stream, const char *user, collect *c, gw_result *res) {
    json_t *body = body_of(model);
    gw_request req = {.api = GW_API_CHAT, .model = model, .body = body, .stream = stream, .user = user};
    collect_init(c);
    gw_sink s = collect_sink(c);
    gw_call(g, &req, &s, res);
    json_decref(body);
}

static void print_result(const gw_result *r) {
    json_t *j = gw_result_json(r);
    char *s = json_dumps(j, JSON_COMPACT);
    fprintf(stderr, "result: %s\n", s ? s : "(null)");
    free(s);
    json_decref(j);
}

#define EXPECT_KIND(res, want)                                                                                  \
    do {                                                                                                        \
        if ((res)->kind != (want)) {                                                                            \
            print_result(res);                                                                                  \
            fail_msg("outcome %s, want %s (%s)", gw_outcome_name((res)->kind), gw_outcome_name(want), (res)->msg); \
        }                                                                                                       \
    } while (0)

/* Two providers: "bad" at port a (1 attempt), "good" at port b. */
static gw *two_providers(int a, int b, const char *extra_route) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"providers\":["
             "{\"name\":\"bad\",\"base_url\":\"http://127.0.0.1:%d/v1\",\"max_attempts\":1,"
             "\"timeouts\":{\"connect_s\":2,\"first_byte_s\":0.3,\"idle_s\":0.3,\"total_s\":10}},"
             "{\"name\":\"good\",\"base_url\":\"http://127.0.0.1:%d/v1/\",\"max_attempts\":1,"
             "\"models\":{\"m\":\"upstream-m\"}}],"
             "\"routes\":[{\"name\":\"chat\",\"targets\":[\"bad/m\",\"good/m\"]}%s],"
             "\"retry\":{\"base_s\":0.01,\"cap_s\":0.05},\"seed\":7}",
             a, b, extra_route ? extra_route : "");
    return make(json, false);
}

/* ---- fallback ------------------------------------------------------------------------ */

static void fallback_case(const fu_reply *fault, bool dead, gw_outcome_kind want_first, bool stream) {
    fu_server *bad = fu_start(fault), *good = fu_start(&(fu_reply){.kind = FU_OK, .text = "good"});
    assert_non_null(bad);
    assert_non_null(good);
    gw *g = two_providers(dead ? fu_dead_port() : fu_port(bad), fu_port(good), NULL);
    collect c;
    gw_result res;
    run(g, "chat", stream, NULL, &c, &res);
    EXPECT_KIND(&res, GW_OUT_OK);
    assert_string_equal(res.target, "good/m");
    assert_int_equal(res.http_status, 200);
    if (res.n_attempts != 2) {
        print_result(&res);
        fail_msg("%zu attempts, want 2", res.n_attempts);
    }
    if (res.attempts[0].kind != want_first)
        fail_msg("first attempt %s, want %s (%s)", gw_outcome_name(res.attempts[0].kind), gw_outcome_name(want_first),
                 res.attempts[0].msg);
    assert_int_equal(fu_requests(good), 1);
    assert_non_null(strstr(c.text, "good"));
    if (stream) assert_int_equal(c.events, 3);
    else assert_int_equal(c.bodies, 1);
    /* the good provider got its mapped model name, and no Hearth-only field */
    char *seen = fu_seen(good);
    assert_non_null(strstr(seen, "\"model\":\"upstream-m\""));
    assert_null(strstr(seen, "top_k"));
    assert_non_null(strstr(seen, "POST /v1/chat/completions "));
    free(seen);
    gw_result_free(&res);
    gw_free(g);
    fu_stop(bad);
    fu_stop(good);
}

static void test_fallback_on_each_retryable_failure(void **state) {
    fallback_case(&(fu_reply){.kind = FU_OK}, true, GW_OUT_CONNECT, false); /* connection refused */
    fallback_case(&(fu_reply){.kind = FU_RESET_AT_ONCE}, false, GW_OUT_CONNECT, false);
    fallback_case(&(fu_reply){.kind = FU_STALL_HEADERS}, false, GW_OUT_TIMEOUT, true);
    fallback_case(&(fu_reply){.kind = FU_STATUS, .status = 500}, false, GW_OUT_SERVER, false);
    fallback_case(&(fu_reply){.kind = FU_STATUS, .status = 503, .retry_after = "1"}, false, GW_OUT_SERVER, true);
    fallback_case(&(fu_reply){.kind = FU_STATUS, .status = 429, .retry_after = "1"}, false, GW_OUT_RATE_LIMITED, false);
    fallback_case(&(fu_reply){.kind = FU_STATUS, .status = 408}, false, GW_OUT_SERVER, false);
    /* broken before any byte reached the client: still retryable */
    fallback_case(&(fu_reply){.kind = FU_MALFORMED}, false, GW_OUT_BROKEN, true);
    fallback_case(&(fu_reply){.kind = FU_HUGE_LINE}, false, GW_OUT_BROKEN, true);
    fallback_case(&(fu_reply){.kind = FU_REDIRECT, .location = "http://127.0.0.1:1/"}, false, GW_OUT_SERVER, false);
}

static void test_no_fallback_on_400(void **state) {
    fu_server *bad = fu_start(&(fu_reply){.kind = FU_STATUS, .status = 400}), *good = fu_start(NULL);
    gw *g = two_providers(fu_port(bad), fu_port(good), NULL);
    collect c;
    gw_result res;
    run(g, "chat", false, NULL, &c, &res);
    EXPECT_KIND(&res, GW_OUT_CLIENT);
    assert_int_equal(res.http_status, 400);
    assert_int_equal(res.n_attempts, 1);
    assert_int_equal(fu_requests(good), 0);
    assert_non_null(res.error_body); /* the provider's own error, as-is */
    assert_non_null(strstr(res.error_body, "upstream says 400"));
    assert_int_equal(c.bodies, 0);
    /* and a 400 is not a failure of the target */
    json_t *st = gw_status_json(g);
    json_t *t0 = json_array_get(json_object_get(st, "targets"), 0);
    assert_int_equal(json_integer_value(json_object_get(t0, "failures")), 0);
    json_decref(st);
    gw_result_free(&res);
    gw_free(g);
    fu_stop(bad);
    fu_stop(good);
}

static void no_retry_case(const fu_reply *fault, const char *words) {
    fu_server *bad = fu_start(fault), *good = fu_start(NULL);
    gw *g = two_providers(fu_port(bad), fu_port(good), NULL);
    collect c;
    gw_result res;
    run(g, "chat", true, NULL, &c, &res);
    EXPECT_KIND(&res, GW_OUT_BROKEN);
    assert_true(res.committed);
    assert_int_equal(res.n_attempts, 1);
    assert_int_equal(fu_requests(good), 0);
    assert_int_equal(c.events, 2);
    if (!strstr(res.msg, words)) fail_msg("message '%s' does not say '%s'", res.msg, words);
    assert_non_null(res.error_body); /* for the stream's closing error event */
    gw_result_free(&res);
    gw_free(g);
    fu_stop(bad);
    fu_stop(good);
}

static void test_no_retry_after_first_streamed_byte(void **state) {
    no_retry_case(&(fu_reply){.kind = FU_RESET_MIDSTREAM, .chunks = 2}, "broke off");
    no_retry_case(&(fu_reply){.kind = FU_STALL_MIDSTREAM, .chunks = 2}, "stalled");
    no_retry_case(&(fu_reply){.kind = FU_CLOSE_MIDSTREAM, .chunks = 2}, "[DONE]");
}

/* ---- retries on one target (virtual clock) ------------------------------------------------ */

static gw *one_provider(int port, int attempts, const char *more_targets) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"providers\":[{\"name\":\"up\",\"base_url\":\"http://127.0.0.1:%d\",\"max_attempts\":%d}],"
             "\"routes\":[{\"name\":\"chat\",\"targets\":[\"up/m\"%s]}],"
             "\"retry\":{\"base_s\":0.1,\"cap_s\":1,\"retry_after_cap_s\":30},\"seed\":3}",
             port, attempts, more_targets);
    return make(json, true);
}

static void test_retry_backoff_and_retry_after(void **state) {
    fu_server *up = fu_start(NULL);
    fu_push(up, &(fu_reply){.kind = FU_STATUS, .status = 503, .retry_after = "2"});
    fu_push(up, &(fu_reply){.kind = FU_STATUS, .status = 500});
    fu_push(up, &(fu_reply){.kind = FU_STATUS, .status = 500});
    gw *g = one_provider(fu_port(up), 4, "");
    collect c;
    gw_result res;
    run(g, "chat", false, NULL, &c, &res);
    EXPECT_KIND(&res, GW_OUT_OK);
    assert_int_equal(res.n_attempts, 4);
    assert_int_equal(fu_requests(up), 4);
    /* after the 503 the wait is its Retry-After (2 s beats any backoff up to 0.1 s) */
    if (res.attempts[1].waited_ns != 2000000000ull)
        fail_msg("wait after Retry-After: 2 was %llu ns", (unsigned long long)res.attempts[1].waited_ns);
    /* then full jitter: U[0, 0.2 s], U[0, 0.4 s] */
    if (res.attempts[2].waited_ns > 200000000ull) fail_msg("2nd backoff %llu ns > 0.2 s", (unsigned long long)res.attempts[2].waited_ns);
    if (res.attempts[3].waited_ns > 400000000ull) fail_msg("3rd backoff %llu ns > 0.4 s", (unsigned long long)res.attempts[3].waited_ns);
    uint64_t total = res.attempts[1].waited_ns + res.attempts[2].waited_ns + res.attempts[3].waited_ns;
    if (atomic_load(&vc.slept) != total)
        fail_msg("slept %llu ns in virtual time, attempts say %llu", (unsigned long long)atomic_load(&vc.slept),
                 (unsigned long long)total);
    gw_result_free(&res);
    gw_free(g);

    /* a Retry-After beyond the cap moves on to the next target at once; an HTTP-date works too */
    fu_push(up, &(fu_reply){.kind = FU_STATUS, .status = 429, .retry_after = "3600"});
    g = one_provider(fu_port(up), 3, ",\"local:ok\"");
    run(g, "chat", false, NULL, &c, &res);
    EXPECT_KIND(&res, GW_OUT_OK);
    assert_int_equal(res.n_attempts, 2);
    assert_string_equal(res.attempts[1].target, "local:ok");
    assert_int_equal(res.attempts[1].waited_ns, 0);
    assert_int_equal(atomic_load(&vc.slept), 0);
    gw_result_free(&res);
    gw_free(g);

    fu_push(up, &(fu_reply){.kind = FU_STATUS, .status = 429, .retry_after = "Fri, 01 Jan 2100 00:00:00 GMT"});
    fu_push(up, &(fu_reply){.kind = FU_STATUS, .status = 429, .retry_after = "Fri, 01 Jan 2100 00:00:00 GMT"});
    g = one_provider(fu_port(up), 2, "");
    run(g, "chat", false, NULL, &c, &res);
    EXPECT_KIND(&res, GW_OUT_RATE_LIMITED);
    assert_int_equal(res.http_status, 429);
    assert_int_equal(res.n_attempts, 1);
    if (res.retry_after_s < 1000000) fail_msg("Retry-After for the client %d s, want the provider's date", res.retry_after_s);
    gw_result_free(&res);
    gw_free(g);
    fu_stop(up);
}

static void test_retry_budget_limits_retries(void **state) {
    fu_server *up = fu_start(&(fu_reply){.kind = FU_STATUS, .status = 500});
    char json[1024];
    snprintf(json, sizeof json,
             "{\"providers\":[{\"name\":\"up\",\"base_url\":\"http://127.0.0.1:%d\",\"max_attempts\":3}],"
             "\"routes\":[{\"name\":\"chat\",\"targets\":[\"up/m\"]}],\"breaker\":{\"failures\":0,\"failure_ratio\":0},"
             "\"retry\":{\"base_s\":0,\"budget_ratio\":0.1,\"budget_min_per_s\":0,\"budget_burst\":5}}",
             fu_port(up));
    gw *g = make(json, true);
    int refused = 0;
    for (int i = 0; i < 100; i++) {
        collect c;
        gw_result res;
        run(g, "chat", false, NULL, &c, &res);
        EXPECT_KIND(&res, GW_OUT_SERVER);
        refused += res.budget_refused;
        gw_result_free(&res);
    }
    int n = fu_requests(up);
    /* 100 first attempts; retries at most 10% of them plus the burst of 5 */
    if (n < 100 || n > 115) fail_msg("%d upstream requests for 100 client requests, want 100..115", n);
    assert_true(refused > 80);
    gw_free(g);
    fu_stop(up);
}

/* ---- circuit breaker ------------------------------------------------------------------------ */

static const char *breaker_state(gw *g, const char *target) {
    static char state[32];
    json_t *st = gw_status_json(g);
    json_t *ts = json_object_get(st, "targets");
    state[0] = '\0';
    for (size_t i = 0; i < json_array_size(ts); i++) {
        json_t *t = json_array_get(ts, i);
        if (!strcmp(json_string_value(json_object_get(t, "name")), target))
            snprintf(state, sizeof state, "%s",
                     json_string_value(json_object_get(json_object_get(t, "breaker"), "state")));
    }
    json_decref(st);
    return state;
}

static void test_breaker_opens_skips_half_opens_closes(void **state) {
    fu_server *up = fu_start(&(fu_reply){.kind = FU_STATUS, .status = 500});
    gw *g = one_provider(fu_port(up), 1, ",\"local:ok\"");
    collect c;
    gw_result res;
    for (int i = 0; i < 5; i++) {
        run(g, "chat", false, NULL, &c, &res);
        EXPECT_KIND(&res, GW_OUT_OK);
        assert_string_equal(res.target, "local:ok");
        assert_int_equal(res.n_transitions, i == 4 ? 1 : 0);
        gw_result_free(&res);
    }
    assert_string_equal(res.transitions[0].target, "up/m");
    assert_int_equal(res.transitions[0].from, GW_BREAKER_CLOSED);
    assert_int_equal(res.transitions[0].to, GW_BREAKER_OPEN);
    assert_string_equal(breaker_state(g, "up/m"), "open");
    assert_non_null(strstr(logbuf, "\"to\":\"open\""));
    assert_int_equal(fu_requests(up), 5);

    /* while open: skipped at once, nothing sent */
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = clock_mono_ns();
        run(g, "chat", false, NULL, &c, &res);
        uint64_t dt = clock_mono_ns() - t0;
        if (dt < best) best = dt;
        EXPECT_KIND(&res, GW_OUT_OK);
        assert_int_equal(res.skipped, 1);
        assert_int_equal(res.n_attempts, 1);
        gw_result_free(&res);
    }
    assert_int_equal(fu_requests(up), 5);
    if (best >= 5000000ull) fail_msg("a request skipping the open target took %llu us at best", (unsigned long long)best / 1000);
    json_t *st = gw_status_json(g);
    json_t *t0 = json_array_get(json_object_get(st, "targets"), 0);
    const char *last = json_string_value(json_object_get(json_object_get(t0, "last_error"), "message"));
    if (!last || !strstr(last, "answered 500")) fail_msg("last error '%s'", last ? last : "(none)");
    json_decref(st);

    /* cooldown over: one probe goes out, fails, and the breaker opens for twice as long */
    vclock_advance(&vc, 30000000000ull);
    run(g, "chat", false, NULL, &c, &res);
    assert_int_equal(fu_requests(up), 6);
    assert_int_equal(res.n_transitions, 2); /* open -> half_open -> open */
    assert_int_equal(res.transitions[1].to, GW_BREAKER_OPEN);
    gw_result_free(&res);
    vclock_advance(&vc, 30000000000ull);
    run(g, "chat", false, NULL, &c, &res);
    assert_int_equal(fu_requests(up), 6); /* still open: 60 s this time */
    gw_result_free(&res);

    /* the upstream recovers: the next probe closes the breaker */
    fu_set_default(up, &(fu_reply){.kind = FU_OK, .text = "back"});
    vclock_advance(&vc, 30000000000ull);
    run(g, "chat", false, NULL, &c, &res);
    EXPECT_KIND(&res, GW_OUT_OK);
    assert_string_equal(res.target, "up/m");
    assert_int_equal(res.n_transitions, 2);
    assert_int_equal(res.transitions[0].to, GW_BREAKER_HALF_OPEN);
    assert_int_equal(res.transitions[1].to, GW_BREAKER_CLOSED);
    assert_string_equal(breaker_state(g, "up/m"), "closed");
    gw_result_free(&res);
    gw_free(g);
    fu_stop(up);
}

static void test_all_targets_open_is_503(void **state) {
    gw *g = make("{\"routes\":[{\"name\":\"chat\",\"targets\":[\"local:busy\"]}],\"breaker\":{\"failures\":2}}", true);
    collect c;
    gw_result res;
    for (int i = 0; i < 2; i++) {
        run(g, "chat", false, NULL, &c, &res);
        EXPECT_KIND(&res, GW_OUT_SERVER);
        assert_int_equal(res.http_status, 503);
        gw_result_free(&res);
    }
    int before = local_calls("busy");
    run(g, "chat", false, NULL, &c, &res);
    assert_int_equal(local_calls("busy"), before);
    assert_int_equal(res.http_status, 503);
    assert_int_equal(res.retry_after_s, 30);
    assert_non_null(strstr(res.msg, "circuit breakers open"));
    gw_result_free(&res);
    gw_free(g);
}

/* ---- weighted ----------------------------------------------------------------------------------- */

static void test_weighted_split_and_sticky(void **state) {
    gw *g = make("{\"routes\":[{\"name\":\"ab\",\"strategy\":\"weighted\",\"targets\":[{\"target\":\"local:wa\","
                 "\"weight\":70},{\"target\":\"local:wb\",\"weight\":30}]},"
                 "{\"name\":\"st\",\"strategy\":\"weighted\",\"sticky\":true,\"targets\":[{\"target\":\"local:sa\","
                 "\"weight\":50},{\"target\":\"local:sb\",\"weight\":50}]}],\"seed\":12345}",
                 false);
    collect c;
    gw_result res;
    for (int i = 0; i < 1000; i++) {
        run(g, "ab", false, NULL, &c, &res);
        EXPECT_KIND(&res, GW_OUT_OK);
        gw_result_free(&res);
    }
    int a = local_calls("wa"), b = local_calls("wb");
    assert_int_equal(a + b, 1000);
    if (a < 650 || a > 750) fail_msg("70/30 split gave %d/%d over 1000 requests", a, b);
    /* sticky: a user always lands on the same target; users spread by weight */
    int users_a = 0;
    for (int u = 0; u < 1000; u++) {
        char user[32];
        snprintf(user, sizeof user, "user-%d", u);
        char first[96] = "";
        for (int k = 0; k < (u < 20 ? 5 : 1); k++) {
            run(g, "st", false, user, &c, &res);
            EXPECT_KIND(&res, GW_OUT_OK);
            if (k == 0) snprintf(first, sizeof first, "%s", res.target);
            else if (strcmp(first, res.target) != 0) fail_msg("user %s went to %s, then %s", user, first, res.target);
            gw_result_free(&res);
        }
        users_a += !strcmp(first, "local:sa");
    }
    if (users_a < 450 || users_a > 550) fail_msg("50/50 sticky split gave %d/%d users", users_a, 1000 - users_a);
    gw_free(g);
}

/* ---- race and shadow ---------------------------------------------------------------------------- */

static void test_race_first_answer_wins(void **state) {
    fu_server *slow = fu_start(&(fu_reply){.kind = FU_OK, .text = "slow", .delay_ms = 3000});
    fu_server *fast = fu_start(&(fu_reply){.kind = FU_OK, .text = "fast", .delay_ms = 50});
    char json[1024];
    snprintf(json, sizeof json,
             "{\"providers\":[{\"name\":\"s\",\"base_url\":\"http://127.0.0.1:%d\"},"
             "{\"name\":\"f\",\"base_url\":\"http://127.0.0.1:%d\"}],"
             "\"routes\":[{\"name\":\"r\",\"strategy\":\"collaborate\",\"collaborate\":\"race\","
             "\"targets\":[\"s/m\",\"f/m\"]},"
             "{\"name\":\"lr\",\"strategy\":\"race\",\"targets\":[\"local:slowl\",\"local:quick\"]}]}",
             fu_port(slow), fu_port(fast));
    gw *g = make(json, false);
    for (int stream = 0; stream < 2; stream++) {
        collect c;
        gw_result res;
        uint64_t t0 = clock_mono_ns();
        run(g, "r", stream, NULL, &c, &res);
        uint64_t dt = clock_mono_ns() - t0;
        EXPECT_KIND(&res, GW_OUT_OK);
        assert_string_equal(res.target, "f/m");
        assert_non_null(strstr(c.text, "fast"));
        assert_null(strstr(c.text, "slow"));
        if (stream) assert_int_equal(c.events, 3);
        assert_int_equal(res.n_attempts, 2);
        /* the loser was cancelled rather than waited for */
        assert_int_equal(res.attempts[0].kind, GW_OUT_CANCELLED);
        if (dt >= 2500000000ull) fail_msg("the race took %llu ms: the slow target was waited for", (unsigned long long)dt / 1000000);
        gw_result_free(&res);
    }
    collect c;
    gw_result res;
    run(g, "lr", true, NULL, &c, &res);
    EXPECT_KIND(&res, GW_OUT_OK);
    assert_string_equal(res.target, "local:quick");
    assert_string_equal(c.text, "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"quick\"}}]}");
    gw_result_free(&res);
    gw_free(g);
    fu_stop(slow);
    fu_stop(fast);
}

static void test_shadow_records_both_sides(void **state) {
    fu_server *up = fu_start(&(fu_reply){.kind = FU_OK, .text = "remote"});
    char json[1024];
    snprintf(json, sizeof json,
             "{\"providers\":[{\"name\":\"up\",\"base_url\":\"http://127.0.0.1:%d\"}],"
             "\"routes\":[{\"name\":\"sh\",\"strategy\":\"collaborate\",\"collaborate\":\"shadow\","
             "\"targets\":[\"local:primary\",\"up/m\"]}]}",
             fu_port(up));
    gw *g = make(json, false);
    atomic_store(&shadows_seen, 0);
    collect c;
    gw_result res;
    run(g, "sh", true, NULL, &c, &res);
    EXPECT_KIND(&res, GW_OUT_OK);
    assert_string_equal(res.target, "local:primary");
    assert_non_null(strstr(c.text, "primary"));
    assert_null(strstr(c.text, "remote")); /* the shadow's answer never reaches the client */
    gw_result_free(&res);
    gw_drain(g);
    assert_int_equal(atomic_load(&shadows_seen), 1);
    assert_int_equal(fu_requests(up), 1);
    assert_string_equal(last_shadow.route, "sh");
    assert_string_equal(last_shadow.primary.target, "local:primary");
    assert_string_equal(last_shadow.shadow.target, "up/m");
    assert_int_equal(last_shadow.shadow.kind, GW_OUT_OK);
    assert_int_equal(last_shadow.shadow.http_status, 200);
    assert_string_equal(last_shadow_texts[0], "primary");
    assert_string_equal(last_shadow_texts[1], "remoteremoteremote");
    assert_false(last_shadow.same_text);
    assert_true(last_shadow.shadow.total_ns >= last_shadow.shadow.first_byte_ns);
    assert_true(last_shadow.shadow.first_byte_ns > 0);
    json_t *st = gw_status_json(g);
    json_t *recent = json_object_get(json_object_get(st, "shadow"), "recent");
    assert_int_equal(json_array_size(recent), 1);
    char *s = json_dumps(st, JSON_COMPACT);
    assert_null(strstr(s, "remoteremote")); /* the admin view holds no answer text */
    free(s);
    json_decref(st);
    gw_free(g);
    fu_stop(up);
}

/* ---- the provider key ----------------------------------------------------------------------------- */

#define SECRET "sk-test-0123456789-secret"

static void test_key_only_reaches_its_host(void **state) {
    setenv("HEARTH_GW_TEST_KEY", SECRET, 1);
    fu_server *other = fu_start(NULL);
    char location[128];
    snprintf(location, sizeof location, "http://localhost:%d/v1/chat/completions", fu_port(other));
    fu_server *up = fu_start(&(fu_reply){.kind = FU_REDIRECT, .location = location});
    char json[1024];
    snprintf(json, sizeof json,
             "{\"providers\":[{\"name\":\"up\",\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key_env\":"
             "\"HEARTH_GW_TEST_KEY\",\"max_attempts\":2}],"
             "\"routes\":[{\"name\":\"chat\",\"targets\":[\"up/m\"]}],\"retry\":{\"base_s\":0}}",
             fu_port(up));
    gw *g = make(json, true);
    collect c;
    gw_result res;
    run(g, "chat", false, NULL, &c, &res);
    EXPECT_KIND(&res, GW_OUT_SERVER);
    assert_int_equal(res.http_status, 502);
    assert_non_null(strstr(res.msg, "redirect"));
    assert_int_equal(fu_requests(other), 0);
    char *seen = fu_seen(up);
    assert_non_null(strstr(seen, "Authorization: Bearer " SECRET));
    free(seen);
    /* nowhere in what the gateway reports */
    json_t *rj = gw_result_json(&res), *sj = gw_status_json(g);
    char *r = json_dumps(rj, 0), *s = json_dumps(sj, 0);
    assert_null(strstr(r, SECRET));
    assert_null(strstr(s, SECRET));
    assert_null(strstr(res.error_body, SECRET));
    assert_null(strstr(logbuf, SECRET));
    free(r);
    free(s);
    json_decref(rj);
    json_decref(sj);
    gw_result_free(&res);
    gw_free(g);

    /* a key in the URL is refused, and a missing variable is named without a value */
    gw_config *cfg = gwt_config("{\"providers\":[{\"name\":\"p\",\"base_url\":\"http://user:pw@127.0.0.1:1\"}]}");
    hearth_err err = {0};
    gw_env env = {0};
    assert_int_equal(gw_new(cfg, &env, &g, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "credentials"));
    gw_config_free(cfg);
    cfg = gwt_config("{\"providers\":[{\"name\":\"p\",\"base_url\":\"http://127.0.0.1:1\",\"api_key_env\":\"HEARTH_GW_UNSET_VAR\"}]}");
    assert_int_equal(gw_new(cfg, &env, &g, &err), HEARTH_ERR_INVALID);
    assert_non_null(strstr(err.msg, "HEARTH_GW_UNSET_VAR"));
    gw_config_free(cfg);
    fu_stop(up);
    fu_stop(other);
}

static void test_client_gone_cancels(void **state) {
    fu_server *up = fu_start(&(fu_reply){.kind = FU_STALL_HEADERS});
    gw *g = one_provider(fu_port(up), 1, "");
    json_t *body = body_of("chat");
    gw_request req = {.api = GW_API_CHAT, .model = "chat", .body = body, .stream = true};
    collect c;
    collect_init(&c);
    atomic_store(&c.gone, 1);
    gw_sink s = collect_sink(&c);
    gw_result res;
    gw_call(g, &req, &s, &res);
    EXPECT_KIND(&res, GW_OUT_CANCELLED);
    assert_string_equal(breaker_state(g, "up/m"), "closed");
    json_t *st = gw_status_json(g);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(st, "targets"), 0), "failures")), 0);
    json_decref(st);
    json_decref(body);
    gw_result_free(&res);
    gw_free(g);
    fu_stop(up);
}

/* ---- a second `hearth serve` as the upstream ------------------------------------------------ */

static void test_hearth_serve_as_upstream(void **state) {
    if (!fixtures_available()) skip();
    srvtest t;
    assert_true(srvtest_start(&t, fixture_path("models/llama-spm-f16.gguf"), "--slots 1 --ctx 512 -t 1"));
    char json[1024];
    snprintf(json, sizeof json,
             "{\"providers\":[{\"name\":\"hearth\",\"base_url\":\"http://127.0.0.1:%d/v1\","
             "\"models\":{\"tiny\":\"llama-spm-f16\"}}],"
             "\"routes\":[{\"name\":\"chat\",\"targets\":[\"hearth/tiny\",\"local:fallback\"]}]}",
             t.port);
    gw *g = make(json, false);
    for (int stream = 0; stream < 2; stream++) {
        json_t *body = json_pack("{s:s, s:[{s:s, s:s}], s:i, s:f, s:b}", "model", "chat", "messages", "role", "user",
                                 "content", "Once upon a time", "max_tokens", 8, "temperature", 0.0, "stream", stream);
        gw_request req = {.api = GW_API_CHAT, .model = "chat", .body = body, .stream = stream};
        collect c;
        collect_init(&c);
        gw_sink sk = collect_sink(&c);
        gw_result res;
        gw_call(g, &req, &sk, &res);
        EXPECT_KIND(&res, GW_OUT_OK);
        assert_string_equal(res.target, "hearth/tiny");
        if (stream) {
            if (c.events < 2) fail_msg("%d streamed chunks from hearth serve", c.events);
        } else {
            assert_int_equal(c.bodies, 1);
            assert_non_null(strstr(c.text, "\"chat.completion\""));
        }
        assert_non_null(strstr(c.text, "llama-spm-f16"));
        json_decref(body);
        gw_result_free(&res);
    }
    gw_free(g);
    assert_int_equal(srvtest_stop(&t), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fallback_on_each_retryable_failure),
        cmocka_unit_test(test_no_fallback_on_400),
        cmocka_unit_test(test_no_retry_after_first_streamed_byte),
        cmocka_unit_test(test_retry_backoff_and_retry_after),
        cmocka_unit_test(test_retry_budget_limits_retries),
        cmocka_unit_test(test_breaker_opens_skips_half_opens_closes),
        cmocka_unit_test(test_all_targets_open_is_503),
        cmocka_unit_test(test_weighted_split_and_sticky),
        cmocka_unit_test(test_race_first_answer_wins),
        cmocka_unit_test(test_shadow_records_both_sides),
        cmocka_unit_test(test_key_only_reaches_its_host),
        cmocka_unit_test(test_client_gone_cancels),
        cmocka_unit_test(test_hearth_serve_as_upstream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
