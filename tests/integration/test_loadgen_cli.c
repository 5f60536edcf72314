/* `hearth loadgen` end to end: against `hearth serve` with the fixture model (C=4, N=8,
 * T=8: every request succeeds with exactly 8 tokens, percentiles ordered), a closed port
 * (one error line, exit 1, no report), a one-slot server without a queue (503s counted
 * as rejected), a URL off this machine (refused before any connection), and a canned
 * in-process server answering with broken streams (malformed SSE, no [DONE], an error
 * frame, 503 without Retry-After), each counted under its kind. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "srvtest.h"
#include "testutil.h"

#define MODEL_FILE "models/llama-spm-q8_0.gguf"

/* Runs `hearth loadgen ARGS --json` and parses stdout; exit code in *code. */
static json_t *loadgen_json(const char *args, int *code) {
    char cmd[1024], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "loadgen %s --json", args);
    *code = run_hearth(cmd, &out, &err);
    json_t *rep = out ? json_loads(out, 0, NULL) : NULL;
    if (!rep) printf("loadgen %s: exit %d, stdout '%s', stderr '%s'\n", args, *code, out ? out : "", err ? err : "");
    free(out);
    free(err);
    return rep;
}

static long count_of(json_t *rep, const char *key) { return (long)json_integer_value(json_object_get(rep, key)); }

static long error_count(json_t *rep, const char *kind) {
    return (long)json_integer_value(json_object_get(json_object_get(rep, "errors"), kind));
}

static double ms(json_t *rep, const char *which, const char *stat) {
    return json_number_value(json_object_get(json_object_get(rep, which), stat));
}

static void check_ordered(json_t *rep, const char *which) {
    double mn = ms(rep, which, "min"), p50 = ms(rep, which, "p50"), p90 = ms(rep, which, "p90"),
           p99 = ms(rep, which, "p99"), mx = ms(rep, which, "max");
    if (!(mn >= 0 && mn <= p50 && p50 <= p90 && p90 <= p99 && p99 <= mx))
        fail_msg("%s not ordered: min %g p50 %g p90 %g p99 %g max %g", which, mn, p50, p90, p99, mx);
}

static void test_against_hearth_serve(void **state) {
    if (!fixtures_available()) skip();
    srvtest s;
    assert_true(srvtest_start(&s, fixture_path(MODEL_FILE), "--slots 4 --ctx 512 -t 1"));
    char args[256];
    int code;
    for (int chat = 0; chat < 2; chat++) {
        snprintf(args, sizeof args, "--url http://127.0.0.1:%d --concurrency 4 --requests 8 --max-tokens 8 "
                 "--prompt-words 24 --seed 3%s", s.port, chat ? " --chat" : "");
        json_t *rep = loadgen_json(args, &code);
        assert_non_null(rep);
        assert_int_equal(code, 0);
        assert_int_equal(count_of(rep, "ok"), 8);
        assert_int_equal(count_of(rep, "failed"), 0);
        assert_int_equal(json_object_size(json_object_get(rep, "errors")), 0);
        assert_int_equal(count_of(rep, "output_tokens"), 8 * 8);
        assert_int_equal((long)ms(rep, "ttft_ms", "n"), 8);
        assert_true(ms(rep, "itl_ms", "n") >= 1);
        check_ordered(rep, "ttft_ms");
        check_ordered(rep, "itl_ms");
        check_ordered(rep, "tpot_ms");
        assert_true(json_number_value(json_object_get(rep, "output_tokens_per_s")) > 0);
        assert_true(json_number_value(json_object_get(rep, "request_throughput")) > 0);
        assert_string_equal(json_string_value(json_object_get(rep, "model")), "llama-spm-q8_0");
        json_decref(rep);
    }
    assert_int_equal(srvtest_stop(&s), 0);
}

static void test_rejections_counted(void **state) {
    if (!fixtures_available()) skip();
    srvtest s;
    assert_true(srvtest_start(&s, fixture_path(MODEL_FILE), "--slots 1 --max-queue 0 --ctx 512 -t 1"));
    char args[256];
    snprintf(args, sizeof args, "--url http://127.0.0.1:%d --concurrency 4 --requests 8 --max-tokens 32", s.port);
    int code;
    json_t *rep = loadgen_json(args, &code);
    assert_non_null(rep);
    long ok = count_of(rep, "ok"), rejected = error_count(rep, "rejected");
    if (ok < 1 || rejected < 1 || ok + rejected != 8 || count_of(rep, "failed") != rejected)
        fail_msg("ok %ld rejected %ld failed %ld (want ok >= 1, rejected >= 1, ok + rejected = 8)", ok, rejected,
                 count_of(rep, "failed"));
    assert_int_equal(count_of(rep, "output_tokens"), ok * 32);
    assert_int_equal(code, 0);
    json_decref(rep);
    assert_int_equal(srvtest_stop(&s), 0);
}

/* A loopback port nothing listens on. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_closed_port(void **state) {
    char cmd[256], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "loadgen --url http://127.0.0.1:%d -c 4 -n 8 --max-tokens 8 --json", closed_port());
    int code = run_hearth(cmd, &out, &err);
    if (code != 1 || !strstr(err, "cannot reach") || strchr(err, '\n') != err + strlen(err) - 1 || out[0])
        fail_msg("exit %d (want 1), stdout '%s' (want empty), stderr '%s' (want one 'cannot reach' line)", code, out,
                 err);
    free(out);
    free(err);
}

static void test_refuses_other_hosts(void **state) {
    char *out = NULL, *err = NULL;
    int code = run_hearth("loadgen --url http://192.0.2.1:8080 -n 1", &out, &err);
    if (code != 2 || !strstr(err, "loopback")) fail_msg("exit %d (want 2), stderr '%s'", code, err);
    free(out);
    free(err);
}

/* ---- a canned server: answers GET /v1/models, and every POST with one fixed reply ---- */

typedef struct canned {
    int fd, port;
    const char *reply;
    pthread_t thread;
} canned;

static void read_request(int c) {
    char buf[65536];
    size_t len = 0;
    long body = -1;
    for (;;) {
        ssize_t n = read(c, buf + len, sizeof buf - 1 - len);
        if (n <= 0) return;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) continue;
        char *cl = strcasestr(buf, "content-length:");
        body = cl && cl < end ? atol(cl + 15) : 0;
        if ((long)(len - (size_t)(end + 4 - buf)) >= body) return;
    }
}

static void *canned_main(void *ud) {
    canned *cs = ud;
    for (;;) {
        int c = accept(cs->fd, NULL, NULL);
        if (c < 0) return NULL;
        char peek[8] = "";
        recv(c, peek, 3, MSG_PEEK);
        read_request(c);
        const char *reply = !strncmp(peek, "GET", 3) ? "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                                       "Connection: close\r\n\r\n{\"data\":[{\"id\":\"canned\"}]}"
                                                     : cs->reply;
        ssize_t ignored = write(c, reply, strlen(reply));
        (void)ignored;
        close(c);
    }
}

static void canned_start(canned *cs, const char *reply) {
    cs->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(cs->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(cs->fd, 16), 0);
    assert_int_equal(getsockname(cs->fd, (struct sockaddr *)&a, &len), 0);
    cs->port = ntohs(a.sin_port);
    cs->reply = reply;
    assert_int_equal(pthread_create(&cs->thread, NULL, canned_main, cs), 0);
}

static void canned_stop(canned *cs) {
    shutdown(cs->fd, SHUT_RDWR);
    close(cs->fd);
    pthread_join(cs->thread, NULL);
}

#define SSE_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"

static void expect_kind(const char *reply, const char *kind, const char *sample_part) {
    canned cs;
    canned_start(&cs, reply);
    char args[256];
    snprintf(args, sizeof args, "--url http://127.0.0.1:%d -c 2 -n 3 --max-tokens 4 --timeout 20", cs.port);
    int code;
    json_t *rep = loadgen_json(args, &code);
    canned_stop(&cs);
    assert_non_null(rep);
    const char *sample = json_string_value(json_object_get(json_object_get(rep, "error_samples"), kind));
    if (error_count(rep, kind) != 3 || count_of(rep, "ok") != 0 || code != 1 || !sample || !strstr(sample, sample_part))
        fail_msg("%s: count %ld (want 3), ok %ld, exit %d (want 1), sample '%s' (want '%s')", kind,
                 error_count(rep, kind), count_of(rep, "ok"), code, sample ? sample : "", sample_part);
    assert_string_equal(json_string_value(json_object_get(rep, "model")), "canned");
    json_decref(rep);
}

static void test_broken_streams(void **state) {
    expect_kind(SSE_HEAD "data: {\"choices\":[{\"text\":\"a\"}]}\n\ndata: {\"choices\": [oops\n\n", "malformed_sse",
                "not a JSON object");
    expect_kind(SSE_HEAD "data: {\"choices\":[{\"text\":\"a\"}]}\n\n", "incomplete", "[DONE]");
    expect_kind(SSE_HEAD "data: {\"error\":{\"message\":\"the model crashed\"}}\n\n", "stream_error",
                "the model crashed");
    expect_kind("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{}", "malformed_sse",
                "not text/event-stream");
    expect_kind("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy", "http_5xx",
                "HTTP 503: busy");
    expect_kind("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "rejected",
                "HTTP 429");
    expect_kind("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "http_4xx", "HTTP 404");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_hearth_serve), cmocka_unit_test(test_rejections_counted),
        cmocka_unit_test(test_closed_port),          cmocka_unit_test(test_refuses_other_hosts),
        cmocka_unit_test(test_broken_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
