/* The gateway wired into the server, with in-process servers on the tiny fixture model:
 * a route falls back from a dead or 500ing upstream to a local model (streamed and not),
 * a 400 is returned as-is and not retried, X-Hearth-Target names route, target and
 * attempts, /v1/models lists routes, /admin/routes shows breakers (open after 5
 * failures), the gateway metrics appear, a route name clashing with a model is refused,
 * and the check: two Hearth servers, A routing to B first and to its own local
 * model second; B stops -> the next request falls back within itself and the breaker
 * opens; B returns on the same port -> after the cooldown the half-open probe succeeds
 * and traffic goes back to B. The provider key never appears in a log line. */
#include "logcap.h"
#include "testutil.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config/config.h"
#include "fault_upstream.h"
#include "route_http.h"
#include "server/srv.h"
#include "srvtest.h"

#define TINY "models/llama-2-tiny-random.gguf"
#define KEY_VALUE "sk-gws-never-logged-7731"

/* ---- servers ------------------------------------------------------------------------------ */

static srv *start_server(const char *yaml, bool capture) {
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    if (cfg_build_text(yaml, strlen(yaml), "test.yaml", false, NULL, 0, &c, &errs, &err) != HEARTH_OK) {
        fail_msg("configuration refused: %s\n%s", err.msg, yaml);
        return NULL;
    }
    srv_config sc = {.config = c, .log = capture ? logcap_line : NULL};
    obs_config_default(&sc.obs);
    srv *s = NULL;
    if (srv_new(&sc, &s, &err) != HEARTH_OK) fail_msg("srv_new: %s", err.msg);
    return s;
}

static void model_yaml(char *buf, size_t cap, int port) {
    snprintf(buf, cap,
             "server: {port: %d, shutdown_grace: 1s}\n"
             "defaults: {ctx: 64, slots: 2, threads: 1}\n"
             "models:\n  - {name: tiny, path: '%s', preload: true}\n",
             port, fixture_path(TINY));
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

static void chat(int port, const char *route, bool stream, route_resp *r) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"stream\":%s,\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
             route, stream ? "true" : "false");
    route_http(port, "POST", "/v1/chat/completions", body, NULL, r);
}

static void expect_target(const route_resp *r, const char *route, const char *target, int min_attempts, int max_attempts) {
    char v[128];
    if (strcmp(route_target_field(r, "route", v, sizeof v), route) != 0)
        fail_msg("X-Hearth-Target '%s': route '%s', expected '%s'", r->target, v, route);
    if (strcmp(route_target_field(r, "target", v, sizeof v), target) != 0)
        fail_msg("X-Hearth-Target '%s': target '%s', expected '%s' (body %.300s)", r->target, v, target, r->body);
    int n = atoi(route_target_field(r, "attempts", v, sizeof v));
    if (n < min_attempts || n > max_attempts)
        fail_msg("X-Hearth-Target '%s': %d attempts, expected %d..%d", r->target, n, min_attempts, max_attempts);
}

/* A non-streamed chat reply with text, or a streamed one ending in [DONE]. */
static void expect_answer(const route_resp *r, bool stream) {
    if (r->status != 200) fail_msg("status %ld, expected 200: %.400s", r->status, r->body);
    if (stream) {
        bool done = false;
        json_t *events = srvtest_sse(r->body, &done);
        if (!events || !done || json_array_size(events) < 2) fail_msg("bad stream (done %d): %.400s", done, r->body);
        json_decref(events);
        return;
    }
    json_t *j = json_loads(r->body, 0, NULL);
    json_t *content = json_object_get(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"),
                                      "content");
    if (!json_is_string(content)) fail_msg("no message content: %.400s", r->body);
    json_decref(j);
}

/* The admin record of one target in /admin/routes. */
static json_t *admin_target(int port, const char *name) {
    route_resp *r = calloc(1, sizeof *r);
    route_http(port, "GET", "/admin/routes", NULL, NULL, r);
    assert_int_equal(r->status, 200);
    json_t *all = json_loads(r->body, 0, NULL), *found = NULL;
    route_resp_free(r);
    assert_non_null(all);
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(all, "targets"), i, t) {
        if (!strcmp(json_string_value(json_object_get(t, "name")), name)) found = json_incref(t);
    }
    json_decref(all);
    if (!found) fail_msg("target %s is not in /admin/routes", name);
    return found;
}

static const char *breaker_state(int port, const char *target, char *buf, size_t cap) {
    json_t *t = admin_target(port, target);
    snprintf(buf, cap, "%s", json_string_value(json_object_get(json_object_get(t, "breaker"), "state")));
    json_decref(t);
    return buf;
}

#define NEED_FIXTURES()                                                                                                \
    do {                                                                                                               \
        if (!fixtures_available()) skip();                                                                             \
    } while (0)

/* ---- tests --------------------------------------------------------------------------------- */

static void test_fallback_400_admin_metrics(void **state) {
    (void)state;
    NEED_FIXTURES();
    fu_server *bad = fu_start(&(fu_reply){.kind = FU_STATUS, .status = 500});
    fu_server *picky = fu_start(&(fu_reply){.kind = FU_STATUS, .status = 400});
    fu_server *flaky = fu_start(&(fu_reply){.kind = FU_RESET_MIDSTREAM, .chunks = 2});
    assert_non_null(flaky);
    assert_non_null(bad);
    assert_non_null(picky);
    char models[512], yaml[4096];
    model_yaml(models, sizeof models, 0);
    snprintf(yaml, sizeof yaml,
             "%s"
             "providers:\n"
             "  - {name: dead, base_url: 'http://127.0.0.1:%d/v1', max_attempts: 1, timeouts: {connect_s: 2}}\n"
             "  - {name: bad, base_url: 'http://127.0.0.1:%d/v1', max_attempts: 2}\n"
             "  - {name: picky, base_url: 'http://127.0.0.1:%d/v1', max_attempts: 3}\n"
             "  - {name: flaky, base_url: 'http://127.0.0.1:%d/v1', max_attempts: 3}\n"
             "routes:\n"
             "  - {name: via-dead, targets: [dead/m, local:tiny]}\n"
             "  - {name: via-bad, targets: [bad/m, local:tiny]}\n"
             "  - {name: via-picky, targets: [picky/m, local:tiny]}\n"
             "  - {name: via-flaky, targets: [flaky/m, local:tiny]}\n"
             "retry: {base_s: 0.01, cap_s: 0.05, budget_burst: 1000}\n",
             models, fu_dead_port(), fu_port(bad), fu_port(picky), fu_port(flaky));
    srv *s = start_server(yaml, true);
    int port = srv_port(s);
    route_resp *r = calloc(1, sizeof *r);

    /* fallback from a refused connection and from 500s, whole and streamed */
    for (int stream = 0; stream < 2; stream++) {
        chat(port, "via-dead", stream, r);
        expect_answer(r, stream);
        expect_target(r, "via-dead", "local:tiny", 2, 2);
        chat(port, "via-bad", stream, r);
        expect_answer(r, stream);
        expect_target(r, "via-bad", "local:tiny", 3, 3); /* 2 attempts on bad, then local */
    }
    assert_int_equal(fu_requests(bad), 4);

    /* a 400 goes back as-is, once */
    chat(port, "via-picky", false, r);
    if (r->status != 400) fail_msg("status %ld, expected 400: %s", r->status, r->body);
    expect_target(r, "via-picky", "picky/m", 1, 1);
    assert_int_equal(fu_requests(picky), 1);
    assert_non_null(strstr(r->body, "\"error\""));

    /* a stream broken after its first bytes is not retried: it ends with an error frame */
    chat(port, "via-flaky", true, r);
    assert_int_equal(r->status, 200);
    expect_target(r, "via-flaky", "flaky/m", 1, 1);
    bool done = true;
    json_t *events = srvtest_sse(r->body, &done);
    if (!events || done || json_array_size(events) != 3)
        fail_msg("expected 2 chunks and an error frame, no [DONE]: %s", r->body);
    assert_non_null(json_object_get(json_array_get(events, 2), "error"));
    json_decref(events);
    assert_int_equal(fu_requests(flaky), 1);

    /* /v1/models lists routes */
    route_http(port, "GET", "/v1/models", NULL, NULL, r);
    assert_non_null(strstr(r->body, "\"id\":\"via-dead\""));
    assert_non_null(strstr(r->body, "\"id\":\"tiny\""));
    route_http(port, "GET", "/v1/models/via-bad", NULL, NULL, r);
    assert_int_equal(r->status, 200);

    /* dead/m failed twice so far; three more open its breaker (5 consecutive) */
    char st[32];
    assert_string_equal(breaker_state(port, "dead/m", st, sizeof st), "closed");
    for (int i = 0; i < 3; i++) {
        chat(port, "via-dead", false, r);
        expect_answer(r, false);
    }
    json_t *t = admin_target(port, "dead/m");
    json_t *b = json_object_get(t, "breaker");
    assert_string_equal(json_string_value(json_object_get(b, "state")), "open");
    assert_int_equal(json_integer_value(json_object_get(t, "failures")), 5);
    assert_true(json_is_object(json_object_get(t, "last_error")));
    json_decref(t);
    /* while open, the target is skipped: one attempt, on the local model */
    chat(port, "via-dead", false, r);
    expect_answer(r, false);
    expect_target(r, "via-dead", "local:tiny", 1, 1);

    /* metrics and log lines */
    route_http(port, "GET", "/metrics", NULL, NULL, r);
    static const char *const want[] = {
        "hearth_upstream_requests_total{target=\"dead/m\",outcome=\"error\"} 5",
        "hearth_upstream_requests_total{target=\"local:tiny\",outcome=\"ok\"}",
        "hearth_upstream_requests_total{target=\"picky/m\",outcome=\"rejected\"} 1",
        "hearth_upstream_retries_total{target=\"bad/m\"}",
        "hearth_breaker_state{target=\"dead/m\",state=\"open\"} 1",
        "hearth_breaker_state{target=\"bad/m\",state=\"closed\"} 1",
        "hearth_breaker_transitions_total{target=\"dead/m\",from=\"closed\",to=\"open\"} 1",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(r->body, want[i])) fail_msg("/metrics lacks %s", want[i]);
    assert_true(logcap_has("\"msg\":\"circuit breaker\""));
    assert_true(logcap_has("\"msg\":\"gateway\""));
    assert_true(logcap_has("\"target\":\"via-dead\"") || logcap_has("\"model\":\"via-dead\""));

    route_resp_free(r);
    srv_free(s);
    fu_stop(bad);
    fu_stop(picky);
    fu_stop(flaky);
}

static void test_route_name_clash_refused(void **state) {
    (void)state;
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "models:\n  - {name: tiny, path: /nowhere.gguf, aliases: [fast]}\n"
             "routes:\n  - {name: fast, targets: [local:tiny]}\n");
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    assert_int_equal(cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err), HEARTH_ERR_INVALID);
    if (!strstr(err.msg, "t.yaml:4:") || !strstr(err.msg, "routes[0].name") || !strstr(err.msg, "'fast'"))
        fail_msg("unexpected message: %s", err.msg);
    snprintf(yaml, sizeof yaml,
             "models:\n  - {name: tiny, path: /nowhere.gguf}\n"
             "routes:\n  - name: r\n    targets: [local:tiny, nope/x]\n");
    assert_int_equal(cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err), HEARTH_ERR_INVALID);
    if (!strstr(err.msg, "t.yaml:5:") || !strstr(err.msg, "routes[0].targets[1]") || !strstr(err.msg, "nope"))
        fail_msg("unexpected message: %s", err.msg);
    /* "tiny:ad" is the id of tiny's adapter: a route of that name would shadow it, and
     * with the target local:tiny:ad call itself without end */
    snprintf(yaml, sizeof yaml,
             "models:\n  - name: tiny\n    path: /nowhere.gguf\n    aliases: [fast]\n"
             "    adapters: [{name: ad, path: /nowhere-ad.gguf}]\n"
             "routes:\n  - {name: \"tiny:ad\", targets: [\"local:tiny:ad\"]}\n  - {name: \"fast:x\", targets: [local:tiny]}\n");
    assert_int_equal(cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err), HEARTH_ERR_INVALID);
    if (!strstr(err.msg, "routes[0].name") || !strstr(err.msg, "'tiny:ad'"))
        fail_msg("unexpected message: %s", err.msg);
    bool second = false;
    for (size_t i = 0; i < errs.n; i++) second |= strstr(errs.msg[i], "routes[1].name") != NULL;
    if (!second) fail_msg("route 'fast:x' (an alias's adapter id) was not refused: %s", err.msg);
}

/* limits: hold for a request on a route as for one on a model: refused with 400 naming the
 * field, before any upstream sees it. */
static void test_route_limits(void **state) {
    (void)state;
    fu_server *up = fu_start(&(fu_reply){.kind = FU_OK});
    assert_non_null(up);
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "server: {port: 0, shutdown_grace: 1s}\n"
             "limits: {max_tokens: 16, n: 2, stop: 1, messages: 2}\n"
             "models:\n  - {name: tiny, path: /nowhere.gguf}\n"
             "providers:\n  - {name: up, base_url: 'http://127.0.0.1:%d/v1', max_attempts: 1}\n"
             "routes:\n  - {name: remote, targets: [up/m]}\n",
             fu_port(up));
    srv *s = start_server(yaml, false);
    int port = srv_port(s);
    route_resp *r = calloc(1, sizeof *r);
    static const struct {
        const char *extra, *param;
    } cases[] = {
        {"\"max_tokens\":17,", "max_tokens"},
        {"\"max_completion_tokens\":1000,", "max_tokens"},
        {"\"n\":3,", "n"},
        {"\"stop\":[\"a\",\"b\"],", "stop"},
        {"\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"},"
         "{\"role\":\"user\",\"content\":\"c\"}],", "messages"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{%s\"model\":\"remote\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 cases[i].extra);
        if (strstr(cases[i].extra, "messages")) /* the case's own messages, not a duplicate key */
            snprintf(body, sizeof body, "{%s\"model\":\"remote\"}", cases[i].extra);
        route_http(port, "POST", "/v1/chat/completions", body, NULL, r);
        json_t *j = json_loads(r->body, 0, NULL);
        const char *param = json_string_value(json_object_get(json_object_get(j, "error"), "param"));
        if (r->status != 400 || !param || strcmp(param, cases[i].param) != 0)
            fail_msg("case %zu: status %ld, expected 400 with param %s: %s", i, r->status, cases[i].param, r->body);
        json_decref(j);
    }
    route_http(port, "POST", "/v1/embeddings", "{\"model\":\"remote\",\"input\":\"hi\"}", NULL, r);
    if (r->status != 400 || !strstr(r->body, "\"route_not_supported\""))
        fail_msg("embeddings on a route: status %ld, expected 400 route_not_supported: %s", r->status, r->body);
    if (fu_requests(up) != 0) fail_msg("the upstream saw %d requests over the limits, expected 0", fu_requests(up));
    chat(port, "remote", false, r);
    if (r->status != 200) fail_msg("a request within the limits: status %ld: %s", r->status, r->body);
    assert_int_equal(fu_requests(up), 1);
    route_resp_free(r);
    srv_free(s);
    fu_stop(up);
}

static void test_config_dump_round_trip(void **state) {
    (void)state;
    const char *yaml = "models:\n  - {name: tiny, path: /nowhere.gguf}\n"
                       "providers:\n  - name: p\n    base_url: 'http://127.0.0.1:9/v1'\n    models: {fast: \"up-1\"}\n"
                       "    timeouts: {connect_s: 0.5}\n"
                       "routes:\n  - name: ab\n    strategy: weighted\n    sticky: true\n"
                       "    targets: [{target: local:tiny, weight: 90}, {target: p/fast, weight: 10}]\n"
                       "breaker: {failures: 4, failure_ratio: 0.25}\nretry: {base_s: 0.1}\ngateway: {seed: 7, max_shadows: 2}\n";
    cfg_config *c = NULL, *c2 = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    if (cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err) != HEARTH_OK) fail_msg("%s", err.msg);
    assert_non_null(c->gateway_json);
    char *one = cfg_dump(c);
    assert_non_null(one);
    if (cfg_build_text(one, strlen(one), "dump.yaml", false, NULL, 0, &c2, &errs, &err) != HEARTH_OK)
        fail_msg("the dump does not read back: %s\n%s", err.msg, one);
    assert_string_equal(c->gateway_json, c2->gateway_json);
    assert_non_null(strstr(c->gateway_json, "\"failure_ratio\":0.25"));
    assert_non_null(strstr(c->gateway_json, "\"sticky\":true"));
    assert_non_null(strstr(c->gateway_json, "\"seed\":7"));
    free(one);
    cfg_free(c);
    cfg_free(c2);
}

/* ---- reload ----------------------------------------------------------------------------------- */

static char reload_text[4096];

static hearth_status reload_fn(void *ud, cfg_config **out, cfg_errors *errs, hearth_err *err) {
    (void)ud;
    return cfg_build_text(reload_text, strlen(reload_text), "reload.yaml", false, NULL, 0, out, errs, err);
}

typedef struct slow_req {
    int port;
    route_resp r;
} slow_req;

static void *slow_stream(void *arg) {
    slow_req *q = arg;
    chat(q->port, "slow", true, &q->r);
    return NULL;
}

static bool has_model(int port, const char *id) {
    route_resp *r = calloc(1, sizeof *r);
    route_http(port, "GET", "/v1/models", NULL, NULL, r);
    char pat[96];
    snprintf(pat, sizeof pat, "\"id\":\"%s\"", id);
    bool found = strstr(r->body, pat) != NULL;
    route_resp_free(r);
    return found;
}

static void test_reload_swaps_routes(void **state) {
    (void)state;
    NEED_FIXTURES();
    fu_server *up = fu_start(&(fu_reply){.kind = FU_OK, .delay_ms = 800, .chunks = 3});
    char models[512], yaml[4096];
    model_yaml(models, sizeof models, 0);
    snprintf(yaml, sizeof yaml,
             "%sproviders:\n  - {name: up, base_url: 'http://127.0.0.1:%d/v1'}\n"
             "routes:\n  - {name: one, targets: [local:tiny]}\n  - {name: slow, targets: [up/m]}\n",
             models, fu_port(up));
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    assert_int_equal(cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err), HEARTH_OK);
    srv_config sc = {.config = c, .reload = reload_fn};
    obs_config_default(&sc.obs);
    srv *s = NULL;
    assert_int_equal(srv_new(&sc, &s, &err), HEARTH_OK);
    int port = srv_port(s);
    route_resp *r = calloc(1, sizeof *r);
    chat(port, "one", false, r);
    expect_answer(r, false);

    /* a streamed request on the old gateway keeps going through the reload */
    slow_req q = {.port = port};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, slow_stream, &q), 0);
    usleep(200000);
    snprintf(reload_text, sizeof reload_text, "%sroutes:\n  - {name: two, targets: [local:tiny]}\n", models);
    char msg[512];
    assert_int_equal(srv_reload(s, msg, sizeof msg, &errs, &err), HEARTH_OK);
    assert_non_null(strstr(msg, "gateway: routes replaced"));
    pthread_join(th, NULL);
    expect_answer(&q.r, true);
    expect_target(&q.r, "slow", "up/m", 1, 1);
    free(q.r.body);
    assert_true(has_model(port, "two"));
    assert_false(has_model(port, "one"));
    chat(port, "one", false, r);
    assert_int_equal(r->status, 404);
    chat(port, "two", true, r);
    expect_answer(r, true);
    expect_target(r, "two", "local:tiny", 1, 1);

    /* refused reloads change nothing: a clash, a key variable that is not set */
    snprintf(reload_text, sizeof reload_text, "%sroutes:\n  - {name: tiny, targets: [local:tiny]}\n", models);
    assert_int_equal(srv_reload(s, msg, sizeof msg, &errs, &err), HEARTH_ERR_INVALID);
    unsetenv("GWS_UNSET_KEY");
    snprintf(reload_text, sizeof reload_text,
             "%sproviders:\n  - {name: k, base_url: 'http://127.0.0.1:9/v1', api_key_env: GWS_UNSET_KEY}\n"
             "routes:\n  - {name: three, targets: [k/m]}\n",
             models);
    assert_int_not_equal(srv_reload(s, msg, sizeof msg, &errs, &err), HEARTH_OK);
    if (!strstr(err.msg, "GWS_UNSET_KEY")) fail_msg("unexpected message: %s", err.msg);
    assert_true(has_model(port, "two"));
    assert_false(has_model(port, "three"));

    route_resp_free(r);
    srv_free(s);
    fu_stop(up);
}

/* The "Done when": A routes to B first, to its own model second. */
static void test_two_servers_fallback_and_recovery(void **state) {
    (void)state;
    NEED_FIXTURES();
    char yaml[4096], models[512];
    model_yaml(models, sizeof models, 0);
    srv *b = start_server(models, false);
    int port_b = srv_port(b);
    setenv("GWS_TEST_KEY", KEY_VALUE, 1);
    snprintf(yaml, sizeof yaml,
             "%s"
             "providers:\n"
             "  - name: peer\n    base_url: 'http://127.0.0.1:%d/v1'\n    api_key_env: GWS_TEST_KEY\n"
             "    max_attempts: 1\n    timeouts: {connect_s: 2, first_byte_s: 30}\n"
             "routes:\n  - {name: chat, targets: [peer/tiny, local:tiny]}\n"
             "breaker: {failures: 3, cooldown_s: 1, cooldown_max_s: 1}\n"
             "retry: {budget_burst: 1000}\n",
             models, port_b);
    srv *a = start_server(yaml, true);
    int port_a = srv_port(a);
    route_resp *r = calloc(1, sizeof *r);
    char st[32];

    /* B answers */
    for (int stream = 0; stream < 2; stream++) {
        chat(port_a, "chat", stream, r);
        expect_answer(r, stream);
        expect_target(r, "chat", "peer/tiny", 1, 1);
    }

    /* B goes away: the very next request falls back within itself */
    srv_free(b);
    chat(port_a, "chat", false, r);
    expect_answer(r, false);
    expect_target(r, "chat", "local:tiny", 2, 2);
    chat(port_a, "chat", true, r);
    expect_answer(r, true);
    expect_target(r, "chat", "local:tiny", 2, 2);
    chat(port_a, "chat", false, r); /* third failure: the breaker opens */
    expect_answer(r, false);
    assert_string_equal(breaker_state(port_a, "peer/tiny", st, sizeof st), "open");
    assert_non_null(strstr(r->target, "breaker=peer/tiny:closed>open"));
    chat(port_a, "chat", false, r); /* skipped while open */
    expect_answer(r, false);
    expect_target(r, "chat", "local:tiny", 1, 1);

    /* B returns on the same port; after the cooldown a probe goes to B and closes the breaker */
    model_yaml(models, sizeof models, port_b);
    b = start_server(models, false);
    assert_int_equal(srv_port(b), port_b);
    bool back = false;
    for (int i = 0; i < 100 && !back; i++) { /* up to ~20 s on a loaded machine; usually ~1 s */
        usleep(200000);
        chat(port_a, "chat", false, r);
        expect_answer(r, false);
        char v[128];
        back = !strcmp(route_target_field(r, "target", v, sizeof v), "peer/tiny");
    }
    if (!back) fail_msg("traffic never returned to B; last X-Hearth-Target: %s", r->target);
    assert_string_equal(breaker_state(port_a, "peer/tiny", st, sizeof st), "closed");
    chat(port_a, "chat", true, r);
    expect_answer(r, true);
    expect_target(r, "chat", "peer/tiny", 1, 1);
    assert_true(logcap_has("\"to\":\"half_open\""));
    assert_true(logcap_has("\"to\":\"closed\""));
    assert_false(logcap_has(KEY_VALUE));

    route_resp_free(r);
    srv_free(a);
    srv_free(b);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_name_clash_refused),
        cmocka_unit_test(test_route_limits),
        cmocka_unit_test(test_config_dump_round_trip),
        cmocka_unit_test(test_reload_swaps_routes),
        cmocka_unit_test(test_fallback_400_admin_metrics),
        cmocka_unit_test(test_two_servers_fallback_and_recovery),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    logcap_free();
    curl_global_cleanup();
    return rc;
}
