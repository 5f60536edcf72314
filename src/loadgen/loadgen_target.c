/* The load generator's target: checks that the URL names this machine over plain http,
 * builds the endpoint, and asks the server for its model list before any load is sent.
 * Never connects anywhere but a loopback address. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "base/mem.h"
#include "loadgen/loadgen_internal.h"

static bool loopback_host(const char *host) {
    if (!strcasecmp(host, "localhost") || !strcmp(host, "[::1]")) return true;
    struct in_addr a;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

static hearth_status url_part(CURLU *u, CURLUPart part, char *dst, size_t cap, const char *url, hearth_err *err) {
    char *v = NULL;
    CURLUcode rc = curl_url_get(u, part, &v, 0);
    if (rc == CURLUE_NO_PORT || rc == CURLUE_NO_QUERY || rc == CURLUE_NO_FRAGMENT || rc == CURLUE_NO_USER) {
        dst[0] = '\0';
        return HEARTH_OK;
    }
    if (rc != CURLUE_OK) return err_set(err, HEARTH_ERR_INVALID, "--url %s: %s", url, curl_url_strerror(rc));
    int n = snprintf(dst, cap, "%s", v);
    curl_free(v);
    if (n < 0 || (size_t)n >= cap) return err_set(err, HEARTH_ERR_INVALID, "--url %s is too long", url);
    return HEARTH_OK;
}

hearth_status loadgen_target_check(const loadgen_config *cfg, loadgen_target *t, hearth_err *err) {
    const char *url = cfg->url ? cfg->url : "";
    CURLU *u = curl_url();
    if (!u) return err_set(err, HEARTH_ERR_NOMEM, "out of memory parsing --url");
    char scheme[16], host[256], port[16], path[256], query[8], user[8];
    hearth_status st = HEARTH_OK;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK) st = err_set(err, HEARTH_ERR_INVALID, "--url '%s': %s", url, curl_url_strerror(rc));
    if (!st) st = url_part(u, CURLUPART_SCHEME, scheme, sizeof scheme, url, err);
    if (!st) st = url_part(u, CURLUPART_HOST, host, sizeof host, url, err);
    if (!st) st = url_part(u, CURLUPART_PORT, port, sizeof port, url, err);
    if (!st) st = url_part(u, CURLUPART_PATH, path, sizeof path, url, err);
    if (!st) st = url_part(u, CURLUPART_QUERY, query, sizeof query, url, err);
    if (!st) st = url_part(u, CURLUPART_USER, user, sizeof user, url, err);
    curl_url_cleanup(u);
    if (st) return st;
    if (strcmp(scheme, "http"))
        return err_set(err, HEARTH_ERR_INVALID, "--url %s: only http:// is supported (a server on this machine)", url);
    if (!loopback_host(host))
        return err_set(err, HEARTH_ERR_INVALID,
                       "--url %s: the host must be loopback (localhost, 127.x.x.x or [::1]), got %s", url, host);
    if (query[0] || user[0])
        return err_set(err, HEARTH_ERR_INVALID, "--url %s: give the server's base URL, without query or user", url);
    size_t plen = strlen(path);
    while (plen > 0 && path[plen - 1] == '/') path[--plen] = '\0';
    bool has_v1 = plen >= 3 && !strcmp(path + plen - 3, "/v1");
    int n = snprintf(t->base, sizeof t->base, "http://%s%s%s%s%s", host, port[0] ? ":" : "", port, path,
                     has_v1 ? "" : "/v1");
    if (n < 0 || (size_t)n >= sizeof t->base) return err_set(err, HEARTH_ERR_INVALID, "--url %s is too long", url);
    snprintf(t->endpoint, sizeof t->endpoint, "%s%s", t->base, cfg->chat ? "/chat/completions" : "/completions");
    return HEARTH_OK;
}

void loadgen_easy_setup(CURL *h, const char *url, double timeout_s) {
    long ms = timeout_s * 1000 < 1 ? 1 : (long)(timeout_s * 1000);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms < 10000 ? ms : 10000L);
}

typedef struct capped_buf {
    char *data;
    size_t len, cap;
} capped_buf;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud) {
    capped_buf *b = ud;
    size_t n = size * nmemb;
    if (n > b->cap - b->len) return 0; /* larger than a model list has any reason to be */
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

hearth_status loadgen_target_model(const loadgen_config *cfg, const loadgen_target *t, char *model, size_t cap,
                                   hearth_err *err) {
    char url[sizeof t->base + 16];
    snprintf(url, sizeof url, "%s/models", t->base);
    capped_buf b = {.data = mem_alloc(1 << 20), .cap = 1 << 20};
    CURL *h = curl_easy_init();
    if (!b.data || !h) {
        mem_free(b.data);
        curl_easy_cleanup(h);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory asking %s", url);
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    loadgen_easy_setup(h, url, cfg->timeout_s < 10 ? cfg->timeout_s : 10);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    hearth_status st = HEARTH_OK;
    if (rc != CURLE_OK) {
        st = err_set(err, HEARTH_ERR_IO, "cannot reach %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (cfg->model) {
        snprintf(model, cap, "%s", cfg->model);
    } else {
        json_t *root = status == 200 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
        json_t *id = json_object_get(json_array_get(json_object_get(root, "data"), 0), "id");
        if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) >= cap)
            st = err_set(err, HEARTH_ERR_FORMAT, "%s answered %ld without a model id; pass --model NAME", url, status);
        else
            snprintf(model, cap, "%s", json_string_value(id));
        json_decref(root);
    }
    mem_free(b.data);
    return st;
}
