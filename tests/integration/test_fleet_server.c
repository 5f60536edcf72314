/* `hearth serve -c FILE` with several models: /v1/models lists the configuration,
 * /admin/models shows state and memory, admin load/unload, 20 concurrent first requests
 * cause one load, aliases, keep_alive validation, sha256 mismatch as 503, a full memory
 * budget as 503 with Retry-After, hot reload (valid, invalid, SIGHUP), /ready following
 * preload models, HEARTH_MODEL with no file, and configuration errors at startup. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "srvtest.h"

#define TINY "models/llama-2-tiny-random.gguf"

static char dir[64], cfg_path[128], tiny[128];

static void write_text(const char *path, const char *text) {
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state) {
    if (!fixtures_available()) return 0;
    snprintf(dir, sizeof dir, "/tmp/hearth-fleetsrv-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(cfg_path, sizeof cfg_path, "%s/hearth.yaml", dir);
    snprintf(tiny, sizeof tiny, "%s", fixture_path(TINY));
    return 0;
}

static int teardown(void **state) {
    if (!dir[0]) return 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#define NEED_FIXTURES()                                                                                                \
    do {                                                                                                               \
        if (!dir[0]) skip();                                                                                           \
    } while (0)

static json_t *get_json(const srvtest *t, const char *method, const char *path, const char *body, long want) {
    srvtest_resp r;
    assert_true(srvtest_http(t, method, path, body, NULL, &r));
    if (r.status != want) fail_msg("%s %s: status %ld, expected %ld: %s", method, path, r.status, want, r.body);
    json_t *j = srvtest_json(&r);
    srvtest_resp_free(&r);
    assert_non_null(j);
    return j;
}

/* The admin record of one model. */
static json_t *admin_model(const srvtest *t, const char *name) {
    json_t *all = get_json(t, "GET", "/admin/models", NULL, 200), *found = NULL;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(all, "models"), i, m) {
        if (!strcmp(json_string_value(json_object_get(m, "name")), name)) found = json_incref(m);
    }
    json_decref(all);
    if (!found) fail_msg("model %s is not in /admin/models", name);
    return found;
}

static const char *state_of(const srvtest *t, const char *name, char *buf, size_t cap) {
    json_t *m = admin_model(t, name);
    snprintf(buf, cap, "%s", json_string_value(json_object_get(m, "state")));
    json_decref(m);
    return buf;
}

static bool listed(const srvtest *t, const char *id) {
    json_t *j = get_json(t, "GET", "/v1/models", NULL, 200);
    bool found = false;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(j, "data"), i, m) found |= !strcmp(json_string_value(json_object_get(m, "id")), id);
    json_decref(j);
    return found;
}

static void base_config(char *buf, size_t cap, const char *extra_models) {
    snprintf(buf, cap,
             "server:\n  memory_budget: unlimited\n"
             "defaults: {ctx: 64, slots: 1, threads: 1}\n"
             "models:\n"
             "  - name: main\n    path: '%s'\n    preload: true\n"
             "  - name: lazy\n    path: '%s'\n    aliases: [gpt-4o-mini]\n    ttl: 1h\n"
             "  - name: tampered\n    path: '%s'\n    sha256: %064d\n"
             "%s",
             tiny, tiny, tiny, 0, extra_models);
}

typedef struct racer {
    const srvtest *t;
    long status;
} racer;

static void *race(void *arg) {
    racer *r = arg;
    srvtest_resp resp;
    if (srvtest_http(r->t, "POST", "/v1/completions", "{\"model\":\"lazy\",\"prompt\":\"hi\",\"max_tokens\":1}", NULL,
                     &resp))
        r->status = resp.status;
    srvtest_resp_free(&resp);
    return NULL;
}

static void test_models_admin_and_single_flight(void **state) {
    NEED_FIXTURES();
    char text[2048];
    base_config(text, sizeof text, "");
    write_text(cfg_path, text);
    char args[256], st[32];
    snprintf(args, sizeof args, "-c '%s'", cfg_path);
    srvtest t;
    assert_true(srvtest_start_args(&t, args));
    assert_true(listed(&t, "main"));
    assert_true(listed(&t, "lazy"));
    json_t *one = get_json(&t, "GET", "/v1/models/gpt-4o-mini", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(one, "id")), "lazy");
    json_decref(one);
    assert_string_equal(state_of(&t, "main", st, sizeof st), "ready");
    assert_string_equal(state_of(&t, "lazy", st, sizeof st), "available");

    /* 20 concurrent first requests: one load, all answered */
    enum { N = 20 };
    racer r[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        r[i] = (racer){.t = &t};
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += r[i].status == 200;
    }
    json_t *m = admin_model(&t, "lazy");
    printf("%d of %d first requests answered 200; loads: %lld\n", ok, N,
           (long long)json_integer_value(json_object_get(m, "loads")));
    assert_int_equal(ok, N);
    assert_int_equal(json_integer_value(json_object_get(m, "loads")), 1);
    assert_string_equal(json_string_value(json_object_get(m, "state")), "ready");
    assert_true(json_integer_value(json_object_get(json_object_get(m, "memory"), "weights_bytes")) > 0);
    assert_true(json_is_integer(json_object_get(m, "last_used")));
    assert_true(json_is_integer(json_object_get(m, "loaded_at")));
    json_decref(m);

    /* an alias serves the model under its name */
    json_t *c = get_json(&t, "POST", "/v1/completions", "{\"model\":\"gpt-4o-mini\",\"prompt\":\"hi\",\"max_tokens\":1}", 200);
    assert_string_equal(json_string_value(json_object_get(c, "model")), "lazy");
    json_decref(c);
    /* keep_alive is validated */
    c = get_json(&t, "POST", "/v1/completions", "{\"model\":\"lazy\",\"prompt\":\"hi\",\"keep_alive\":\"soon\"}", 400);
    assert_string_equal(json_string_value(json_object_get(json_object_get(c, "error"), "param")), "keep_alive");
    json_decref(c);
    c = get_json(&t, "POST", "/v1/completions",
                 "{\"model\":\"lazy\",\"prompt\":\"hi\",\"max_tokens\":1,\"keep_alive\":\"30m\"}", 200);
    json_decref(c);

    /* admin unload and load */
    c = get_json(&t, "POST", "/admin/models/lazy/unload", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(c, "status")), "unloaded");
    json_decref(c);
    assert_string_equal(state_of(&t, "lazy", st, sizeof st), "available");
    c = get_json(&t, "POST", "/admin/models/lazy/load", NULL, 200);
    assert_string_equal(json_string_value(json_object_get(c, "status")), "ready");
    json_decref(c);
    assert_string_equal(state_of(&t, "lazy", st, sizeof st), "ready");
    json_decref(get_json(&t, "POST", "/admin/models/nope/load", NULL, 404));
    json_decref(get_json(&t, "POST", "/admin/models/lazy/explode", NULL, 404));
    json_decref(get_json(&t, "GET", "/admin/models/lazy/load", NULL, 405));
    /* a checksum that does not match: the model never serves */
    srvtest_resp tr;
    assert_true(srvtest_http(&t, "POST", "/v1/completions", "{\"model\":\"tampered\",\"prompt\":\"hi\"}", NULL, &tr));
    printf("tampered: %ld %s", tr.status, tr.body);
    assert_int_equal(tr.status, 503);
    assert_non_null(strstr(tr.body, "sha256 mismatch"));
    assert_true(tr.retry_after[0] != '\0');
    srvtest_resp_free(&tr);
    json_t *tm = admin_model(&t, "tampered");
    assert_string_equal(json_string_value(json_object_get(tm, "state")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(tm, "error")), "sha256 mismatch"));
    json_decref(tm);
    assert_int_equal(srvtest_stop(&t), 0);
}

static void test_reload(void **state) {
    NEED_FIXTURES();
    char text[4096], extra[512];
    base_config(text, sizeof text, "");
    write_text(cfg_path, text);
    char args[256], st[32];
    snprintf(args, sizeof args, "-c '%s'", cfg_path);
    srvtest t;
    assert_true(srvtest_start_args(&t, args));

    /* valid: a model added, main unchanged (stays loaded, not reloaded) */
    snprintf(extra, sizeof extra, "  - {name: added, path: '%s'}\n", tiny);
    base_config(text, sizeof text, extra);
    write_text(cfg_path, text);
    json_t *j = get_json(&t, "POST", "/admin/reload", NULL, 200);
    printf("reload: %s\n", json_string_value(json_object_get(j, "summary")));
    json_decref(j);
    assert_true(listed(&t, "added"));
    json_t *m = admin_model(&t, "main");
    assert_string_equal(json_string_value(json_object_get(m, "state")), "ready");
    assert_int_equal(json_integer_value(json_object_get(m, "loads")), 1);
    json_decref(m);

    /* invalid: nothing changes, and the answer says where */
    write_text(cfg_path, "server:\n  port: 99999\nmodels:\n  - {name: other, path: /x.gguf}\n");
    j = get_json(&t, "POST", "/admin/reload", NULL, 400);
    json_t *err = json_object_get(j, "error");
    printf("invalid reload: %s\n", json_string_value(json_object_get(err, "message")));
    assert_string_equal(json_string_value(json_object_get(err, "code")), "config_invalid");
    assert_non_null(strstr(json_string_value(json_array_get(json_object_get(err, "errors"), 0)), "hearth.yaml:2:9: server.port"));
    json_decref(j);
    assert_true(listed(&t, "added"));
    assert_false(listed(&t, "other"));

    /* SIGHUP reloads too; a failing preload model makes /ready say so */
    snprintf(extra, sizeof extra, "  - {name: broken, path: '%s/missing.gguf', preload: true}\n", dir);
    base_config(text, sizeof text, extra);
    write_text(cfg_path, text);
    kill(t.pid, SIGHUP);
    bool seen = false;
    for (int i = 0; i < 300 && !seen; i++) {
        seen = listed(&t, "broken");
        if (!seen) usleep(20000);
    }
    assert_true(seen);
    assert_false(listed(&t, "added"));
    for (int i = 0; i < 300 && strcmp(state_of(&t, "broken", st, sizeof st), "failed"); i++) usleep(20000);
    assert_string_equal(st, "failed");
    srvtest_resp r;
    assert_true(srvtest_http(&t, "GET", "/ready", NULL, NULL, &r));
    printf("/ready: %ld %s", r.status, r.body);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "broken"));
    srvtest_resp_free(&r);
    j = get_json(&t, "POST", "/v1/completions", "{\"model\":\"broken\",\"prompt\":\"hi\"}", 503);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "model_failed");
    json_decref(j);
    assert_int_equal(srvtest_stop(&t), 0);
}

static void test_budget_full(void **state) {
    NEED_FIXTURES();
    char text[2048];
    snprintf(text, sizeof text,
             "server: {memory_budget: 2500KiB}\n"
             "defaults: {ctx: 64, slots: 1, threads: 1}\n"
             "models:\n"
             "  - {name: pinned, path: '%s', preload: true}\n"
             "  - {name: second, path: '%s'}\n",
             tiny, tiny);
    write_text(cfg_path, text);
    char args[256];
    snprintf(args, sizeof args, "-c '%s'", cfg_path);
    srvtest t;
    assert_true(srvtest_start_args(&t, args));
    srvtest_resp r;
    assert_true(srvtest_http(&t, "POST", "/v1/completions", "{\"model\":\"second\",\"prompt\":\"hi\"}", NULL, &r));
    printf("second: %ld retry-after '%s' %s", r.status, r.retry_after, r.body);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.retry_after, "5");
    assert_non_null(strstr(r.body, "memory_budget_full"));
    srvtest_resp_free(&r);
    json_t *all = get_json(&t, "GET", "/admin/models", NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(all, "memory"), "budget_bytes")), 2500 * 1024);
    json_decref(all);
    assert_int_equal(srvtest_stop(&t), 0);
}

static void test_env_model_and_startup_errors(void **state) {
    NEED_FIXTURES();
    char args[512];
    srvtest t;
    /* HEARTH_MODEL alone is enough */
    snprintf(args, sizeof args, "--ctx 64 --slots 1 -t 1");
    setenv("HEARTH_MODEL", tiny, 1);
    bool up = srvtest_start_args(&t, args);
    unsetenv("HEARTH_MODEL");
    assert_true(up);
    assert_true(listed(&t, "llama-2-tiny-random"));
    assert_int_equal(srvtest_stop(&t), 0);
    char *out = NULL, *err = NULL;
    int code = run_hearth("serve --port 0", &out, &err);
    printf("no model: %d %s", code, err);
    assert_int_equal(code, 2);
    assert_non_null(strstr(err, "no model configured"));
    free(out);
    free(err);
    write_text(cfg_path, "models:\n  - name: m\n    path: /x.gguf\n    ttl: sometime\n");
    snprintf(args, sizeof args, "serve --port 0 -c '%s'", cfg_path);
    code = run_hearth(args, &out, &err);
    printf("bad config: %d %s", code, err);
    assert_int_equal(code, 2);
    assert_non_null(strstr(err, "hearth.yaml:4:10: models[0].ttl:"));
    free(out);
    free(err);
    code = run_hearth("serve --port 0 -m /x.gguf --slots 0", &out, &err);
    assert_int_equal(code, 2);
    assert_non_null(strstr(err, "flag --slots: models.slots: expected an integer from 1 to 256"));
    free(out);
    free(err);
}

static void test_config_check_cli(void **state) {
    NEED_FIXTURES();
    char text[1024], args[256];
    snprintf(text, sizeof text, "models:\n  - {name: m, path: '%s', aliases: [x]}\n", tiny);
    write_text(cfg_path, text);
    snprintf(args, sizeof args, "config check '%s'", cfg_path);
    char *out = NULL, *err = NULL;
    assert_int_equal(run_hearth(args, &out, &err), 0);
    assert_non_null(strstr(out, "valid"));
    assert_non_null(strstr(out, "  - name: \"m\"\n    aliases: [\"x\"]\n"));
    assert_non_null(strstr(out, "ttl: 10m"));
    free(out);
    free(err);
    write_text(cfg_path, "server:\n  port: -1\nmodels:\n  - {name: m}\n  - {name: m, path: /a, sha256: zz}\n");
    assert_int_equal(run_hearth(args, &out, &err), 1);
    printf("%s", err);
    assert_non_null(strstr(err, "hearth.yaml:2:9: server.port: expected an integer from 0 to 65535, got '-1'"));
    assert_non_null(strstr(err, "hearth.yaml:4:5: models[0]: model 'm' needs a path or a url"));
    assert_non_null(strstr(err, "hearth.yaml:5:33: models[1].sha256: expected 64 hexadecimal digits"));
    assert_non_null(strstr(err, "hearth.yaml:5:12: models[1].name: 'm' is already used by model 'm'"));
    free(out);
    free(err);
    assert_int_equal(run_hearth("config check /nonexistent.yaml", &out, &err), 1);
    assert_non_null(strstr(err, "/nonexistent.yaml: cannot open"));
    free(out);
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_admin_and_single_flight),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_budget_full),
        cmocka_unit_test(test_env_model_and_startup_errors),
        cmocka_unit_test(test_config_check_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
