/* Observability of `hearth serve` end to end (fixture llama model): /metrics parses back
 * and its counters move by what real requests did (requests, tokens, TTFT, inter-token
 * latency); X-Request-Id is honoured when valid, generated otherwise, and returned; the
 * request log line carries every field; canary strings put in prompts, messages, a bad
 * body and an Authorization header appear nowhere the server writes (log, metrics,
 * /admin/stats, the SQLite files) unless --log-prompts is on, and then only the prompt,
 * only in the log; a request store that cannot open, or a database locked by another
 * connection, never fails a request, and the locked rows land once the lock is gone. */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "promtext.h"
#include "http_body.h"
#include "srvtest.h"
#include "testutil.h"

#define MODEL_FILE "models/llama-spm-f16.gguf"
#define MODEL_ID "llama-spm-f16"
#define ARGS "--slots 2 --ctx 512 -t 1"

#define CANARY_PROMPT "CANARY-prompt-0d6c31"
#define CANARY_MESSAGE "CANARY-message-77aa02"
#define CANARY_BADBODY "CANARY-badbody-4c1e9f"
#define CANARY_AUTH "sk-CANARY-auth-93b5d7"

static char g_dir[64];

static int setup(void **state) {
    snprintf(g_dir, sizeof g_dir, "/tmp/hearth-obs-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- HTTP with headers ----------------------------------------------------------------- */

typedef struct resp {
    long status;
    char *body;
    size_t len;
    char request_id[128];
} resp;

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    resp *r = ud;
    size_t k = size * n;
    if (k > 14 && !strncasecmp(p, "X-Request-Id: ", 14)) {
        size_t m = k - 14;
        while (m > 0 && (p[14 + m - 1] == '\r' || p[14 + m - 1] == '\n')) m--;
        snprintf(r->request_id, sizeof r->request_id, "%.*s", (int)m, p + 14);
    }
    return k;
}

/* One request; headers: NULL-terminated "Name: value" strings. */
static resp http(const srvtest *t, const char *method, const char *path, const char *body, const char *const *headers) {
    resp r = {0};
    CURL *c = curl_easy_init();
    http_body sink;
    http_body_collect(c, &sink, &r.body, &r.len, 0);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", t->port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (body) h = curl_slist_append(h, "Content-Type: application/json");
    for (size_t i = 0; headers && headers[i]; i++) h = curl_slist_append(h, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
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

static prom_doc metrics(const srvtest *t) {
    resp r = http(t, "GET", "/metrics", NULL, NULL);
    assert_int_equal(r.status, 200);
    prom_doc d;
    char why[256];
    if (!prom_parse(r.body, &d, why, sizeof why)) fail_msg("/metrics does not parse: %s", why);
    if (!prom_check_histograms(&d, why, sizeof why)) fail_msg("/metrics histogram: %s", why);
    free(r.body);
    return d;
}

static double metric(const prom_doc *d, const char *name, const char *k1, const char *v1, const char *k2,
                     const char *v2, const char *k3, const char *v3) {
    return prom_value(d, NULL, name, k1, v1, k2, v2, k3, v3, NULL);
}

static void expect_delta(const char *what, double before, double after, double want) {
    if (after - before != want) fail_msg("%s: moved by %g, want %g (before %g, after %g)", what, after - before, want,
                                         before, after);
}

static void expect_metric(const char *what, double got, double want) {
    if (got != want) fail_msg("%s: %g, want %g", what, got, want);
}

static json_t *json_of(const resp *r) {
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    if (!j) fail_msg("not JSON: %s", r->body);
    return j;
}

/* Stops the server and returns its whole log (malloc'd); the store is flushed by then. */
static char *stop_and_log(srvtest *t) {
    kill(t->pid, SIGTERM);
    int st = 0;
    waitpid(t->pid, &st, 0);
    t->pid = 0;
    char *log = read_file(t->log_path, NULL);
    srvtest_stop(t);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("hearth serve exited with %d: %s", st, log ? log : "");
    return log;
}

/* The log line with this request id (waits for it: the line is written as the connection
 * closes, which can be just after the client has the response). NULL when none in 10 s. */
static json_t *log_line_of(const srvtest *t, const char *request_id) {
    char needle[160];
    snprintf(needle, sizeof needle, "\"request_id\":\"%s\"", request_id);
    for (int i = 0; i < 200; i++) {
        char *log = read_file(t->log_path, NULL);
        const char *p = log ? strstr(log, needle) : NULL;
        if (p) {
            while (p > log && p[-1] != '\n') p--;
            const char *end = strchr(p, '\n');
            json_t *j = json_loadb(p, end ? (size_t)(end - p) : strlen(p), 0, NULL);
            free(log);
            if (!j) fail_msg("log line is not JSON");
            return j;
        }
        free(log);
        sleep_ms(50);
    }
    return NULL;
}

static const char *db_file(const char *name) {
    static char p[160];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

static bool start(srvtest *t, const char *extra) {
    char args[512];
    snprintf(args, sizeof args, ARGS " %s", extra);
    return srvtest_start(t, fixture_path(MODEL_FILE), args);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_metrics_move_with_requests(void **state) {
    if (!fixtures_available()) skip();
    srvtest t;
    char args[256];
    snprintf(args, sizeof args, "--db '%s'", db_file("a.db"));
    assert_true(start(&t, args));
    prom_doc m0 = metrics(&t);

    static const char *const hdr[] = {"X-Request-Id: it-req-1", NULL};
    resp r1 = http(&t, "POST", "/v1/completions",
                   "{\"model\":\"" MODEL_ID "\",\"prompt\":\"Hello there\",\"max_tokens\":6,\"temperature\":0}", hdr);
    assert_int_equal(r1.status, 200);
    assert_string_equal(r1.request_id, "it-req-1");
    json_t *j1 = json_of(&r1);
    json_int_t p1 = json_integer_value(json_object_get(json_object_get(j1, "usage"), "prompt_tokens"));
    json_int_t c1 = json_integer_value(json_object_get(json_object_get(j1, "usage"), "completion_tokens"));

    resp r2 = http(&t, "POST", "/v1/chat/completions",
                   "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":5,"
                   "\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                   NULL);
    assert_int_equal(r2.status, 200);
    bool done = false;
    json_t *chunks = srvtest_sse(r2.body, &done);
    assert_non_null(chunks);
    assert_true(done);
    json_t *usage = json_object_get(json_array_get(chunks, json_array_size(chunks) - 1), "usage");
    json_int_t p2 = json_integer_value(json_object_get(usage, "prompt_tokens"));
    json_int_t c2 = json_integer_value(json_object_get(usage, "completion_tokens"));
    assert_true(c1 > 1 && c2 > 1);

    resp r3 = http(&t, "POST", "/v1/completions", "{\"model\":\"nope\",\"prompt\":\"x\"}", NULL);
    assert_int_equal(r3.status, 404);
    json_t *line = log_line_of(&t, r3.request_id); /* the last request has been accounted for */
    assert_non_null(line);
    json_decref(line);
    assert_non_null(line = log_line_of(&t, r2.request_id));
    json_decref(line);
    assert_non_null(line = log_line_of(&t, "it-req-1"));
    json_decref(line);

    prom_doc m1 = metrics(&t);
#define D(name, ...) metric(&m0, name, __VA_ARGS__), metric(&m1, name, __VA_ARGS__)
    expect_delta("completions 200",
                 D("hearth_requests_total", "route", "completions", "model", MODEL_ID, "status", "200"), 1);
    expect_delta("chat 200", D("hearth_requests_total", "route", "chat", "model", MODEL_ID, "status", "200"), 1);
    expect_delta("unknown model 404",
                 D("hearth_requests_total", "route", "completions", "model", "", "status", "404"), 1);
    expect_delta("prompt tokens", D("hearth_prompt_tokens_total", "model", MODEL_ID, NULL, NULL, NULL, NULL),
                 (double)(p1 + p2));
    expect_delta("generated tokens", D("hearth_generated_tokens_total", "model", MODEL_ID, NULL, NULL, NULL, NULL),
                 (double)(c1 + c2));
    expect_delta("ttft observations",
                 D("hearth_time_to_first_token_seconds_count", "model", MODEL_ID, NULL, NULL, NULL, NULL), 2);
    expect_delta("inter-token gaps",
                 D("hearth_inter_token_latency_seconds_count", "model", MODEL_ID, NULL, NULL, NULL, NULL),
                 (double)(c1 - 1 + c2 - 1));
    expect_delta("completion durations",
                 D("hearth_request_duration_seconds_count", "route", "completions", "model", MODEL_ID, NULL, NULL), 1);
#undef D
    expect_metric("state ready", metric(&m1, "hearth_model_state", "model", MODEL_ID, "state", "ready", NULL, NULL), 1);
    expect_metric("state loading", metric(&m1, "hearth_model_state", "model", MODEL_ID, "state", "loading", NULL, NULL),
                 0);
    expect_metric("model loads",
                 metric(&m1, "hearth_model_load_duration_seconds_count", "model", MODEL_ID, NULL, NULL, NULL, NULL), 1);
    double weights = metric(&m1, "hearth_memory_bytes", "model", MODEL_ID, "kind", "weights", NULL, NULL);
    if (!(weights > 1e6)) fail_msg("weights memory %g bytes, want > 1e6", weights);
    expect_metric("slots", metric(&m1, "hearth_slots_total", "model", MODEL_ID, NULL, NULL, NULL, NULL), 2);
    expect_metric("store up", metric(&m1, "hearth_store_up", NULL, NULL, NULL, NULL, NULL, NULL), 1);
    prom_free(&m0);
    prom_free(&m1);

    resp live = http(&t, "GET", "/admin/stats", NULL, NULL);
    assert_int_equal(live.status, 200);
    json_t *lj = json_of(&live);
    json_t *model0 = json_array_get(json_object_get(lj, "models"), 0);
    assert_string_equal(json_string_value(json_object_get(model0, "id")), MODEL_ID);
    assert_string_equal(json_string_value(json_object_get(model0, "state")), "ready");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(lj, "requests"), "requests")), 3);
    json_decref(lj);
    free(live.body);

    char *log = stop_and_log(&t);
    free(log);
    /* hearth stats reads what the server stored */
    char cmd[256], *out = NULL;
    snprintf(cmd, sizeof cmd, "stats --db '%s' --since 1h --json", db_file("a.db"));
    assert_int_equal(run_hearth(cmd, &out, NULL), 0);
    json_t *stats = json_loads(out, 0, NULL);
    if (!stats) fail_msg("hearth stats --json: %s", out);
    assert_int_equal(json_integer_value(json_object_get(stats, "requests")), 3);
    json_t *groups = json_object_get(stats, "groups");
    bool saw_chat = false;
    for (size_t i = 0; i < json_array_size(groups); i++) {
        json_t *g = json_array_get(groups, i);
        if (strcmp(json_string_value(json_object_get(g, "route")), "chat")) continue;
        saw_chat = true;
        assert_string_equal(json_string_value(json_object_get(g, "model")), MODEL_ID);
        assert_int_equal(json_integer_value(json_object_get(g, "completion_tokens")), c2);
        assert_true(json_is_object(json_object_get(g, "ttft_ms")));
    }
    assert_true(saw_chat);
    json_decref(stats);
    free(out);
    json_decref(j1);
    json_decref(chunks);
    free(r1.body);
    free(r2.body);
    free(r3.body);
}

static bool is_hex32(const char *s) {
    if (strlen(s) != 32) return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return false;
    return true;
}

static void test_request_ids_and_log_fields(void **state) {
    if (!fixtures_available()) skip();
    srvtest t;
    assert_true(start(&t, "--no-db"));
    static const char *const good[] = {"X-Request-Id: 3f2a1b7c-9d4e-4f00-8a1b-1234567890ab", NULL};
    static const char *const spaces[] = {"X-Request-Id: has spaces", NULL};
    static const char *const quote[] = {"X-Request-Id: a\"b", NULL};
    static const char *const toolong[] = {
        "X-Request-Id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL};
    resp r = http(&t, "GET", "/v1/models", NULL, good);
    assert_string_equal(r.request_id, "3f2a1b7c-9d4e-4f00-8a1b-1234567890ab");
    free(r.body);
    const char *const *bad[] = {spaces, quote, toolong, NULL};
    char seen[4][128];
    for (int i = 0; i < 4; i++) {
        r = http(&t, "GET", i == 3 ? "/no/such/path" : "/v1/models", NULL, bad[i]);
        if (!is_hex32(r.request_id)) fail_msg("request %d: want a generated id, got '%s'", i, r.request_id);
        snprintf(seen[i], sizeof seen[i], "%s", r.request_id);
        for (int k = 0; k < i; k++)
            if (!strcmp(seen[k], seen[i])) fail_msg("generated ids repeat: %s", seen[i]);
        free(r.body);
    }
    static const char *const hdr[] = {"X-Request-Id: fields-1", NULL};
    r = http(&t, "POST", "/v1/chat/completions",
             "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":3}",
             hdr);
    assert_int_equal(r.status, 200);
    free(r.body);
    json_t *l = log_line_of(&t, "fields-1");
    assert_non_null(l);
    static const char *const fields[] = {"time", "level", "msg", "request_id", "key", "model", "route", "target",
                                         "status", "prompt_tokens", "completion_tokens", "ttft_ms", "duration_ms",
                                         "error"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!json_object_get(l, fields[i])) fail_msg("request log line lacks '%s'", fields[i]);
    assert_string_equal(json_string_value(json_object_get(l, "msg")), "request");
    assert_string_equal(json_string_value(json_object_get(l, "model")), MODEL_ID);
    assert_string_equal(json_string_value(json_object_get(l, "route")), "chat");
    assert_string_equal(json_string_value(json_object_get(l, "key")), "");
    assert_int_equal(json_integer_value(json_object_get(l, "status")), 200);
    assert_true(json_integer_value(json_object_get(l, "completion_tokens")) > 0);
    assert_true(json_real_value(json_object_get(l, "ttft_ms")) > 0);
    assert_true(json_real_value(json_object_get(l, "duration_ms")) >= json_real_value(json_object_get(l, "ttft_ms")));
    assert_true(json_is_null(json_object_get(l, "error")));
    json_decref(l);
    char *log = stop_and_log(&t);
    free(log);
}

static bool contains(const char *hay, size_t n, const char *needle) {
    return hay && memmem(hay, n, needle, strlen(needle));
}

/* Every byte the server wrote: its log, and the database files. */
static void expect_nowhere(const char *what, const char *text, size_t n) {
    static const char *const canaries[] = {CANARY_PROMPT, CANARY_MESSAGE, CANARY_BADBODY, CANARY_AUTH};
    for (size_t i = 0; i < 4; i++)
        if (contains(text, n, canaries[i])) fail_msg("%s contains the canary %s", what, canaries[i]);
}

static void send_canaries(const srvtest *t, resp *metrics_out, resp *live_out) {
    static const char *const auth[] = {"Authorization: Bearer " CANARY_AUTH, NULL};
    resp r = http(t, "POST", "/v1/completions",
                  "{\"model\":\"" MODEL_ID "\",\"prompt\":\"" CANARY_PROMPT "\",\"max_tokens\":3}", auth);
    assert_int_equal(r.status, 200);
    free(r.body);
    r = http(t, "POST", "/v1/chat/completions",
             "{\"model\":\"" MODEL_ID "\",\"messages\":[{\"role\":\"user\",\"content\":\"" CANARY_MESSAGE
             "\"}],\"max_tokens\":3,\"stream\":true}",
             auth);
    assert_int_equal(r.status, 200);
    free(r.body);
    r = http(t, "POST", "/v1/chat/completions", "{\"model\":\"" MODEL_ID "\",\"messages\":[" CANARY_BADBODY "]}", auth);
    assert_int_equal(r.status, 400);
    free(r.body);
    *metrics_out = http(t, "GET", "/metrics", NULL, auth);
    *live_out = http(t, "GET", "/admin/stats", NULL, auth);
}

static void expect_db_clean(const char *path) {
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[200];
        snprintf(p, sizeof p, "%s%s", path, suffixes[i]);
        size_t n = 0;
        char *bytes = read_file(p, &n);
        if (bytes) expect_nowhere(p, bytes, n);
        free(bytes);
    }
}

static void test_canaries_never_written(void **state) {
    if (!fixtures_available()) skip();
    srvtest t;
    char args[256];
    snprintf(args, sizeof args, "--db '%s' --log-level debug", db_file("canary.db"));
    assert_true(start(&t, args));
    resp m, live;
    send_canaries(&t, &m, &live);
    expect_nowhere("/metrics", m.body, m.len);
    expect_nowhere("/admin/stats", live.body, live.len);
    free(m.body);
    free(live.body);
    char *log = stop_and_log(&t);
    assert_non_null(strstr(log, "\"route\":\"completions\""));
    expect_nowhere("the log", log, strlen(log));
    free(log);
    expect_db_clean(db_file("canary.db"));
    char q[64];
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(db_file("canary.db"), &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    snprintf(q, sizeof q, "SELECT count(*) FROM requests");
    assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3); /* the rows are there, without the prompts */
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* with --log-prompts the prompt reaches the log (so the grep above can see one), and
     * still neither the Authorization header nor the database */
    snprintf(args, sizeof args, "--db '%s' --log-prompts", db_file("logged.db"));
    assert_true(start(&t, args));
    send_canaries(&t, &m, &live);
    expect_nowhere("/metrics with --log-prompts", m.body, m.len);
    free(m.body);
    free(live.body);
    log = stop_and_log(&t);
    assert_non_null(strstr(log, CANARY_PROMPT));
    assert_non_null(strstr(log, CANARY_MESSAGE));
    assert_null(strstr(log, CANARY_AUTH));
    free(log);
    expect_db_clean(db_file("logged.db"));
}

static void test_store_unusable_never_fails_requests(void **state) {
    if (!fixtures_available()) skip();
    FILE *f = fopen(db_file("not-a-dir"), "w");
    fclose(f);
    srvtest t;
    char args[256];
    snprintf(args, sizeof args, "--db '%s/not-a-dir/h.db'", g_dir);
    assert_true(start(&t, args));
    for (int i = 0; i < 3; i++) {
        resp r = http(&t, "POST", "/v1/completions", "{\"model\":\"" MODEL_ID "\",\"prompt\":\"hi\",\"max_tokens\":2}",
                      NULL);
        assert_int_equal(r.status, 200);
        free(r.body);
    }
    bool reported = false;
    for (int i = 0; i < 200 && !reported; i++) {
        resp live = http(&t, "GET", "/admin/stats", NULL, NULL);
        json_t *j = json_of(&live);
        json_t *store = json_object_get(j, "store");
        reported = json_integer_value(json_object_get(store, "failures")) > 0 &&
                   json_is_false(json_object_get(store, "up"));
        json_decref(j);
        free(live.body);
        if (!reported) sleep_ms(50);
    }
    assert_true(reported);
    resp r =
        http(&t, "POST", "/v1/completions", "{\"model\":\"" MODEL_ID "\",\"prompt\":\"hi\",\"max_tokens\":2}", NULL);
    assert_int_equal(r.status, 200);
    free(r.body);
    char *log = stop_and_log(&t);
    assert_non_null(strstr(log, "request store failing"));
    free(log);
}

static int64_t rows_with_ids(const char *path) {
    sqlite3 *db = NULL;
    int64_t n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 2000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM requests WHERE request_id IN ('lock-0','lock-1','lock-2')", -1,
                               &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close_v2(db);
    return n;
}

static void test_locked_db_never_fails_requests(void **state) {
    if (!fixtures_available()) skip();
    srvtest t;
    char args[256];
    snprintf(args, sizeof args, "--db '%s'", db_file("locked.db"));
    assert_true(start(&t, args));
    /* the model events (loading, ready) are written once the schema exists */
    bool written = false;
    for (int i = 0; i < 200 && !written; i++) {
        resp live = http(&t, "GET", "/admin/stats", NULL, NULL);
        json_t *j = json_of(&live);
        written = json_integer_value(json_object_get(json_object_get(j, "store"), "written")) >= 2;
        json_decref(j);
        free(live.body);
        if (!written) sleep_ms(50);
    }
    assert_true(written);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(db_file("locked.db"), &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE; INSERT INTO model_events(ts) VALUES(0);", NULL, NULL, NULL),
                     SQLITE_OK);
    for (int i = 0; i < 3; i++) {
        char h[64];
        snprintf(h, sizeof h, "X-Request-Id: lock-%d", i);
        const char *const hdr[] = {h, NULL};
        resp r = http(&t, "POST", "/v1/completions", "{\"model\":\"" MODEL_ID "\",\"prompt\":\"hi\",\"max_tokens\":2}",
                      hdr);
        assert_int_equal(r.status, 200);
        free(r.body);
    }
    assert_int_equal(rows_with_ids(db_file("locked.db")), 0);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    int64_t n = 0;
    for (int i = 0; i < 400 && n != 3; i++) { /* the writer retries with backoff */
        n = rows_with_ids(db_file("locked.db"));
        if (n != 3) sleep_ms(50);
    }
    if (n != 3) fail_msg("rows written after the lock was released: %lld of 3", (long long)n);
    char *log = stop_and_log(&t);
    free(log);
}

static void test_dashboard_and_routes(void **state) {
    if (!fixtures_available()) skip();
    srvtest t;
    assert_true(start(&t, "--no-db"));
    resp r = http(&t, "GET", "/", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "<!doctype html>"));
    assert_non_null(strstr(r.body, "/admin/stats"));
    /* self-contained: nothing is loaded from elsewhere */
    assert_null(strstr(r.body, "http://"));
    assert_null(strstr(r.body, "https://"));
    assert_null(strstr(r.body, " src="));
    for (const char *h = strstr(r.body, "href="); h; h = strstr(h + 1, "href="))
        if (strncmp(h, "href='data:", 11) != 0) fail_msg("the page links something: %.40s", h);
    free(r.body);
    r = http(&t, "POST", "/metrics", "{}", NULL);
    assert_int_equal(r.status, 405);
    free(r.body);
    r = http(&t, "GET", "/admin/stats", NULL, NULL);
    json_t *j = json_of(&r);
    assert_true(json_is_false(json_object_get(json_object_get(j, "store"), "enabled")));
    assert_true(json_is_array(json_object_get(j, "breakers")));
    json_decref(j);
    free(r.body);
    char *log = stop_and_log(&t);
    /* polled endpoints stay out of the log at the default level */
    assert_null(strstr(log, "\"route\":\"admin_stats\""));
    assert_null(strstr(log, "\"route\":\"dashboard\""));
    assert_non_null(strstr(log, "\"status\":405"));
    free(log);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_move_with_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_ids_and_log_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canaries_never_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_unusable_never_fails_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_db_never_fails_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dashboard_and_routes, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
