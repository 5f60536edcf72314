/* Model downloads against a small HTTP server run by this test on loopback: a normal
 * download, one interrupted mid-body then resumed with a Range request, a server that
 * ignores Range, a wrong checksum, a server error, a redirect, hf:// addresses through
 * HF_ENDPOINT, names that try to leave the store, the `hearth pull` command, and a
 * configured model with a url pulled on its first use. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#include "config/config.h"
#include "fleet/fleet.h"

#define BLOB_SIZE (300 * 1024)

typedef struct http_server {
    int fd, port;
    pthread_t th;
    _Atomic bool stop;
    unsigned char *blob;          /* BLOB_SIZE bytes of deterministic data */
    char *tiny;                   /* a real model, for the pulled-on-first-use test */
    size_t tiny_len;
    _Atomic int cut_requests;     /* requests to /cut.bin so far */
    char last_range[64];          /* the Range header of the last request, or "" */
    _Atomic int requests;
} http_server;

static http_server hs;
static char dir[64], store[128];
static char blob_sha[65];

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        c += w;
        n -= (size_t)w;
    }
}

/* Serves body[off..len) as 200 (or 206 when ranged), sending at most cut bytes of it. */
static void send_body(int fd, const void *body, size_t len, long off, bool honour_range, size_t cut) {
    char head[512];
    size_t start = honour_range && off > 0 && (size_t)off < len ? (size_t)off : 0;
    int n = start ? snprintf(head, sizeof head,
                             "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\nContent-Range: bytes %zu-%zu/%zu\r\n"
                             "Connection: close\r\n\r\n",
                             len - start, start, len - 1, len)
                  : snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", len);
    send_all(fd, head, (size_t)n);
    size_t amount = len - start;
    send_all(fd, (const char *)body + start, cut < amount ? cut : amount);
}

static void handle(http_server *s, int fd) {
    char req[4096] = "";
    size_t got = 0;
    while (got < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t n = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (n <= 0) return;
        got += (size_t)n;
        req[got] = '\0';
    }
    char path[1024] = "";
    sscanf(req, "GET %1023s", path);
    long off = 0;
    const char *range = strstr(req, "Range: bytes=");
    s->last_range[0] = '\0';
    if (range) {
        off = atol(range + 13);
        snprintf(s->last_range, sizeof s->last_range, "bytes=%ld-", off);
    }
    atomic_fetch_add(&s->requests, 1);
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (!strcmp(path, "/blob.bin") || !strcmp(base, "hub.bin")) {
        send_body(fd, s->blob, BLOB_SIZE, off, true, SIZE_MAX);
    } else if (!strcmp(path, "/cut.bin")) { /* the first transfer breaks after 100 KiB */
        bool first = atomic_fetch_add(&s->cut_requests, 1) == 0;
        send_body(fd, s->blob, BLOB_SIZE, off, true, first ? 100 * 1024 : SIZE_MAX);
    } else if (!strcmp(path, "/norange.bin")) {
        send_body(fd, s->blob, BLOB_SIZE, off, false, SIZE_MAX);
    } else if (!strcmp(path, "/tiny.gguf")) {
        send_body(fd, s->tiny, s->tiny_len, off, true, SIZE_MAX);
    } else if (!strcmp(path, "/moved.bin")) {
        const char *r = "HTTP/1.1 302 Found\r\nLocation: /blob.bin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        send_all(fd, r, strlen(r));
    } else if (!strcmp(path, "/error.bin")) {
        const char *r = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops\n";
        send_all(fd, r, strlen(r));
    } else {
        const char *r = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        send_all(fd, r, strlen(r));
    }
}

static void *serve(void *arg) {
    http_server *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) continue;
        handle(s, c);
        shutdown(c, SHUT_RDWR);
        close(c);
    }
    return NULL;
}

static int setup(void **state) {
    snprintf(dir, sizeof dir, "/tmp/hearth-pull-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(store, sizeof store, "%s/store", dir);
    hs.blob = malloc(BLOB_SIZE);
    uint32_t x = 12345;
    for (size_t i = 0; i < BLOB_SIZE; i++) hs.blob[i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 24);
    char path[128];
    snprintf(path, sizeof path, "%s/blob.ref", dir);
    FILE *f = fopen(path, "wb");
    fwrite(hs.blob, 1, BLOB_SIZE, f);
    fclose(f);
    hearth_err err;
    if (fleet_sha256_file(path, blob_sha, &err) != HEARTH_OK) return -1;
    if (fixtures_available()) hs.tiny = read_file(fixture_path("models/llama-2-tiny-random.gguf"), &hs.tiny_len);
    hs.fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(hs.fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(hs.fd, 16) != 0 ||
        getsockname(hs.fd, (struct sockaddr *)&a, &al) != 0)
        return -1;
    hs.port = ntohs(a.sin_port);
    return pthread_create(&hs.th, NULL, serve, &hs) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    atomic_store(&hs.stop, true);
    pthread_join(hs.th, NULL);
    close(hs.fd);
    free(hs.blob);
    free(hs.tiny);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void url_of(char *buf, size_t cap, const char *path) { snprintf(buf, cap, "http://127.0.0.1:%d%s", hs.port, path); }

static bool exists(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", store, name);
    return access(p, F_OK) == 0;
}

static long size_of(const char *name) {
    char p[256];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", store, name);
    return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

static hearth_status pull(const char *path, const char *name, const char *sha, char *out_sha, hearth_err *err) {
    char url[256], out[512];
    url_of(url, sizeof url, path);
    fleet_pull_opts o = {.sha256 = sha, .name = name, .connect_timeout_s = 5};
    return fleet_pull(url, store, &o, out, sizeof out, out_sha, err);
}

static void test_normal_and_redirect(void **state) {
    char sha[65];
    hearth_err err = {0};
    assert_int_equal(pull("/blob.bin", NULL, blob_sha, sha, &err), HEARTH_OK);
    assert_string_equal(sha, blob_sha);
    assert_int_equal(size_of("blob.bin"), BLOB_SIZE);
    assert_false(exists("blob.bin.part"));
    assert_int_equal(pull("/moved.bin", "moved.bin", NULL, sha, &err), HEARTH_OK);
    assert_string_equal(sha, blob_sha); /* followed to /blob.bin */
    assert_int_equal(size_of("moved.bin"), BLOB_SIZE);
}

static void test_interrupted_then_resumed(void **state) {
    char sha[65];
    hearth_err err = {0};
    hearth_status st = pull("/cut.bin", NULL, blob_sha, sha, &err);
    printf("first: %s\n", err.msg);
    assert_int_equal(st, HEARTH_ERR_IO);
    assert_non_null(strstr(err.msg, "run the same pull again to resume"));
    assert_false(exists("cut.bin"));
    long partial = size_of("cut.bin.part");
    printf("partial file: %ld of %d bytes\n", partial, BLOB_SIZE);
    assert_true(partial > 0 && partial < BLOB_SIZE);
    assert_int_equal(pull("/cut.bin", NULL, blob_sha, sha, &err), HEARTH_OK);
    char want[64];
    snprintf(want, sizeof want, "bytes=%ld-", partial);
    printf("second request's Range: %s\n", hs.last_range);
    assert_string_equal(hs.last_range, want);
    assert_string_equal(sha, blob_sha);
    assert_int_equal(size_of("cut.bin"), BLOB_SIZE);
    assert_false(exists("cut.bin.part"));
}

static void test_server_ignores_range(void **state) {
    char part[256];
    snprintf(part, sizeof part, "%s/norange.bin.part", store);
    FILE *f = fopen(part, "wb");
    fputs("stale bytes that must not survive", f);
    fclose(f);
    char sha[65];
    hearth_err err = {0};
    hearth_status st = pull("/norange.bin", NULL, blob_sha, sha, &err);
    if (st != HEARTH_OK) fail_msg("pull: %s", err.msg);
    assert_string_equal(sha, blob_sha);
    assert_int_equal(size_of("norange.bin"), BLOB_SIZE);
}

static void test_failures_leave_nothing(void **state) {
    char sha[65], wrong[65];
    hearth_err err = {0};
    memcpy(wrong, blob_sha, 65);
    wrong[63] = wrong[63] == 'a' ? 'b' : 'a';
    hearth_status st = pull("/blob.bin", "checked.bin", wrong, sha, &err);
    printf("wrong checksum: %s\n", err.msg);
    assert_int_equal(st, HEARTH_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "sha256 mismatch"));
    assert_false(exists("checked.bin"));
    assert_false(exists("checked.bin.part"));
    st = pull("/error.bin", NULL, NULL, sha, &err);
    printf("server error: %s\n", err.msg);
    assert_int_equal(st, HEARTH_ERR_IO);
    assert_non_null(strstr(err.msg, "HTTP 500"));
    assert_false(exists("error.bin"));
    assert_false(exists("error.bin.part"));
    st = pull("/absent.bin", NULL, NULL, sha, &err);
    assert_non_null(strstr(err.msg, "HTTP 404"));
    assert_false(exists("absent.bin.part"));
    /* nothing listens on port 1: a connection error with nothing received keeps nothing */
    fleet_pull_opts o = {.connect_timeout_s = 2};
    char out[512];
    st = fleet_pull("http://127.0.0.1:1/x.bin", store, &o, out, sizeof out, NULL, &err);
    assert_int_equal(st, HEARTH_ERR_IO);
    assert_false(exists("x.bin.part"));
}

static void test_names_stay_in_store(void **state) {
    static const char *const bad_names[] = {"../evil.bin", "sub/evil.bin", ".hidden", "", "a\nb", "..",
                                            "evil.bin/..", "/etc/passwd"};
    hearth_err err = {0};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        hearth_status st = pull("/blob.bin", bad_names[i], NULL, NULL, &err);
        if (st != HEARTH_ERR_INVALID) fail_msg("name '%s' accepted (status %d)", bad_names[i], st);
    }
    static const char *const bad_paths[] = {"/%2e%2e%2fevil.bin", "/", "/dir/..", "/.."};
    for (size_t i = 0; i < sizeof bad_paths / sizeof bad_paths[0]; i++) {
        hearth_status st = pull(bad_paths[i], NULL, NULL, NULL, &err);
        if (st != HEARTH_ERR_INVALID) fail_msg("url path '%s' accepted (status %d)", bad_paths[i], st);
    }
    char evil[128];
    snprintf(evil, sizeof evil, "%s/evil.bin", dir);
    assert_int_not_equal(access(evil, F_OK), 0);
    static const char *const bad_hf[] = {"hf://o/../x.bin", "hf://o/r/../x.bin", "hf://o/r", "hf://o/r@/x.bin",
                                         "hf://o/r/a//x.bin", "hf://.o/r/x.bin", "ftp://h/x.bin"};
    for (size_t i = 0; i < sizeof bad_hf / sizeof bad_hf[0]; i++) {
        char out[512];
        fleet_pull_opts o = {0};
        if (fleet_pull(bad_hf[i], store, &o, out, sizeof out, NULL, &err) != HEARTH_ERR_INVALID)
            fail_msg("address '%s' accepted", bad_hf[i]);
    }
}

static void test_hf_addresses(void **state) {
    char base[64], out[4096];
    hearth_err err = {0};
    url_of(base, sizeof base, "");
    setenv("HF_ENDPOINT", base, 1);
    assert_int_equal(fleet_url_resolve("hf://Owner/Repo@v1.2/sub/hub.bin", out, sizeof out, &err), HEARTH_OK);
    char want[256];
    snprintf(want, sizeof want, "%s/Owner/Repo/resolve/v1.2/sub/hub.bin", base);
    assert_string_equal(out, want);
    fleet_pull_opts o = {.sha256 = blob_sha};
    char sha[65];
    assert_int_equal(fleet_pull("hf://Owner/Repo/hub.bin", store, &o, out, sizeof out, sha, &err), HEARTH_OK);
    assert_string_equal(sha, blob_sha);
    assert_int_equal(size_of("hub.bin"), BLOB_SIZE);
    unsetenv("HF_ENDPOINT");
    assert_int_equal(fleet_url_resolve("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf", out,
                                       sizeof out, &err),
                     HEARTH_OK);
    assert_string_equal(out, "https://huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF/resolve/main/"
                             "qwen2.5-0.5b-instruct-q4_k_m.gguf");
}

static void test_pull_command(void **state) {
    char args[512], *out = NULL, *err = NULL;
    char cli_store[128];
    snprintf(cli_store, sizeof cli_store, "%s/cli-store", dir);
    setenv("HEARTH_MODELS", cli_store, 1);
    snprintf(args, sizeof args, "pull http://127.0.0.1:%d/blob.bin --name cli.bin --sha256 %s", hs.port, blob_sha);
    int code = run_hearth(args, &out, &err);
    printf("pull: %d\n%s%s", code, out, err);
    assert_int_equal(code, 0);
    assert_non_null(strstr(out, "cli-store/cli.bin"));
    assert_non_null(strstr(out, "(verified)"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "pull http://127.0.0.1:%d/blob.bin --name ../up.bin", hs.port);
    code = run_hearth(args, &out, &err);
    assert_int_equal(code, 2);
    assert_non_null(strstr(err, "not a valid file name"));
    free(out);
    free(err);
    snprintf(args, sizeof args, "pull http://127.0.0.1:%d/error.bin", hs.port);
    code = run_hearth(args, &out, &err);
    assert_int_equal(code, 1);
    assert_non_null(strstr(err, "HTTP 500"));
    free(out);
    free(err);
    unsetenv("HEARTH_MODELS");
}

static void test_config_url_pulled_on_first_use(void **state) {
    if (!hs.tiny) skip();
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "server: {model_store: '%s/fleet-store'}\n"
             "models:\n  - {name: remote, url: 'http://127.0.0.1:%d/tiny.gguf', ctx: 64, slots: 1, threads: 1}\n",
             dir, hs.port);
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    unsetenv("HEARTH_MODELS");
    assert_int_equal(cfg_build_text(yaml, strlen(yaml), "t.yaml", false, NULL, 0, &c, &errs, &err), HEARTH_OK);
    fleet *f = NULL;
    assert_int_equal(fleet_new(c, NULL, NULL, &f, &err), HEARTH_OK);
    cfg_free(c);
    int before = atomic_load(&hs.requests);
    fleet_acquire_opts o = {.keep_alive_s = -2};
    fleet_lease *l = NULL;
    double ra;
    hearth_status st = fleet_acquire(f, "remote", &o, &l, &ra, &err);
    if (st != HEARTH_OK) fail_msg("acquire: %s", err.msg);
    fleet_release(l);
    char path[256];
    snprintf(path, sizeof path, "%s/fleet-store/tiny.gguf", dir);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(atomic_load(&hs.requests), before + 1);
    /* the next load reads the stored file: no second download */
    bool pending;
    assert_int_equal(fleet_unload(f, "remote", &pending, &err), HEARTH_OK);
    assert_int_equal(fleet_acquire(f, "remote", &o, &l, &ra, &err), HEARTH_OK);
    fleet_release(l);
    assert_int_equal(atomic_load(&hs.requests), before + 1);
    fleet_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normal_and_redirect),
        cmocka_unit_test(test_interrupted_then_resumed),
        cmocka_unit_test(test_server_ignores_range),
        cmocka_unit_test(test_failures_leave_nothing),
        cmocka_unit_test(test_names_stay_in_store),
        cmocka_unit_test(test_hf_addresses),
        cmocka_unit_test(test_pull_command),
        cmocka_unit_test(test_config_url_pulled_on_first_use),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
