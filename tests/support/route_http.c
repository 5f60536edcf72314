/* The gateway server tests' libcurl client (route_http.h). Never used by the server. */
#include "route_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_body.h"
#include "srvtest.h"
#include "testutil.h"

void route_resp_free(route_resp *r) {
    if (r) free(r->body);
    free(r);
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud) {
    route_resp *r = ud;
    size_t k = sz * n;
    srvtest_header_value(p, k, "X-Hearth-Target", r->target, sizeof r->target);
    return k;
}

void route_http(int port, const char *method, const char *path, const char *body, const char *request_id,
                route_resp *r) {
    size_t abort_after = r->abort_after;
    free(r->body);
    memset(r, 0, sizeof *r);
    r->abort_after = abort_after;
    CURL *h = curl_easy_init();
    assert_non_null(h);
    http_body sink;
    http_body_collect(h, &sink, &r->body, &r->len, abort_after);
    char url[256], idh[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (request_id) {
        snprintf(idh, sizeof idh, "X-Request-Id: %s", request_id);
        hdr = curl_slist_append(hdr, idh);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK && !(abort_after && rc == CURLE_WRITE_ERROR))
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
}

const char *route_target_field(const route_resp *r, const char *key, char *out, size_t cap) {
    out[0] = '\0';
    char pat[32];
    snprintf(pat, sizeof pat, "%s=", key);
    const char *p = strstr(r->target, pat);
    if (!p) return out;
    p += strlen(pat);
    size_t n = strcspn(p, ";");
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}
