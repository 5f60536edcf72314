/* Embedding serving benchmark (not a test): C clients each send POST /v1/embeddings with
 * one input at a time (every input unique, so no cache can answer) for a fixed number of
 * requests, then report inputs per second and the p50/p95 latency. Each run tags its
 * texts with a random number, so a server's cache never answers from an earlier run. Works against any
 * OpenAI-compatible server (Hearth, or the reference llama-server --embedding).
 *   embed_serve_bench URL MODEL CLIENTS REQUESTS [WORDS]
 * URL is the server base (http://127.0.0.1:PORT). Build: cmake --build build --target embed_serve_bench */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const words[] = {
    "river", "stone", "cloud", "lamp",  "forest", "window", "garden", "silver", "market", "engine",
    "paper", "music", "winter", "road", "bridge", "candle", "harbor", "letter", "mirror", "orchard",
};

typedef struct shared {
    const char *url, *model;
    int words;
    long requests;
    long next;
    unsigned tag;
    pthread_mutex_t mu;
    double *lat;
    long failures;
} shared;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t sink(char *p, size_t size, size_t n, void *ud) {
    (void)p;
    (void)ud;
    return size * n;
}

static void *client(void *arg) {
    shared *s = arg;
    CURL *c = curl_easy_init();
    char url[512], body[4096];
    snprintf(url, sizeof url, "%s/v1/embeddings", s->url);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        long i = s->next < s->requests ? s->next++ : -1;
        pthread_mutex_unlock(&s->mu);
        if (i < 0) break;
        int o = snprintf(body, sizeof body, "{\"model\":\"%s\",\"input\":\"run %u request %ld:", s->model, s->tag, i);
        for (int w = 0; w < s->words; w++)
            o += snprintf(body + o, sizeof body - (size_t)o, " %s", words[(i * 7 + w * 13 + w * w) % 20]);
        snprintf(body + o, sizeof body - (size_t)o, "\"}");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        double t0 = now_s();
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        double dt = now_s() - t0;
        pthread_mutex_lock(&s->mu);
        if (rc != CURLE_OK || status != 200) s->failures++;
        s->lat[i] = dt;
        pthread_mutex_unlock(&s->mu);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: embed_serve_bench URL MODEL CLIENTS REQUESTS [WORDS]\n");
        return 2;
    }
    shared s = {.url = argv[1], .model = argv[2], .requests = atol(argv[4]), .words = argc > 5 ? atoi(argv[5]) : 8};
    int clients = atoi(argv[3]);
    struct timespec seed;
    clock_gettime(CLOCK_REALTIME, &seed);
    s.tag = (unsigned)(seed.tv_nsec ^ seed.tv_sec) % 100000u;
    if (clients < 1 || s.requests < 1) return 2;
    s.lat = calloc((size_t)s.requests, sizeof *s.lat);
    pthread_mutex_init(&s.mu, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    double t0 = now_s();
    for (int i = 0; i < clients; i++) pthread_create(&th[i], NULL, client, &s);
    for (int i = 0; i < clients; i++) pthread_join(th[i], NULL);
    double secs = now_s() - t0;
    qsort(s.lat, (size_t)s.requests, sizeof *s.lat, cmp);
    printf("%d clients, %ld requests: %.1f inputs/s, p50 %.1f ms, p95 %.1f ms, %ld failed\n", clients, s.requests,
           (double)s.requests / secs, 1e3 * s.lat[s.requests / 2], 1e3 * s.lat[(long)(s.requests * 0.95)], s.failures);
    curl_global_cleanup();
    free(th);
    free(s.lat);
    return s.failures ? 1 : 0;
}
