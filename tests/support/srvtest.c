/* `hearth serve` child-process helpers for tests (see srvtest.h). */
#define _GNU_SOURCE
#include "srvtest.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_body.h"
#include "testutil.h"

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int port_from_log(const char *path) {
    char *log = read_file(path, NULL);
    int port = 0;
    const char *p = log ? strstr(log, "\"msg\":\"listening\"") : NULL;
    if (p && (p = strstr(p, "\"port\":"))) port = atoi(p + 7);
    free(log);
    return port;
}

bool srvtest_start(srvtest *t, const char *model, const char *extra_args) {
    char args[3072];
    snprintf(args, sizeof args, "-m '%s' %s", model, extra_args ? extra_args : "");
    return srvtest_start_args(t, args);
}

bool srvtest_start_args(srvtest *t, const char *args) {
    memset(t, 0, sizeof *t);
    snprintf(t->log_path, sizeof t->log_path, "/tmp/hearth-srvtest-XXXXXX");
    int fd = mkstemp(t->log_path);
    if (fd < 0) return false;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s serve --port 0 %s", HEARTH_BIN, args);
    t->pid = fork();
    if (t->pid == 0) {
        /* a test that fails before srvtest_stop must not leave its server running */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fd, 2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fd);
    for (int i = 0; i < 600; i++) {
        int st;
        if (waitpid(t->pid, &st, WNOHANG) == t->pid) {
            char *log = read_file(t->log_path, NULL);
            printf("hearth serve exited early: %s\n", log ? log : "");
            free(log);
            t->pid = 0;
            return false;
        }
        if (!t->port) t->port = port_from_log(t->log_path);
        if (t->port) {
            srvtest_resp r;
            if (srvtest_http(t, "GET", "/ready", NULL, NULL, &r) && r.status == 200) {
                srvtest_resp_free(&r);
                return true;
            }
            srvtest_resp_free(&r);
        }
        sleep_ms(100);
    }
    printf("hearth serve did not become ready\n");
    srvtest_stop(t);
    return false;
}

int srvtest_stop(srvtest *t) {
    int code = -1;
    if (t->pid > 0) {
        kill(t->pid, SIGTERM);
        int st;
        if (waitpid(t->pid, &st, 0) == t->pid && WIFEXITED(st)) code = WEXITSTATUS(st);
        t->pid = 0;
    }
    if (getenv("SRVTEST_KEEP_LOG")) {
        char *log = read_file(t->log_path, NULL);
        fprintf(stderr, "%s", log ? log : "");
        free(log);
    }
    unlink(t->log_path);
    return code;
}

void srvtest_header_value(const char *p, size_t len, const char *name, char *out, size_t cap) {
    size_t n = strlen(name);
    if (len <= n || strncasecmp(p, name, n) || p[n] != ':') return;
    size_t from = n + 1, to = len;
    while (from < to && p[from] == ' ') from++;
    while (to > from && (p[to - 1] == '\r' || p[to - 1] == '\n')) to--;
    snprintf(out, cap, "%.*s", (int)(to - from), p + from);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    srvtest_resp *r = ud;
    size_t k = size * n;
    srvtest_header_value(p, k, "Retry-After", r->retry_after, sizeof r->retry_after);
    srvtest_header_value(p, k, "Content-Type", r->content_type, sizeof r->content_type);
    return k;
}

static bool perform(const srvtest *t, const char *method, const char *path, const char *body, const char *ctype,
                    size_t max_bytes, srvtest_resp *r) {
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    if (!c) return false;
    http_body sink;
    http_body_collect(c, &sink, &r->body, &r->len, max_bytes);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", t->port, path);
    struct curl_slist *h = NULL;
    char ct[128];
    if (body || ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype ? ctype : "application/json");
        h = curl_slist_append(h, ct);
    }
    /* Small bodies go at once; large ones wait for "100 Continue" as real clients do, so
       a server refusing them early (413) is heard instead of a reset mid-upload. */
    if (!body || strlen(body) < ((size_t)1 << 20)) h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc == CURLE_OK || (max_bytes && rc == CURLE_WRITE_ERROR);
}

bool srvtest_http(const srvtest *t, const char *method, const char *path, const char *body, const char *content_type,
                  srvtest_resp *r) {
    return perform(t, method, path, body, content_type, 0, r);
}

bool srvtest_http_abort_after(const srvtest *t, const char *path, const char *body, size_t max_bytes, srvtest_resp *r) {
    return perform(t, "POST", path, body, NULL, max_bytes, r);
}

void srvtest_resp_free(srvtest_resp *r) {
    free(r->body);
    r->body = NULL;
}

json_t *srvtest_sse(const char *body, bool *done) {
    json_t *arr = json_array();
    *done = false;
    const char *p = body;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        if (!end || strncmp(p, "data: ", 6) != 0) {
            json_decref(arr);
            return NULL;
        }
        const char *data = p + 6;
        size_t n = (size_t)(end - data);
        if (n == 6 && !strncmp(data, "[DONE]", 6)) {
            *done = true;
        } else {
            json_t *v = json_loadb(data, n, JSON_ALLOW_NUL, NULL); /* model text may hold U+0000 */
            if (!v || *done) {
                json_decref(v);
                json_decref(arr);
                return NULL;
            }
            json_array_append_new(arr, v);
        }
        p = end + 2;
    }
    return arr;
}

json_t *srvtest_json(const srvtest_resp *r) { return json_loadb(r->body, r->len, JSON_ALLOW_NUL, NULL); }

json_t *srvtest_post_ok(const srvtest *t, const char *path, const char *body, bool stream) {
    srvtest_resp r;
    assert_true(srvtest_http(t, "POST", path, body, NULL, &r));
    if (r.status != 200) fail_msg("status %ld: %s", r.status, r.body ? r.body : "");
    json_t *j = NULL;
    if (stream) {
        bool done = false;
        j = srvtest_sse(r.body, &done);
        if (!j || !done) fail_msg("bad stream: %s", r.body ? r.body : "");
    } else if (!(j = srvtest_json(&r))) {
        fail_msg("not JSON: %s", r.body ? r.body : "");
    }
    srvtest_resp_free(&r);
    return j;
}
