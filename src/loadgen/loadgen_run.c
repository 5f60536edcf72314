/* The load generator's driver: one thread, one libcurl multi handle, exactly C streamed
 * requests in flight until N have ended (each bounded by the request timeout), each
 * timed as its bytes arrive. Never retries: a rejection is a result to count. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/checked.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "loadgen/loadgen_internal.h"
#include "loadgen/loadgen_sse.h"

static const char *const kind_names[LOADGEN_N_KINDS] = {
    "ok", "rejected", "connect", "timeout", "http_4xx", "http_5xx", "malformed_sse", "stream_error", "incomplete",
    "transport",
};

const char *loadgen_kind_name(loadgen_kind k) { return k < LOADGEN_N_KINDS ? kind_names[k] : "unknown"; }

void loadgen_config_default(loadgen_config *cfg) {
    *cfg = (loadgen_config){
        .url = "http://127.0.0.1:8080",
        .concurrency = 1,
        .requests = 1,
        .prompt_words = 32,
        .max_tokens = 32,
        .seed = 1,
        .temperature = 0,
        .timeout_s = 600,
    };
}

/* One request in flight. */
typedef struct lg_flight {
    CURL *h;
    struct curl_slist *headers;
    char *body;
    loadgen_sse sse;
    loadgen_request *rec;
    double t0, t_last;   /* monotonic: sent, last content chunk */
    double *gaps;        /* between content chunks */
    size_t n_gaps, cap_gaps;
    bool retry_after;
    bool sse_type;       /* Content-Type: text/event-stream */
    bool oom;
    char head[160];      /* the start of a non-200 body */
    size_t head_len;
    char errbuf[CURL_ERROR_SIZE];
} lg_flight;

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
    lg_flight *f = ud;
    size_t n = size * nmemb;
    if (n >= 5 && !strncmp(ptr, "HTTP/", 5)) { /* a new response (after 100 Continue) */
        f->retry_after = f->sse_type = false;
    } else if (n > 12 && !strncasecmp(ptr, "retry-after:", 12)) {
        f->retry_after = true;
    } else if (n > 13 && !strncasecmp(ptr, "content-type:", 13)) {
        const char *v = ptr + 13;
        while (v < ptr + n && (*v == ' ' || *v == '\t')) v++;
        f->sse_type = (size_t)(ptr + n - v) >= 17 && !strncasecmp(v, "text/event-stream", 17);
    }
    return n;
}

static bool push_gap(lg_flight *f, double gap) {
    if (f->n_gaps == f->cap_gaps) {
        size_t cap = f->cap_gaps ? f->cap_gaps * 2 : 64;
        double *g = mem_realloc_array(f->gaps, cap, sizeof *g);
        if (!g) return false;
        f->gaps = g;
        f->cap_gaps = cap;
    }
    f->gaps[f->n_gaps++] = gap;
    return true;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
    lg_flight *f = ud;
    size_t n = size * nmemb;
    double now = clock_mono_s();
    long status = 0;
    curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        size_t room = sizeof f->head - 1 - f->head_len, take = n < room ? n : room;
        memcpy(f->head + f->head_len, ptr, take);
        f->head_len += take;
        f->head[f->head_len] = '\0';
        return n;
    }
    if (!f->sse_type && !f->sse.malformed) {
        f->sse.malformed = true;
        snprintf(f->sse.why, sizeof f->sse.why, "the 200 response is not text/event-stream");
    }
    long before = f->sse.content_chunks;
    bool ok = !f->sse.malformed && loadgen_sse_feed(&f->sse, ptr, n);
    for (long i = before; i < f->sse.content_chunks; i++) {
        if (f->rec->ttft_s < 0) f->rec->ttft_s = now - f->t0;
        else if (!push_gap(f, now - f->t_last)) f->oom = ok = false;
        f->t_last = now;
        f->rec->last_s = now - f->t0;
    }
    return ok ? n : 0; /* 0 stops a broken stream */
}

typedef struct lg_run {
    const loadgen_config *cfg;
    loadgen_result *res;
    CURLM *multi;
    double t_run0;
} lg_run;

static json_t *request_json(const lg_run *run, size_t index, char *prompt) {
    const loadgen_config *cfg = run->cfg;
    json_t *body = json_pack("{s:s, s:i, s:b, s:{s:b}, s:b, s:f, s:I}", "model", run->res->model, "max_tokens",
                             cfg->max_tokens, "stream", 1, "stream_options", "include_usage", 1, "ignore_eos", 1,
                             "temperature", cfg->temperature, "seed", (json_int_t)((cfg->seed + index) & 0x7fffffff));
    if (!body) return NULL;
    json_t *p = json_string(prompt);
    int rc = -1;
    if (p && cfg->chat) rc = json_object_set_new(body, "messages", json_pack("[{s:s, s:o}]", "role", "user", "content", p));
    else if (p) rc = json_object_set_new(body, "prompt", p);
    if (rc) {
        json_decref(body);
        return NULL;
    }
    return body;
}

static char *dump(json_t *v) {
    size_t n = json_dumpb(v, NULL, 0, JSON_COMPACT);
    char *s = n ? mem_alloc(n + 1) : NULL;
    if (s) {
        json_dumpb(v, s, n, JSON_COMPACT);
        s[n] = '\0';
    }
    return s;
}

static void flight_free(lg_run *run, lg_flight *f) {
    if (!f) return;
    if (f->h) {
        curl_multi_remove_handle(run->multi, f->h);
        curl_easy_cleanup(f->h);
    }
    curl_slist_free_all(f->headers);
    mem_free(f->body);
    mem_free(f->gaps);
    loadgen_sse_free(&f->sse);
    mem_free(f);
}

static hearth_status start(lg_run *run, size_t index, hearth_err *err) {
    const loadgen_config *cfg = run->cfg;
    lg_flight *f = mem_calloc(1, sizeof *f);
    if (!f) return err_set(err, HEARTH_ERR_NOMEM, "out of memory starting request %zu", index);
    loadgen_sse_init(&f->sse);
    f->rec = &run->res->req[index];
    *f->rec = (loadgen_request){.ttft_s = -1};
    char *prompt = loadgen_prompt(cfg->seed, index, cfg->prompt_words);
    json_t *body = prompt ? request_json(run, index, prompt) : NULL;
    mem_free(prompt);
    f->body = body ? dump(body) : NULL;
    json_decref(body);
    f->h = curl_easy_init();
    struct curl_slist *h1 = curl_slist_append(NULL, "Content-Type: application/json");
    f->headers = h1 ? curl_slist_append(h1, "Expect:") : NULL;
    if (!f->headers) curl_slist_free_all(h1);
    if (!f->body || !f->h || !f->headers) {
        flight_free(run, f);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory starting request %zu", index);
    }
    loadgen_easy_setup(f->h, run->res->endpoint, cfg->timeout_s);
    curl_easy_setopt(f->h, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(f->h, CURLOPT_POSTFIELDS, f->body);
    curl_easy_setopt(f->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(f->h, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(f->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(f->h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->h, CURLOPT_ERRORBUFFER, f->errbuf);
    curl_easy_setopt(f->h, CURLOPT_PRIVATE, f);
    f->t0 = clock_mono_s();
    if (run->t_run0 == 0) run->t_run0 = f->t0;
    f->rec->start_s = f->t0 - run->t_run0;
    if (curl_multi_add_handle(run->multi, f->h) != CURLM_OK) {
        flight_free(run, f);
        return err_set(err, HEARTH_ERR_NOMEM, "libcurl refused request %zu", index);
    }
    return HEARTH_OK;
}

static loadgen_kind classify(lg_flight *f, CURLcode rc, long status, char *msg, size_t cap) {
    const char *curl_msg = f->errbuf[0] ? f->errbuf : curl_easy_strerror(rc);
    if (f->oom) {
        snprintf(msg, cap, "out of memory recording chunk times");
        return LOADGEN_TRANSPORT;
    }
    if (f->sse.stream_error || f->sse.malformed) {
        snprintf(msg, cap, "%s", f->sse.why);
        return f->sse.stream_error ? LOADGEN_STREAM_ERROR : LOADGEN_MALFORMED;
    }
    if (rc != CURLE_OK) {
        snprintf(msg, cap, "%s", curl_msg);
        if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) return LOADGEN_CONNECT;
        if (rc == CURLE_OPERATION_TIMEDOUT) return LOADGEN_TIMEOUT;
        return status == 200 ? LOADGEN_INCOMPLETE : LOADGEN_TRANSPORT;
    }
    if (status != 200) {
        while (f->head_len > 0 && (f->head[f->head_len - 1] == '\n' || f->head[f->head_len - 1] == '\r'))
            f->head[--f->head_len] = '\0';
        snprintf(msg, cap, "HTTP %ld: %s", status, f->head);
        if (status == 429 || (status == 503 && f->retry_after)) return LOADGEN_REJECTED;
        return status >= 400 && status < 500 ? LOADGEN_HTTP_4XX : LOADGEN_HTTP_5XX;
    }
    if (!f->sse.done) {
        snprintf(msg, cap, "the stream ended without data: [DONE]");
        return LOADGEN_INCOMPLETE;
    }
    msg[0] = '\0';
    return LOADGEN_OK;
}

static hearth_status finish(lg_run *run, lg_flight *f, CURLcode rc, hearth_err *err) {
    loadgen_result *res = run->res;
    loadgen_request *q = f->rec;
    curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &q->status);
    q->end_s = clock_mono_s() - run->t_run0;
    char msg[sizeof res->sample[0]];
    q->kind = classify(f, rc, q->status, msg, sizeof msg);
    q->chunks = f->sse.content_chunks;
    q->tokens = f->sse.usage_tokens >= 0 ? f->sse.usage_tokens : q->chunks;
    res->count[q->kind]++;
    if (!res->sample[q->kind][0]) snprintf(res->sample[q->kind], sizeof res->sample[0], "%s", msg);
    hearth_status st = HEARTH_OK;
    if (q->kind == LOADGEN_OK && f->n_gaps > 0) {
        size_t n;
        double *all = ck_add(res->n_itl, f->n_gaps, &n) ? mem_realloc_array(res->itl_s, n, sizeof *all) : NULL;
        if (!all) {
            st = err_set(err, HEARTH_ERR_NOMEM, "out of memory recording inter-token gaps");
        } else {
            memcpy(all + res->n_itl, f->gaps, f->n_gaps * sizeof *all);
            res->itl_s = all;
            res->n_itl = n;
        }
    }
    flight_free(run, f);
    return st;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static hearth_status check_config(const loadgen_config *cfg, hearth_err *err) {
    if (cfg->concurrency < 1) return err_set(err, HEARTH_ERR_INVALID, "concurrency must be at least 1");
    if (cfg->requests < 1) return err_set(err, HEARTH_ERR_INVALID, "requests must be at least 1");
    if (cfg->prompt_words < 1) return err_set(err, HEARTH_ERR_INVALID, "prompt words must be at least 1");
    if (cfg->max_tokens < 1) return err_set(err, HEARTH_ERR_INVALID, "max tokens must be at least 1");
    if (!(cfg->timeout_s > 0)) return err_set(err, HEARTH_ERR_INVALID, "the timeout must be positive");
    return HEARTH_OK;
}

/* Keeps min(C, not yet started) requests in flight until all have ended. */
static hearth_status drive(lg_run *run, hearth_err *err) {
    size_t n = (size_t)run->cfg->requests, started = 0, ended = 0, in_flight = 0;
    size_t c = (size_t)run->cfg->concurrency;
    hearth_status st = HEARTH_OK;
    while (ended < n) {
        while (!st && in_flight < c && started < n) {
            st = start(run, started++, err);
            if (!st) in_flight++;
        }
        if (st && in_flight == 0) break;
        int running = 0;
        if (curl_multi_perform(run->multi, &running) != CURLM_OK && !st)
            st = err_set(err, HEARTH_ERR_INTERNAL, "libcurl multi interface failed");
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(run->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            lg_flight *f = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
            CURLcode rc = m->data.result; /* m is invalid once the handle is removed */
            hearth_status fs = finish(run, f, rc, err);
            if (!st) st = fs;
            in_flight--;
            ended++;
        }
        if (in_flight > 0) curl_multi_poll(run->multi, NULL, 0, 100, NULL);
    }
    run->res->duration_s = clock_mono_s() - run->t_run0;
    return st;
}

hearth_status loadgen_run(const loadgen_config *cfg, loadgen_result **out, hearth_err *err) {
    *out = NULL;
    hearth_status st = check_config(cfg, err);
    if (st) return st;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) return err_set(err, HEARTH_ERR_INTERNAL, "libcurl failed to initialise");
    loadgen_target t;
    if ((st = loadgen_target_check(cfg, &t, err))) return st;
    loadgen_result *res = mem_calloc(1, sizeof *res);
    if (res) res->req = mem_calloc((size_t)cfg->requests, sizeof *res->req);
    if (!res || !res->req) {
        loadgen_result_free(res);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory for %ld request records", cfg->requests);
    }
    res->n_req = (size_t)cfg->requests;
    snprintf(res->endpoint, sizeof res->endpoint, "%s", t.endpoint);
    if ((st = loadgen_target_model(cfg, &t, res->model, sizeof res->model, err))) {
        loadgen_result_free(res);
        return st;
    }
    lg_run run = {.cfg = cfg, .res = res, .multi = curl_multi_init()};
    if (!run.multi) {
        loadgen_result_free(res);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory creating the libcurl multi handle");
    }
    curl_multi_setopt(run.multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)cfg->concurrency);
    st = drive(&run, err);
    curl_multi_cleanup(run.multi);
    if (st) {
        loadgen_result_free(res);
        return st;
    }
    *out = res;
    return HEARTH_OK;
}

void loadgen_result_free(loadgen_result *r) {
    if (!r) return;
    mem_free(r->req);
    mem_free(r->itl_s);
    mem_free(r);
}
