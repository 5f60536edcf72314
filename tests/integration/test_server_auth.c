/* `hearth serve` with API keys and hardening limits, end to end over HTTP (libcurl and a
 * raw socket) with the tiny fixture model: 401 without or with a wrong key (and
 * WWW-Authenticate), 200 with a key from sha256, env or file, 403 for a model, tools or an
 * operator route the key may not use, /v1/models filtered per key, 429 with Retry-After on
 * requests/min, tokens/min and concurrency, the Host check of a loopback bind, the header
 * count limit, request limits, CORS off and on, a key added by reload, the refusal of an
 * unauthenticated non-loopback bind, and canaries (a key, a prompt, a stop string) that
 * must appear nowhere the server writes: its log, its SQLite store, /metrics. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_body.h"
#include "srvtest.h"
#include "testutil.h"

#define MODEL_FILE "models/llama-2-tiny-random.gguf"
#define OTHER_FILE "models/llama-spm-q4_0.gguf"
#define ADMIN_KEY "hk-admin-5f0e1d2c3b4a6978"
#define ENV_KEY "hk-env-CANARY-key-a1b2c3d4"
#define FILE_KEY "hk-file-7766554433221100"
#define LIMITED_KEY "hk-limited-1234567890ab"
#define SINGLE_KEY "hk-single-0987654321cd"
#define TOKENS_KEY "hk-tokens-aabbccddeeff00"
#define NEW_KEY "hk-new-after-reload-0001"
#define WRONG_KEY "hk-wrong-CANARY-key-ffee"
#define CANARY_PROMPT "CANARY-prompt-5e1f0a"
#define CANARY_STOP "CANARY-stop-93c2d1"

static char g_dir[64];
static srvtest g_srv;
static bool g_up;

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *path_in(const char *name) {
    static char p[2][160];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

static void sha256_hex(const char *s, char out[65]) {
    unsigned char d[32];
    unsigned int n = 0;
    EVP_Digest(s, strlen(s), d, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The main configuration; extra_key: one more `keys:` entry (a reload adds it);
 * extra_limits: more `limits:` keys (", idle_timeout: 90s"). */
static void write_config_with(const char *extra_key, const char *extra_limits) {
    char admin[65], limited[65], single[65], tokens[65], cfg[4096];
    sha256_hex(ADMIN_KEY, admin);
    sha256_hex(LIMITED_KEY, limited);
    sha256_hex(SINGLE_KEY, single);
    sha256_hex(TOKENS_KEY, tokens);
    snprintf(cfg, sizeof cfg,
             "server: {timeout: 120s}\n"
             "limits: {headers: 24, max_tokens: 64, stop: 2, connections_per_ip: 6%s}\n"
             "keys:\n"
             "  - {name: ops, sha256: %s, admin: true}\n"
             "  - {name: env-key, env: HEARTH_TEST_ENV_KEY, models: [tiny], tools: false}\n"
             "  - {name: file-key, file: key.txt, models: [tiny-alias], tools: [get_weather]}\n"
             "  - {name: limited, sha256: %s, requests_per_minute: 2}\n"
             "  - {name: single, sha256: %s, max_concurrent: 1}\n"
             "  - {name: tokens, sha256: %s, tokens_per_minute: 6}\n"
             "%s"
             "defaults: {threads: 1, slots: 2, ctx: 256}\n"
             "models:\n"
             "  - {name: tiny, path: '%s', preload: true, aliases: [tiny-alias]}\n"
             "  - {name: other, path: '%s'}\n"
             "routes:\n"
             "  - {name: other-route, targets: [local:other]}\n",
             extra_limits ? extra_limits : "", admin, limited, single, tokens, extra_key ? extra_key : "", fixture_path(MODEL_FILE),
             fixture_path(OTHER_FILE));
    write_text(path_in("hearth.yaml"), cfg);
}

static void write_config(const char *extra_key) { write_config_with(extra_key, NULL); }

typedef struct resp {
    long status;
    char *body;
    size_t len;
    char retry_after[32], www_auth[64], acao[160], allow_methods[80];
} resp;

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    resp *r = ud;
    size_t k = size * n;
    srvtest_header_value(p, k, "Retry-After", r->retry_after, sizeof r->retry_after);
    srvtest_header_value(p, k, "WWW-Authenticate", r->www_auth, sizeof r->www_auth);
    srvtest_header_value(p, k, "Access-Control-Allow-Origin", r->acao, sizeof r->acao);
    srvtest_header_value(p, k, "Access-Control-Allow-Methods", r->allow_methods, sizeof r->allow_methods);
    return k;
}

/* One request; key NULL: no Authorization; headers: more header lines, NULL-terminated. */
static resp http(const srvtest *t, const char *method, const char *path, const char *key, const char *body,
                 const char *const *headers) {
    resp r = {0};
    CURL *c = curl_easy_init();
    http_body sink;
    http_body_collect(c, &sink, &r.body, &r.len, 0);
    char url[256], auth[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", t->port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (body) h = curl_slist_append(h, "Content-Type: application/json");
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    for (size_t i = 0; headers && headers[i]; i++) h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

/* Asserts the status and, when code is given, the OpenAI-shaped error code. */
static void expect(const resp *r, long status, const char *code, const char *what) {
    if (r->status != status) fail_msg("%s: want HTTP %ld, got %ld: %s", what, status, r->status, r->body);
    if (!code) return;
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    const char *got = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    if (!got || strcmp(got, code)) fail_msg("%s: want error code %s, got %s", what, code, r->body);
    json_decref(j);
}

static void done(resp *r) { free(r->body); }

/* A connected socket to the server (the caller closes it). */
static int raw_connect(const srvtest *t) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Opens n connections that the server keeps: one it closed at once (the per-address
 * cap still counting connections of earlier requests whose close it has not seen yet)
 * reads as end of file within half a second, and then all are opened again. */
static void hold_connections(const srvtest *t, int *fds, int n) {
    for (int attempt = 0; attempt < 60; attempt++) {
        struct pollfd p[8];
        for (int i = 0; i < n; i++) p[i] = (struct pollfd){.fd = fds[i] = raw_connect(t), .events = POLLIN};
        if (poll(p, (nfds_t)n, 500) == 0) return;
        for (int i = 0; i < n; i++) close(fds[i]);
        sleep_ms(100);
    }
    fail_msg("the server kept closing %d fresh connections from one address for 36 s", n);
}

/* GET /health; false when the connection was refused or closed without an answer. */
static bool health_answers(const srvtest *t) {
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", t->port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return rc == CURLE_OK && status == 200;
}

#define COMPLETION(model) "{\"model\":\"" model "\",\"prompt\":\"Hello\",\"max_tokens\":4,\"temperature\":0}"

static int group_setup(void **state) {
    if (!fixtures_available()) return 0;
    snprintf(g_dir, sizeof g_dir, "/tmp/hearth-auth-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    setenv("HEARTH_TEST_ENV_KEY", ENV_KEY, 1);
    write_text(path_in("key.txt"), FILE_KEY "\n");
    write_config(NULL);
    char args[512];
    snprintf(args, sizeof args, "-c '%s' --no-db", path_in("hearth.yaml"));
    g_up = srvtest_start_args(&g_srv, args);
    return 0; /* /ready needs no key, so the start works with keys configured */
}

static int group_teardown(void **state) {
    if (g_up) srvtest_stop(&g_srv);
    if (g_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) return -1;
    }
    return 0;
}

#define NEED_SERVER()                                                                                                  \
    do {                                                                                                               \
        if (!fixtures_available()) skip();                                                                             \
        assert_true(g_up);                                                                                             \
    } while (0)

static void test_keys(void **state) {
    NEED_SERVER();
    resp r = http(&g_srv, "GET", "/health", NULL, NULL, NULL);
    expect(&r, 200, NULL, "/health without a key");
    done(&r);
    r = http(&g_srv, "GET", "/v1/models", NULL, NULL, NULL);
    expect(&r, 401, "missing_api_key", "/v1/models without a key");
    assert_string_equal(r.www_auth, "Bearer");
    done(&r);
    r = http(&g_srv, "POST", "/v1/completions", WRONG_KEY, COMPLETION("tiny"), NULL);
    expect(&r, 401, "invalid_api_key", "a wrong key");
    assert_string_equal(r.www_auth, "Bearer");
    done(&r);
    const char *basic[] = {"Authorization: Basic " ADMIN_KEY, NULL};
    r = http(&g_srv, "GET", "/v1/models", NULL, NULL, basic);
    expect(&r, 401, "invalid_api_key", "a Basic header");
    done(&r);
    r = http(&g_srv, "GET", "/nowhere", NULL, NULL, NULL);
    expect(&r, 401, NULL, "an unknown path without a key");
    done(&r);

    /* a key from sha256, env and file each works */
    r = http(&g_srv, "POST", "/v1/completions", ADMIN_KEY, COMPLETION("tiny"), NULL);
    expect(&r, 200, NULL, "the sha256 key");
    done(&r);
    r = http(&g_srv, "POST", "/v1/completions", ENV_KEY, COMPLETION("tiny"), NULL);
    expect(&r, 200, NULL, "the env key");
    done(&r);
    r = http(&g_srv, "POST", "/v1/completions", FILE_KEY, COMPLETION("tiny-alias"), NULL);
    expect(&r, 200, NULL, "the file key by the alias it lists");
    done(&r);
    r = http(&g_srv, "POST", "/v1/completions", FILE_KEY, COMPLETION("tiny"), NULL);
    expect(&r, 200, NULL, "the file key by the name of the model its alias names");
    done(&r);

    /* models the key may not use: 403, and not listed */
    r = http(&g_srv, "POST", "/v1/completions", ENV_KEY, COMPLETION("other"), NULL);
    expect(&r, 403, "model_not_allowed", "the env key on another model");
    done(&r);
    r = http(&g_srv, "POST", "/v1/completions", ENV_KEY, COMPLETION("other-route"), NULL);
    expect(&r, 403, "model_not_allowed", "the env key on a route it may not use");
    done(&r);
    r = http(&g_srv, "POST", "/v1/completions", ADMIN_KEY, COMPLETION("other-route"), NULL);
    expect(&r, 200, NULL, "the admin key on the route");
    done(&r);
    r = http(&g_srv, "GET", "/v1/models", ENV_KEY, NULL, NULL);
    expect(&r, 200, NULL, "/v1/models with the env key");
    assert_non_null(strstr(r.body, "\"tiny\""));
    if (strstr(r.body, "\"other\"") || strstr(r.body, "other-route"))
        fail_msg("the env key sees a model or route it may not use: %s", r.body);
    done(&r);
    r = http(&g_srv, "GET", "/v1/models", ADMIN_KEY, NULL, NULL);
    assert_non_null(strstr(r.body, "\"other\""));
    assert_non_null(strstr(r.body, "\"other-route\""));
    done(&r);

    /* tools */
    const char *chat_tools = "{\"model\":\"tiny\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                             "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"%s\",\"parameters\":{}}}]}";
    char body[512];
    snprintf(body, sizeof body, chat_tools, "get_weather");
    r = http(&g_srv, "POST", "/v1/chat/completions", ENV_KEY, body, NULL);
    expect(&r, 403, "tools_not_allowed", "tools with a key that has tools: false");
    done(&r);
    snprintf(body, sizeof body, chat_tools, "delete_files");
    r = http(&g_srv, "POST", "/v1/chat/completions", FILE_KEY, body, NULL);
    expect(&r, 403, "tool_not_allowed", "a tool outside the key's list");
    done(&r);

    /* operator routes need admin: true */
    static const char *const ops[] = {"/metrics", "/admin/models", "/", "/admin/stats"};
    for (size_t i = 0; i < 4; i++) {
        r = http(&g_srv, "GET", ops[i], ENV_KEY, NULL, NULL);
        expect(&r, 403, "admin_required", ops[i]);
        done(&r);
        r = http(&g_srv, "GET", ops[i], ADMIN_KEY, NULL, NULL);
        expect(&r, 200, NULL, ops[i]);
        done(&r);
    }
    r = http(&g_srv, "POST", "/admin/reload", FILE_KEY, NULL, NULL);
    expect(&r, 403, "admin_required", "/admin/reload with a plain key");
    done(&r);
    r = http(&g_srv, "DELETE", "/admin/models/tiny/adapters/some-adapter", FILE_KEY, NULL, NULL);
    expect(&r, 403, "admin_required", "removing an adapter with a plain key");
    done(&r);
    r = http(&g_srv, "POST", "/admin/models/other/unload", ENV_KEY, NULL, NULL);
    expect(&r, 403, "admin_required", "unloading a model with a plain key");
    done(&r);

    r = http(&g_srv, "GET", "/metrics", ADMIN_KEY, NULL, NULL);
    static const char *const series[] = {
        "hearth_auth_failures_total{reason=\"missing\"}", "hearth_auth_failures_total{reason=\"invalid\"}",
        "hearth_auth_failures_total{reason=\"model\"}",   "hearth_auth_failures_total{reason=\"tools\"}",
        "hearth_auth_failures_total{reason=\"admin\"}",
    };
    for (size_t i = 0; i < 5; i++)
        if (!strstr(r.body, series[i])) fail_msg("/metrics lacks %s", series[i]);
    done(&r);
}

static void test_rate_limits(void **state) {
    NEED_SERVER();
    /* requests per minute: 2, then 429 with the seconds until the next one */
    for (int i = 0; i < 2; i++) {
        resp r = http(&g_srv, "GET", "/v1/models", LIMITED_KEY, NULL, NULL);
        expect(&r, 200, NULL, "within requests_per_minute");
        done(&r);
    }
    resp r = http(&g_srv, "GET", "/v1/models", LIMITED_KEY, NULL, NULL);
    expect(&r, 429, "rate_limit_exceeded", "beyond requests_per_minute");
    int ra = atoi(r.retry_after);
    if (ra < 1 || ra > 30) fail_msg("Retry-After '%s': want 1..30 s (one request every 30 s)", r.retry_after);
    done(&r);

    /* tokens per minute: 6, a request charged beyond them makes the next one wait */
    r = http(&g_srv, "POST", "/v1/completions", TOKENS_KEY, COMPLETION("tiny"), NULL);
    expect(&r, 200, NULL, "the first request of the tokens key");
    done(&r);
    for (int i = 0; i < 100; i++) { /* the charge lands when the connection closes */
        r = http(&g_srv, "POST", "/v1/completions", TOKENS_KEY, COMPLETION("tiny"), NULL);
        if (r.status == 429) break;
        done(&r);
        sleep_ms(50);
    }
    expect(&r, 429, "rate_limit_exceeded", "beyond tokens_per_minute");
    ra = atoi(r.retry_after);
    if (ra < 1 || ra > 60) fail_msg("tokens Retry-After '%s': want 1..60", r.retry_after);
    done(&r);

    /* concurrency: one request held open (headers sent, body not) blocks a second */
    const char *head = "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " SINGLE_KEY
                       "\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"model\":";
    int fd = -1;
    for (int i = 0; i < 200; i++) { /* until the server has the held request's headers */
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (fd < 0 || poll(&pf, 1, 0) > 0) { /* the held request lost the race to a probe: hold another */
            if (fd >= 0) close(fd);
            fd = raw_connect(&g_srv);
            assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
        }
        r = http(&g_srv, "GET", "/v1/models", SINGLE_KEY, NULL, NULL);
        if (r.status == 429) break;
        done(&r);
        sleep_ms(50);
    }
    expect(&r, 429, "rate_limit_exceeded", "a second request beyond max_concurrent");
    assert_true(atoi(r.retry_after) >= 1);
    done(&r);
    close(fd);
    for (int i = 0; i < 200; i++) { /* the slot frees when the server sees the hang-up */
        r = http(&g_srv, "GET", "/v1/models", SINGLE_KEY, NULL, NULL);
        if (r.status == 200) break;
        done(&r);
        sleep_ms(50);
    }
    expect(&r, 200, NULL, "after the held request went away");
    done(&r);

    r = http(&g_srv, "GET", "/metrics", ADMIN_KEY, NULL, NULL);
    static const char *const series[] = {
        "hearth_rate_limited_total{key=\"limited\",kind=\"requests\"} 1",
        "hearth_rate_limited_total{key=\"tokens\",kind=\"tokens\"}",
        "hearth_rate_limited_total{key=\"single\",kind=\"concurrency\"}",
    };
    for (size_t i = 0; i < 3; i++)
        if (!strstr(r.body, series[i])) fail_msg("/metrics lacks %s", series[i]);
    done(&r);
}

static void test_host_and_headers(void **state) {
    NEED_SERVER();
    static const char *const good[] = {"Host: localhost", "Host: localhost:8080", "Host: [::1]:80", "Host: 127.0.0.9"};
    for (size_t i = 0; i < 4; i++) {
        const char *h[] = {good[i], NULL};
        resp r = http(&g_srv, "GET", "/health", NULL, NULL, h);
        expect(&r, 200, NULL, good[i]);
        done(&r);
    }
    const char *evil[] = {"Host: rebind.attacker.example", NULL};
    resp r = http(&g_srv, "GET", "/health", NULL, NULL, evil);
    expect(&r, 403, "host_not_allowed", "a foreign Host on a loopback bind");
    done(&r);
    r = http(&g_srv, "GET", "/v1/models", ADMIN_KEY, NULL, evil);
    expect(&r, 403, "host_not_allowed", "a foreign Host even with a key");
    done(&r);

    /* header count: 24 at most */
    static char lines[40][32];
    const char *many[41];
    for (int i = 0; i < 40; i++) {
        snprintf(lines[i], sizeof lines[i], "X-Filler-%d: %d", i, i);
        many[i] = lines[i];
    }
    many[40] = NULL;
    r = http(&g_srv, "GET", "/health", NULL, NULL, many);
    expect(&r, 431, "too_many_headers", "40 extra header lines");
    assert_non_null(strstr(r.body, "\"error\""));
    done(&r);
    static char huge[20000];
    memcpy(huge, "X-Huge: ", 8);
    memset(huge + 8, 'h', sizeof huge - 9);
    const char *big[] = {huge, NULL};
    r = http(&g_srv, "GET", "/health", NULL, NULL, big);
    expect(&r, 431, "request_header_fields_too_large", "20 KB of headers over max_header 16 KiB");
    done(&r);
    many[10] = NULL;
    r = http(&g_srv, "GET", "/health", NULL, NULL, many);
    expect(&r, 200, NULL, "10 extra header lines");
    done(&r);

    /* connections per client address: 6; a seventh is refused until one closes */
    int held[6];
    hold_connections(&g_srv, held, 6);
    bool refused = false;
    for (int i = 0; i < 100 && !refused; i++) { /* earlier connections may still be closing */
        refused = !health_answers(&g_srv);
        if (!refused) sleep_ms(50);
    }
    if (!refused) fail_msg("a seventh connection from 127.0.0.1 was served (limits.connections_per_ip: 6)");
    for (int i = 0; i < 6; i++) close(held[i]);
    /* The server counts a closed connection out when its thread sees the close, which
       on a loaded machine can lag: one answer proves one free place, not six. Wait for
       five answers in a row before the requests that follow. */
    int in_a_row = 0;
    for (int i = 0; i < 400 && in_a_row < 5; i++) {
        in_a_row = health_answers(&g_srv) ? in_a_row + 1 : 0;
        sleep_ms(50);
    }
    if (in_a_row < 5) fail_msg("connections from 127.0.0.1 still refused 20 s after the six held ones closed");

    /* request limits name the field */
    r = http(&g_srv, "POST", "/v1/completions", ADMIN_KEY,
             "{\"model\":\"tiny\",\"prompt\":\"x\",\"max_tokens\":65}", NULL);
    expect(&r, 400, NULL, "max_tokens beyond limits.max_tokens");
    assert_non_null(strstr(r.body, "\"param\":\"max_tokens\""));
    done(&r);
    r = http(&g_srv, "POST", "/v1/completions", ADMIN_KEY,
             "{\"model\":\"tiny\",\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\"]}", NULL);
    expect(&r, 400, NULL, "three stop strings beyond limits.stop");
    assert_non_null(strstr(r.body, "\"param\":\"stop\""));
    done(&r);

    /* a chat without max_tokens stops at limits.max_tokens (64), not at the context (256) */
    r = http(&g_srv, "POST", "/v1/chat/completions", ADMIN_KEY,
             "{\"model\":\"tiny\",\"ignore_eos\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL);
    expect(&r, 200, NULL, "an open-ended chat");
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    json_int_t used = json_integer_value(json_object_get(json_object_get(j, "usage"), "completion_tokens"));
    if (used != 64) fail_msg("an open-ended chat generated %lld tokens, want limits.max_tokens 64", (long long)used);
    json_decref(j);
    done(&r);

    /* CORS is off: no preflight answer, no Access-Control-Allow-Origin */
    const char *origin[] = {"Origin: https://app.example.com", "Access-Control-Request-Method: POST", NULL};
    r = http(&g_srv, "OPTIONS", "/v1/models", NULL, NULL, origin);
    if (r.status == 204 || r.acao[0]) fail_msg("CORS is off but OPTIONS got %ld with ACAO '%s'", r.status, r.acao);
    done(&r);
    r = http(&g_srv, "GET", "/v1/models", ADMIN_KEY, NULL, origin);
    expect(&r, 200, NULL, "GET with an Origin");
    assert_string_equal(r.acao, "");
    done(&r);
}

static void test_reload_adds_key(void **state) {
    NEED_SERVER();
    resp r = http(&g_srv, "GET", "/v1/models", NEW_KEY, NULL, NULL);
    expect(&r, 401, "invalid_api_key", "a key not yet configured");
    done(&r);
    char hex[65], entry[160];
    sha256_hex(NEW_KEY, hex);
    snprintf(entry, sizeof entry, "  - {name: newcomer, sha256: %s, models: [other]}\n", hex);
    write_config_with(entry, ", idle_timeout: 90s");
    r = http(&g_srv, "POST", "/admin/reload", ADMIN_KEY, NULL, NULL);
    expect(&r, 200, NULL, "/admin/reload");
    if (!strstr(r.body, "needs a restart to apply: limits.idle_timeout"))
        fail_msg("the reload summary does not say idle_timeout needs a restart: %s", r.body);
    done(&r);
    r = http(&g_srv, "GET", "/v1/models", NEW_KEY, NULL, NULL);
    expect(&r, 200, NULL, "the key added by the reload");
    assert_non_null(strstr(r.body, "\"other\""));
    assert_null(strstr(r.body, "\"tiny\""));
    done(&r);
    write_config(NULL);
    r = http(&g_srv, "POST", "/admin/reload", ADMIN_KEY, NULL, NULL);
    expect(&r, 200, NULL, "/admin/reload back");
    done(&r);
    r = http(&g_srv, "GET", "/v1/models", NEW_KEY, NULL, NULL);
    expect(&r, 401, "invalid_api_key", "the key removed by the reload");
    done(&r);
}

static void test_public_bind_needs_keys(void **state) {
    if (!fixtures_available()) skip();
    char args[512], *err = NULL;
    snprintf(args, sizeof args, "serve -m '%s' --host 0.0.0.0 --port 0 --no-db", fixture_path(MODEL_FILE));
    int code = run_hearth(args, NULL, &err);
    if (code != 2 || !strstr(err, "--allow-unauthenticated"))
        fail_msg("want exit 2 naming --allow-unauthenticated, got %d: %s", code, err ? err : "");
    free(err);
    srvtest t;
    snprintf(args, sizeof args, "-m '%s' --host 0.0.0.0 --allow-unauthenticated --no-db -t 1 --ctx 256",
             fixture_path(MODEL_FILE));
    assert_true(srvtest_start_args(&t, args));
    /* not a loopback bind: no Host check */
    const char *h[] = {"Host: hearth.internal.example", NULL};
    resp r = http(&t, "GET", "/health", NULL, NULL, h);
    expect(&r, 200, NULL, "a LAN Host on a public bind");
    done(&r);
    assert_int_equal(srvtest_stop(&t), 0);
}

static bool contains(const char *hay, size_t n, const char *needle) {
    return memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* The canaries, and the key's digest: not even the hash of a key is written anywhere. */
static void expect_no_canary(const char *where, const char *bytes, size_t n) {
    char digest[65];
    sha256_hex(ENV_KEY, digest);
    const char *const canaries[] = {ENV_KEY, WRONG_KEY, CANARY_PROMPT, CANARY_STOP, "CANARY", digest};
    for (size_t i = 0; i < sizeof canaries / sizeof canaries[0]; i++)
        if (contains(bytes, n, canaries[i])) fail_msg("%s holds the canary '%s'", where, canaries[i]);
}

static void test_canaries_and_cors(void **state) {
    if (!fixtures_available()) skip();
    char cfg[1024], args[1024];
    snprintf(cfg, sizeof cfg,
             "server: {cors_origins: [\"https://app.example.com\"]}\n"
             "limits: {header_timeout: 1s}\n"
             "keys:\n  - {name: canary-key, env: HEARTH_TEST_ENV_KEY, admin: true}\n"
             "models:\n  - {name: tiny, path: '%s', preload: true, threads: 1, ctx: 256}\n",
             fixture_path(MODEL_FILE));
    write_text(path_in("canary.yaml"), cfg);
    const char *db = path_in("canary.db");
    snprintf(args, sizeof args, "-c '%s' --db '%s' --log-level debug", path_in("canary.yaml"), db);
    srvtest t;
    assert_true(srvtest_start_args(&t, args));

    /* CORS on: preflight for the listed origin only, and the header on answers to it */
    const char *listed[] = {"Origin: https://app.example.com", "Access-Control-Request-Method: POST", NULL};
    const char *unlisted[] = {"Origin: https://evil.example.com", "Access-Control-Request-Method: POST", NULL};
    resp r = http(&t, "OPTIONS", "/v1/chat/completions", NULL, NULL, listed);
    expect(&r, 204, NULL, "a preflight from the listed origin");
    assert_string_equal(r.acao, "https://app.example.com");
    assert_non_null(strstr(r.allow_methods, "POST"));
    assert_non_null(strstr(r.allow_methods, "DELETE")); /* removing an adapter */
    done(&r);
    r = http(&t, "OPTIONS", "/v1/chat/completions", NULL, NULL, unlisted);
    expect(&r, 403, "origin_not_allowed", "a preflight from another origin");
    assert_string_equal(r.acao, "");
    done(&r);
    r = http(&t, "GET", "/v1/models", ENV_KEY, NULL, listed);
    expect(&r, 200, NULL, "GET from the listed origin");
    assert_string_equal(r.acao, "https://app.example.com");
    done(&r);
    r = http(&t, "GET", "/v1/models", ENV_KEY, NULL, unlisted);
    assert_string_equal(r.acao, "");
    done(&r);

    /* a client that never finishes its headers is closed (limits.header_timeout: 1s) */
    int fd = raw_connect(&t);
    const char *partial = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    assert_int_equal(write(fd, partial, strlen(partial)), (ssize_t)strlen(partial));
    struct timeval tv = {.tv_sec = 60};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    ssize_t got = read(fd, buf, sizeof buf);
    if (got > 0) fail_msg("a request without the end of its headers was answered: %.*s", (int)got, buf);
    if (got < 0) fail_msg("the connection stayed open after 60 s (header_timeout 1 s)");
    close(fd);

    /* nor is one trickling a header byte every 200 ms (never silent long enough for an
     * idle timeout): it is closed within about the header timeout, not when it stops */
    fd = raw_connect(&t);
    assert_int_equal(write(fd, partial, strlen(partial)), (ssize_t)strlen(partial));
    bool closed = false;
    int sent = 0;
    for (; sent < 150 && !closed; sent++) { /* 30 s of trickling at most */
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 200) > 0) {
            got = read(fd, buf, sizeof buf);
            if (got > 0) fail_msg("a request still sending its headers was answered: %.*s", (int)got, buf);
            closed = true;
        } else if (send(fd, "X", 1, MSG_NOSIGNAL) != 1) {
            closed = true;
        }
    }
    if (!closed) fail_msg("a client trickling its headers kept its connection for 30 s (header_timeout 1 s)");
    if (sent > 50) fail_msg("the trickling client was closed only after %d bytes (%.1f s)", sent, sent * 0.2);
    close(fd);

    /* canaries: the key (valid and wrong), a prompt, and a stop string the reply hits */
    const char *body = "{\"model\":\"tiny\",\"prompt\":\"" CANARY_PROMPT "\",\"max_tokens\":8,\"temperature\":0,"
                       "\"stop\":[\"" CANARY_STOP "\"]}";
    r = http(&t, "POST", "/v1/completions", ENV_KEY, body, NULL);
    expect(&r, 200, NULL, "the canary completion");
    done(&r);
    const char *chat = "{\"model\":\"tiny\",\"stream\":true,\"max_tokens\":4,\"stop\":\"" CANARY_STOP "\","
                       "\"messages\":[{\"role\":\"user\",\"content\":\"" CANARY_PROMPT "\"}]}";
    r = http(&t, "POST", "/v1/chat/completions", ENV_KEY, chat, NULL);
    done(&r);
    r = http(&t, "POST", "/v1/completions", WRONG_KEY, body, NULL);
    expect(&r, 401, NULL, "the canary with a wrong key");
    done(&r);
    r = http(&t, "POST", "/v1/completions", ENV_KEY, "{\"model\":\"tiny\",\"prompt\":\"" CANARY_PROMPT "\",", NULL);
    expect(&r, 400, NULL, "a malformed canary body");
    done(&r);
    r = http(&t, "GET", "/metrics", ENV_KEY, NULL, NULL);
    expect(&r, 200, NULL, "/metrics");
    expect_no_canary("/metrics", r.body, r.len);
    done(&r);
    r = http(&t, "GET", "/admin/stats", ENV_KEY, NULL, NULL);
    expect_no_canary("/admin/stats", r.body, r.len);
    done(&r);

    kill(t.pid, SIGTERM);
    int st = 0;
    waitpid(t.pid, &st, 0);
    t.pid = 0;
    size_t n = 0;
    char *log = read_file(t.log_path, &n);
    assert_non_null(log);
    if (!strstr(log, "\"key\":\"canary-key\"") && !strstr(log, "canary-key"))
        fail_msg("the log does not name the key: %s", log);
    expect_no_canary("the log", log, n);
    free(log);
    srvtest_stop(&t);
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    int files = 0;
    for (size_t i = 0; i < 3; i++) {
        char p[200];
        snprintf(p, sizeof p, "%s%s", db, suffixes[i]);
        char *bytes = read_file(p, &n);
        if (!bytes) continue;
        files++;
        expect_no_canary(p, bytes, n);
        free(bytes);
    }
    assert_true(files >= 1);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),           cmocka_unit_test(test_rate_limits),
        cmocka_unit_test(test_host_and_headers), cmocka_unit_test(test_reload_adds_key),
        cmocka_unit_test(test_public_bind_needs_keys), cmocka_unit_test(test_canaries_and_cors),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
