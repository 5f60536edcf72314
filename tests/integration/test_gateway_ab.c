/* A/B testing a LoRA adapter with the gateway, as docs/CONFIG.md shows it: one server
 * with llama-spm-f16.gguf and its fixture adapter configured as `support`, and a sticky
 * `weighted` route `assistant` over `local:llama` and `local:llama:support`. Over HTTP at
 * temperature 0: every routed reply's X-Hearth-Target names its arm and its text is the
 * direct answer of that arm (the two arms differ), whole and streamed; a given `user`
 * always lands on one arm; 200 one-token requests split within a binomial bound of the
 * weights. Routed requests are accounted like direct ones (request log and /metrics:
 * prompt and completion tokens, TTFT), and a routed stream whose client hangs up
 * cancels its local attempt and frees the slot. A remote target's stream (the fault
 * upstream) is accounted from its events: one token per content chunk, TTFT. */
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

#define MODEL "models/llama-spm-f16.gguf"
#define ADAPTER "adapters/lora-llama-spm-r8.gguf"
#define PROMPT "Once upon a time"
#define N_TOK 12
#define ARM_BASE "local:llama"
#define ARM_LORA "local:llama:support"
#define N_SPLIT 200
#define N_USERS 12

/* ---- captured log ---------------------------------------------------------------------- */

/* The request log line of request id rid, waiting for it (a line is written when the
 * connection is completed, which may come just after the client got its last byte). */
static json_t *request_line(const char *rid) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"request_id\":\"%s\"", rid);
    for (int i = 0; i < 300; i++) { /* up to 30 s on a loaded machine; usually at once */
        json_t *found = logcap_find(pat);
        if (found && !strcmp(json_string_value(json_object_get(found, "msg")), "request")) return found;
        json_decref(found);
        usleep(100000);
    }
    fail_msg("no request log line for %s", rid);
    return NULL;
}

/* ---- the server ------------------------------------------------------------------------ */

static srv *server;
static int port;
static int skip_told;
static fu_server *upstream; /* a remote target streaming 5 content chunks */

static int setup(void **state) {
    (void)state;
    if (!fixtures_available()) return 0;
    char *model_path = strdup(fixture_path(MODEL)), *adapter_path = strdup(fixture_path(ADAPTER));
    upstream = fu_start(&(fu_reply){.kind = FU_OK, .chunks = 5});
    if (!upstream) return -1;
    char yaml[4096];
    /* the route block is the one of docs/CONFIG.md ("A/B testing an adapter") */
    snprintf(yaml, sizeof yaml,
             "server: {port: 0, shutdown_grace: 1s}\n"
             "defaults: {ctx: 1024, slots: 4, threads: 2}\n"
             "models:\n"
             "  - name: llama\n"
             "    path: '%s'\n"
             "    preload: true\n"
             "    adapters:\n"
             "      - {name: support, path: '%s'}\n"
             "routes:\n"
             "  - name: assistant              # clients ask for \"assistant\"\n"
             "    strategy: weighted\n"
             "    sticky: true                 # a given \"user\" stays on one arm\n"
             "    targets:\n"
             "      - {target: \"local:llama\", weight: 50}\n"
             "      - {target: \"local:llama:support\", weight: 50}\n"
             "  - {name: remote, targets: [up/m]}\n"
             "providers:\n  - {name: up, base_url: 'http://127.0.0.1:%d/v1'}\n"
             "gateway: {seed: 20261123}\n",
             model_path, adapter_path, fu_port(upstream));
    free(model_path);
    free(adapter_path);
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    if (cfg_build_text(yaml, strlen(yaml), "ab.yaml", false, NULL, 0, &c, &errs, &err) != HEARTH_OK) {
        fprintf(stderr, "configuration refused: %s\n", err.msg);
        return -1;
    }
    srv_config sc = {.config = c, .log = logcap_line};
    obs_config_default(&sc.obs);
    if (srv_new(&sc, &server, &err) != HEARTH_OK) {
        fprintf(stderr, "srv_new: %s\n", err.msg);
        return -1;
    }
    port = srv_port(server);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    srv_free(server);
    server = NULL;
    fu_stop(upstream);
    return 0;
}

#define NEED_SERVER()                                                                                                  \
    do {                                                                                                               \
        if (!server) {                                                                                                 \
            if (!skip_told++) printf("fixtures absent: gateway A/B test skipped\n");                                  \
            skip();                                                                                                    \
        }                                                                                                              \
    } while (0)

/* ---- HTTP -------------------------------------------------------------------------------- */

/* One request; rid (may be NULL) is sent as X-Request-Id. */
static void http(const char *method, const char *path, const char *body, const char *rid, route_resp *r) {
    route_http(port, method, path, body, rid, r);
}

/* A greedy completion of PROMPT: model, optional user, streamed or not. */
static void complete(const char *name, const char *user, bool stream, int max_tokens, const char *rid, route_resp *r) {
    char body[512], u[96] = "";
    if (user) snprintf(u, sizeof u, ",\"user\":\"%s\"", user);
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"prompt\":\"" PROMPT "\",\"max_tokens\":%d,\"temperature\":0,\"stream\":%s%s}", name,
             max_tokens, stream ? "true" : "false", u);
    http("POST", "/v1/completions", body, rid, r);
    if (r->status != 200) fail_msg("%s: status %ld: %.400s", name, r->status, r->body);
}

/* The text of a completion reply, whole or streamed (malloc'd). */
static char *reply_text(const route_resp *r, bool stream) {
    if (!stream) {
        json_t *j = json_loads(r->body, 0, NULL);
        const char *t = json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text"));
        if (!t) fail_msg("no text in %.400s", r->body);
        char *copy = strdup(t);
        json_decref(j);
        return copy;
    }
    bool done = false;
    json_t *events = srvtest_sse(r->body, &done);
    if (!events || !done) fail_msg("bad stream (done %d): %.400s", done, r->body);
    size_t cap = r->len + 1, n = 0, i;
    char *text = calloc(1, cap);
    json_t *ev;
    json_array_foreach(events, i, ev) {
        const char *t = json_string_value(json_object_get(json_array_get(json_object_get(ev, "choices"), 0), "text"));
        size_t k = t ? strlen(t) : 0;
        if (k && n + k < cap) {
            memcpy(text + n, t, k);
            n += k;
        }
    }
    json_decref(events);
    return text;
}

/* The arm a routed reply names: 0 base, 1 adapter (fails on anything else). */
static int arm_of(const route_resp *r) {
    char v[128];
    if (strcmp(route_target_field(r, "route", v, sizeof v), "assistant") != 0)
        fail_msg("X-Hearth-Target '%s'", r->target);
    route_target_field(r, "target", v, sizeof v);
    if (!strcmp(v, ARM_BASE)) return 0;
    if (!strcmp(v, ARM_LORA)) return 1;
    fail_msg("X-Hearth-Target '%s' names no arm of the route", r->target);
    return -1;
}

/* A sample's value in /metrics ("name{labels}"); -1 when absent. */
static double metric(const char *sample) {
    route_resp *r = calloc(1, sizeof *r);
    http("GET", "/metrics", NULL, NULL, r);
    assert_int_equal(r->status, 200);
    double v = -1;
    size_t n = strlen(sample);
    for (const char *p = r->body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, sample, n) && p[n] == ' ') v = strtod(p + n + 1, NULL);
    route_resp_free(r);
    return v;
}

static double counter(const char *sample) {
    double v = metric(sample);
    return v < 0 ? 0 : v;
}

/* ---- tests --------------------------------------------------------------------------------- */

/* "local:MODEL:ADAPTER" targets are checked against the model's configured adapters. */
static void test_adapter_target_checked(void **state) {
    (void)state;
    static const struct { const char *target, *want; } cases[] = {
        {"local:llama:support", NULL},
        {"local:big:support", NULL}, /* by alias */
        {"local:llama:nope", "model 'llama' has no configured adapter 'nope'"},
        {"local:other:support", "'local:other:support' names no configured model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char yaml[1024];
        snprintf(yaml, sizeof yaml,
                 "models:\n  - name: llama\n    path: /nowhere.gguf\n    aliases: [big]\n"
                 "    adapters: [{name: support, path: /nowhere-lora.gguf}]\n"
                 "routes:\n  - {name: ab, strategy: weighted, targets: [local:llama, '%s']}\n",
                 cases[i].target);
        cfg_config *c = NULL;
        cfg_errors errs;
        hearth_err err = {0};
        hearth_status st = cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err);
        if (!cases[i].want) {
            if (st != HEARTH_OK) fail_msg("%s refused: %s", cases[i].target, err.msg);
            cfg_free(c);
        } else if (st == HEARTH_OK || !strstr(err.msg, cases[i].want) || !strstr(err.msg, "routes[0].targets[1]")) {
            fail_msg("%s: status %d, message '%s', expected one saying \"%s\"", cases[i].target, st, err.msg,
                     cases[i].want);
        }
    }
}

static char *direct[2]; /* the direct greedy texts of the base and the adapter */

static void test_arms_answer_as_direct(void **state) {
    (void)state;
    NEED_SERVER();
    route_resp *r = calloc(1, sizeof *r);
    complete("llama", NULL, false, N_TOK, NULL, r);
    direct[0] = reply_text(r, false);
    complete("llama:support", NULL, false, N_TOK, NULL, r);
    direct[1] = reply_text(r, false);
    if (!strcmp(direct[0], direct[1])) fail_msg("the adapter does not change the completion: [%s]", direct[0]);

    int seen[2] = {0, 0};
    for (int u = 0; u < N_USERS; u++) {
        char user[32];
        snprintf(user, sizeof user, "user-%d", u);
        int first = -1;
        for (int k = 0; k < 3; k++) { /* whole, streamed, whole: one arm for the user throughout */
            bool stream = k == 1;
            complete("assistant", user, stream, N_TOK, NULL, r);
            int arm = arm_of(r);
            char *text = reply_text(r, stream);
            if (strcmp(text, direct[arm]) != 0)
                fail_msg("%s (%s, %s): routed text [%s] is not the direct one [%s]", user, r->target,
                         stream ? "streamed" : "whole", text, direct[arm]);
            free(text);
            if (first < 0) first = arm;
            if (arm != first) fail_msg("sticky route: %s went to arm %d, then to arm %d", user, first, arm);
        }
        seen[first]++;
    }
    if (!seen[0] || !seen[1]) fail_msg("%d users: %d on the base, %d on the adapter", N_USERS, seen[0], seen[1]);
    route_resp_free(r);
}

static void test_split_follows_weights(void **state) {
    (void)state;
    NEED_SERVER();
    route_resp *r = calloc(1, sizeof *r);
    int on_lora = 0;
    for (int i = 0; i < N_SPLIT; i++) {
        complete("assistant", NULL, false, 1, NULL, r);
        on_lora += arm_of(r);
    }
    /* 50/50: mean 100, sd ~7.1; +-12% of the requests is more than 3 sd */
    int lo = N_SPLIT / 2 - N_SPLIT * 12 / 100, hi = N_SPLIT / 2 + N_SPLIT * 12 / 100;
    printf("weighted 50/50 over %d requests: %d on the adapter\n", N_SPLIT, on_lora);
    if (on_lora < lo || on_lora > hi) fail_msg("%d of %d on the adapter, expected %d..%d", on_lora, N_SPLIT, lo, hi);
    route_resp_free(r);
}

/* A routed request's request log line against the direct one of the arm it took. */
static void expect_accounted_as_direct(const char *routed_rid, const char *direct_rid, bool stream) {
    json_t *got = request_line(routed_rid), *want = request_line(direct_rid);
    json_int_t p = json_integer_value(json_object_get(got, "prompt_tokens"));
    json_int_t c = json_integer_value(json_object_get(got, "completion_tokens"));
    json_int_t wp = json_integer_value(json_object_get(want, "prompt_tokens"));
    json_int_t wc = json_integer_value(json_object_get(want, "completion_tokens"));
    const json_t *ttft = json_object_get(got, "ttft_ms");
    if (p != wp || c != wc || wp <= 0 || wc <= 0)
        fail_msg("%s routed: prompt %lld completion %lld tokens; direct: %lld, %lld", stream ? "streamed" : "whole",
                 (long long)p, (long long)c, (long long)wp, (long long)wc);
    if (!json_is_real(ttft) || !(json_real_value(ttft) > 0))
        fail_msg("%s routed: no TTFT in the log line", stream ? "streamed" : "whole");
    if (strcmp(json_string_value(json_object_get(got, "model")), "assistant") != 0 ||
        strncmp(json_string_value(json_object_get(got, "target")), ARM_BASE, strlen(ARM_BASE)) != 0)
        fail_msg("routed log line: model %s target %s", json_string_value(json_object_get(got, "model")),
                 json_string_value(json_object_get(got, "target")));
    json_decref(got);
    json_decref(want);
}

static void test_routed_requests_accounted(void **state) {
    (void)state;
    NEED_SERVER();
    route_resp *r = calloc(1, sizeof *r);
    double ttft0 = counter("hearth_time_to_first_token_seconds_count{model=\"assistant\"}");
    double gen0 = counter("hearth_generated_tokens_total{model=\"assistant\"}");
    double prompt0 = counter("hearth_prompt_tokens_total{model=\"assistant\"}");
    for (int stream = 0; stream < 2; stream++) {
        char rid[64], did[64];
        snprintf(rid, sizeof rid, "ab-routed-%d", stream);
        complete("assistant", "user-0", stream, N_TOK, rid, r);
        int arm = arm_of(r);
        snprintf(did, sizeof did, "ab-direct-%d", stream);
        complete(arm ? "llama:support" : "llama", NULL, stream, N_TOK, did, r);
        expect_accounted_as_direct(rid, did, stream);
    }
    double ttft1 = counter("hearth_time_to_first_token_seconds_count{model=\"assistant\"}");
    double gen1 = counter("hearth_generated_tokens_total{model=\"assistant\"}");
    double prompt1 = counter("hearth_prompt_tokens_total{model=\"assistant\"}");
    if (ttft1 - ttft0 < 2)
        fail_msg("TTFT samples of the route: %.0f before, %.0f after two routed requests", ttft0, ttft1);
    if (gen1 - gen0 < 2 || prompt1 - prompt0 < 2)
        fail_msg("route token counters: generated %.0f -> %.0f, prompt %.0f -> %.0f", gen0, gen1, prompt0, prompt1);
    route_resp_free(r);
}

static void test_remote_stream_accounted(void **state) {
    (void)state;
    NEED_SERVER();
    route_resp *r = calloc(1, sizeof *r);
    complete("remote", NULL, true, 8, "ab-remote", r);
    json_t *line = request_line("ab-remote");
    json_int_t got = json_integer_value(json_object_get(line, "completion_tokens"));
    if (got != 5) fail_msg("a remote stream of 5 content chunks logged %lld tokens", (long long)got);
    if (!json_is_real(json_object_get(line, "ttft_ms"))) fail_msg("a remote stream logged no TTFT");
    assert_string_equal(json_string_value(json_object_get(line, "target")), "up/m");
    json_decref(line);
    route_resp_free(r);
}

/* A routed stream whose client hangs up: the local attempt is cancelled, the slot freed. */
static void test_hangup_frees_the_slot(void **state) {
    (void)state;
    NEED_SERVER();
    double cancelled0 = counter("hearth_upstream_requests_total{target=\"" ARM_BASE "\",outcome=\"cancelled\"}") +
                        counter("hearth_upstream_requests_total{target=\"" ARM_LORA "\",outcome=\"cancelled\"}");
    route_resp *r = calloc(1, sizeof *r);
    r->abort_after = 300; /* a few chunks */
    complete("assistant", "user-0", true, 900, "ab-hangup", r);
    if (r->len < 300) fail_msg("hung up before any output: %.300s", r->body);
    json_t *line = request_line("ab-hangup");
    const char *end = json_string_value(json_object_get(line, "end"));
    json_int_t got = json_integer_value(json_object_get(line, "completion_tokens"));
    /* client_abort when the daemon saw the hang-up, error when the reader did (it ends the body) */
    if (!end || (strcmp(end, "client_abort") != 0 && strcmp(end, "error") != 0))
        fail_msg("end %s, expected client_abort or error", end ? end : "(none)");
    if (got <= 0 || got >= 900) fail_msg("the hung-up stream logged %lld tokens", (long long)got);
    json_decref(line);
    /* the slot comes free and the attempt is recorded as cancelled (not run to its end) */
    double busy = -1, cancelled = 0;
    for (int i = 0; i < 300; i++) { /* up to 30 s */
        busy = metric("hearth_slots_busy{model=\"llama\"}");
        cancelled = counter("hearth_upstream_requests_total{target=\"" ARM_BASE "\",outcome=\"cancelled\"}") +
                    counter("hearth_upstream_requests_total{target=\"" ARM_LORA "\",outcome=\"cancelled\"}");
        if (busy == 0 && cancelled - cancelled0 >= 1) break;
        usleep(100000);
    }
    if (busy != 0) fail_msg("slots still busy after the hang-up: %.0f", busy);
    if (cancelled - cancelled0 < 1)
        fail_msg("the local attempt was not cancelled (cancelled attempts %.0f -> %.0f)", cancelled0, cancelled);
    route_resp_free(r);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adapter_target_checked),
        cmocka_unit_test(test_arms_answer_as_direct),
        cmocka_unit_test(test_split_follows_weights),
        cmocka_unit_test(test_routed_requests_accounted),
        cmocka_unit_test(test_remote_stream_accounted),
        cmocka_unit_test(test_hangup_frees_the_slot),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    free(direct[0]);
    free(direct[1]);
    logcap_free();
    curl_global_cleanup();
    return rc;
}
