/* The hostile-HTTP battery: raw TCP and libcurl against `hearth serve` (fixture llama
 * model). Malformed request lines, smuggling (CL+TE, duplicate Content-Length), bad
 * chunking, truncated bodies, oversized headers, slow clients, hostile JSON (deep
 * nesting, invalid UTF-8, NUL, NaN/1e999, wrong types in every field, huge counts) and
 * pipelining. Each case must end in a clean status from its allowed list, or a closed
 * connection; never a 500 for a client fault; and after every case a normal completion
 * is served. Never asserts on timing: deadlines only bound a hang. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "srvtest.h"
#include "testutil.h"

#define MODEL_FILE "models/llama-spm-f16.gguf"
#define MODEL_ID "llama-spm-f16"
#define DEADLINE_S 60.0 /* bounds a hang; a healthy server answers in milliseconds */
#define MAX_RESP 16

static srvtest server;
static bool have_server;
static int n_cases;
static int seen[600];   /* answers by status, for the summary line */
static int n_silent;    /* cases the server closed without an answer */

static int setup(void **state) {
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (!fixtures_available()) return 0;
    have_server = srvtest_start(&server, fixture_path(MODEL_FILE), "--slots 2 --ctx 256 -t 1");
    return have_server ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    if (have_server) assert_int_equal(srvtest_stop(&server), 0);
    printf("hostile cases run: %d; closed without an answer: %d; answers:", n_cases, n_silent);
    for (int i = 0; i < 600; i++)
        if (seen[i]) printf(" %d x%d", i, seen[i]);
    printf("\n");
    return 0;
}

#define NEED_SERVER()                                                                                                  \
    do {                                                                                                               \
        if (!have_server) skip();                                                                                      \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- raw connections ---------------------------------------------------------------- */

typedef struct raw {
    int fd;
    char *buf;        /* everything received */
    size_t len, cap;
    bool closed;      /* the server closed (or reset) the connection */
} raw;

static void raw_open(raw *r) {
    memset(r, 0, sizeof *r);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    int one = 1;
    setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void raw_close(raw *r) {
    if (r->fd >= 0) close(r->fd);
    free(r->buf);
    r->fd = -1;
    r->buf = NULL;
}

/* Sends all of data; false when the server closed or reset the connection meanwhile
 * (a legitimate answer to a hostile request). Reads what arrives while sending, so a
 * server answering early never deadlocks against a full socket buffer. */
static bool raw_send(raw *r, const void *data, size_t n);

static void raw_read_some(raw *r, int timeout_ms) {
    struct pollfd p = {.fd = r->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0) return;
    if (r->len + 65536 + 1 > r->cap) {
        r->cap = (r->len + 65536 + 1) * 2;
        r->buf = realloc(r->buf, r->cap);
        assert_non_null(r->buf);
    }
    ssize_t k = recv(r->fd, r->buf + r->len, 65536, 0);
    if (k <= 0) {
        r->closed = true;
        return;
    }
    r->len += (size_t)k;
    r->buf[r->len] = '\0';
}

static bool raw_send(raw *r, const void *data, size_t n) {
    const char *p = data;
    while (n > 0) {
        struct pollfd fds = {.fd = r->fd, .events = POLLOUT | POLLIN};
        if (poll(&fds, 1, 1000) <= 0) continue;
        if (fds.revents & POLLIN) {
            raw_read_some(r, 0);
            if (r->closed) return false;
        }
        if (!(fds.revents & POLLOUT)) continue;
        ssize_t k = send(r->fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return false; /* EPIPE, ECONNRESET */
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Parses the complete responses in buf: their statuses (at most cap), and whether the
 * last one needs the close to end (no length). Returns how many are complete. */
static int parse_responses(const char *buf, size_t len, bool closed, int *status, int cap) {
    int n = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *start = buf + pos;
        const char *hend = memmem(start, len - pos, "\r\n\r\n", 4);
        if (!hend || strncmp(start, "HTTP/1.", 7) != 0) return n;
        int code = atoi(start + 9);
        size_t body = (size_t)(hend + 4 - buf);
        long long clen = -1;
        bool chunked = false;
        for (const char *h = strstr(start, "\r\n") + 2; h < hend; h = strstr(h, "\r\n") + 2) {
            if (!strncasecmp(h, "Content-Length:", 15)) clen = atoll(h + 15);
            if (!strncasecmp(h, "Transfer-Encoding:", 18) && strstr(h, "chunked") && strstr(h, "chunked") < hend)
                chunked = true;
        }
        if (code >= 100 && code < 200) { /* interim: not an answer */
            pos = body;
            continue;
        }
        size_t end;
        if (chunked) {
            size_t q = body;
            for (;;) {
                const char *le = memmem(buf + q, len - q, "\r\n", 2);
                if (!le) return n;
                unsigned long long sz = strtoull(buf + q, NULL, 16);
                q = (size_t)(le + 2 - buf);
                if (sz == 0) {
                    const char *te = memmem(buf + q - 2, len - (q - 2), "\r\n\r\n", 4);
                    if (!te) return n;
                    end = (size_t)(te + 4 - buf);
                    break;
                }
                if (q + sz + 2 > len) return n;
                q += sz + 2;
            }
        } else if (clen >= 0) {
            if (body + (size_t)clen > len) return n;
            end = body + (size_t)clen;
        } else if (code == 204 || code == 304) {
            end = body;
        } else {
            if (!closed) return n;
            end = len;
        }
        if (n < cap) status[n] = code;
        n++;
        pos = end;
    }
    return n;
}

/* Reads until `want` responses are complete, the server closes, or the deadline. */
static int raw_wait(raw *r, int want, int *status) {
    double until = now_s() + DEADLINE_S;
    int n = 0;
    while (!r->closed && (n = parse_responses(r->buf, r->len, false, status, MAX_RESP)) < want && now_s() < until)
        raw_read_some(r, 200);
    n = parse_responses(r->buf, r->len, r->closed, status, MAX_RESP);
    if (!r->closed && n < want) fail_msg("no answer and no close within %.0f s", DEADLINE_S);
    return n;
}

static bool allowed(int code, const int *ok) {
    if (code > 0 && code < 600) seen[code]++;
    for (; *ok; ok++)
        if (*ok == code) return true;
    return false;
}

static const char *list_text(const int *ok) {
    static char buf[128];
    size_t n = 0;
    buf[0] = '\0';
    for (; *ok; ok++) n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%d", n ? "," : "", *ok);
    return buf;
}

/* A normal completion must be served (the server keeps serving after each case). */
static void still_serving(const char *after) {
    srvtest_resp r;
    const char *body = "{\"model\":\"" MODEL_ID "\",\"prompt\":\"Hello\",\"max_tokens\":2,\"temperature\":0}";
    bool ok = srvtest_http(&server, "POST", "/v1/completions", body, NULL, &r);
    if (!ok || r.status != 200)
        fail_msg("after case '%s' a normal completion got %ld (transfer %s%s): %.200s", after, r.status,
                 ok ? "ok" : "failed: ", r.error, r.body ? r.body : "");
    srvtest_resp_free(&r);
}

/* Sends a hostile request whose framing is complete, then asks for /health with
 * Connection: close on the same connection if it is still open. The hostile bytes must
 * produce exactly `expect_n` responses (or fewer when the server closed), each with a
 * status from ok (0-terminated); the /health that follows proves nothing hidden was
 * queued behind them. */
static void case_framed(const char *name, const void *data, size_t len, int expect_n, const int *ok) {
    n_cases++;
    raw r;
    raw_open(&r);
    int st[MAX_RESP];
    raw_send(&r, data, len);
    int n = raw_wait(&r, expect_n, st);
    if (n == 0) n_silent++;
    if (n > expect_n) fail_msg("case '%s': %d responses to %d request(s)", name, n, expect_n);
    for (int i = 0; i < n && i < MAX_RESP; i++)
        if (!allowed(st[i], ok)) fail_msg("case '%s': response %d has status %d, allowed %s", name, i, st[i], list_text(ok));
    if (!r.closed) {
        static const char health[] = "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        raw_send(&r, health, sizeof health - 1);
        double until = now_s() + DEADLINE_S;
        while (!r.closed && now_s() < until) raw_read_some(&r, 200); /* a smuggled extra answer would show here */
        if (!r.closed) fail_msg("case '%s': a /health with Connection: close left the connection open", name);
        int n2 = parse_responses(r.buf, r.len, true, st, MAX_RESP);
        /* the server may close after its answer (n2 == n); one more answer must be the /health */
        if (n2 > n + 1 || (n2 == n + 1 && n2 <= MAX_RESP && st[n2 - 1] != 200))
            fail_msg("case '%s': after %d answer(s), a /health on the same connection gave %d more (last %d)", name, n,
                     n2 - n, n2 > 0 && n2 <= MAX_RESP ? st[n2 - 1] : 0);
    }
    raw_close(&r);
    still_serving(name);
}

/* Sends data, then closes our side: the server may answer (with an allowed status) or
 * close, but must not crash or hang. */
static void case_then_close(const char *name, const void *data, size_t len, const int *ok) {
    n_cases++;
    raw r;
    raw_open(&r);
    raw_send(&r, data, len);
    shutdown(r.fd, SHUT_WR);
    double until = now_s() + DEADLINE_S;
    while (!r.closed && now_s() < until) raw_read_some(&r, 200);
    if (!r.closed) fail_msg("case '%s': the server kept a half-closed connection open %.0f s", name, DEADLINE_S);
    int st[MAX_RESP];
    int n = parse_responses(r.buf, r.len, true, st, MAX_RESP);
    if (n == 0) n_silent++;
    for (int i = 0; i < n && i < MAX_RESP; i++)
        if (!allowed(st[i], ok)) fail_msg("case '%s': status %d, allowed %s", name, st[i], list_text(ok));
    raw_close(&r);
    still_serving(name);
}

#define S(lit) lit, sizeof lit - 1
static const int bad_request[] = {400, 0};
static const int health_ok[] = {200, 0};

/* ---- request line, headers, framing ------------------------------------------------- */

static void test_request_line_and_headers(void **state) {
    (void)state;
    NEED_SERVER();
    static const int line_bad[] = {400, 403, 404, 405, 501, 505, 0};
    case_framed("garbage request line", S("GARBAGE\r\nHost: localhost\r\n\r\n"), 1, line_bad);
    case_framed("HTTP/0.9 request", S("GET /health\r\n\r\n"), 1, line_bad);
    case_framed("unknown HTTP version", S("GET /health HTTP/9.9\r\nHost: localhost\r\n\r\n"), 1, line_bad);
    case_framed("HTTP/1.1 without Host", S("GET /health HTTP/1.1\r\n\r\n"), 1, (const int[]){200, 400, 403, 0});
    case_framed("unknown method", S("BREW /health HTTP/1.1\r\nHost: localhost\r\n\r\n"), 1, line_bad);
    case_framed("unknown method on the API", S("PURGE /v1/completions HTTP/1.1\r\nHost: localhost\r\n\r\n"), 1, line_bad);
    case_framed("lowercase method", S("get /health HTTP/1.1\r\nHost: localhost\r\n\r\n"), 1, line_bad);
    case_framed("absolute-form target", S("GET http://x/health HTTP/1.1\r\nHost: localhost\r\n\r\n"), 1,
                (const int[]){200, 400, 404, 0});
    case_framed("header without colon", S("GET /health HTTP/1.1\r\nHost: localhost\r\nBroken header\r\n\r\n"), 1,
                (const int[]){200, 400, 0});
    case_framed("obsolete line folding", S("GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n  folded\r\n\r\n"), 1,
                (const int[]){200, 400, 0});
    case_framed("bare LF line ends", S("GET /health HTTP/1.1\nHost: localhost\n\n"), 1, (const int[]){200, 400, 0});
    case_framed("NUL in the target", S("GET /hea\0lth HTTP/1.1\r\nHost: localhost\r\n\r\n"), 1, (const int[]){400, 404, 0});
    case_framed("NUL in a header", S("GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\0b\r\n\r\n"), 1,
                (const int[]){200, 400, 0});
    case_framed("GET with a body", S("GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"), 1,
                (const int[]){200, 400, 0});
    case_framed("control bytes in the target", S("GET /\x01\x7f\xff HTTP/1.1\r\nHost: localhost\r\n\r\n"), 1,
                (const int[]){400, 404, 0});
}

static void test_oversized_headers(void **state) {
    (void)state;
    NEED_SERVER();
    static const int too_big[] = {400, 413, 414, 431, 0};
    /* 10,000 headers */
    size_t cap = 10000 * 16 + 256, n = 0;
    char *req = malloc(cap);
    n += (size_t)snprintf(req + n, cap - n, "GET /health HTTP/1.1\r\nHost: localhost\r\n");
    for (int i = 0; i < 10000; i++) n += (size_t)snprintf(req + n, cap - n, "X-H%d: v\r\n", i);
    n += (size_t)snprintf(req + n, cap - n, "\r\n");
    case_framed("10k headers", req, n, 1, too_big);
    free(req);
    /* one header line of 1 MiB, and a 1 MiB target */
    size_t big = (size_t)1 << 20;
    req = malloc(big + 256);
    n = (size_t)sprintf(req, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: ");
    memset(req + n, 'a', big);
    n += big;
    n += (size_t)sprintf(req + n, "\r\n\r\n");
    case_framed("1 MiB header line", req, n, 1, too_big);
    n = (size_t)sprintf(req, "GET /");
    memset(req + n, 'a', big);
    n += big;
    n += (size_t)sprintf(req + n, " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    case_framed("1 MiB target", req, n, 1, (const int[]){400, 404, 413, 414, 431, 0});
    free(req);
}

#define CHAT_BODY "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":1}"

static void test_smuggling_and_lengths(void **state) {
    (void)state;
    NEED_SERVER();
    static const int refused[] = {400, 411, 413, 501, 0};
    /* CL+TE: by the chunked framing the body ends at "0", and a GET hides behind it; by
       Content-Length the GET is body. Either way no second answer may come. */
    case_framed("CL+TE, GET hidden behind the chunked end",
                S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  "Content-Length: 47\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0\r\n\r\nGET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                1, (const int[]){400, 411, 413, 501, 0});
    case_framed("TE+CL, body longer than the chunks",
                S("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                  "Content-Length: 4\r\n\r\n"
                  "5\r\nhello\r\n0\r\n\r\n"),
                1, refused);
    case_framed("obfuscated Transfer-Encoding",
                S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: xchunked\r\n\r\n"
                  "abcd"),
                1, refused);
    case_framed("duplicate Content-Length, different values",
                S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nContent-Length: 49\r\n\r\n"
                  "{}GET /nothing HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                1, refused);
    case_framed("Content-Length list", S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2, 2\r\n\r\n{}"), 1,
                refused);
    case_framed("negative Content-Length", S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: -5\r\n\r\n"),
                1, refused);
    case_framed("Content-Length with junk", S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2x\r\n\r\n{}"),
                1, refused);
    case_framed("huge Content-Length",
                S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 99999999999999999999999\r\n\r\n"), 1,
                refused);
    case_framed("Content-Length 2^64-1",
                S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 18446744073709551615\r\n\r\n"), 1,
                refused);
    case_framed("Content-Length beyond max_body",
                S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000000\r\n\r\n"), 1, refused);
    case_framed("bad chunk size",
                S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"), 1,
                refused);
    case_framed("huge chunk size",
                S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "ffffffffffffffffffff\r\nab\r\n0\r\n\r\n"),
                1, refused);
    case_framed("chunk size with junk extension",
                S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n2;\x01\r\n{}\r\n0\r\n\r\n"),
                1, (const int[]){400, 411, 413, 501, 0});
    /* incomplete bodies, then the client goes away */
    static const int any_clean[] = {400, 408, 411, 413, 0};
    case_then_close("body shorter than Content-Length",
                    S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"model\":"), any_clean);
    case_then_close("truncated chunked body",
                    S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"mod"),
                    any_clean);
    case_then_close("chunked body without the last chunk",
                    S("POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n"),
                    any_clean);
    case_then_close("headers cut off", S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Le"), any_clean);
    /* a valid chunked request still works */
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                     "Content-Type: application/json\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                     strlen(CHAT_BODY), CHAT_BODY);
    case_framed("valid chunked request", req, (size_t)n, 1, health_ok);
}

static void test_pipelined(void **state) {
    (void)state;
    NEED_SERVER();
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
                     "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s"
                     "GET /v1/models HTTP/1.1\r\nHost: localhost\r\n\r\n"
                     "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\n{bad}",
                     strlen(CHAT_BODY), CHAT_BODY);
    n_cases++;
    raw r;
    raw_open(&r);
    assert_true(raw_send(&r, req, (size_t)n));
    int st[MAX_RESP];
    int got = raw_wait(&r, 4, st);
    /* HTTP lets a server answer some and close (the client retries the rest): the answers
       must be a prefix of the expected ones, and a short list must end in a close */
    static const int want[4] = {200, 200, 200, 400};
    for (int i = 0; i < got && i < 4; i++)
        if (st[i] != want[i]) fail_msg("pipelined: answer %d is %d, want %d", i, st[i], want[i]);
    if (got < 1 || got > 4 || (got < 4 && !r.closed))
        fail_msg("pipelined: %d answers, connection %s", got, r.closed ? "closed" : "open");
    raw_close(&r);
    still_serving("pipelined");
}

/* Slow clients: connections trickling headers or a body hold no one else up. */
static void test_slow_clients(void **state) {
    (void)state;
    NEED_SERVER();
    enum { N_SLOW = 20 }; /* below limits.connections_per_ip (64): all come from 127.0.0.1 */
    raw slow[N_SLOW];
    for (int i = 0; i < N_SLOW; i++) {
        raw_open(&slow[i]);
        if (i % 2 == 0) raw_send(&slow[i], S("GET /health HTTP/1.1\r\nHost: localhost\r\n"));
        else raw_send(&slow[i], S("POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n{\"mo"));
    }
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N_SLOW; i++) {
            if (slow[i].closed) continue;
            if (i % 2 == 0) raw_send(&slow[i], S("X-S: a\r\n"));
            else raw_send(&slow[i], S("  "));
        }
        n_cases++;
        still_serving("while 20 clients trickle headers and bodies");
        sleep_ms(250);
    }
    for (int i = 0; i < N_SLOW; i++) raw_close(&slow[i]);
    still_serving("after slow clients left");
}

/* ---- hostile JSON --------------------------------------------------------------------- */

static void post_case(const char *name, const char *path, const char *body, size_t len, const int *ok) {
    n_cases++;
    raw r;
    raw_open(&r);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      path, len);
    int st[MAX_RESP];
    int n = 0;
    if (raw_send(&r, head, (size_t)hn) && raw_send(&r, body, len)) n = raw_wait(&r, 1, st);
    else n = parse_responses(r.buf, r.len, true, st, MAX_RESP);
    if (n < 1) fail_msg("case '%s': closed without an answer", name);
    if (!allowed(st[0], ok))
        fail_msg("case '%s': status %d, allowed %s: %.300s", name, st[0], list_text(ok),
                 r.buf ? strstr(r.buf, "\r\n\r\n") : "");
    raw_close(&r);
    still_serving(name);
}

#define POST_LIT(name, path, lit, ok) post_case(name, path, lit, sizeof lit - 1, ok)

static void test_hostile_json(void **state) {
    (void)state;
    NEED_SERVER();
    size_t big = 100000;
    char *deep = malloc(4 * big);
    memset(deep, '[', big);
    post_case("100k '[' alone", "/v1/completions", deep, big, bad_request);
    int n = sprintf(deep, "{\"model\":\"%s\",\"prompt\":", MODEL_ID);
    memset(deep + n, '[', big);
    memset(deep + n + big, ']', big);
    deep[n + 2 * big] = '}';
    post_case("100k nested arrays as the prompt", "/v1/completions", deep, (size_t)n + 2 * big + 1, bad_request);
    n = sprintf(deep, "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"x\":", MODEL_ID);
    for (size_t i = 0; i < 50000; i++) memcpy(deep + n + 5 * i, "{\"a\":", 5);
    post_case("50k nested objects in an unknown field", "/v1/chat/completions", deep, (size_t)n + 250000, bad_request);
    free(deep);

    static const int chat_ok[] = {200, 400, 0};
    POST_LIT("invalid UTF-8 in a string", "/v1/completions",
             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\xff\xfe\xc3(\",\"max_tokens\":1}", bad_request);
    POST_LIT("invalid UTF-8 outside strings", "/v1/completions", "{\"model\":\"" MODEL_ID "\",\xff\"prompt\":\"a\"}",
             bad_request);
    POST_LIT("overlong UTF-8 encoding", "/v1/chat/completions",
             "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc0\xaf\"}]}", bad_request);
    POST_LIT("UTF-16 surrogate in UTF-8", "/v1/chat/completions",
             "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"user\",\"content\":\"\xed\xa0\x80\"}]}", bad_request);
    POST_LIT("lone surrogate escape", "/v1/chat/completions",
             "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}],\"max_tokens\":1}",
             chat_ok);
    POST_LIT("raw NUL byte in the body", "/v1/completions",
             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\0b\",\"max_tokens\":1}", bad_request);
    POST_LIT("escaped NUL in the prompt", "/v1/completions",
             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\\u0000b\",\"max_tokens\":1}", bad_request);
    POST_LIT("escaped NUL in the model", "/v1/completions", "{\"model\":\"x\\u0000y\",\"prompt\":\"a\"}", bad_request);
    POST_LIT("NUL-only body", "/v1/completions", "\0\0\0\0", bad_request);
    POST_LIT("empty body", "/v1/chat/completions", "", bad_request);
    POST_LIT("BOM before the JSON", "/v1/completions", "\xef\xbb\xbf{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\"}",
             bad_request);
    POST_LIT("NaN literal", "/v1/completions", "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"temperature\":NaN}",
             bad_request);
    POST_LIT("Infinity literal", "/v1/completions", "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"top_p\":Infinity}",
             bad_request);
    POST_LIT("1e999", "/v1/completions", "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"max_tokens\":1e999}",
             bad_request);
    POST_LIT("-0 as max_tokens", "/v1/completions", "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"max_tokens\":-0}",
             bad_request);
    POST_LIT("-0.0 as temperature", "/v1/completions",
             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"max_tokens\":1,\"temperature\":-0.0}", chat_ok);
    POST_LIT("huge integer", "/v1/completions",
             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"max_tokens\":123456789012345678901234567890}", bad_request);
    POST_LIT("huge seed", "/v1/completions",
             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"max_tokens\":1,\"seed\":18446744073709551616}", bad_request);
    POST_LIT("denormal top_p", "/v1/completions",
             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"max_tokens\":1,\"top_p\":4.9e-324}", chat_ok);
    POST_LIT("huge n", "/v1/completions", "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"n\":1000000000}", bad_request);
    POST_LIT("huge max_tokens", "/v1/completions",
             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"max_tokens\":2147483647,\"temperature\":0}", chat_ok);
    POST_LIT("max_tokens past int32", "/v1/completions",
             "{\"model\":\"" MODEL_ID "\",\"prompt\":\"a\",\"max_tokens\":2147483648}", bad_request);
    POST_LIT("huge top_logprobs", "/v1/chat/completions",
             "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,"
             "\"top_logprobs\":100000}",
             bad_request);
    POST_LIT("unknown role", "/v1/chat/completions",
             "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", bad_request);
    POST_LIT("empty role", "/v1/chat/completions",
             "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"\",\"content\":\"x\"}]}", bad_request);
    POST_LIT("duplicate keys", "/v1/chat/completions",
             "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"user\",\"role\":\"system\",\"content\":\"x\"}]}",
             bad_request);

    /* huge stop lists, long stop strings, 10k messages, a prompt far beyond the context */
    size_t cap = 4 << 20;
    char *b = malloc(cap);
    size_t k = (size_t)snprintf(b, cap, "{\"model\":\"%s\",\"prompt\":\"a\",\"max_tokens\":1,\"stop\":[", MODEL_ID);
    for (int i = 0; i < 100000; i++) k += (size_t)snprintf(b + k, cap - k, "%s\"s%d\"", i ? "," : "", i);
    k += (size_t)snprintf(b + k, cap - k, "]}");
    post_case("100k stop strings", "/v1/completions", b, k, bad_request);
    k = (size_t)snprintf(b, cap, "{\"model\":\"%s\",\"prompt\":\"a\",\"max_tokens\":1,\"stop\":\"", MODEL_ID);
    memset(b + k, 's', 1 << 20);
    k += 1 << 20;
    k += (size_t)snprintf(b + k, cap - k, "\"}");
    post_case("1 MiB stop string", "/v1/completions", b, k, bad_request);
    k = (size_t)snprintf(b, cap, "{\"model\":\"%s\",\"max_tokens\":1,\"messages\":[", MODEL_ID);
    for (int i = 0; i < 10000; i++) k += (size_t)snprintf(b + k, cap - k, "%s{\"role\":\"user\",\"content\":\"m\"}", i ? "," : "");
    k += (size_t)snprintf(b + k, cap - k, "]}");
    post_case("10k messages", "/v1/chat/completions", b, k, bad_request);
    k = (size_t)snprintf(b, cap, "{\"model\":\"%s\",\"max_tokens\":1,\"prompt\":\"", MODEL_ID);
    for (int i = 0; i < 200000; i++) k += (size_t)snprintf(b + k, cap - k, "word ");
    k += (size_t)snprintf(b + k, cap - k, "\"}");
    post_case("prompt far beyond the context (1 MB)", "/v1/completions", b, k, bad_request);
    k = (size_t)snprintf(b, cap, "{\"model\":\"%s\",\"max_tokens\":1,\"prompt\":[", MODEL_ID);
    for (int i = 0; i < 100000; i++) k += (size_t)snprintf(b + k, cap - k, "%s1", i ? "," : "");
    k += (size_t)snprintf(b + k, cap - k, "]}");
    post_case("100k prompt token ids", "/v1/completions", b, k, bad_request);
    k = (size_t)snprintf(b, cap, "{\"model\":\"%s\",\"max_tokens\":1,\"prompt\":\"a\",\"logit_bias\":{", MODEL_ID);
    for (int i = 0; i < 50000; i++) k += (size_t)snprintf(b + k, cap - k, "%s\"%d\":1", i ? "," : "", i);
    k += (size_t)snprintf(b + k, cap - k, "}}");
    post_case("50k logit_bias entries", "/v1/completions", b, k, bad_request);
    free(b);
}

/* Every field of both APIs with values of every wrong type (and some right ones): a
 * 200 or a 4xx naming the problem, never a 500. */
static void test_wrong_types(void **state) {
    (void)state;
    NEED_SERVER();
    static const char *const values[] = {
        "\"str\"", "\"\"", "-1", "0", "1.5", "1e308", "-0", "true", "{}", "[]", "[1]", "[\"a\"]", "{\"a\":1}",
        "[[1]]", "[{}]", "null",
    };
    static const char *const common[] = {
        "model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "n", "stream",
        "stop", "seed", "logit_bias", "presence_penalty", "frequency_penalty", "repetition_penalty", "repeat_penalty",
        "stream_options", "timeout", "ignore_eos", "response_format", "best_of", "user",
    };
    static const char *const comp_only[] = {"prompt", "logprobs", "echo", "suffix"};
    static const char *const chat_only[] = {"messages", "tools", "tool_choice", "logprobs", "top_logprobs"};
    static const char *const msg_fields[] = {"role", "content", "name", "tool_calls", "tool_call_id"};
    static const int ok[] = {200, 400, 404, 0};
    char body[1024], name[256];
    for (size_t v = 0; v < sizeof values / sizeof *values; v++) {
        for (size_t f = 0; f < sizeof common / sizeof *common + sizeof comp_only / sizeof *comp_only; f++) {
            const char *field = f < sizeof common / sizeof *common ? common[f] : comp_only[f - sizeof common / sizeof *common];
            bool is_max = !strcmp(field, "max_tokens") || !strcmp(field, "max_completion_tokens");
            bool is_prompt = !strcmp(field, "prompt"), is_model = !strcmp(field, "model");
            int n = snprintf(body, sizeof body, "{%s%s%s\"%s\":%s%s}", is_model ? "" : "\"model\":\"" MODEL_ID "\",",
                             is_prompt ? "" : "\"prompt\":\"a\",", is_max ? "" : "\"max_tokens\":1,", field, values[v],
                             is_max ? ",\"prompt\":\"a\"" : "");
            if (is_prompt && is_max) continue;
            snprintf(name, sizeof name, "completions %s = %s", field, values[v]);
            post_case(name, "/v1/completions", body, (size_t)n, ok);
        }
        for (size_t f = 0; f < sizeof chat_only / sizeof *chat_only; f++) {
            bool is_msgs = !strcmp(chat_only[f], "messages");
            int n = snprintf(body, sizeof body, "{\"model\":\"" MODEL_ID "\",\"max_tokens\":1,%s\"%s\":%s}",
                             is_msgs ? "" : "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],", chat_only[f],
                             values[v]);
            snprintf(name, sizeof name, "chat %s = %s", chat_only[f], values[v]);
            post_case(name, "/v1/chat/completions", body, (size_t)n, ok);
        }
        for (size_t f = 0; f < sizeof msg_fields / sizeof *msg_fields; f++) {
            bool role = !strcmp(msg_fields[f], "role"), content = !strcmp(msg_fields[f], "content");
            int n = snprintf(body, sizeof body,
                             "{\"model\":\"" MODEL_ID "\",\"max_tokens\":1,\"messages\":[{%s%s\"%s\":%s}]}",
                             role ? "" : "\"role\":\"assistant\",", content ? "" : "\"content\":\"x\",", msg_fields[f],
                             values[v]);
            snprintf(name, sizeof name, "chat messages[0].%s = %s", msg_fields[f], values[v]);
            post_case(name, "/v1/chat/completions", body, (size_t)n, ok);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_line_and_headers),
        cmocka_unit_test(test_oversized_headers),
        cmocka_unit_test(test_smuggling_and_lengths),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_slow_clients),
        cmocka_unit_test(test_hostile_json),
        cmocka_unit_test(test_wrong_types),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
