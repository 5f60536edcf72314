/* Stop-string matcher: stops split across pieces, held-back prefixes released when they
 * fail, overlapping candidates, several stops, a match at the start, multibyte text, and
 * that the outcome never depends on where the text was cut (checked exhaustively against
 * a brute-force reference for short texts). */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "base/utf8.h"
#include "engine/stop.h"

static stop_matcher *matcher(const char *const *stops, size_t n) {
    hearth_err err = {0};
    stop_matcher *m = stop_matcher_new(stops, n, &err);
    if (!m) fail_msg("stop_matcher_new failed: %s", err.msg);
    return m;
}

typedef struct run {
    char out[512];
    size_t out_len;
    bool stopped;
} run;

/* Feeds one piece, appends what it releases, checks released text is whole UTF-8. */
static size_t feed(stop_matcher *m, run *r, const char *piece, size_t len) {
    const char *emit;
    size_t n;
    assert_int_equal(stop_matcher_feed(m, piece, len, &emit, &n, &r->stopped), HEARTH_OK);
    assert_true(r->out_len + n < sizeof r->out);
    memcpy(r->out + r->out_len, emit, n);
    r->out_len += n;
    r->out[r->out_len] = '\0';
    return n;
}

static void finish(stop_matcher *m, run *r) {
    const char *emit;
    size_t n;
    stop_matcher_finish(m, &emit, &n);
    memcpy(r->out + r->out_len, emit, n);
    r->out_len += n;
    r->out[r->out_len] = '\0';
}

/* Feeds the pieces in order, then finishes if no stop matched. */
static run feed_all(stop_matcher *m, const char *const *pieces, size_t n) {
    run r = {0};
    for (size_t i = 0; i < n; i++) feed(m, &r, pieces[i], strlen(pieces[i]));
    if (!r.stopped) finish(m, &r);
    return r;
}

static void expect_run(const run *r, const char *want, bool stopped) {
    if (strcmp(r->out, want) != 0) fail_msg("released '%s', expected '%s'", r->out, want);
    if (r->stopped != stopped) fail_msg("stopped %d, expected %d (released '%s')", r->stopped, stopped, r->out);
}

static void test_stop_split_across_feeds(void **state) {
    const char *stops[] = {"</answer>"};
    stop_matcher *m = matcher(stops, 1);
    run r = {0};
    assert_int_equal(feed(m, &r, "Paris.<", 7), 6);   /* '<' may start the stop */
    assert_string_equal(r.out, "Paris.");
    assert_int_equal(feed(m, &r, "/an", 3), 0);
    assert_int_equal(feed(m, &r, "sw", 2), 0);
    assert_int_equal(feed(m, &r, "er", 2), 0);
    assert_false(r.stopped);
    assert_int_equal(feed(m, &r, "> and more", 10), 0);
    expect_run(&r, "Paris.", true);
    assert_int_equal(stop_matcher_matched(m), 0);
    assert_int_equal(feed(m, &r, "later", 5), 0);   /* after a stop nothing more */
    assert_true(r.stopped);
    stop_matcher_free(m);
}

static void test_partial_prefix_released(void **state) {
    const char *stops[] = {"STOP"};
    stop_matcher *m = matcher(stops, 1);
    run r = {0};
    assert_int_equal(feed(m, &r, "ST", 2), 0);
    assert_int_equal(feed(m, &r, "O", 1), 0);
    assert_int_equal(feed(m, &r, "W", 1), 4);   /* "STOW": the prefix failed, all released */
    assert_string_equal(r.out, "STOW");
    assert_int_equal(feed(m, &r, " S", 2), 1);
    finish(m, &r);                                 /* the held 'S' comes out at the end */
    expect_run(&r, "STOW S", false);
    assert_int_equal(stop_matcher_matched(m), -1);
    stop_matcher_free(m);
}

static void test_overlapping_candidates(void **state) {
    /* After "abab" the tail "ab" can still start "abac": only the first "ab" is safe. */
    const char *one[] = {"abac"};
    stop_matcher *m = matcher(one, 1);
    run r = {0};
    const char *bytes = "ababac";
    size_t released[6];
    for (int i = 0; i < 6; i++) released[i] = feed(m, &r, bytes + i, 1);
    assert_int_equal(released[3], 2);
    expect_run(&r, "ab", true);
    stop_matcher_free(m);

    const char *two[] = {"abab", "aba"};
    m = matcher(two, 2);
    const char *pieces[] = {"xa", "b", "ab"};
    run r2 = feed_all(m, pieces, 3);
    expect_run(&r2, "x", true);   /* "aba" ends first */
    assert_int_equal(stop_matcher_matched(m), 1);
    stop_matcher_free(m);

    const char *same_end[] = {"bab", "abab"};
    m = matcher(same_end, 2);
    const char *p3[] = {"xab", "ab!"};
    run r3 = feed_all(m, p3, 2);
    expect_run(&r3, "x", true);   /* both end together: the longer one wins */
    assert_int_equal(stop_matcher_matched(m), 1);
    stop_matcher_free(m);
}

static void test_multiple_stops(void **state) {
    const char *stops[] = {"\n\nUser:", "###", "<|im_end|>"};
    stop_matcher *m = matcher(stops, 3);
    const char *pieces[] = {"Sure", "!", "\n", "\n", "Us", "e", "d ", "#", "#", "x", " then <|im", "_end|> tail"};
    run r = feed_all(m, pieces, 12);
    expect_run(&r, "Sure!\n\nUsed ##x then ", true);
    assert_int_equal(stop_matcher_matched(m), 2);
    stop_matcher_reset(m);
    const char *again[] = {"one ### two"};
    run r2 = feed_all(m, again, 1);
    expect_run(&r2, "one ", true);
    assert_int_equal(stop_matcher_matched(m), 1);
    stop_matcher_free(m);
}

static void test_match_at_start(void **state) {
    const char *stops[] = {"Hi"};
    stop_matcher *m = matcher(stops, 1);
    const char *pieces[] = {"Hi there"};
    run r = feed_all(m, pieces, 1);
    expect_run(&r, "", true);
    stop_matcher_reset(m);
    const char *split[] = {"H", "i"};
    r = feed_all(m, split, 2);
    expect_run(&r, "", true);
    stop_matcher_free(m);
}

static void test_multibyte(void **state) {
    const char *stops[] = {"日本"};
    stop_matcher *m = matcher(stops, 1);
    const char *text = "こんにちは、日曜日の日本語";
    run r = {0};
    for (size_t i = 0; i < strlen(text) && !r.stopped; i++) {
        feed(m, &r, text + i, 1);
        if (utf8_complete_prefix(r.out, r.out_len) != r.out_len || !utf8_valid(r.out, r.out_len))
            fail_msg("after byte %zu the released text '%s' ends inside a character", i, r.out);
    }
    expect_run(&r, "こんにちは、日曜日の", true);
    stop_matcher_free(m);

    /* Without stops a character split across pieces is held until it is whole. */
    m = matcher(NULL, 0);
    run r2 = {0};
    assert_int_equal(feed(m, &r2, "caf\xC3", 4), 3);
    assert_int_equal(feed(m, &r2, "\xA9!", 2), 3);
    expect_run(&r2, "café!", false);
    stop_matcher_free(m);
}

/* Reference: the earliest end of any stop, ties to the longest; text before it. */
static void reference(const char *const *stops, size_t n, const char *text, char *out, bool *stopped) {
    size_t len = strlen(text), best_end = SIZE_MAX, best_start = 0;
    for (size_t s = 0; s < n; s++) {
        size_t sl = strlen(stops[s]);
        for (size_t start = 0; start + sl <= len; start++)
            if (!memcmp(text + start, stops[s], sl) &&
                (start + sl < best_end || (start + sl == best_end && start < best_start))) {
                best_end = start + sl;
                best_start = start;
            }
    }
    *stopped = best_end != SIZE_MAX;
    size_t keep = *stopped ? best_start : len;
    memcpy(out, text, keep);
    out[keep] = '\0';
}

static void test_any_split_same_result(void **state) {
    const char *stops[] = {"aab", "abaa", "ba"};
    const char *texts[] = {"aaabaab", "abaabab", "bbbbbbbbb", "aabaabaa", "xaaaaaaaa", "aaaaaaab", "abab"};
    for (size_t set = 1; set <= 3; set++)
        for (size_t ti = 0; ti < sizeof texts / sizeof texts[0]; ti++) {
            const char *text = texts[ti];
            size_t len = strlen(text);
            char want[64];
            bool want_stop;
            reference(stops + 3 - set, set, text, want, &want_stop);
            stop_matcher *m = matcher(stops + 3 - set, set);
            for (unsigned cuts = 0; cuts < (1u << (len - 1)); cuts++) {
                stop_matcher_reset(m);
                run r = {0};
                size_t from = 0;
                for (size_t i = 1; i <= len; i++)
                    if (i == len || (cuts >> (i - 1) & 1)) {
                        feed(m, &r, text + from, i - from);
                        if (strncmp(r.out, want, r.out_len) != 0 || r.out_len > strlen(want))
                            fail_msg("'%s' cut %x: released '%s' before the end, beyond '%s'", text, cuts, r.out, want);
                        from = i;
                    }
                if (!r.stopped) finish(m, &r);
                if (strcmp(r.out, want) != 0 || r.stopped != want_stop)
                    fail_msg("'%s' with %zu stops, cut %x: released '%s' stopped %d; expected '%s' stopped %d", text,
                             set, cuts, r.out, r.stopped, want, want_stop);
            }
            stop_matcher_free(m);
        }
}

static void test_empty_and_large_pieces(void **state) {
    const char *stops[] = {"END"};
    stop_matcher *m = matcher(stops, 1);
    run r = {0};
    assert_int_equal(feed(m, &r, NULL, 0), 0);
    char big[400];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big + 300, "EN", 2);
    feed(m, &r, big, 302);   /* grows the buffer, holds "EN" */
    assert_int_equal(r.out_len, 300);
    feed(m, &r, "", 0);
    assert_int_equal(r.out_len, 300);
    feed(m, &r, "D", 1);
    assert_true(r.stopped);
    assert_int_equal(r.out_len, 300);
    stop_matcher_free(m);
}

static void expect_refused(const char *const *stops, size_t n, const char *what) {
    hearth_err err = {0};
    stop_matcher *m = stop_matcher_new(stops, n, &err);
    if (m) {
        stop_matcher_free(m);
        fail_msg("%s was accepted", what);
    }
    if (err.status != HEARTH_ERR_INVALID) fail_msg("%s: status %d, expected INVALID", what, err.status);
    if (!strstr(err.msg, "stop")) fail_msg("%s: message '%s' does not say what", what, err.msg);
}

static void test_validation(void **state) {
    const char *empty[] = {"ok", ""};
    expect_refused(empty, 2, "an empty stop string");
    const char *null_entry[] = {NULL};
    expect_refused(null_entry, 1, "a NULL stop string");
    expect_refused(NULL, 2, "a NULL array");
    const char *bad_utf8[] = {"a\xC3"};
    expect_refused(bad_utf8, 1, "an invalid UTF-8 stop string");
    char longest[STOP_MAX_LEN + 2];
    memset(longest, 'q', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    const char *too_long[] = {longest};
    expect_refused(too_long, 1, "an over-long stop string");
    longest[STOP_MAX_LEN] = '\0';
    stop_matcher_free(matcher(too_long, 1));
    const char *many[STOP_MAX_STRINGS + 1];
    for (int i = 0; i <= STOP_MAX_STRINGS; i++) many[i] = "s";
    expect_refused(many, STOP_MAX_STRINGS + 1, "too many stop strings");
    stop_matcher_free(matcher(many, STOP_MAX_STRINGS));

    const char *stops[] = {"a", "bc"};
    mem_fail_at(0);
    stop_matcher_free(matcher(stops, 2));
    long n_allocs = mem_fail_at(0);
    for (long k = 1; k <= n_allocs; k++) {
        hearth_err err = {0};
        mem_fail_at(k);
        stop_matcher *m = stop_matcher_new(stops, 2, &err);
        mem_fail_at(0);
        if (m) fail_msg("allocation %ld failed but stop_matcher_new succeeded", k);
        assert_int_equal(err.status, HEARTH_ERR_NOMEM);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_split_across_feeds),
        cmocka_unit_test(test_partial_prefix_released),
        cmocka_unit_test(test_overlapping_candidates),
        cmocka_unit_test(test_multiple_stops),
        cmocka_unit_test(test_match_at_start),
        cmocka_unit_test(test_multibyte),
        cmocka_unit_test(test_any_split_same_result),
        cmocka_unit_test(test_empty_and_large_pieces),
        cmocka_unit_test(test_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
