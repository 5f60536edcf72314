/* API keys and LoRA adapters, in process over HTTP: a key that may use only the id
 * "base:ad" gets that adapter (by model name, or by a "lora" field naming it), and a 403
 * when the "lora" field would run the base model or another adapter under that id, or
 * would replace the adapter of a route's local target; /v1/models lists what it may use;
 * embeddings refuse an adapter id rather than answer with the base model. */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "http_body.h"
#include "server/srv.h"
#include "testutil.h"

#define MODEL "models/llama-spm-f16.gguf"
#define ADAPTER "adapters/lora-llama-spm-r8.gguf"
#define NARROW_KEY "hk-narrow-lora-0123456789"

typedef struct resp {
    long status;
    char *body; /* malloc'd */
    size_t len;
} resp;

/* POST /v1/{path} with body, or GET /v1/models when body is NULL; r->body is the
 * caller's to free. */
static void post_to(int port, const char *path, const char *body, resp *r) {
    memset(r, 0, sizeof *r);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    http_body sink;
    http_body_collect(h, &sink, &r->body, &r->len, 0);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/%s", port, body ? path : "models");
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Authorization: Bearer " NARROW_KEY);
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) fail_msg("%s: %s", body ? body : "GET /v1/models", curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
}

static void post(int port, const char *body, resp *r) { post_to(port, "completions", body, r); }

static void expect(int port, const char *model_name, const char *lora, long want) {
    char body[512];
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"prompt\":\"Once\",\"max_tokens\":2,\"temperature\":0%s%s}", model_name,
             lora ? ",\"lora\":" : "", lora ? lora : "");
    resp r;
    post(port, body, &r);
    if (r.status != want) fail_msg("%s: status %ld, expected %ld: %.300s", body, r.status, want, r.body);
    if (want == 403 && !strstr(r.body, "\"permission_error\"")) fail_msg("%s: not a permission_error: %s", body, r.body);
    free(r.body);
}

static void test_adapter_only_key(void **state) {
    (void)state;
    if (!fixtures_available()) {
        printf("fixtures absent: LoRA key test skipped\n");
        skip();
    }
    unsigned char d[32];
    unsigned int dn = 0;
    EVP_Digest(NARROW_KEY, strlen(NARROW_KEY), d, &dn, EVP_sha256(), NULL);
    char hex[65], yaml[2048], model_path[512], adapter_path[512];
    snprintf(model_path, sizeof model_path, "%s", fixture_path(MODEL)); /* fixture_path reuses its buffer */
    snprintf(adapter_path, sizeof adapter_path, "%s", fixture_path(ADAPTER));
    for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", d[i]);
    snprintf(yaml, sizeof yaml,
             "server: {port: 0, shutdown_grace: 1s}\n"
             "keys:\n  - {name: narrow, sha256: %s, models: [\"base:ad\", support]}\n"
             "defaults: {threads: 1, slots: 2, ctx: 128}\n"
             "models:\n  - name: base\n    path: '%s'\n    preload: true\n"
             "    adapters: [{name: ad, path: '%s'}, {name: other, path: '%s', scale: 0.5}]\n"
             "routes:\n  - {name: support, targets: [\"local:base:ad\"]}\n",
             hex, model_path, adapter_path, adapter_path);
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    if (cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err) != HEARTH_OK)
        fail_msg("configuration refused: %s\n%s", err.msg, yaml);
    srv_config sc = {.config = c};
    obs_config_default(&sc.obs);
    srv *s = NULL;
    if (srv_new(&sc, &s, &err) != HEARTH_OK) fail_msg("srv_new: %s", err.msg);
    int port = srv_port(s);

    /* /v1/models lists what the key may use: the adapter id and the route, not the base */
    resp r;
    post(port, NULL, &r);
    if (r.status != 200 || !strstr(r.body, "\"id\":\"base:ad\"") || !strstr(r.body, "\"id\":\"support\"") ||
        strstr(r.body, "\"id\":\"base\"") || strstr(r.body, "\"id\":\"base:other\""))
        fail_msg("GET /v1/models with a key for [base:ad, support]: %ld %.600s", r.status, r.body);
    free(r.body);

    expect(port, "base:ad", NULL, 200);
    expect(port, "base:ad", "[{\"name\":\"ad\",\"scale\":0.5}]", 200);
    expect(port, "base", NULL, 403);
    expect(port, "base:other", NULL, 403);
    expect(port, "base:ad", "[]", 403);                   /* would run the base model */
    expect(port, "base:ad", "[{\"name\":\"other\"}]", 403); /* would run another adapter */
    expect(port, "base:ad", "null", 200);
    /* a route the key may use: its target, not whatever a "lora" field would pick */
    expect(port, "support", NULL, 200);
    expect(port, "support", "[]", 403);
    expect(port, "support", "[{\"name\":\"other\"}]", 403);

    /* embeddings run without adapters: an adapter id is refused, not served by the base */
    post_to(port, "embeddings", "{\"model\":\"base:ad\",\"input\":\"Once\"}", &r);
    if (r.status != 400 || !strstr(r.body, "model_not_supported"))
        fail_msg("embeddings on an adapter id: %ld %.300s", r.status, r.body);
    free(r.body);
    srv_free(s);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_adapter_only_key)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
