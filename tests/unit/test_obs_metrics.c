/* Metrics registry and hub: the text format parses back under a strict reader (HELP/TYPE
 * before samples, escaping, cumulative histogram buckets with +Inf == _count and a
 * _sum), label cardinality stays bounded, concurrent updates are not lost, Hearth's
 * catalogue is complete (including the registered-but-zero gateway families), model
 * state and request events move the right series, request ids, token timing, and the
 * request log line: its fields, levels, and that a prompt never reaches it unless the
 * prompt-logging switch is on. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "obs/obs.h"
#include "obs/obs_metrics.h"
#include "promtext.h"

#define VALUES(...) ((const char *const[]){__VA_ARGS__})
#define LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

static prom_doc render_parse(obs_registry *r) {
    size_t len = 0;
    char *text = obs_registry_render(r, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    prom_doc d;
    char why[256];
    if (!prom_parse(text, &d, why, sizeof why)) fail_msg("metrics text does not parse: %s\n%s", why, text);
    if (!prom_check_histograms(&d, why, sizeof why)) fail_msg("bad histogram: %s\n%s", why, text);
    mem_free(text);
    return d;
}

static void expect(const prom_doc *d, double want, const char *name, const char *k1, const char *v1, const char *k2,
                   const char *v2) {
    bool found = false;
    double got = prom_value(d, &found, name, k1, v1, k2, v2, NULL);
    if (!found || fabs(got - want) > 1e-9 * fmax(1, fabs(want)))
        fail_msg("%s{%s=%s,%s=%s}: want %g, got %g (found %d)", name, k1 ? k1 : "", v1 ? v1 : "", k2 ? k2 : "",
                 v2 ? v2 : "", want, got, found);
}

static void test_render_parses_back(void **state) {
    obs_registry *r = obs_registry_new();
    static const double bounds[] = {0.1, 0.5, 1, 5};
    obs_family *c = obs_family_new(r, OBS_COUNTER, "t_requests_total", "Requests.\nSecond line \\ here.",
                                   LABELS("route", "status"), NULL, 0);
    obs_family *g = obs_family_new(r, OBS_GAUGE, "t_queue", "Queue.", NULL, NULL, 0);
    obs_family *h = obs_family_new(r, OBS_HISTOGRAM, "t_latency_seconds", "Latency.", LABELS("model"), bounds, 4);
    obs_family *empty = obs_family_new(r, OBS_COUNTER, "t_unused_total", "Never set.", LABELS("target"), NULL, 0);
    assert_non_null(c);
    assert_non_null(g);
    assert_non_null(h);
    assert_non_null(empty);
    obs_add(c, VALUES("chat", "200"), 3);
    obs_add(c, VALUES("chat", "500"), 1);
    obs_add(c, VALUES("we\"ird\\label\nvalue", "200"), 2);
    obs_add(c, VALUES("chat", "200"), -5); /* a counter never goes down */
    obs_set(g, NULL, 7.25);
    double observed[] = {0.05, 0.1, 0.3, 0.7, 2, 9, 100, 0.2};
    double sum = 0;
    for (size_t i = 0; i < 8; i++) {
        obs_observe(h, VALUES("m1"), observed[i]);
        sum += observed[i];
    }
    obs_observe(h, VALUES("m2"), 0.4);

    prom_doc d = render_parse(r);
    expect(&d, 3, "t_requests_total", "route", "chat", "status", "200");
    expect(&d, 1, "t_requests_total", "route", "chat", "status", "500");
    expect(&d, 2, "t_requests_total", "route", "we\"ird\\label\nvalue", NULL, NULL);
    expect(&d, 7.25, "t_queue", NULL, NULL, NULL, NULL);
    expect(&d, 8, "t_latency_seconds_count", "model", "m1", NULL, NULL);
    expect(&d, sum, "t_latency_seconds_sum", "model", "m1", NULL, NULL);
    /* le="0.1" includes 0.1 itself (upper bounds are inclusive) */
    expect(&d, 2, "t_latency_seconds_bucket", "model", "m1", "le", "0.1");
    expect(&d, 4, "t_latency_seconds_bucket", "model", "m1", "le", "0.5");
    expect(&d, 5, "t_latency_seconds_bucket", "model", "m1", "le", "1");
    expect(&d, 6, "t_latency_seconds_bucket", "model", "m1", "le", "5");
    expect(&d, 8, "t_latency_seconds_bucket", "model", "m1", "le", "+Inf");
    expect(&d, 1, "t_latency_seconds_count", "model", "m2", NULL, NULL);
    const prom_family *f = prom_family_of(&d, "t_unused_total");
    assert_non_null(f);
    assert_string_equal(f->type, "counter");
    bool found = true;
    prom_value(&d, &found, "t_unused_total", NULL);
    assert_false(found);
    prom_free(&d);
    obs_registry_free(r);
}

static void test_observe_counts_merges(void **state) {
    obs_registry *r = obs_registry_new();
    static const double bounds[] = {1, 2};
    obs_family *h = obs_family_new(r, OBS_HISTOGRAM, "t_merge", "x", NULL, bounds, 2);
    uint64_t counts[3] = {2, 0, 3};
    obs_observe_counts(h, NULL, counts, 3, 20.5);
    obs_observe(h, NULL, 1.5);
    obs_observe_counts(h, NULL, counts, 2, 1); /* wrong bucket count: ignored */
    prom_doc d = render_parse(r);
    expect(&d, 2, "t_merge_bucket", "le", "1", NULL, NULL);
    expect(&d, 3, "t_merge_bucket", "le", "2", NULL, NULL);
    expect(&d, 6, "t_merge_bucket", "le", "+Inf", NULL, NULL);
    expect(&d, 22, "t_merge_sum", NULL, NULL, NULL, NULL);
    prom_free(&d);
    obs_registry_free(r);
}

static void test_invalid_families_refused(void **state) {
    obs_registry *r = obs_registry_new();
    static const double bad_bounds[] = {1, 1};
    static const double ok_bounds[] = {1, 2};
    assert_null(obs_family_new(r, OBS_COUNTER, "1starts_with_digit", "", NULL, NULL, 0));
    assert_null(obs_family_new(r, OBS_COUNTER, "has-dash", "", NULL, NULL, 0));
    assert_null(obs_family_new(r, OBS_COUNTER, "ok_name", "", LABELS("bad-label"), NULL, 0));
    assert_null(obs_family_new(r, OBS_COUNTER, "ok_name", "", LABELS("le"), NULL, 0));
    assert_null(obs_family_new(r, OBS_HISTOGRAM, "ok_hist", "", NULL, bad_bounds, 2));
    assert_non_null(obs_family_new(r, OBS_HISTOGRAM, "ok_hist", "", NULL, ok_bounds, 2));
    assert_null(obs_family_new(r, OBS_GAUGE, "ok_hist", "", NULL, NULL, 0)); /* duplicate */
    obs_add(NULL, NULL, 1); /* a failed registration never crashes its users */
    obs_observe(NULL, NULL, 1);
    obs_registry_free(r);
}

static void test_cardinality_bounded(void **state) {
    obs_registry *r = obs_registry_new();
    obs_family *c = obs_family_new(r, OBS_COUNTER, "t_by_model_total", "x", LABELS("model"), NULL, 0);
    char name[32];
    int extra = 100;
    for (int i = 0; i < OBS_MAX_SERIES + extra; i++) {
        snprintf(name, sizeof name, "model-%d", i);
        obs_add(c, VALUES(name), 1);
    }
    char longv[400];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    obs_add(c, VALUES(longv), 1);
    prom_doc d = render_parse(r);
    size_t series = 0;
    for (size_t i = 0; i < d.n; i++) {
        if (strcmp(d.s[i].name, "t_by_model_total")) continue;
        series++;
        assert_true(strlen(d.s[i].val[0]) <= OBS_LABEL_MAX);
    }
    if (series != OBS_MAX_SERIES + 1)
        fail_msg("series: want %d (limit + overflow), got %zu", OBS_MAX_SERIES + 1, series);
    expect(&d, extra + 1, "t_by_model_total", "model", OBS_OVERFLOW_VALUE, NULL, NULL);
    expect(&d, OBS_MAX_SERIES + extra + 1, "t_by_model_total", NULL, NULL, NULL, NULL);
    prom_free(&d);
    obs_registry_free(r);
}

typedef struct hammer {
    obs_family *c, *h;
    int id;
} hammer;

static void *hammer_main(void *arg) {
    hammer *hm = arg;
    char label[8];
    snprintf(label, sizeof label, "t%d", hm->id % 2);
    for (int i = 0; i < 20000; i++) {
        obs_add(hm->c, VALUES(label), 1);
        obs_observe(hm->h, VALUES(label), (double)(i % 7));
    }
    return NULL;
}

static void test_concurrent_updates(void **state) {
    obs_registry *r = obs_registry_new();
    static const double bounds[] = {1, 3, 5};
    hammer hm[4];
    pthread_t th[4];
    obs_family *c = obs_family_new(r, OBS_COUNTER, "t_hits_total", "x", LABELS("who"), NULL, 0);
    obs_family *h = obs_family_new(r, OBS_HISTOGRAM, "t_values", "x", LABELS("who"), bounds, 3);
    for (int i = 0; i < 4; i++) {
        hm[i] = (hammer){c, h, i};
        pthread_create(&th[i], NULL, hammer_main, &hm[i]);
    }
    for (int k = 0; k < 20; k++) { /* rendering while others write */
        size_t len;
        char *t = obs_registry_render(r, &len);
        assert_non_null(t);
        mem_free(t);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    prom_doc d = render_parse(r);
    expect(&d, 80000, "t_hits_total", NULL, NULL, NULL, NULL);
    expect(&d, 40000, "t_values_count", "who", "t0", NULL, NULL);
    expect(&d, 40000, "t_values_count", "who", "t1", NULL, NULL);
    prom_free(&d);
    obs_registry_free(r);
}

/* ---- the hub --------------------------------------------------------------------------- */

typedef struct log_sink {
    char lines[64][4096];
    int n;
} log_sink;

static void sink_fn(void *ud, const char *line) {
    log_sink *s = ud;
    if (s->n < 64) snprintf(s->lines[s->n++], sizeof s->lines[0], "%s", line);
}

static obs *hub(log_sink *sink, bool log_prompts, obs_level level) {
    obs_config c;
    obs_config_default(&c);
    c.log = sink_fn;
    c.log_ud = sink;
    c.log_prompts = log_prompts;
    c.log_level = level;
    obs *o = NULL;
    hearth_err err = {0};
    if (obs_new(&c, &o, &err) != HEARTH_OK) fail_msg("obs_new: %s", err.msg);
    return o;
}

static prom_doc hub_metrics(obs *o) {
    size_t len;
    char *text = obs_metrics_text(o, &len);
    assert_non_null(text);
    prom_doc d;
    char why[256];
    if (!prom_parse(text, &d, why, sizeof why)) fail_msg("hub metrics do not parse: %s", why);
    if (!prom_check_histograms(&d, why, sizeof why)) fail_msg("hub histogram: %s", why);
    mem_free(text);
    return d;
}

static void test_catalogue_complete(void **state) {
    log_sink sink = {0};
    obs *o = hub(&sink, false, OBS_INFO);
    prom_doc d = hub_metrics(o);
    static const char *const want[][2] = {
        {"hearth_requests_total", "counter"},
        {"hearth_request_duration_seconds", "histogram"},
        {"hearth_time_to_first_token_seconds", "histogram"},
        {"hearth_inter_token_latency_seconds", "histogram"},
        {"hearth_prompt_tokens_total", "counter"},
        {"hearth_generated_tokens_total", "counter"},
        {"hearth_queue_depth", "gauge"},
        {"hearth_slots_busy", "gauge"},
        {"hearth_kv_cache_pages_used", "gauge"},
        {"hearth_model_state", "gauge"},
        {"hearth_model_load_duration_seconds", "histogram"},
        {"hearth_model_load_failures_total", "counter"},
        {"hearth_memory_bytes", "gauge"},
        {"hearth_prefix_cache_hit_tokens_total", "counter"},
        {"hearth_steps_interrupted_total", "counter"},
        {"hearth_upstream_requests_total", "counter"},
        {"hearth_upstream_retries_total", "counter"},
        {"hearth_breaker_state", "gauge"},
        {"hearth_rate_limited_total", "counter"},
        {"hearth_auth_failures_total", "counter"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const prom_family *f = prom_family_of(&d, want[i][0]);
        if (!f) fail_msg("metric family %s is not registered", want[i][0]);
        if (strcmp(f->type, want[i][1])) fail_msg("%s: type %s, want %s", want[i][0], f->type, want[i][1]);
        assert_true(f->has_help);
    }
    for (size_t i = 0; i < d.n_fam; i++)
        if (strncmp(d.fam[i].name, "hearth_", 7)) fail_msg("metric %s lacks the hearth_ prefix", d.fam[i].name);
    bool found = true;
    prom_value(&d, &found, "hearth_upstream_requests_total", NULL);
    assert_false(found); /* registered but zero until the gateway reports */
    prom_free(&d);

    obs_upstream(o, "openai", "error");
    obs_retry(o, "openai");
    obs_breaker(o, "openai", "open");
    obs_rate_limited(o, "team-a", "requests");
    d = hub_metrics(o);
    expect(&d, 1, "hearth_upstream_requests_total", "target", "openai", "outcome", "error");
    expect(&d, 1, "hearth_upstream_retries_total", "target", "openai", NULL, NULL);
    expect(&d, 1, "hearth_breaker_state", "target", "openai", "state", "open");
    expect(&d, 0, "hearth_breaker_state", "target", "openai", "state", "closed");
    expect(&d, 1, "hearth_rate_limited_total", "key", "team-a", "kind", "requests");
    prom_free(&d);
    obs_free(o);
}

static void test_model_states(void **state) {
    log_sink sink = {0};
    obs *o = hub(&sink, false, OBS_INFO);
    obs_model_state(o, "m", "loading", NULL);
    obs_model_state(o, "m", "ready", NULL);
    obs_model_state(o, "bad", "loading", NULL);
    obs_model_state(o, "bad", "failed", "bad.gguf: not a GGUF file");
    obs_model_sample smp = {.queued = 3, .running = 2, .n_slots = 4, .kv_pages_used = 10, .kv_pages_total = 64,
                            .prefix_hit_tokens = 77, .steps_interrupted = 5, .weights_bytes = 1000, .repacked_bytes = 200, .kv_bytes = 300};
    obs_model_sample_set(o, "m", &smp);
    prom_doc d = hub_metrics(o);
    expect(&d, 1, "hearth_model_state", "model", "m", "state", "ready");
    expect(&d, 0, "hearth_model_state", "model", "m", "state", "loading");
    expect(&d, 1, "hearth_model_state", "model", "bad", "state", "failed");
    expect(&d, 1, "hearth_model_load_duration_seconds_count", "model", "m", NULL, NULL);
    bool found;
    prom_value(&d, &found, "hearth_model_load_failures_total", "model", "m", NULL);
    assert_false(found);
    prom_value(&d, &found, "hearth_model_load_duration_seconds_count", "model", "bad", NULL);
    assert_false(found);
    expect(&d, 1, "hearth_model_load_failures_total", "model", "bad", NULL, NULL);
    expect(&d, 3, "hearth_queue_depth", "model", "m", NULL, NULL);
    expect(&d, 2, "hearth_slots_busy", "model", "m", NULL, NULL);
    expect(&d, 10, "hearth_kv_cache_pages_used", "model", "m", NULL, NULL);
    expect(&d, 77, "hearth_prefix_cache_hit_tokens_total", "model", "m", NULL, NULL);
    expect(&d, 5, "hearth_steps_interrupted_total", "model", "m", NULL, NULL);
    expect(&d, 1000, "hearth_memory_bytes", "model", "m", "kind", "weights");
    expect(&d, 200, "hearth_memory_bytes", "model", "m", "kind", "repacked");
    expect(&d, 300, "hearth_memory_bytes", "model", "m", "kind", "kv");
    prom_free(&d);

    json_t *live = obs_live_json(o, 300);
    assert_non_null(live);
    json_t *models = json_object_get(live, "models");
    assert_int_equal(json_array_size(models), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(models, 0), "state")), "ready");
    assert_string_equal(json_string_value(json_object_get(json_array_get(models, 1), "error")),
                        "bad.gguf: not a GGUF file");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(live, "memory"), "total")), 1500);
    json_decref(live);
    obs_free(o);
}

static void test_request_ids(void **state) {
    assert_true(obs_request_id_valid("abc-123"));
    assert_true(obs_request_id_valid("3f2a1b7c-9d4e-4f00-8a1b-1234567890ab"));
    assert_true(obs_request_id_valid("req_1.2:3"));
    assert_false(obs_request_id_valid(NULL));
    assert_false(obs_request_id_valid(""));
    assert_false(obs_request_id_valid("has space"));
    assert_false(obs_request_id_valid("quote\"inside"));
    assert_false(obs_request_id_valid("new\nline"));
    assert_false(obs_request_id_valid("caf\xc3\xa9"));
    char longid[80];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_false(obs_request_id_valid(longid));
    longid[OBS_REQUEST_ID_MAX] = '\0';
    assert_true(obs_request_id_valid(longid));
    char a[OBS_REQUEST_ID_MAX + 1], b[OBS_REQUEST_ID_MAX + 1];
    obs_request_id_new(a);
    obs_request_id_new(b);
    assert_int_equal(strlen(a), 32);
    assert_true(obs_request_id_valid(a));
    if (!strcmp(a, b)) fail_msg("two generated ids are equal: %s", a);
}

static void test_trace(void **state) {
    obs_trace t;
    obs_trace_start(&t);
    obs_trace_tokens(&t, 0, 0); /* an event without tokens is not a token */
    assert_int_equal(t.first_token_ns, 0);
    obs_trace_tokens(&t, 0, 1);
    assert_true(t.first_token_ns >= t.start_ns);
    obs_trace_tokens(&t, 0, 3); /* 3 gaps */
    obs_trace_tokens(&t, 1, 2); /* a second choice: its first event has one extra token (a zero gap) */
    obs_trace_tokens(&t, 40, 1); /* past the per-sequence table: counted, no gap */
    assert_int_equal(t.tokens, 7);
    uint64_t gaps = 0;
    for (int i = 0; i <= OBS_ITL_BUCKETS; i++) gaps += t.itl[i];
    assert_int_equal(gaps, 4);
}

static json_t *find_line(const log_sink *s, const char *request_id) {
    for (int i = 0; i < s->n; i++) {
        json_t *l = json_loads(s->lines[i], 0, NULL);
        if (!l) fail_msg("log line is not JSON: %s", s->lines[i]);
        const char *id = json_string_value(json_object_get(l, "request_id"));
        if (id && !strcmp(id, request_id)) return l;
        json_decref(l);
    }
    return NULL;
}

#define CANARY "CANARY-prompt-5be1d2"

static void send_request(obs *o, const char *id, int status, bool quiet, const char *error, obs_trace *t) {
    static const char body[] = "{\"model\":\"m\",\"prompt\":\"" CANARY "\"}";
    obs_request_done(o, &(obs_request){.request_id = id, .key_name = "", .method = "POST", .path = "/v1/completions",
                                       .route = quiet ? "health" : "completions", .model = "m", .target = "m",
                                       .end = "ok", .error = error, .status = status, .quiet = quiet,
                                       .prompt_tokens = 5, .completion_tokens = -1, .duration_ms = 12.5, .trace = t,
                                       .body = body, .body_len = sizeof body - 1});
}

static void test_request_log_line(void **state) {
    log_sink sink = {0};
    obs *o = hub(&sink, false, OBS_INFO);
    obs_trace t;
    obs_trace_start(&t);
    obs_trace_tokens(&t, 0, 1);
    obs_trace_tokens(&t, 0, 1);
    send_request(o, "req-ok", 200, false, NULL, &t);
    send_request(o, "req-bad", 503, false, "server_busy", NULL);
    send_request(o, "req-quiet", 200, true, NULL, NULL);
    json_t *l = find_line(&sink, "req-ok");
    assert_non_null(l);
    static const char *const fields[] = {"time", "level", "msg", "request_id", "key", "model", "route", "target",
                                         "status", "prompt_tokens", "completion_tokens", "ttft_ms", "duration_ms",
                                         "error"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!json_object_get(l, fields[i])) fail_msg("log line lacks '%s': %s", fields[i], sink.lines[0]);
    assert_string_equal(json_string_value(json_object_get(l, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(l, "route")), "completions");
    assert_int_equal(json_integer_value(json_object_get(l, "status")), 200);
    assert_int_equal(json_integer_value(json_object_get(l, "completion_tokens")), 2);
    assert_true(json_is_real(json_object_get(l, "ttft_ms")));
    assert_true(json_is_null(json_object_get(l, "error")));
    assert_null(json_object_get(l, "prompt"));
    json_decref(l);
    l = find_line(&sink, "req-bad");
    assert_non_null(l);
    assert_string_equal(json_string_value(json_object_get(l, "level")), "error");
    assert_string_equal(json_string_value(json_object_get(l, "error")), "server_busy");
    assert_true(json_is_null(json_object_get(l, "ttft_ms")));
    json_decref(l);
    assert_null(find_line(&sink, "req-quiet")); /* debug, below the info level */
    for (int i = 0; i < sink.n; i++)
        if (strstr(sink.lines[i], CANARY)) fail_msg("the prompt reached the log: %s", sink.lines[i]);
    size_t len;
    char *text = obs_metrics_text(o, &len);
    assert_null(strstr(text, CANARY));
    mem_free(text);
    json_t *live = obs_live_json(o, 300);
    char *live_text = json_dumps(live, 0);
    assert_null(strstr(live_text, CANARY));
    /* the quiet request is counted in metrics but not in the live window */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(live, "requests"), "requests")), 2);
    free(live_text);
    json_decref(live);
    obs_free(o);

    log_sink sink2 = {0};
    o = hub(&sink2, true, OBS_DEBUG);
    send_request(o, "req-logged", 200, false, NULL, NULL);
    send_request(o, "req-quiet", 200, true, NULL, NULL);
    l = find_line(&sink2, "req-logged");
    assert_non_null(l);
    const char *prompt = json_string_value(json_object_get(l, "prompt"));
    if (!prompt || !strstr(prompt, CANARY)) fail_msg("with log_prompts the body is logged, got %s", sink2.lines[0]);
    json_decref(l);
    l = find_line(&sink2, "req-quiet");
    assert_non_null(l);
    assert_string_equal(json_string_value(json_object_get(l, "level")), "debug");
    json_decref(l);
    obs_free(o);
}

static void test_request_metrics(void **state) {
    log_sink sink = {0};
    obs *o = hub(&sink, false, OBS_INFO);
    obs_trace t;
    obs_trace_start(&t);
    obs_trace_tokens(&t, 0, 1);
    obs_trace_tokens(&t, 0, 4);
    send_request(o, "a", 200, false, NULL, &t);
    send_request(o, "b", 404, false, "model_not_found", NULL);
    prom_doc d = hub_metrics(o);
    expect(&d, 1, "hearth_requests_total", "route", "completions", "status", "200");
    expect(&d, 1, "hearth_requests_total", "route", "completions", "status", "404");
    expect(&d, 2, "hearth_request_duration_seconds_count", "route", "completions", "model", "m");
    expect(&d, 0.025, "hearth_request_duration_seconds_sum", "route", "completions", "model", "m");
    expect(&d, 1, "hearth_time_to_first_token_seconds_count", "model", "m", NULL, NULL);
    expect(&d, 4, "hearth_inter_token_latency_seconds_count", "model", "m", NULL, NULL);
    expect(&d, 10, "hearth_prompt_tokens_total", "model", "m", NULL, NULL);
    expect(&d, 5, "hearth_generated_tokens_total", "model", "m", NULL, NULL);
    prom_free(&d);
    obs_free(o);
}

static void test_parse_duration(void **state) {
    double s = 0;
    assert_true(obs_parse_duration("90s", &s));
    assert_true(s == 90);
    assert_true(obs_parse_duration("15m", &s));
    assert_true(s == 900);
    assert_true(obs_parse_duration("1h", &s));
    assert_true(s == 3600);
    assert_true(obs_parse_duration("1.5d", &s));
    assert_true(s == 1.5 * 86400);
    assert_true(obs_parse_duration("2w", &s));
    assert_true(obs_parse_duration("3600", &s));
    assert_true(s == 3600);
    assert_false(obs_parse_duration("", &s));
    assert_false(obs_parse_duration("h", &s));
    assert_false(obs_parse_duration("-1h", &s));
    assert_false(obs_parse_duration("0", &s));
    assert_false(obs_parse_duration("1hh", &s));
    assert_false(obs_parse_duration("1y", &s));
    assert_false(obs_parse_duration("1e300d", &s));
    assert_false(obs_parse_duration("nan", &s));
}

/* Every allocation of the hub, the registry and rendering may fail: the call reports
 * NOMEM (or NULL) and leaks nothing, and updates after a failed series stay no-ops. */
static void test_allocation_failures(void **state) {
    obs_config c;
    obs_config_default(&c);
    for (long k = 1; k < 2000; k++) {
        mem_fail_at(k);
        obs *o = NULL;
        hearth_err err = {0};
        hearth_status st = obs_new(&c, &o, &err);
        if (st == HEARTH_OK) {
            obs_model_state(o, "m", "ready", NULL);
            send_request(o, "x", 200, false, NULL, NULL);
            size_t len;
            mem_free(obs_metrics_text(o, &len));
        } else {
            assert_int_equal(st, HEARTH_ERR_NOMEM);
            assert_null(o);
        }
        long made = mem_fail_at(0);
        obs_free(o);
        if (made < k) return; /* a run with no failure: every allocation point was covered */
    }
    fail_msg("allocation points never ran out");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_parses_back),
        cmocka_unit_test(test_observe_counts_merges),
        cmocka_unit_test(test_invalid_families_refused),
        cmocka_unit_test(test_cardinality_bounded),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_catalogue_complete),
        cmocka_unit_test(test_model_states),
        cmocka_unit_test(test_request_ids),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_request_log_line),
        cmocka_unit_test(test_request_metrics),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
