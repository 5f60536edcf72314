/* POST /v1/embeddings over HTTP against `hearth serve` with generated models (a small
 * bert and a small llama, both from `hearth mkmodel`): the reply's OpenAI shape for a
 * string, strings, token ids and token-id arrays; base64 decoding to the float result;
 * dimensions; every validation error naming the input at fault (an over-long input gives
 * both token counts; truncate embeds it); 32 concurrent requests all 200 and each equal
 * to its input embedded alone; a repeated input served from the cache without a forward
 * pass (seen in the /metrics counters); the cache switched off by configuration; more
 * inputs than the queue holds answered 503 with Retry-After; a
 * decoder model embedding with last-token pooling and a completion on the encoder
 * refused. */
#include "testutil.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srvtest.h"

#define DIM 64
#define CTX 64

typedef struct env {
    char bert[64], llama[64], config[64], config_nocache[64];
    srvtest srv, nocache;
} env;

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void mkmodel(const char *args) {
    char *out = NULL, *err = NULL;
    int rc = run_hearth(args, &out, &err);
    if (rc != 0) fail_msg("hearth %s: exit %d: %s", args, rc, err);
    free(out);
    free(err);
}

static int setup(void **state) {
    env *e = calloc(1, sizeof *e);
    int pid = (int)getpid();
    snprintf(e->bert, sizeof e->bert, "/tmp/hearth-embsrv-bert-%d.gguf", pid);
    snprintf(e->llama, sizeof e->llama, "/tmp/hearth-embsrv-llama-%d.gguf", pid);
    snprintf(e->config, sizeof e->config, "/tmp/hearth-embsrv-%d.yaml", pid);
    snprintf(e->config_nocache, sizeof e->config_nocache, "/tmp/hearth-embsrv-nc-%d.yaml", pid);
    char args[512], yaml[1024];
    snprintf(args, sizeof args, "mkmodel --arch bert --dim %d --layers 2 --heads 4 --vocab 1000 --ctx %d --type f32 -o %s",
             DIM, CTX, e->bert);
    mkmodel(args);
    snprintf(args, sizeof args, "mkmodel --arch llama --dim 64 --layers 2 --heads 4 --vocab 512 --ctx 256 --type f32 -o %s",
             e->llama);
    mkmodel(args);
    const char *tmpl = "embeddings:\n  max_inputs: 40\n  max_request_tokens: 300\n  cache: %s\n  max_queue: %d\n"
                       "models:\n  - name: bert\n    path: %s\n    preload: true\n    threads: 2\n"
                       "  - name: llama\n    path: %s\n    threads: 1\n    slots: 1\n";
    snprintf(yaml, sizeof yaml, tmpl, "true", 8192, e->bert, e->llama);
    write_text(e->config, yaml);
    snprintf(yaml, sizeof yaml, tmpl, "false", 34, e->bert, e->llama);
    write_text(e->config_nocache, yaml);
    snprintf(args, sizeof args, "-c %s", e->config);
    if (!srvtest_start_args(&e->srv, args)) fail_msg("server did not start");
    snprintf(args, sizeof args, "-c %s", e->config_nocache);
    if (!srvtest_start_args(&e->nocache, args)) fail_msg("second server did not start");
    *state = e;
    return 0;
}

static int teardown(void **state) {
    env *e = *state;
    int a = srvtest_stop(&e->srv), b = srvtest_stop(&e->nocache);
    if (a != 0 || b != 0) fail_msg("the servers exited %d and %d (sanitizer findings are in their logs)", a, b);
    unlink(e->bert);
    unlink(e->llama);
    unlink(e->config);
    unlink(e->config_nocache);
    free(e);
    return 0;
}

/* POSTs body to /v1/embeddings; returns the parsed reply and its status. */
static json_t *post(const srvtest *t, const char *body, long *status) {
    srvtest_resp r;
    if (!srvtest_http(t, "POST", "/v1/embeddings", body, NULL, &r)) fail_msg("request failed: %s", body);
    *status = r.status;
    json_t *j = srvtest_json(&r);
    if (!j) fail_msg("reply is not JSON (%ld): %s", r.status, r.body);
    srvtest_resp_free(&r);
    return j;
}

static json_t *post_ok(const srvtest *t, const char *body) {
    long status;
    json_t *j = post(t, body, &status);
    if (status != 200) {
        char *s = json_dumps(j, 0);
        fail_msg("status %ld for %s: %s", status, body, s);
    }
    return j;
}

/* Expects a 400 whose param is want_param and whose message holds every string of want. */
static void expect_400(const srvtest *t, const char *body, const char *want_param, const char *const *want) {
    long status;
    json_t *j = post(t, body, &status);
    json_t *err = json_object_get(j, "error");
    const char *msg = json_string_value(json_object_get(err, "message"));
    const char *param = json_string_value(json_object_get(err, "param"));
    if (status != 400 || !msg) fail_msg("%s: status %ld, want 400", body, status);
    if (want_param && (!param || strcmp(param, want_param) != 0))
        fail_msg("%s: param '%s', want '%s' (%s)", body, param ? param : "(none)", want_param, msg);
    for (; want && *want; want++)
        if (!strstr(msg, *want)) fail_msg("%s: message '%s' lacks '%s'", body, msg, *want);
    json_decref(j);
}

/* Vector i of a reply as floats; checks its object and index fields. */
static size_t vector(const json_t *reply, size_t i, float *out) {
    json_t *d = json_array_get(json_object_get(reply, "data"), i);
    assert_string_equal(json_string_value(json_object_get(d, "object")), "embedding");
    assert_int_equal(json_integer_value(json_object_get(d, "index")), i);
    json_t *e = json_object_get(d, "embedding");
    size_t n = json_array_size(e);
    for (size_t k = 0; k < n; k++) out[k] = (float)json_number_value(json_array_get(e, k));
    return n;
}

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static double norm(const float *a, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(s);
}

/* One metric's value from /metrics (the line starting with series); -1 when absent. */
static double metric(const srvtest *t, const char *series) {
    srvtest_resp r;
    if (!srvtest_http(t, "GET", "/metrics", NULL, NULL, &r) || r.status != 200) fail_msg("GET /metrics failed");
    double v = -1;
    size_t n = strlen(series);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ') v = strtod(p + n + 1, NULL);
    srvtest_resp_free(&r);
    return v;
}

static void test_string_and_array(void **state) {
    env *e = *state;
    json_t *one = post_ok(&e->srv, "{\"model\":\"bert\",\"input\":\"the quick brown fox\",\"user\":\"u1\"}");
    assert_string_equal(json_string_value(json_object_get(one, "object")), "list");
    assert_string_equal(json_string_value(json_object_get(one, "model")), "bert");
    json_t *usage = json_object_get(one, "usage");
    json_int_t pt = json_integer_value(json_object_get(usage, "prompt_tokens"));
    assert_true(pt >= 3);
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")), pt);
    assert_int_equal(json_array_size(json_object_get(one, "data")), 1);
    float a[DIM], b[DIM];
    assert_int_equal(vector(one, 0, a), DIM);
    if (fabs(norm(a, DIM) - 1.0) > 1e-4) fail_msg("norm %.6f, want 1", norm(a, DIM));
    json_t *many = post_ok(&e->srv, "{\"model\":\"bert\",\"input\":[\"hello there\",\"the quick brown fox\",\"zebra\"]}");
    assert_int_equal(json_array_size(json_object_get(many, "data")), 3);
    vector(many, 1, b);
    double c = cosine(a, b, DIM);
    if (c < 1 - 1e-5) fail_msg("the same text alone and in an array: cosine %.8f", c);
    float z[DIM];
    vector(many, 2, z);
    if (cosine(z, a, DIM) > 0.9999) fail_msg("different texts give the same vector");
    json_decref(one);
    json_decref(many);
}

static void test_token_inputs(void **state) {
    env *e = *state;
    json_t *flat = post_ok(&e->srv, "{\"model\":\"bert\",\"input\":[101,300,400,102]}");
    json_t *nested = post_ok(&e->srv, "{\"model\":\"bert\",\"input\":[[101,500,102],[101,300,400,102]]}");
    assert_int_equal(json_array_size(json_object_get(flat, "data")), 1);
    assert_int_equal(json_array_size(json_object_get(nested, "data")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(nested, "usage"), "prompt_tokens")), 7);
    float a[DIM], b[DIM];
    vector(flat, 0, a);
    vector(nested, 1, b);
    double c = cosine(a, b, DIM);
    if (c < 1 - 1e-5) fail_msg("token ids flat and nested: cosine %.8f", c);
    json_decref(flat);
    json_decref(nested);
}

static void test_base64_and_dimensions(void **state) {
    env *e = *state;
    json_t *f = post_ok(&e->srv, "{\"model\":\"bert\",\"input\":\"base sixty four\",\"encoding_format\":\"float\"}");
    json_t *b = post_ok(&e->srv, "{\"model\":\"bert\",\"input\":\"base sixty four\",\"encoding_format\":\"base64\"}");
    float a[DIM];
    vector(f, 0, a);
    const char *s = json_string_value(json_object_get(json_array_get(json_object_get(b, "data"), 0), "embedding"));
    assert_non_null(s);
    static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char bytes[DIM * 4 + 3];
    size_t nb = 0, len = strlen(s);
    assert_int_equal(len % 4, 0);
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            const char *p = s[i + k] == '=' ? NULL : strchr(B64, s[i + k]);
            if (!p) pad++;
            v = v << 6 | (uint32_t)(p ? p - B64 : 0);
        }
        for (int k = 0; k < 3 - pad; k++) bytes[nb++] = (unsigned char)(v >> (16 - 8 * k));
    }
    assert_int_equal(nb, DIM * 4);
    for (int i = 0; i < DIM; i++) {
        float x;
        memcpy(&x, bytes + 4 * i, 4); /* little-endian float32, as this machine */
        if (fabsf(x - a[i]) > 1e-7f * (1 + fabsf(a[i]))) fail_msg("value %d: base64 %.9g, float %.9g", i, x, a[i]);
    }
    json_t *d = post_ok(&e->srv, "{\"model\":\"bert\",\"input\":\"base sixty four\",\"dimensions\":16}");
    float c[DIM];
    assert_int_equal(vector(d, 0, c), 16);
    if (fabs(norm(c, 16) - 1.0) > 1e-4) fail_msg("cut to 16: norm %.6f, want 1", norm(c, 16));
    if (cosine(c, a, 16) < 1 - 1e-5) fail_msg("cut to 16 is not the first 16 values renormalised");
    json_decref(f);
    json_decref(b);
    json_decref(d);
}

/* A request body of n inputs, each `len` token ids. */
static void id_inputs(int n, int len, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "{\"model\":\"bert\",\"input\":[");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < len; k++)
            o += (size_t)snprintf(buf + o, cap - o, "%s300%s", k ? "," : i ? ",[" : "[", k == len - 1 ? "]" : "");
    snprintf(buf + o, cap - o, "]}");
}

static void test_errors_name_the_input(void **state) {
    env *e = *state;
    expect_400(&e->srv, "{\"model\":\"bert\",\"input\":\"\"}", "input", (const char *const[]){"empty", NULL});
    expect_400(&e->srv, "{\"model\":\"bert\",\"input\":[]}", "input", (const char *const[]){"empty", NULL});
    expect_400(&e->srv, "{\"model\":\"bert\",\"input\":[\"a\",\"\"]}", "input[1]", (const char *const[]){"input[1]", NULL});
    expect_400(&e->srv, "{\"model\":\"bert\",\"input\":[[101,5],[101,99999]]}", "input[1]",
               (const char *const[]){"input[1]", "99999", "1000", NULL});
    expect_400(&e->srv, "{\"model\":\"bert\",\"input\":[\"a\",[1]]}", "input[1]", NULL);
    expect_400(&e->srv, "{\"model\":\"bert\"}", "input", NULL);
    expect_400(&e->srv, "{\"model\":\"bert\",\"input\":\"x\",\"encoding_format\":\"hex\"}", "encoding_format", NULL);
    expect_400(&e->srv, "{\"model\":\"bert\",\"input\":\"x\",\"dimensions\":65}", "dimensions",
               (const char *const[]){"65", "64", NULL});
    /* more inputs than embeddings.max_inputs (40) */
    char body[1024] = "{\"model\":\"bert\",\"input\":[";
    for (int i = 0; i < 41; i++) strcat(body, i ? ",\"w\"" : "\"w\"");
    strcat(body, "]}");
    expect_400(&e->srv, body, "input", (const char *const[]){"41", "40", NULL});
    /* more tokens than embeddings.max_request_tokens (300): 6 inputs of 60 token ids; 5 pass */
    char many[4096];
    id_inputs(6, 60, many, sizeof many);
    expect_400(&e->srv, many, "input", (const char *const[]){"360 tokens", "input[5]", "300", "max_request_tokens", NULL});
    id_inputs(5, 60, many, sizeof many);
    json_t *five = post_ok(&e->srv, many);
    assert_int_equal(json_array_size(json_object_get(five, "data")), 5);
    json_decref(five);
    /* input 1 is longer than the context: both counts named; truncate embeds it */
    char words[2048] = "", req[4096];
    for (int i = 0; i < 100; i++) strcat(words, i ? " fox" : "fox");
    snprintf(req, sizeof req, "{\"model\":\"bert\",\"input\":[\"short\",\"%s\"]}", words);
    expect_400(&e->srv, req, "input[1]", (const char *const[]){"input[1]", "tokens", "context of 64", NULL});
    char ids[1024] = "";
    for (int i = 0; i < 100; i++) strcat(ids, i ? ",300" : "300");
    snprintf(req, sizeof req, "{\"model\":\"bert\",\"input\":[[101,102],[%s]]}", ids);
    expect_400(&e->srv, req, "input[1]", (const char *const[]){"input[1]", "has 100 tokens", "context of 64", NULL});
    snprintf(req, sizeof req, "{\"model\":\"bert\",\"input\":[\"short\",\"%s\"],\"truncate\":true}", words);
    json_t *ok = post_ok(&e->srv, req);
    assert_int_equal(json_array_size(json_object_get(ok, "data")), 2);
    json_decref(ok);
    long status;
    json_t *nf = post(&e->srv, "{\"model\":\"nope\",\"input\":\"x\"}", &status);
    assert_int_equal(status, 404);
    json_decref(nf);
}

typedef struct client {
    const srvtest *t;
    int i;
    long status;
    float v[DIM];
} client;

static void text_of(int i, char *buf, size_t cap) {
    static const char *const w[] = {"river", "stone", "cloud", "lamp", "forest", "window", "garden", "silver"};
    snprintf(buf, cap, "%s %s %s number %d", w[i % 8], w[(i / 8) % 8], w[(i * 3) % 8], i);
}

static void *one_client(void *arg) {
    client *c = arg;
    char text[128], body[256];
    text_of(c->i, text, sizeof text);
    snprintf(body, sizeof body, "{\"model\":\"bert\",\"input\":\"%s\"}", text);
    srvtest_resp r;
    if (!srvtest_http(c->t, "POST", "/v1/embeddings", body, NULL, &r)) return NULL;
    c->status = r.status;
    json_t *j = srvtest_json(&r);
    if (j && r.status == 200) vector(j, 0, c->v);
    json_decref(j);
    srvtest_resp_free(&r);
    return NULL;
}

static void test_32_concurrent(void **state) {
    env *e = *state;
    enum { N = 32 };
    client c[N];
    pthread_t th[N];
    double passes0 = metric(&e->nocache, "hearth_embedding_forward_passes_total{model=\"bert\"}");
    for (int i = 0; i < N; i++) {
        c[i] = (client){.t = &e->nocache, .i = i};
        assert_int_equal(pthread_create(&th[i], NULL, one_client, &c[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    double passes = metric(&e->nocache, "hearth_embedding_forward_passes_total{model=\"bert\"}") -
                    (passes0 < 0 ? 0 : passes0);
    printf("32 concurrent requests: %.0f forward passes\n", passes);
    for (int i = 0; i < N; i++) {
        if (c[i].status != 200) fail_msg("request %d: status %ld", i, c[i].status);
        char text[128], body[256];
        text_of(i, text, sizeof text);
        snprintf(body, sizeof body, "{\"model\":\"bert\",\"input\":\"%s\"}", text);
        json_t *alone = post_ok(&e->nocache, body);
        float v[DIM];
        vector(alone, 0, v);
        double cs = cosine(v, c[i].v, DIM);
        if (cs < 1 - 1e-5) fail_msg("request %d: cosine %.8f between concurrent and alone", i, cs);
        json_decref(alone);
    }
    assert_true(metric(&e->nocache, "hearth_embedding_cache_hits_total") <= 0);
}

/* The cache-less server queues at most 34 inputs: 36 at once can never fit. */
static void test_queue_full_is_503(void **state) {
    env *e = *state;
    char body[1024] = "{\"model\":\"bert\",\"input\":[";
    for (int i = 0; i < 36; i++) strcat(body, i ? ",\"w\"" : "\"w\"");
    strcat(body, "]}");
    srvtest_resp r;
    assert_true(srvtest_http(&e->nocache, "POST", "/v1/embeddings", body, NULL, &r));
    if (r.status != 503 || !strstr(r.body, "queue_full") || !r.retry_after[0])
        fail_msg("36 inputs over a queue of 34: %ld (Retry-After '%s') %s", r.status, r.retry_after, r.body);
    srvtest_resp_free(&r);
    json_decref(post_ok(&e->nocache, "{\"model\":\"bert\",\"input\":[\"still\",\"serving\"]}"));
}

static void test_cache_serves_repeat(void **state) {
    env *e = *state;
    const char *body = "{\"model\":\"bert\",\"input\":\"a sentence only this test sends\"}";
    json_t *first = post_ok(&e->srv, body);
    double hits = metric(&e->srv, "hearth_embedding_cache_hits_total");
    double passes = metric(&e->srv, "hearth_embedding_forward_passes_total{model=\"bert\"}");
    double inputs = metric(&e->srv, "hearth_embedding_inputs_total{model=\"bert\"}");
    json_t *again = post_ok(&e->srv, body);
    double hits2 = metric(&e->srv, "hearth_embedding_cache_hits_total");
    double passes2 = metric(&e->srv, "hearth_embedding_forward_passes_total{model=\"bert\"}");
    double inputs2 = metric(&e->srv, "hearth_embedding_inputs_total{model=\"bert\"}");
    if (hits2 != hits + 1) fail_msg("cache hits %.0f -> %.0f, want one more", hits, hits2);
    if (passes2 != passes || inputs2 != inputs)
        fail_msg("the repeat ran the model: passes %.0f -> %.0f, inputs %.0f -> %.0f", passes, passes2, inputs, inputs2);
    float a[DIM], b[DIM];
    vector(first, 0, a);
    vector(again, 0, b);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(first, "usage"), "prompt_tokens")),
                     json_integer_value(json_object_get(json_object_get(again, "usage"), "prompt_tokens")));
    assert_true(metric(&e->srv, "hearth_embedding_cache_entries") >= 1);
    assert_true(metric(&e->srv, "hearth_embedding_cache_bytes") > 0);
    json_decref(first);
    json_decref(again);
}

static void test_decoder_and_encoder_roles(void **state) {
    env *e = *state;
    json_t *d = post_ok(&e->srv, "{\"model\":\"llama\",\"input\":[\"one two\",\"three\"]}");
    float v[DIM];
    assert_int_equal(vector(d, 0, v), 64);
    if (fabs(norm(v, 64) - 1.0) > 1e-4) fail_msg("decoder embedding norm %.6f", norm(v, 64));
    json_decref(d);
    srvtest_resp r;
    assert_true(srvtest_http(&e->srv, "POST", "/v1/completions", "{\"model\":\"bert\",\"prompt\":\"hi\"}", NULL, &r));
    if (r.status != 400 || !strstr(r.body, "embedding model")) fail_msg("completion on bert: %ld %s", r.status, r.body);
    srvtest_resp_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_and_array),     cmocka_unit_test(test_token_inputs),
        cmocka_unit_test(test_base64_and_dimensions), cmocka_unit_test(test_errors_name_the_input),
        cmocka_unit_test(test_32_concurrent),        cmocka_unit_test(test_queue_full_is_503),
        cmocka_unit_test(test_cache_serves_repeat),
        cmocka_unit_test(test_decoder_and_encoder_roles),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
