/* Queue-wait admission end to end (`hearth serve`, fixture llama model, one slot, queue 4):
 * while a long streamed completion holds the slot, a request to a model with
 * --max-queue-wait 1 (ms) is refused at once with 503, Retry-After and the code
 * queue_wait_exceeded, streamed or not, counted in /metrics and logged; once the slot is
 * free it is served. With the bound off the same request queues and completes when the
 * slot frees; a reload that sets max_queue_wait applies to the next request without
 * loading the model again; a request with n = 2 is not refused for its own second choice.
 * No timing is asserted: the holder runs until told to stop. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "srvtest.h"
#include "testutil.h"

#define MODEL_FILE "models/llama-spm-f16.gguf"
#define MODEL_ID "llama-spm-f16"
#define WAIT_LOOPS 1200  /* of 50 ms: a hang fails the test instead of blocking CTest */

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A streamed completion (1900 tokens of a 2048 context, never waited for) that keeps
 * the only slot busy until `stop` is set. */
typedef struct holder {
    const srvtest *t;
    atomic_bool started, stop, ended_by_itself;
    long status;
    char head[512];  /* the start of the body, for failure messages */
    size_t n_head;
    pthread_t th;
} holder;

static size_t holder_write(char *p, size_t size, size_t n, void *ud) {
    holder *h = ud;
    size_t k = size * n < sizeof h->head - 1 - h->n_head ? size * n : sizeof h->head - 1 - h->n_head;
    memcpy(h->head + h->n_head, p, k);
    h->n_head += k;
    if (memmem(p, size * n, "data: ", 6)) atomic_store(&h->started, true);
    return atomic_load(&h->stop) ? 0 : size * n;
}

static void *holder_run(void *ud) {
    holder *h = ud;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", h->t->port);
    CURL *c = curl_easy_init();
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                     "{\"model\":\"" MODEL_ID "\",\"prompt\":\"Hold\",\"max_tokens\":1900,\"ignore_eos\":true,"
                     "\"stream\":true}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, holder_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
    if (rc == CURLE_OK) atomic_store(&h->ended_by_itself, true);
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
    return NULL;
}

/* What a failed test leaves running, stopped by its teardown. */
static srvtest g_server;
static bool g_server_up;
static holder g_holder;
static bool g_holder_running;
static char g_config[64]; /* the config file of the reload test, or "" */

static void holder_start(holder *h, const srvtest *t) {
    memset(h, 0, sizeof *h);
    h->t = t;
    atomic_init(&h->started, false);
    atomic_init(&h->stop, false);
    atomic_init(&h->ended_by_itself, false);
    assert_int_equal(pthread_create(&h->th, NULL, holder_run, h), 0);
    g_holder_running = true;
    for (int i = 0; i < WAIT_LOOPS && !atomic_load(&h->started); i++) sleep_ms(50);
    if (!atomic_load(&h->started)) fail_msg("the holding stream produced nothing (status %ld): %s", h->status, h->head);
}

/* The value of the metric line starting with `series ` in /metrics, or -1. */
static double metric(const srvtest *t, const char *series);

/* Hangs up the holder and waits until the server has freed its slot (it notices the
 * hang-up within a poll interval, then ends the sequence within a step). */
static void holder_stop(holder *h) {
    atomic_store(&h->stop, true);
    pthread_join(h->th, NULL);
    g_holder_running = false;
    const char *busy = "hearth_slots_busy{model=\"" MODEL_ID "\"}";
    for (int i = 0; i < WAIT_LOOPS && metric(h->t, busy) != 0; i++) sleep_ms(50);
    if (metric(h->t, busy) != 0) fail_msg("the slot stayed busy after the holder hung up");
}

/* The value of the metric line starting with `series ` in /metrics, or -1. */
static double metric(const srvtest *t, const char *series) {
    srvtest_resp r;
    assert_true(srvtest_http(t, "GET", "/metrics", NULL, NULL, &r));
    double v = -1;
    size_t n = strlen(series);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ') v = atof(p + n + 1);
    srvtest_resp_free(&r);
    return v;
}

static const char *error_code(json_t *j) {
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

/* A request that must be refused for its queue wait. */
static void expect_refused(const srvtest *t, bool stream) {
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"" MODEL_ID "\",\"prompt\":\"Hi\",\"max_tokens\":4,\"stream\":%s}",
             stream ? "true" : "false");
    srvtest_resp r;
    assert_true(srvtest_http(t, "POST", "/v1/completions", body, NULL, &r));
    json_t *j = srvtest_json(&r);
    if (r.status != 503 || !j || !error_code(j) || strcmp(error_code(j), "queue_wait_exceeded") != 0)
        fail_msg("%s request: expected 503 queue_wait_exceeded, got %ld: %s", stream ? "streamed" : "plain", r.status,
                 r.body);
    if (atoi(r.retry_after) < 1) fail_msg("Retry-After '%s' on a queue-wait refusal", r.retry_after);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (!msg || !strstr(msg, "exceeds max_queue_wait 0.001 s")) fail_msg("message: %s", msg ? msg : "(none)");
    json_decref(j);
    srvtest_resp_free(&r);
}

static void expect_served(const srvtest *t) {
    srvtest_resp r;
    assert_true(srvtest_http(t, "POST", "/v1/completions",
                             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"Hi\",\"max_tokens\":4,\"ignore_eos\":true}",
                             NULL, &r));
    json_t *j = srvtest_json(&r);
    json_int_t n = json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens"));
    if (r.status != 200 || n != 4) fail_msg("expected 200 with 4 tokens, got %ld: %s", r.status, r.body);
    json_decref(j);
    srvtest_resp_free(&r);
}

/* n = 2 on an idle server: the second choice waits for the first (200 tokens, far over
 * the 1 ms bound) instead of the request refusing itself. A refusal may still come while
 * the previous request's slot is being freed, so it is tried again; refusing itself, the
 * request would be refused every time. */
static void expect_two_choices_served(const srvtest *t) {
    for (int attempt = 0;; attempt++) {
        srvtest_resp r;
        assert_true(srvtest_http(t, "POST", "/v1/completions",
                                 "{\"model\":\"" MODEL_ID "\",\"prompt\":\"Hi\",\"max_tokens\":200,\"n\":2,\"ignore_eos\":true}",
                                 NULL, &r));
        json_t *j = srvtest_json(&r);
        size_t n = json_array_size(json_object_get(j, "choices"));
        bool again = r.status == 503 && attempt < 20;
        if (!again && (r.status != 200 || n != 2))
            fail_msg("n = 2: expected 200 with 2 choices, got %ld (attempt %d): %s", r.status, attempt + 1, r.body);
        json_decref(j);
        srvtest_resp_free(&r);
        if (!again) return;
        sleep_ms(200);
    }
}

static void test_flag_refuses_at_arrival(void **state) {
    if (!fixtures_available()) skip();
    srvtest *t = &g_server;
    assert_true(g_server_up = srvtest_start(t, fixture_path(MODEL_FILE),
                                            "--slots 1 --max-queue 4 --ctx 2048 -t 1 --max-queue-wait 1"));
    holder *h = &g_holder;
    holder_start(h, t);
    expect_refused(t, false);
    expect_refused(t, true);
    if (atomic_load(&h->ended_by_itself)) fail_msg("the holding stream ended before the refusals");
    double n = metric(t, "hearth_requests_refused_total{model=\"" MODEL_ID "\",reason=\"queue_wait\"}");
    if (n != 2) fail_msg("hearth_requests_refused_total{reason=queue_wait} is %g, expected 2", n);
    double est = metric(t, "hearth_queue_wait_estimate_seconds{model=\"" MODEL_ID "\"}");
    if (!(est > 0.001)) fail_msg("hearth_queue_wait_estimate_seconds is %g with the slot held", est);
    holder_stop(h);
    expect_served(t); /* the slot is free: nothing to wait for */
    expect_two_choices_served(t);
    char *log = read_file(t->log_path, NULL);
    assert_non_null(log);
    if (!strstr(log, "\"status\":503") || !strstr(log, "\"error\":\"queue_wait_exceeded\""))
        fail_msg("no request log line for the refusals in:\n%s", log);
    free(log);
    g_server_up = false;
    assert_int_equal(srvtest_stop(t), 0);
}

typedef struct queued_arg {
    const srvtest *t;
} queued_arg;

static void *queued_request(void *ud) {
    expect_served(((queued_arg *)ud)->t);
    return NULL;
}

static void write_config(const char *path, const char *extra) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "models:\n  - name: " MODEL_ID "\n    path: '%s'\n    preload: true\n    slots: 1\n    max_queue: 4\n"
            "    ctx: 2048\n    threads: 1\n%s",
            fixture_path(MODEL_FILE), extra);
    fclose(f);
}

static void test_off_queues_and_reload_sets_it(void **state) {
    if (!fixtures_available()) skip();
    char *path = g_config;
    snprintf(path, sizeof g_config, "/tmp/hearth-admit-XXXXXX.yaml");
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    close(fd);
    write_config(path, "");
    char args[256];
    snprintf(args, sizeof args, "-c '%s'", path);
    srvtest *t = &g_server;
    assert_true(g_server_up = srvtest_start_args(t, args));

    /* off: the request queues behind the holder and completes once the slot frees */
    holder *h = &g_holder;
    holder_start(h, t);
    queued_arg qa = {t};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, queued_request, &qa), 0);
    const char *depth = "hearth_queue_depth{model=\"" MODEL_ID "\"}";
    for (int i = 0; i < WAIT_LOOPS && metric(t, depth) != 1; i++) sleep_ms(50);
    if (metric(t, depth) != 1) fail_msg("the second request never queued (depth %g)", metric(t, depth));
    if (atomic_load(&h->ended_by_itself)) fail_msg("the holding stream ended before the second request queued");
    holder_stop(h);
    pthread_join(th, NULL);

    /* a reload turns the bound on for the next request, keeping the loaded model */
    write_config(path, "    max_queue_wait: 1ms\n");
    srvtest_resp r;
    assert_true(srvtest_http(t, "POST", "/admin/reload", NULL, NULL, &r));
    if (r.status != 200 || !strstr(r.body, "1 unchanged")) fail_msg("reload: %ld %s", r.status, r.body);
    srvtest_resp_free(&r);
    holder_start(h, t);
    expect_refused(t, false);
    if (atomic_load(&h->ended_by_itself)) fail_msg("the holding stream ended before the refusal");
    holder_stop(h);
    g_server_up = false;
    assert_int_equal(srvtest_stop(t), 0);
}

static int teardown(void **state) {
    if (g_holder_running) {
        atomic_store(&g_holder.stop, true);
        pthread_join(g_holder.th, NULL);
        g_holder_running = false;
    }
    if (g_server_up) srvtest_stop(&g_server);
    g_server_up = false;
    if (g_config[0]) unlink(g_config);
    g_config[0] = '\0';
    return 0;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_flag_refuses_at_arrival, teardown),
        cmocka_unit_test_teardown(test_off_queues_and_reload_sets_it, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
