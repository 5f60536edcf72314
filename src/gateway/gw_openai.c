/* Remote OpenAI-compatible provider over libcurl (see gw_openai.h). One attempt runs a
 * curl multi handle in slices of at most 50 ms so that the first-byte, idle and total
 * timeouts, the request's deadline and the client's hang-up are all noticed in time.
 * Must never put the API key anywhere but the Authorization header of a request to
 * base_url, and never follow a redirect. */
#include "gateway/gw_openai.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "gateway/gw_retry.h"
#include "gateway/gw_sse.h"

#define POLL_MS 50
#define MAX_BODY ((size_t)32 << 20)       /* a whole (non-streamed) reply */
#define MAX_ERROR_BODY ((size_t)64 << 10) /* an error reply; the rest is dropped */
#define NS_PER_MS 1000000ull

struct gw_openai {
    char *name;
    char *base_url;          /* without a trailing '/' */
    char *auth_header;       /* "Authorization: Bearer ..." or NULL; wiped at free */
    gw_alias *models;
    size_t n_models;
    uint32_t connect_ms, first_byte_ms, idle_ms, total_ms;
    int max_attempts;
    size_t max_line;
};

/* Fields of Hearth's API that OpenAI's does not know (it refuses unknown ones). */
static const char *const hearth_only[] = {"top_k", "min_p", "repetition_penalty", "repeat_penalty",
                                          "ignore_eos", "timeout"};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code = CURLE_OK;

static void curl_init(void) { curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT); }

hearth_status gw_openai_global_init(hearth_err *err) {
    pthread_once(&curl_once, curl_init);
    if (curl_init_code != CURLE_OK)
        return err_set(err, HEARTH_ERR_INTERNAL, "libcurl: %s", curl_easy_strerror(curl_init_code));
    return HEARTH_OK;
}

static void wipe_free(char *s) {
    if (!s) return;
    volatile char *v = s;
    while (*v) *v++ = 0;
    mem_free(s);
}

void gw_openai_free(gw_openai *p) {
    if (!p) return;
    mem_free(p->name);
    mem_free(p->base_url);
    wipe_free(p->auth_header);
    for (size_t i = 0; i < p->n_models; i++) {
        mem_free(p->models[i].name);
        mem_free(p->models[i].upstream);
    }
    mem_free(p->models);
    mem_free(p);
}

/* http(s), a host, no user or password, no query or fragment. */
static hearth_status check_url(const char *name, const char *url, hearth_err *err) {
    CURLU *u = curl_url();
    if (!u) return err_set(err, HEARTH_ERR_NOMEM, "provider '%s': out of memory", name);
    hearth_status st = HEARTH_OK;
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL, *query = NULL, *fragment = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
        st = err_set(err, HEARTH_ERR_INVALID, "provider '%s': base_url is not a valid URL", name);
    } else {
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
        curl_url_get(u, CURLUPART_HOST, &host, 0);
        curl_url_get(u, CURLUPART_USER, &user, 0);
        curl_url_get(u, CURLUPART_PASSWORD, &password, 0);
        curl_url_get(u, CURLUPART_QUERY, &query, 0);
        curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
        if (!scheme || (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0))
            st = err_set(err, HEARTH_ERR_INVALID, "provider '%s': base_url must be http:// or https://", name);
        else if (!host || !*host)
            st = err_set(err, HEARTH_ERR_INVALID, "provider '%s': base_url has no host", name);
        else if (user || password)
            st = err_set(err, HEARTH_ERR_INVALID,
                         "provider '%s': base_url must not hold credentials (use api_key_env)", name);
        else if (query || fragment)
            st = err_set(err, HEARTH_ERR_INVALID, "provider '%s': base_url must not have a query or fragment", name);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_free(query);
    curl_free(fragment);
    curl_url_cleanup(u);
    return st;
}

static hearth_status read_key(gw_openai *p, const char *var, hearth_err *err) {
    if (!var) return HEARTH_OK;
    const char *key = getenv(var);
    if (!key || !*key)
        return err_set(err, HEARTH_ERR_INVALID, "provider '%s': environment variable %s (api_key_env) is not set",
                       p->name, var);
    for (const char *c = key; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return err_set(err, HEARTH_ERR_INVALID, "provider '%s': the key in %s holds control characters", p->name,
                           var);
    static const char prefix[] = "Authorization: Bearer ";
    size_t n = strlen(key);
    p->auth_header = mem_alloc(sizeof prefix + n);
    if (!p->auth_header) return err_set(err, HEARTH_ERR_NOMEM, "provider '%s': out of memory", p->name);
    memcpy(p->auth_header, prefix, sizeof prefix - 1);
    memcpy(p->auth_header + sizeof prefix - 1, key, n + 1);
    return HEARTH_OK;
}

hearth_status gw_openai_new(const gw_provider_config *cfg, gw_openai **out, hearth_err *err) {
    *out = NULL;
    hearth_status st = gw_openai_global_init(err);
    if (st != HEARTH_OK) return st;
    st = check_url(cfg->name, cfg->base_url, err);
    if (st != HEARTH_OK) return st;
    gw_openai *p = mem_calloc(1, sizeof *p);
    if (!p) return err_set(err, HEARTH_ERR_NOMEM, "provider '%s': out of memory", cfg->name);
    p->name = mem_strdup(cfg->name);
    size_t ulen = strlen(cfg->base_url);
    while (ulen > 0 && cfg->base_url[ulen - 1] == '/') ulen--;
    p->base_url = mem_strndup(cfg->base_url, ulen);
    p->models = cfg->n_models ? mem_calloc(cfg->n_models, sizeof *p->models) : NULL;
    if (!p->name || !p->base_url || (cfg->n_models && !p->models)) {
        gw_openai_free(p);
        return err_set(err, HEARTH_ERR_NOMEM, "provider '%s': out of memory", cfg->name);
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        p->models[i].name = mem_strdup(cfg->models[i].name);
        p->models[i].upstream = mem_strdup(cfg->models[i].upstream);
        p->n_models++;
        if (!p->models[i].name || !p->models[i].upstream) {
            gw_openai_free(p);
            return err_set(err, HEARTH_ERR_NOMEM, "provider '%s': out of memory", cfg->name);
        }
    }
    p->connect_ms = cfg->connect_timeout_ms;
    p->first_byte_ms = cfg->first_byte_timeout_ms;
    p->idle_ms = cfg->idle_timeout_ms;
    p->total_ms = cfg->total_timeout_ms;
    p->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 1;
    p->max_line = cfg->max_line;
    st = read_key(p, cfg->api_key_env, err);
    if (st != HEARTH_OK) {
        gw_openai_free(p);
        return st;
    }
    *out = p;
    return HEARTH_OK;
}

const char *gw_openai_name(const gw_openai *p) { return p->name; }
int gw_openai_max_attempts(const gw_openai *p) { return p->max_attempts; }

static const char *upstream_model(const gw_openai *p, const char *model) {
    for (size_t i = 0; i < p->n_models; i++)
        if (!strcmp(p->models[i].name, model)) return p->models[i].upstream;
    return model;
}

/* ---- one attempt ---------------------------------------------------------------------- */

typedef struct attempt {
    gw_openai *p;
    const gw_request *req;
    const gw_sink *sink;
    gw_sse sse;
    long status;
    bool responded;          /* a status line arrived */
    int64_t retry_after_ms;
    uint64_t start_ns, last_data_ns;
    char *buf;               /* whole reply, or an error body */
    size_t len, cap;
    bool done_marker;        /* "data: [DONE]" seen */
    bool aborted;            /* a callback or the loop stopped the transfer */
    gw_outcome_kind abort_kind;
    char abort_msg[200];
} attempt;

static void stop(attempt *a, gw_outcome_kind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void stop(attempt *a, gw_outcome_kind kind, const char *fmt, ...) {
    if (a->aborted) return;
    a->aborted = true;
    a->abort_kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->abort_msg, sizeof a->abort_msg, fmt, ap);
    va_end(ap);
}

static bool buf_add(attempt *a, const char *data, size_t n, size_t max) {
    if (a->len + n > max) return false;
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4096;
        while (cap < a->len + n + 1) cap *= 2;
        if (cap > max + 1) cap = max + 1;
        char *nb = mem_realloc(a->buf, cap);
        if (!nb) return false;
        a->buf = nb;
        a->cap = cap;
    }
    memcpy(a->buf + a->len, data, n);
    a->len += n;
    a->buf[a->len] = '\0';
    return true;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud) {
    attempt *a = ud;
    size_t len = size * n;
    a->last_data_ns = clock_mono_ns();
    if (len >= 5 && !strncmp(data, "HTTP/", 5)) {
        const char *sp = memchr(data, ' ', len);
        long status = 0;
        for (const char *c = sp ? sp + 1 : data + len; c < data + len && *c >= '0' && *c <= '9'; c++)
            status = status * 10 + (*c - '0');
        a->status = status;
        a->responded = true;
        a->retry_after_ms = -1;
        return len;
    }
    static const char ra[] = "retry-after:";
    if (len > sizeof ra - 1 && !strncasecmp(data, ra, sizeof ra - 1)) {
        char v[80];
        size_t vl = len - (sizeof ra - 1);
        if (vl >= sizeof v) vl = sizeof v - 1;
        memcpy(v, data + sizeof ra - 1, vl);
        v[vl] = '\0';
        int64_t ms;
        if (gw_retry_after_parse(v, clock_unix_s(), &ms)) a->retry_after_ms = ms;
    }
    return len;
}

/* One SSE event of a streamed 2xx answer. */
static bool on_sse_event(void *ud, const char *type, const char *data, size_t len) {
    attempt *a = ud;
    (void)type;
    if (a->done_marker) return true; /* anything after [DONE] is ignored */
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        a->done_marker = true;
        return true;
    }
    json_error_t je;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(v)) {
        json_decref(v);
        stop(a, GW_OUT_BROKEN, "provider '%s': a streamed event is not a JSON object", a->p->name);
        return false;
    }
    json_t *e = json_object_get(v, "error");
    if (e) {
        const char *m = json_string_value(json_object_get(e, "message"));
        stop(a, GW_OUT_BROKEN, "provider '%s': error event in the stream: %.120s", a->p->name, m ? m : "(no message)");
        json_decref(v);
        return false;
    }
    json_decref(v);
    if (!a->sink->event(a->sink->ud, data, len)) {
        stop(a, GW_OUT_CANCELLED, "the client went away");
        return false;
    }
    return true;
}

static size_t on_body(char *data, size_t size, size_t n, void *ud) {
    attempt *a = ud;
    size_t len = size * n;
    a->last_data_ns = clock_mono_ns();
    if (a->status >= 200 && a->status < 300) {
        if (a->req->stream) {
            hearth_err e = {0};
            hearth_status st = gw_sse_feed(&a->sse, data, len, &e);
            if (st == HEARTH_ERR_CANCELLED) return 0; /* on_sse_event said why */
            if (st != HEARTH_OK) {
                stop(a, GW_OUT_BROKEN, "provider '%s': %s", a->p->name, e.msg);
                return 0;
            }
            return len;
        }
        if (!buf_add(a, data, len, MAX_BODY)) {
            stop(a, GW_OUT_BROKEN, "provider '%s': the reply is larger than %zu bytes", a->p->name, MAX_BODY);
            return 0;
        }
        return len;
    }
    if (a->len < MAX_ERROR_BODY) buf_add(a, data, a->len + len > MAX_ERROR_BODY ? MAX_ERROR_BODY - a->len : len, MAX_ERROR_BODY);
    return len;
}

static char *request_body(const gw_openai *p, const char *model, const gw_request *req) {
    json_t *b = json_deep_copy(req->body);
    if (!json_is_object(b)) {
        json_decref(b);
        return NULL;
    }
    for (size_t i = 0; i < sizeof hearth_only / sizeof hearth_only[0]; i++) json_object_del(b, hearth_only[i]);
    char *s = NULL;
    if (json_object_set_new(b, "model", json_string(upstream_model(p, model))) == 0 &&
        json_object_set_new(b, "stream", json_boolean(req->stream)) == 0)
        s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

static CURL *make_handle(attempt *a, const char *url, const char *body, struct curl_slist *headers, char *errbuf) {
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    const gw_openai *p = a->p;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* the key goes to base_url's host, not a proxy */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "hearth/" HEARTH_VERSION);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (p->connect_ms) curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)p->connect_ms);
    return h;
}

/* Runs the transfer; returns curl's result (or CURLE_OK when the loop stopped it, with
 * a->aborted set). */
static CURLcode run(attempt *a, CURL *h) {
    CURLM *m = curl_multi_init();
    if (!m) return CURLE_OUT_OF_MEMORY;
    CURLcode rc = CURLE_OK;
    curl_multi_add_handle(m, h);
    const gw_openai *p = a->p;
    for (;;) {
        int running = 0;
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            rc = CURLE_FAILED_INIT;
            break;
        }
        if (!running || a->aborted) {
            int left;
            CURLMsg *msg;
            while ((msg = curl_multi_info_read(m, &left)))
                if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
            break;
        }
        uint64_t now = clock_mono_ns();
        if (a->sink->gone && a->sink->gone(a->sink->ud)) {
            stop(a, GW_OUT_CANCELLED, "the client went away");
        } else if (a->req->deadline_ns && now >= a->req->deadline_ns) {
            stop(a, GW_OUT_DEADLINE, "the request's deadline passed");
        } else if (!a->responded && p->first_byte_ms && now - a->start_ns >= p->first_byte_ms * NS_PER_MS) {
            stop(a, GW_OUT_TIMEOUT, "provider '%s': no response within %u ms", p->name, p->first_byte_ms);
        } else if (a->responded && p->idle_ms && now - a->last_data_ns >= p->idle_ms * NS_PER_MS) {
            stop(a, GW_OUT_BROKEN, "provider '%s': the response stalled for %u ms", p->name, p->idle_ms);
        } else if (p->total_ms && now - a->start_ns >= p->total_ms * NS_PER_MS) {
            stop(a, a->responded ? GW_OUT_BROKEN : GW_OUT_TIMEOUT, "provider '%s': no complete answer within %u ms",
                 p->name, p->total_ms);
        }
        if (a->aborted) break;
        curl_multi_poll(m, NULL, 0, POLL_MS, NULL);
    }
    curl_multi_remove_handle(m, h);
    curl_multi_cleanup(m);
    return rc;
}

static void set_error_body(attempt *a, gw_outcome *out) {
    if (a->len == 0) return;
    json_t *v = json_loadb(a->buf, a->len, 0, NULL);
    bool is_json = json_is_object(v);
    json_decref(v);
    if (is_json) {
        out->error_body = a->buf;
        out->error_len = a->len;
        a->buf = NULL;
        a->len = a->cap = 0;
    }
}

/* The outcome of a transfer that ran to its end with HTTP status a->status. */
static void classify_status(attempt *a, gw_outcome *out) {
    const gw_openai *p = a->p;
    long s = a->status;
    out->http_status = (int)s;
    out->retry_after_ms = a->retry_after_ms;
    if (s >= 200 && s < 300) {
        if (a->req->stream) {
            bool clean = gw_sse_finish(&a->sse);
            if (!a->done_marker || !clean) {
                out->kind = GW_OUT_BROKEN;
                snprintf(out->msg, sizeof out->msg, "provider '%s': the stream ended before [DONE]", p->name);
            }
            return;
        }
        json_t *v = json_loadb(a->buf ? a->buf : "", a->len, JSON_REJECT_DUPLICATES, NULL);
        bool ok = json_is_object(v) && !json_object_get(v, "error");
        json_decref(v);
        if (!ok) {
            out->kind = GW_OUT_BROKEN;
            snprintf(out->msg, sizeof out->msg, "provider '%s': the reply is not a completion object", p->name);
        } else if (!a->sink->body(a->sink->ud, a->buf, a->len)) {
            out->kind = GW_OUT_CANCELLED;
            snprintf(out->msg, sizeof out->msg, "the client went away");
        }
        return;
    }
    if (s >= 300 && s < 400) {
        out->kind = GW_OUT_SERVER;
        snprintf(out->msg, sizeof out->msg, "provider '%s' answered a redirect (%ld); redirects are refused", p->name,
                 s);
        return;
    }
    if (s == 429) out->kind = GW_OUT_RATE_LIMITED;
    else if (s >= 400 && s < 500 && s != 408) out->kind = GW_OUT_CLIENT;
    else out->kind = GW_OUT_SERVER;
    set_error_body(a, out);
    snprintf(out->msg, sizeof out->msg, "provider '%s' answered %ld", p->name, s);
}

static void classify_curl(attempt *a, CURLcode rc, const char *errbuf, gw_outcome *out) {
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    out->http_status = a->responded ? (int)a->status : 0;
    if (!a->responded) {
        out->kind = rc == CURLE_OPERATION_TIMEDOUT ? GW_OUT_TIMEOUT : GW_OUT_CONNECT;
        snprintf(out->msg, sizeof out->msg, "provider '%s': %.200s", a->p->name, why);
    } else {
        out->kind = GW_OUT_BROKEN;
        snprintf(out->msg, sizeof out->msg, "provider '%s': the response broke off: %.180s", a->p->name, why);
    }
}

void gw_openai_call(gw_openai *p, const char *model, const gw_request *req, const gw_sink *sink, gw_outcome *out) {
    gw_outcome_reset(out);
    attempt a = {.p = p, .req = req, .sink = sink, .retry_after_ms = -1};
    gw_sse_init(&a.sse, p->max_line, 0, on_sse_event, &a);
    char url[2048];
    char errbuf[CURL_ERROR_SIZE] = "";
    char *body = request_body(p, model, req);
    struct curl_slist *headers = NULL, *h2;
    const char *fixed[] = {"Content-Type: application/json",
                           req->stream ? "Accept: text/event-stream" : "Accept: application/json", "Expect:"};
    bool ok = body && (size_t)snprintf(url, sizeof url, "%s/%s", p->base_url,
                                       req->api == GW_API_CHAT ? "chat/completions" : "completions") < sizeof url;
    for (size_t i = 0; ok && i < sizeof fixed / sizeof fixed[0]; i++) {
        h2 = curl_slist_append(headers, fixed[i]);
        ok = h2 != NULL;
        if (ok) headers = h2;
    }
    if (ok && p->auth_header) {
        h2 = curl_slist_append(headers, p->auth_header);
        ok = h2 != NULL;
        if (ok) headers = h2;
    }
    CURL *h = ok ? make_handle(&a, url, body, headers, errbuf) : NULL;
    if (!h) {
        out->kind = GW_OUT_SERVER;
        snprintf(out->msg, sizeof out->msg, "provider '%s': out of memory preparing the request", p->name);
    } else {
        a.start_ns = a.last_data_ns = clock_mono_ns();
        CURLcode rc = run(&a, h);
        if (a.aborted) {
            out->kind = a.abort_kind;
            out->http_status = a.responded ? (int)a.status : 0;
            out->retry_after_ms = a.retry_after_ms;
            snprintf(out->msg, sizeof out->msg, "%s", a.abort_msg);
        } else if (rc != CURLE_OK) {
            classify_curl(&a, rc, errbuf, out);
        } else {
            classify_status(&a, out);
        }
        curl_easy_cleanup(h);
    }
    curl_slist_free_all(headers);
    free(body);
    mem_free(a.buf);
    gw_sse_free(&a.sse);
}
