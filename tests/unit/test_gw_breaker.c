/* Gateway policies in virtual time: the circuit breaker's state machine (opens after N
 * consecutive failures or a failure ratio, refuses while open, half-opens after a
 * cooldown that grows on repeated opens, closes after probe successes, ignores neutral
 * verdicts and stale tickets), backoff bounds, Retry-After parsing, the retry budget. */
#include "testutil.h"

#include "gateway/gw_breaker.h"
#include "gateway/gw_retry.h"
#include "gw_test_util.h"

#define S 1000000000ull

static gw_breaker_config config(void) {
    gw_breaker_config c;
    gw_breaker_config_default(&c);
    return c;
}

static void call(gw_breaker *b, gw_verdict v, gw_breaker_change *ch) {
    gw_ticket t;
    gw_breaker_change ach;
    if (!gw_breaker_allow(b, &t, &ach)) fail_msg("the breaker refused a call in state %s", gw_breaker_state_name(b->state));
    gw_breaker_report(b, &t, v, v == GW_VERDICT_FAILURE ? "boom" : NULL, ch);
}

static void test_opens_after_five_consecutive_failures(void **state) {
    vclock vc;
    vclock_init(&vc, 1000 * S);
    gw_breaker_config c = config();
    gw_breaker b;
    gw_breaker_init(&b, &c, &vc.clock);
    gw_breaker_change ch;
    for (int i = 0; i < 4; i++) {
        call(&b, GW_VERDICT_FAILURE, &ch);
        assert_false(ch.changed);
    }
    call(&b, GW_VERDICT_SUCCESS, &ch); /* a success resets the run */
    for (int i = 0; i < 4; i++) call(&b, GW_VERDICT_FAILURE, &ch);
    assert_int_equal(b.state, GW_BREAKER_CLOSED);
    call(&b, GW_VERDICT_FAILURE, &ch);
    assert_true(ch.changed);
    assert_int_equal(ch.from, GW_BREAKER_CLOSED);
    assert_int_equal(ch.to, GW_BREAKER_OPEN);
    gw_ticket t;
    assert_false(gw_breaker_allow(&b, &t, &ch));
    gw_breaker_view v;
    gw_breaker_view_get(&b, &v);
    assert_int_equal(v.state, GW_BREAKER_OPEN);
    assert_string_equal(v.last_error, "boom");
    if (v.retry_in_ns != 30 * S) fail_msg("cooldown left %llu ns, want 30 s", (unsigned long long)v.retry_in_ns);
    assert_int_equal(v.rejected, 1);
    gw_breaker_destroy(&b);
}

static void test_client_errors_do_not_count(void **state) {
    vclock vc;
    vclock_init(&vc, 1000 * S);
    gw_breaker_config c = config();
    gw_breaker b;
    gw_breaker_init(&b, &c, &vc.clock);
    gw_breaker_change ch;
    for (int i = 0; i < 50; i++) call(&b, GW_VERDICT_NEUTRAL, &ch);
    for (int i = 0; i < 4; i++) {
        call(&b, GW_VERDICT_FAILURE, &ch);
        call(&b, GW_VERDICT_NEUTRAL, &ch);
    }
    assert_int_equal(b.state, GW_BREAKER_CLOSED);
    gw_breaker_destroy(&b);
}

static void test_half_open_probe_closes_or_reopens_longer(void **state) {
    vclock vc;
    vclock_init(&vc, 1000 * S);
    gw_breaker_config c = config();
    gw_breaker b;
    gw_breaker_init(&b, &c, &vc.clock);
    gw_breaker_change ch;
    for (int i = 0; i < 5; i++) call(&b, GW_VERDICT_FAILURE, &ch);
    gw_ticket t, t2;
    vclock_advance(&vc, 30 * S - 1);
    assert_false(gw_breaker_allow(&b, &t, &ch));
    vclock_advance(&vc, 1);
    assert_true(gw_breaker_allow(&b, &t, &ch)); /* the probe */
    assert_true(ch.changed);
    assert_int_equal(ch.to, GW_BREAKER_HALF_OPEN);
    assert_true(t.probe);
    assert_false(gw_breaker_allow(&b, &t2, &ch)); /* only one probe at a time */
    gw_breaker_report(&b, &t, GW_VERDICT_FAILURE, "still down", &ch);
    assert_int_equal(ch.to, GW_BREAKER_OPEN);
    gw_breaker_view v;
    gw_breaker_view_get(&b, &v);
    if (v.retry_in_ns != 60 * S) fail_msg("second cooldown %llu ns, want 60 s", (unsigned long long)v.retry_in_ns);
    vclock_advance(&vc, 60 * S);
    assert_true(gw_breaker_allow(&b, &t, &ch));
    gw_breaker_report(&b, &t, GW_VERDICT_NEUTRAL, NULL, &ch); /* a 4xx probe: slot back, no verdict */
    assert_int_equal(b.state, GW_BREAKER_HALF_OPEN);
    assert_true(gw_breaker_allow(&b, &t, &ch));
    gw_breaker_report(&b, &t, GW_VERDICT_SUCCESS, NULL, &ch);
    assert_true(ch.changed);
    assert_int_equal(ch.from, GW_BREAKER_HALF_OPEN);
    assert_int_equal(ch.to, GW_BREAKER_CLOSED);
    /* after a close the cooldown starts again from 30 s */
    for (int i = 0; i < 5; i++) call(&b, GW_VERDICT_FAILURE, &ch);
    gw_breaker_view_get(&b, &v);
    if (v.retry_in_ns != 30 * S) fail_msg("cooldown after a close %llu ns, want 30 s", (unsigned long long)v.retry_in_ns);
    gw_breaker_destroy(&b);
}

static void test_cooldown_growth_is_capped(void **state) {
    vclock vc;
    vclock_init(&vc, 1000 * S);
    gw_breaker_config c = config();
    c.cooldown_max_ns = 100 * S;
    gw_breaker b;
    gw_breaker_init(&b, &c, &vc.clock);
    gw_breaker_change ch;
    for (int i = 0; i < 5; i++) call(&b, GW_VERDICT_FAILURE, &ch);
    uint64_t want[] = {60 * S, 100 * S, 100 * S};
    for (int k = 0; k < 3; k++) {
        vclock_advance(&vc, 200 * S);
        call(&b, GW_VERDICT_FAILURE, &ch);
        gw_breaker_view v;
        gw_breaker_view_get(&b, &v);
        if (v.retry_in_ns != want[k])
            fail_msg("open %d: cooldown %llu ns, want %llu", k + 2, (unsigned long long)v.retry_in_ns,
                     (unsigned long long)want[k]);
    }
    gw_breaker_destroy(&b);
}

static void test_stale_tickets_change_nothing(void **state) {
    vclock vc;
    vclock_init(&vc, 1000 * S);
    gw_breaker_config c = config();
    gw_breaker b;
    gw_breaker_init(&b, &c, &vc.clock);
    gw_breaker_change ch;
    gw_ticket slow;
    assert_true(gw_breaker_allow(&b, &slow, &ch)); /* a slow call starts while closed */
    for (int i = 0; i < 5; i++) call(&b, GW_VERDICT_FAILURE, &ch);
    assert_int_equal(b.state, GW_BREAKER_OPEN);
    gw_breaker_report(&b, &slow, GW_VERDICT_SUCCESS, NULL, &ch); /* ...and succeeds late */
    assert_false(ch.changed);
    assert_int_equal(b.state, GW_BREAKER_OPEN);
    gw_breaker_destroy(&b);
}

static void test_failure_ratio_over_window(void **state) {
    vclock vc;
    vclock_init(&vc, 1000 * S);
    gw_breaker_config c = config();
    c.failures = 0; /* only the ratio rule */
    c.failure_ratio = 0.5;
    c.min_calls = 20;
    gw_breaker b;
    gw_breaker_init(&b, &c, &vc.clock);
    gw_breaker_change ch;
    /* alternate: 50% failures, but below min_calls nothing happens */
    for (int i = 0; i < 18; i++) call(&b, i % 2 ? GW_VERDICT_FAILURE : GW_VERDICT_SUCCESS, &ch);
    assert_int_equal(b.state, GW_BREAKER_CLOSED);
    /* old calls fall out of the 60 s window */
    vclock_advance(&vc, 61 * S);
    for (int i = 0; i < 18; i++) call(&b, i % 3 == 0 ? GW_VERDICT_FAILURE : GW_VERDICT_SUCCESS, &ch);
    assert_int_equal(b.state, GW_BREAKER_CLOSED);
    gw_breaker_view v;
    gw_breaker_view_get(&b, &v);
    assert_int_equal(v.window_calls, 18);
    assert_int_equal(v.window_failures, 6);
    for (int i = 0; i < 6 && b.state == GW_BREAKER_CLOSED; i++) call(&b, GW_VERDICT_FAILURE, &ch);
    gw_breaker_view_get(&b, &v);
    assert_int_equal(v.state, GW_BREAKER_OPEN);
    gw_breaker_destroy(&b);
}

static void test_backoff_full_jitter_bounds(void **state) {
    uint64_t rng = 42;
    uint64_t base = 100 * 1000000ull, cap = 2 * S;
    for (unsigned retry = 0; retry < 10; retry++) {
        uint64_t ceiling = base << retry;
        if (ceiling > cap) ceiling = cap;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 2000; i++) {
            uint64_t w = gw_backoff_ns(base, cap, retry, &rng);
            if (w > ceiling) fail_msg("retry %u: wait %llu above %llu", retry, (unsigned long long)w, (unsigned long long)ceiling);
            if (w < lo) lo = w;
            if (w > hi) hi = w;
        }
        /* full jitter spans the whole range */
        if (lo > ceiling / 20 || hi < ceiling - ceiling / 20)
            fail_msg("retry %u: waits span [%llu, %llu] of [0, %llu]", retry, (unsigned long long)lo,
                     (unsigned long long)hi, (unsigned long long)ceiling);
    }
}

static void test_retry_after_forms(void **state) {
    int64_t ms = -1;
    assert_true(gw_retry_after_parse("7", 0, &ms));
    assert_int_equal(ms, 7000);
    assert_true(gw_retry_after_parse(" 0 ", 0, &ms));
    assert_int_equal(ms, 0);
    int64_t now = 784111777 - 30; /* 30 s before Sun, 06 Nov 1994 08:49:37 GMT */
    assert_true(gw_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", now, &ms));
    assert_int_equal(ms, 30000);
    assert_true(gw_retry_after_parse("Sunday, 06-Nov-94 08:49:37 GMT", now, &ms));
    assert_int_equal(ms, 30000);
    assert_true(gw_retry_after_parse("Sun Nov  6 08:49:37 1994", now, &ms));
    assert_int_equal(ms, 30000);
    assert_true(gw_retry_after_parse("Sun, 06 Nov 1994 08:49:37 GMT", now + 100, &ms));
    assert_int_equal(ms, 0); /* a date in the past: no wait */
    assert_true(gw_retry_after_parse("99999999999999999999", 0, &ms));
    assert_int_equal(ms, 31536000LL * 1000); /* huge values are capped, not overflowed */
    assert_false(gw_retry_after_parse("-5", 0, &ms));
    assert_false(gw_retry_after_parse("1.5", 0, &ms));
    assert_false(gw_retry_after_parse("soon", 0, &ms));
    assert_false(gw_retry_after_parse("", 0, &ms));
    assert_false(gw_retry_after_parse("Sun, 32 Nov 1994 08:49:37 GMT", 0, &ms));
}

static void test_budget_caps_retries(void **state) {
    vclock vc;
    vclock_init(&vc, 1000 * S);
    gw_budget b;
    gw_budget_init(&b, 0.1, 0, 10, &vc.clock);
    int granted = 0;
    for (int i = 0; i < 1000; i++) {
        gw_budget_deposit(&b);
        if (gw_budget_withdraw(&b)) granted++; /* every request wants a retry */
    }
    /* 10% of 1000 plus the initial burst of 10 */
    if (granted < 100 || granted > 110) fail_msg("%d retries granted for 1000 requests, want 100..110", granted);
    gw_budget_destroy(&b);

    gw_budget_init(&b, 0.1, 2, 10, &vc.clock); /* plus 2 per second when traffic is low */
    for (int i = 0; i < 10; i++) assert_true(gw_budget_withdraw(&b));
    assert_false(gw_budget_withdraw(&b));
    vclock_advance(&vc, S);
    assert_true(gw_budget_withdraw(&b));
    assert_true(gw_budget_withdraw(&b));
    assert_false(gw_budget_withdraw(&b));
    gw_budget_destroy(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_five_consecutive_failures),
        cmocka_unit_test(test_client_errors_do_not_count),
        cmocka_unit_test(test_half_open_probe_closes_or_reopens_longer),
        cmocka_unit_test(test_cooldown_growth_is_capped),
        cmocka_unit_test(test_stale_tickets_change_nothing),
        cmocka_unit_test(test_failure_ratio_over_window),
        cmocka_unit_test(test_backoff_full_jitter_bounds),
        cmocka_unit_test(test_retry_after_forms),
        cmocka_unit_test(test_budget_caps_retries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
