/* LoRA adapters through `hearth serve -m llama-spm-f16.gguf --lora lora-llama-spm-r8.gguf
 * --lora missing.gguf`: at temperature 0, "base:adapter" and the "lora" request field
 * give the same completion as `hearth run --lora`, the base model gives the one of
 * `hearth run` (and differs), scale 0 equals the base; an adapter that fails to load
 * leaves the model serving and is listed as failed with its error; unknown adapters are
 * 404 by model name and 400 in the lora field; /v1/models and /admin/models list the
 * adapters; an adapter loaded at run time serves, and unloading it while a request that
 * uses it is running leaves that request's output intact; bad adapter files (wrong
 * architecture, missing pair half, a plain model) are refused with 400 and change
 * nothing. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_edit.h"
#include "srvtest.h"
#include "testutil.h"

#define MODEL "models/llama-spm-f16.gguf"
#define ADAPTER "adapters/lora-llama-spm-r8.gguf"
#define BASE "llama-spm-f16"
#define NAME "lora-llama-spm-r8"
#define PROMPT "Once upon a time"
#define N_TOK 12
#define N_LONG 150

static srvtest srv;
static bool up;
static char dir[64], model_path[512], adapter_path[512];

static int setup(void **state) {
    if (!fixtures_available()) return 0;
    snprintf(dir, sizeof dir, "/tmp/hearth-lora-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(model_path, sizeof model_path, "%s", fixture_path(MODEL));
    snprintf(adapter_path, sizeof adapter_path, "%s", fixture_path(ADAPTER));
    char args[2048];
    snprintf(args, sizeof args, "-m '%s' --lora '%s' --lora '%s/missing.gguf:0.5' --slots 4 --ctx 256 -t 2 --no-db",
             model_path, adapter_path, dir);
    up = srvtest_start_args(&srv, args);
    return up ? 0 : -1;
}

static int teardown(void **state) {
    if (up) srvtest_stop(&srv);
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) return -1;
    }
    return 0;
}

#define NEED_SERVER()                                                   \
    do {                                                                \
        if (!up) {                                                      \
            printf("fixtures absent: LoRA server test skipped\n");      \
            skip();                                                     \
        }                                                               \
    } while (0)

/* The response body as JSON after checking the status. */
static json_t *call(const char *method, const char *path, const char *body, long want) {
    srvtest_resp r;
    assert_true(srvtest_http(&srv, method, path, body, NULL, &r));
    if (r.status != want) fail_msg("%s %s %s: status %ld, expected %ld: %s", method, path, body ? body : "", r.status,
                                   want, r.body);
    json_t *j = srvtest_json(&r);
    srvtest_resp_free(&r);
    assert_non_null(j);
    return j;
}

/* The greedy completion text of PROMPT for model with the extra JSON fields. */
static char *complete(const char *model, const char *extra, int n) {
    char body[1024];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"prompt\":\"" PROMPT "\",\"max_tokens\":%d,\"temperature\":0%s%s}",
             model, n, extra ? "," : "", extra ? extra : "");
    json_t *j = call("POST", "/v1/completions", body, 200);
    const char *text = json_string_value(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "text"));
    assert_non_null(text);
    char *copy = strdup(text);
    json_decref(j);
    return copy;
}

/* `hearth run` greedy on the same prompt, with lora ("PATH[:SCALE]") or none. */
static char *cli_run(const char *lora, int n) {
    char args[2048], *out = NULL, *err = NULL;
    snprintf(args, sizeof args, "run -m '%s' -p '" PROMPT "' -n %d --temp 0 --ctx 256 -t 2 %s%s%s", model_path, n,
             lora ? "--lora '" : "", lora ? lora : "", lora ? "'" : "");
    int code = run_hearth(args, &out, &err);
    if (code != 0) fail_msg("hearth %s: exit %d: %s", args, code, err ? err : "");
    free(err);
    return out;
}

static void expect_text(const char *what, const char *want, const char *got) {
    if (strcmp(want, got) != 0) fail_msg("%s:\n want [%s]\n got  [%s]", what, want, got);
}

static void test_adapter_matches_cli(void **state) {
    NEED_SERVER();
    char lora1[600];
    snprintf(lora1, sizeof lora1, "%s", adapter_path);
    char *ref_base = cli_run(NULL, N_TOK), *ref_lora = cli_run(lora1, N_TOK);
    char *base = complete(BASE, NULL, N_TOK);
    char *by_name = complete(BASE ":" NAME, NULL, N_TOK);
    char *by_field = complete(BASE, "\"lora\":[{\"name\":\"" NAME "\"}]", N_TOK);
    char *scale0 = complete(BASE ":" NAME, "\"lora\":[{\"name\":\"" NAME "\",\"scale\":0}]", N_TOK);
    char *none = complete(BASE ":" NAME, "\"lora\":[]", N_TOK);
    expect_text("base model vs hearth run", ref_base, base);
    expect_text("base:adapter vs hearth run --lora", ref_lora, by_name);
    expect_text("lora field vs hearth run --lora", ref_lora, by_field);
    expect_text("scale 0 vs base", ref_base, scale0);
    expect_text("empty lora list vs base", ref_base, none);
    if (!strcmp(base, by_name)) fail_msg("the adapter does not change the completion: [%s]", base);
    free(ref_base), free(ref_lora), free(base), free(by_name), free(by_field), free(scale0), free(none);
}

static void test_unknown_and_invalid(void **state) {
    NEED_SERVER();
    json_t *j = call("POST", "/v1/completions", "{\"model\":\"" BASE ":nope\",\"prompt\":\"x\"}", 404);
    json_decref(j);
    j = call("POST", "/v1/completions", "{\"model\":\"" BASE "\",\"prompt\":\"x\",\"lora\":[{\"name\":\"nope\"}]}", 400);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (!msg || !strstr(msg, "'nope'")) fail_msg("the 400 does not name the adapter: %s", msg ? msg : "(none)");
    json_decref(j);
    static const char *const bad[] = {
        "\"lora\":{\"name\":\"" NAME "\"}",
        "\"lora\":[{\"scale\":1}]",
        "\"lora\":[{\"name\":\"" NAME "\",\"scale\":1000}]",
        "\"lora\":[{\"name\":\"" NAME "\",\"scale\":\"1\"}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"model\":\"" BASE "\",\"prompt\":\"x\",%s}", bad[i]);
        json_decref(call("POST", "/v1/completions", body, 400));
    }
    /* the adapter that failed at start: the model serves, the adapter reports its error */
    j = call("POST", "/v1/completions", "{\"model\":\"" BASE "\",\"prompt\":\"x\",\"lora\":[{\"name\":\"missing\"}]}", 400);
    msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (!msg || !strstr(msg, "missing.gguf")) fail_msg("the failed adapter's error is not given: %s", msg ? msg : "");
    json_decref(j);
}

/* The adapters row of the model in /admin/models, and whether /v1/models lists id. */
static json_t *admin_adapters(void) {
    json_t *j = call("GET", "/admin/models", NULL, 200);
    json_t *rows = json_incref(json_object_get(json_array_get(json_object_get(j, "models"), 0), "adapters"));
    json_decref(j);
    assert_non_null(rows);
    return rows;
}

static json_t *adapter_row(json_t *rows, const char *name) {
    for (size_t i = 0; i < json_array_size(rows); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(rows, i), "name")), name))
            return json_array_get(rows, i);
    return NULL;
}

static bool listed(const char *id) {
    json_t *j = call("GET", "/v1/models", NULL, 200);
    bool found = false;
    json_t *data = json_object_get(j, "data");
    for (size_t i = 0; i < json_array_size(data); i++)
        found |= !strcmp(json_string_value(json_object_get(json_array_get(data, i), "id")), id);
    json_decref(j);
    return found;
}

static void test_listing(void **state) {
    NEED_SERVER();
    json_t *rows = admin_adapters();
    json_t *a = adapter_row(rows, NAME), *m = adapter_row(rows, "missing");
    assert_non_null(a);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(a, "state")), "ready");
    assert_int_equal(json_integer_value(json_object_get(a, "rank")), 8);
    if (!(json_real_value(json_object_get(a, "alpha")) > 0)) fail_msg("alpha missing from the adapter row");
    assert_true(json_array_size(json_object_get(a, "targets")) > 0);
    assert_string_equal(json_string_value(json_object_get(a, "path")), adapter_path);
    assert_string_equal(json_string_value(json_object_get(m, "state")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(m, "error")), "missing.gguf"));
    json_decref(rows);
    assert_true(listed(BASE ":" NAME));
    assert_false(listed(BASE ":missing"));
    json_decref(call("GET", "/v1/models/" BASE ":" NAME, NULL, 200));
    json_decref(call("GET", "/v1/models/" BASE ":missing", NULL, 404));
}

typedef struct long_req {
    char *text;
} long_req;

static void *long_thread(void *arg) {
    long_req *r = arg;
    r->text = complete(BASE ":rt", NULL, N_LONG);
    return NULL;
}

/* Requests in flight on the model, from /admin/models. */
static long in_flight(void) {
    json_t *j = call("GET", "/admin/models", NULL, 200);
    long n = (long)json_integer_value(json_object_get(json_array_get(json_object_get(j, "models"), 0), "requests"));
    json_decref(j);
    return n;
}

static void test_runtime_load_and_unload(void **state) {
    NEED_SERVER();
    char body[1024], lora05[600];
    snprintf(body, sizeof body, "{\"name\":\"rt\",\"path\":\"%s\",\"scale\":0.5}", adapter_path);
    json_decref(call("POST", "/admin/models/" BASE "/adapters", body, 200));
    json_decref(call("POST", "/admin/models/" BASE "/adapters", body, 400)); /* the name is taken */
    assert_true(listed(BASE ":rt"));
    snprintf(lora05, sizeof lora05, "%s:0.5", adapter_path);
    char *ref = cli_run(lora05, N_LONG);

    long_req lr = {0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, long_thread, &lr), 0);
    bool seen = false;
    for (int i = 0; i < 3000 && !seen; i++) { /* up to 60 s for the request to start */
        seen = in_flight() > 0;
        if (!seen) usleep(20000);
    }
    json_t *j = call("DELETE", "/admin/models/" BASE "/adapters/rt", NULL, 200);
    json_decref(j);
    pthread_join(th, NULL);
    if (!seen) printf("note: the long request ended before the unload; in-flight case not exercised\n");
    expect_text("request running while its adapter was unloaded", ref, lr.text);
    free(lr.text);
    free(ref);
    assert_false(listed(BASE ":rt"));
    json_decref(call("POST", "/v1/completions", "{\"model\":\"" BASE ":rt\",\"prompt\":\"x\"}", 404));
    json_decref(call("DELETE", "/admin/models/" BASE "/adapters/rt", NULL, 404));
    /* POST .../unload does the same */
    json_decref(call("POST", "/admin/models/" BASE "/adapters", body, 200));
    json_decref(call("POST", "/admin/models/" BASE "/adapters/rt/unload", NULL, 200));
    assert_false(listed(BASE ":rt"));
}

/* Posts the adapter file path as "bad"; expects 400 whose message contains want, and no
 * change to the adapters. */
static void expect_refused(const char *path, const char *want) {
    json_t *before = admin_adapters();
    char body[1024];
    snprintf(body, sizeof body, "{\"name\":\"bad\",\"path\":\"%s\"}", path);
    json_t *j = call("POST", "/admin/models/" BASE "/adapters", body, 400);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    if (!msg || !strstr(msg, want)) fail_msg("%s: the 400 does not say '%s': %s", path, want, msg ? msg : "");
    json_decref(j);
    json_t *after = admin_adapters();
    if (!json_equal(before, after)) fail_msg("%s: the refused adapter changed /admin/models", path);
    json_decref(before);
    json_decref(after);
    assert_false(listed(BASE ":bad"));
}

static void test_bad_adapter_files(void **state) {
    NEED_SERVER();
    char wrong_arch[128], half[128];
    snprintf(wrong_arch, sizeof wrong_arch, "%s/qwen.gguf", dir);
    snprintf(half, sizeof half, "%s/half.gguf", dir);
    gguf_edit arch = {.set_str_key = "general.architecture", .set_str_val = "qwen2"};
    gguf_edit drop = {.drop_tensor = "blk.0.attn_q.weight.lora_b"};
    assert_int_equal(gguf_edit_copy(adapter_path, &arch, wrong_arch, NULL, NULL), 0);
    assert_int_equal(gguf_edit_copy(adapter_path, &drop, half, NULL, NULL), 0);
    expect_refused(wrong_arch, "architecture");
    expect_refused(half, "lora_b");
    expect_refused(model_path, "not a LoRA adapter");
    char nofile[128];
    snprintf(nofile, sizeof nofile, "%s/none.gguf", dir);
    expect_refused(nofile, "none.gguf");
    /* the base model and its adapter still serve */
    char *t = complete(BASE ":" NAME, NULL, 2);
    free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adapter_matches_cli),
        cmocka_unit_test(test_unknown_and_invalid),
        cmocka_unit_test(test_listing),
        cmocka_unit_test(test_runtime_load_and_unload),
        cmocka_unit_test(test_bad_adapter_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
