/* `hearth stats` over a request store with known rows (written here with SQLite in the
 * store's schema, by the store itself): per-group counts, error rate, p50/p95/p99 of
 * latency and TTFT by nearest rank, decode tokens/s, top errors most frequent first, the
 * --since window, the table output, and clear failures for a missing database or bad
 * arguments. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "obs/obs_store.h"
#include "testutil.h"

static char g_dir[64];
static char g_db[128];

static void put(obs_store *s, double ts, const char *model, const char *route, int status, const char *error,
                double duration_ms, double ttft_ms, int64_t completion) {
    obs_store_request r = {.ts = ts, .status = status, .prompt_tokens = 4, .completion_tokens = completion,
                           .ttft_ms = ttft_ms, .duration_ms = duration_ms};
    snprintf(r.model, sizeof r.model, "%s", model);
    snprintf(r.route, sizeof r.route, "%s", route);
    snprintf(r.error, sizeof r.error, "%s", error ? error : "");
    assert_true(obs_store_put_request(s, &r));
}

static int setup(void **state) {
    snprintf(g_dir, sizeof g_dir, "/tmp/hearth-stats-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_db, sizeof g_db, "%s/h.db", g_dir);
    obs_store_config c;
    obs_store_config_default(&c);
    c.path = g_db;
    obs_store *s = NULL;
    hearth_err err = {0};
    if (obs_store_new(&c, &s, &err) != HEARTH_OK) return -1;
    double now = (double)time(NULL);
    /* model "m", chat: 100 requests, durations 1..100 ms, ttft i/2 ms, 11 tokens each;
     * errors: 5 x 503 server_busy, 1 x 504 timeout, 3 x 400 invalid_request_error */
    for (int i = 1; i <= 100; i++) {
        int status = 200;
        const char *error = NULL;
        if (i <= 5) status = 503, error = "server_busy";
        else if (i == 6) status = 504, error = "timeout";
        else if (i <= 9) status = 400, error = "invalid_request_error";
        put(s, now - 60, "m", "chat", status, error, i, i / 2.0, 11);
    }
    put(s, now - 30, "m", "completions", 200, NULL, 40, -1, 0); /* no token: no ttft */
    put(s, now - 20, "other", "chat", 200, NULL, 10, 5, 1);
    put(s, now - 7200, "m", "chat", 500, "old_error", 99999, 1, 2); /* outside --since 1h */
    bool idle = obs_store_wait_idle(s, 20000);
    obs_store_free(s);
    return idle ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static json_t *group(json_t *stats, const char *model, const char *route) {
    json_t *groups = json_object_get(stats, "groups");
    for (size_t i = 0; i < json_array_size(groups); i++) {
        json_t *g = json_array_get(groups, i);
        if (!strcmp(json_string_value(json_object_get(g, "model")), model) &&
            !strcmp(json_string_value(json_object_get(g, "route")), route))
            return g;
    }
    fail_msg("no group %s/%s", model, route);
    return NULL;
}

static double num(json_t *o, const char *k1, const char *k2) {
    json_t *v = json_object_get(o, k1);
    if (k2) v = json_object_get(v, k2);
    if (!json_is_number(v)) fail_msg("%s.%s is not a number", k1, k2 ? k2 : "");
    return json_number_value(v);
}

#define NEAR(got, want)                                                                                                \
    do {                                                                                                               \
        double g_ = (got), w_ = (want);                                                                                \
        if (!(g_ > w_ - 1e-6 && g_ < w_ + 1e-6)) fail_msg("%s: got %.9g, want %.9g", #got, g_, w_);                  \
    } while (0)

static void test_json_numbers(void **state) {
    char cmd[256], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "stats --db '%s' --since 1h --json", g_db);
    int rc = run_hearth(cmd, &out, &err);
    if (rc != 0) fail_msg("hearth stats exited %d: %s", rc, err);
    json_t *s = json_loads(out, 0, NULL);
    if (!s) fail_msg("not JSON: %s", out);
    NEAR(num(s, "requests", NULL), 102);
    NEAR(num(s, "errors", NULL), 6);
    json_t *g = group(s, "m", "chat");
    NEAR(num(g, "requests", NULL), 100);
    NEAR(num(g, "errors", NULL), 6);
    NEAR(num(g, "client_errors", NULL), 3);
    NEAR(num(g, "error_rate", NULL), 0.06);
    NEAR(num(g, "latency_ms", "p50"), 50);
    NEAR(num(g, "latency_ms", "p95"), 95);
    NEAR(num(g, "latency_ms", "p99"), 99);
    NEAR(num(g, "ttft_ms", "p50"), 25);
    NEAR(num(g, "ttft_ms", "p99"), 49.5);
    NEAR(num(g, "completion_tokens", NULL), 1100);
    /* decode speed: 100 x 10 tokens after the first over sum(duration - ttft) = 2525 ms */
    NEAR(num(g, "tokens_per_s", NULL), 1000 / 2.525);
    json_t *top = json_object_get(g, "top_errors");
    assert_int_equal(json_array_size(top), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(top, 0), "code")), "server_busy");
    NEAR(num(json_array_get(top, 0), "count", NULL), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(top, 1), "code")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(json_array_get(top, 2), "code")), "timeout");
    json_t *c = group(s, "m", "completions");
    assert_true(json_is_null(json_object_get(c, "ttft_ms")));
    NEAR(num(c, "tokens_per_s", NULL), 0);
    NEAR(num(group(s, "other", "chat"), "requests", NULL), 1);
    json_decref(s);
    free(out);
    free(err);

    snprintf(cmd, sizeof cmd, "stats --db '%s' --since 3h --json", g_db);
    assert_int_equal(run_hearth(cmd, &out, NULL), 0);
    s = json_loads(out, 0, NULL);
    NEAR(num(s, "requests", NULL), 103);
    NEAR(num(group(s, "m", "chat"), "errors", NULL), 7);
    json_decref(s);
    free(out);
}

static void test_table(void **state) {
    char cmd[256], *out = NULL;
    snprintf(cmd, sizeof cmd, "stats --db '%s' --since 1h", g_db);
    assert_int_equal(run_hearth(cmd, &out, NULL), 0);
    if (!strstr(out, "102 requests, 6 errors (5.88%)")) fail_msg("summary line missing:\n%s", out);
    const char *line = strstr(out, "\nm ");
    if (!line) fail_msg("no row for model m:\n%s", out);
    assert_non_null(strstr(line, "chat"));
    assert_non_null(strstr(line, "server_busy x5"));
    assert_non_null(strstr(out, "p95 ms"));
    free(out);
}

static void test_errors(void **state) {
    char cmd[256], *err = NULL;
    snprintf(cmd, sizeof cmd, "stats --db '%s/missing.db'", g_dir);
    assert_int_equal(run_hearth(cmd, NULL, &err), 1);
    assert_non_null(strstr(err, "missing.db"));
    free(err);
    assert_int_equal(run_hearth("stats --db /dev/null", NULL, &err), 1);
    assert_non_null(strstr(err, "not a Hearth request database"));
    free(err);
    snprintf(cmd, sizeof cmd, "stats --db '%s' --since yesterday", g_db);
    assert_int_equal(run_hearth(cmd, NULL, &err), 2);
    assert_non_null(strstr(err, "--since"));
    free(err);
    assert_int_equal(run_hearth("stats --bogus", NULL, NULL), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
