/* libmicrohttpd glue: the daemon (thread per connection), request bodies collected
 * under a size cap, early refusals before a body is read (431 header count, 403 Host on
 * a loopback bind, CORS preflight, 401/403 API key, 404, 405, 429 key limits, 413, 415),
 * header-read and idle timeouts, replies
 * and SSE bodies queued, one JSON log line per request, and the graceful stop. The only
 * file that knows libmicrohttpd; it never interprets a request body itself. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "server/srv_gateway.h"
#include "server/srv_embed.h"
#include "server/srv_internal.h"
#include "server/srv_json.h"
#include "server/srv_model.h"
#include "server/srv_watch.h"

#define STREAM_BLOCK 4096
#define CORS_MAX_AGE "600"
#define SRV_AUTO_RETRY_MAX_S 60 /* Retry-After at or past this: X-Should-Retry: false */
/* libmicrohttpd answers headers that overflow a connection's memory pool with its own HTML
 * 431; the pool is max_header plus this (touched only when used), so that this file sees
 * and refuses nearly all oversized headers itself, with a JSON 431. */
#define HEADER_POOL_EXTRA ((size_t)1 << 20)

typedef struct conn {
    srv_route route;
    bool method_ok;
    const char *allow;
    bool replied;     /* a response is queued; ignore any further body */
    bool too_large;
    bool must_close;  /* the request's framing is ambiguous: close after the answer */
    srv_buf body;
    uint64_t start_ns;
    int status;
    bool stream;
    int64_t prompt_tokens, completion_tokens;
    const char *error_code;
    char method[16];
    char path[160];
    char model[CFG_NAME_MAX + 1];
    char target[96];
    char request_id[OBS_REQUEST_ID_MAX + 1];
    obs_trace trace;
    srv_key *key;     /* the caller's API key (a reference), or NULL */
    bool admitted;    /* counted in flight against key's limits */
    bool preflight;   /* a CORS preflight answer */
    char cors_origin[256]; /* a listed Origin, echoed in Access-Control-Allow-Origin; "" none */
} conn;

void srv_log(const srv *s, const char *level, json_t *fields) {
    if (!fields) return;
    if (!s->cfg.log) {
        json_decref(fields);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    json_t *line = json_pack("{s:s, s:s}", "time", when, "level", level);
    if (line && json_object_update(line, fields) == 0) {
        char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (text) s->cfg.log(s->cfg.log_ud, text);
        free(text);
    }
    json_decref(line);
    json_decref(fields);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    srv_log(cls, "warn", json_pack("{s:s, s:o}", "msg", "http", "detail", srv_json_text(msg, n)));
}

/* ---- replies ----------------------------------------------------------------------- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    ssize_t n = srv_stream_read(cls, buf, max);
    return n > 0 ? n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls) { srv_stream_free(cls); }

typedef struct reader_ctx {
    ssize_t (*read)(void *reader, char *buf, size_t cap);
    void (*done)(void *reader);
    void *reader;
} reader_ctx;

static ssize_t reader_read(void *cls, uint64_t pos, char *buf, size_t max) {
    reader_ctx *r = cls;
    ssize_t n = r->read(r->reader, buf, max);
    return n > 0 ? n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void reader_free(void *cls) {
    reader_ctx *r = cls;
    r->done(r->reader);
    mem_free(r);
}

static enum MHD_Result queue(struct MHD_Connection *mc, conn *c, srv_reply *r) {
    struct MHD_Response *resp;
    if (r->raw) {
        resp = MHD_create_response_from_buffer_with_free_callback(r->raw_len, r->raw, mem_free);
        if (!resp) {
            mem_free(r->raw);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", r->content_type);
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        if (!strncmp(r->content_type, "text/html", 9))
            MHD_add_response_header(resp, "Content-Security-Policy",
                                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'");
    } else if (r->reader) {
        reader_ctx *rc = mem_calloc(1, sizeof *rc);
        if (rc) *rc = (reader_ctx){.read = r->read, .done = r->done, .reader = r->reader};
        resp = rc ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, reader_read, rc, reader_free) : NULL;
        if (!resp) {
            if (rc) mem_free(rc);
            r->done(r->reader);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        c->stream = true;
    } else if (r->status == 204) {
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
    } else if (r->stream) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_reader, r->stream, stream_free);
        if (!resp) {
            srv_stream_free(r->stream);
            return MHD_NO;
        }
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        c->stream = true;
    } else {
        srv_buf text = {.max = (size_t)1 << 31};
        bool ok = r->body && srv_buf_add_json(&text, r->body) && srv_buf_add(&text, "\n", 1);
        json_decref(r->body);
        if (!ok) {
            srv_buf_free(&text);
            r->status = 500;
            static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                      "\"param\":null,\"code\":null}}\n";
            resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        } else {
            resp = MHD_create_response_from_buffer_with_free_callback(text.len, text.data, mem_free);
        }
        if (!resp) return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", "application/json");
    }
    if (r->retry_after_s > 0) {
        char ra[24];
        snprintf(ra, sizeof ra, "%d", r->retry_after_s);
        MHD_add_response_header(resp, "Retry-After", ra);
        /* The official SDKs retry 429 and 5xx by themselves after sleeping whatever
         * Retry-After says (openai-node 5+ without any cap): past a minute the caller is
         * told at once instead of hanging in a retry. */
        if (r->retry_after_s >= SRV_AUTO_RETRY_MAX_S) MHD_add_response_header(resp, "X-Should-Retry", "false");
    }
    if (r->allow) MHD_add_response_header(resp, "Allow", r->allow);
    if (c->must_close) MHD_add_response_header(resp, "Connection", "close");
    if (r->target_header[0]) MHD_add_response_header(resp, "X-Hearth-Target", r->target_header);
    memcpy(c->target, r->target, sizeof c->target);
    if (r->status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    if (c->cors_origin[0]) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", c->cors_origin);
        MHD_add_response_header(resp, "Vary", "Origin");
        MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After, X-Should-Retry");
    }
    if (c->preflight) {
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id");
        MHD_add_response_header(resp, "Access-Control-Max-Age", CORS_MAX_AGE);
    }
    MHD_add_response_header(resp, "X-Request-Id", c->request_id);
    c->status = r->status;
    c->error_code = r->error_code;
    c->replied = true;
    c->prompt_tokens = r->prompt_tokens;
    c->completion_tokens = r->completion_tokens;
    memcpy(c->model, r->model, sizeof c->model);
    if (c->admitted && !c->stream) { /* a whole reply is done work: its slot frees now, not once it is sent */
        srv_key_done(c->key, (c->prompt_tokens > 0 ? c->prompt_tokens : 0) +
                                 (c->completion_tokens > 0 ? c->completion_tokens : 0));
        c->admitted = false;
    }
    enum MHD_Result res = MHD_queue_response(mc, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return res;
}

static enum MHD_Result queue_error(struct MHD_Connection *mc, conn *c, const srv_error *e, const char *allow) {
    srv_reply r = {0};
    srv_reply_error(&r, e);
    r.allow = allow;
    return queue(mc, c, &r);
}

/* ---- requests ---------------------------------------------------------------------- */

static bool media_type_is(const char *ct, const char *type) {
    size_t n = strlen(type);
    return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* JSON bodies, and curl's default for -d (form-urlencoded), whose body is parsed as JSON
 * too: `curl -d '{...}'` should just work. Anything else is refused with 415. */
static bool json_content_type(const char *ct) {
    while (*ct == ' ') ct++;
    return media_type_is(ct, "application/json") || media_type_is(ct, "application/x-www-form-urlencoded");
}

/* Request smuggling: a body whose length two parsers could read differently
 * (Transfer-Encoding with Content-Length, several Content-Length values that differ, or
 * one that is not plain digits) is refused, and the connection closed after the answer
 * so that nothing hidden in the body is read as a request. */
typedef struct framing {
    int n_length, n_encoding;
    const char *length;
    bool length_bad;
} framing;

static enum MHD_Result see_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    framing *f = cls;
    if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) f->n_encoding++;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0) return MHD_YES;
    value = value ? value : "";
    if (!value[0] || strspn(value, "0123456789") != strlen(value) || (f->length && strcmp(f->length, value) != 0))
        f->length_bad = true;
    f->length = value;
    f->n_length++;
    return MHD_YES;
}

static bool framing_ambiguous(struct MHD_Connection *mc, srv_error *e) {
    framing f = {0};
    MHD_get_connection_values(mc, MHD_HEADER_KIND, see_framing, &f);
    const char *why = f.n_length > 0 && f.n_encoding > 0 ? "A request may not carry both Transfer-Encoding and Content-Length"
                      : f.length_bad                      ? "Content-Length must be one decimal number"
                      : f.n_encoding > 1                  ? "A request may carry one Transfer-Encoding header"
                                                          : NULL;
    if (why) srv_fail(e, 400, "invalid_request_error", "ambiguous_framing", NULL, "%s", why);
    return why != NULL;
}

static const char *header(struct MHD_Connection *mc, const char *name) {
    return MHD_lookup_connection_value(mc, MHD_HEADER_KIND, name);
}

static enum MHD_Result add_header_size(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* "K: V\r\n" */
    return MHD_YES;
}

/* Refusals that come before routing: too many or too large headers, a foreign Host on a loopback
 * bind (DNS rebinding), and CORS preflights. True when a reply was queued (*res). */
static bool guard(srv *s, struct MHD_Connection *mc, conn *c, const char *method, const char *url,
                  enum MHD_Result *res) {
    srv_error e;
    cfg_limits lim;
    srv_policy_limits(s->policy, &lim);
    size_t bytes = strlen(method) + strlen(url) + 12;
    MHD_get_connection_values(mc, MHD_HEADER_KIND | MHD_GET_ARGUMENT_KIND, add_header_size, &bytes);
    if (bytes > (size_t)s->max_header) {
        srv_fail(&e, 431, "invalid_request_error", "request_header_fields_too_large", NULL,
                 "The request line and headers are larger than %lld bytes", (long long)s->max_header);
        return *res = queue_error(mc, c, &e, NULL), true;
    }
    int n_headers = MHD_get_connection_values(mc, MHD_HEADER_KIND, NULL, NULL);
    if (n_headers > lim.headers) {
        srv_fail(&e, 431, "invalid_request_error", "too_many_headers", NULL,
                 "The request has %d header lines; this server accepts at most %lld", n_headers, (long long)lim.headers);
        return *res = queue_error(mc, c, &e, NULL), true;
    }
    if (s->loopback && !srv_host_header_loopback(header(mc, MHD_HTTP_HEADER_HOST))) {
        obs_auth_failure(s->obs, "host");
        srv_fail(&e, 403, "permission_error", "host_not_allowed", NULL,
                 "This server listens on a loopback address and answers only requests for localhost, 127.0.0.1 or "
                 "[::1] (the Host header names another host)");
        return *res = queue_error(mc, c, &e, NULL), true;
    }
    const char *origin = header(mc, "Origin");
    if (origin && srv_policy_origin_allowed(s->policy, origin)) snprintf(c->cors_origin, sizeof c->cors_origin, "%s", origin);
    if (strcmp(method, "OPTIONS") != 0 || !srv_policy_cors(s->policy)) return false;
    if (!c->cors_origin[0]) {
        srv_fail(&e, 403, "permission_error", "origin_not_allowed", NULL, "The origin '%.120s' may not call this server",
                 origin ? origin : "");
        return *res = queue_error(mc, c, &e, NULL), true;
    }
    c->preflight = true;
    srv_reply r = {.status = 204};
    return *res = queue(mc, c, &r), true;
}

/* The caller's key for a route that needs one: 401 without a valid key, 403 for an
 * operator route without an admin key. True when a reply was queued (*res). */
static bool authenticate(srv *s, struct MHD_Connection *mc, conn *c, enum MHD_Result *res) {
    if (c->route == SRV_ROUTE_HEALTH || c->route == SRV_ROUTE_READY || !srv_auth_enabled(s->auth)) return false;
    srv_error e;
    const char *reason = NULL;
    c->key = srv_auth_check(s->auth, header(mc, MHD_HTTP_HEADER_AUTHORIZATION), &e, &reason);
    if (!c->key) {
        obs_auth_failure(s->obs, reason);
        return *res = queue_error(mc, c, &e, NULL), true;
    }
    if (srv_route_admin(c->route) && !srv_key_admin(c->key)) {
        obs_auth_failure(s->obs, "admin");
        srv_fail(&e, 403, "permission_error", "admin_required", NULL, "This endpoint needs an API key with admin: true");
        return *res = queue_error(mc, c, &e, NULL), true;
    }
    return false;
}

/* First call of a request: route it and refuse what can be refused before the body. */
static enum MHD_Result begin(srv *s, struct MHD_Connection *mc, conn *c, const char *url, const char *method) {
    srv_error e;
    enum MHD_Result res = MHD_YES;
    c->route = srv_route_find(method, url, &c->method_ok, &c->allow); /* named in the log line whatever follows */
    if (framing_ambiguous(mc, &e)) {
        c->must_close = true;
        return queue_error(mc, c, &e, NULL);
    }
    if (guard(s, mc, c, method, url, &res)) return res;
    if (authenticate(s, mc, c, &res)) return res;
    if (c->route == SRV_ROUTE_NONE) {
        srv_fail(&e, 404, "invalid_request_error", "unknown_url", NULL, "Unknown request URL: %s %.120s", method, url);
        return queue_error(mc, c, &e, NULL);
    }
    if (!c->method_ok) {
        srv_fail(&e, 405, "invalid_request_error", "method_not_allowed", NULL, "Method %s is not allowed on %.120s (use %s)",
                 method, url, c->allow);
        return queue_error(mc, c, &e, c->allow);
    }
    const char *kind = NULL;
    if (c->key && !srv_key_admit(c->key, srv_route_has_body(c->route), &e, &kind)) {
        obs_rate_limited(s->obs, srv_key_name(c->key), kind);
        return queue_error(mc, c, &e, NULL);
    }
    c->admitted = c->key != NULL;
    if (!srv_route_has_body(c->route)) return MHD_YES;
    const char *ct = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct && !json_content_type(ct)) {
        srv_fail(&e, 415, "invalid_request_error", "unsupported_media_type", NULL,
                 "Content-Type '%.80s' is not supported: send 'application/json'", ct);
        return queue_error(mc, c, &e, NULL);
    }
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && strtoull(cl, NULL, 10) > (size_t)s->max_body) {
        srv_fail(&e, 413, "invalid_request_error", "request_too_large", NULL,
                 "The request body is larger than %zu bytes", (size_t)s->max_body);
        return queue_error(mc, c, &e, NULL);
    }
    return MHD_YES;
}

/* The watcher's record of the connection (NULL: unwatched). */
static srv_watch_conn *watched(struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_ctx, enum MHD_ConnectionNotificationCode code) {
    srv *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_ctx = ci ? srv_watch_open(s->watch, ci->connect_fd) : NULL;
    } else {
        srv_watch_close(s->watch, *socket_ctx);
        *socket_ctx = NULL;
    }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size, void **req_cls) {
    srv *s = cls;
    conn *c = *req_cls;
    if (!c) {
        c = mem_calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        *req_cls = c;
        atomic_fetch_add(&s->active, 1);
        c->start_ns = clock_mono_ns();
        srv_watch_headers_done(s->watch, watched(mc));
        obs_trace_start(&c->trace);
        const char *rid = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Request-Id");
        if (obs_request_id_valid(rid)) snprintf(c->request_id, sizeof c->request_id, "%s", rid);
        else obs_request_id_new(c->request_id);
        c->body.max = (size_t)s->max_body;
        snprintf(c->method, sizeof c->method, "%s", method);
        snprintf(c->path, sizeof c->path, "%s", url);
        MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->idle_timeout_s);
        /* Answered on the next call, when MHD holds the whole request: libmicrohttpd closes
           the connection after a reply queued on this first one, even for a bodiless GET. */
        return begin(s, mc, c, url, method);
    } else if (c->replied) {
        *upload_size = 0;
        return MHD_YES;
    } else if (*upload_size > 0) {
        if (!c->too_large && !srv_buf_add(&c->body, upload_data, *upload_size)) c->too_large = true;
        *upload_size = 0;
        return MHD_YES;
    }
    if (c->too_large) {
        srv_error e;
        srv_fail(&e, 413, "invalid_request_error", "request_too_large", NULL, "The request body is larger than %zu bytes",
                 (size_t)s->max_body);
        return queue_error(mc, c, &e, NULL);
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    srv_client client = {.server = s, .fd = ci ? ci->connect_fd : -1, .trace = &c->trace, .key = c->key,
                         .prompt_tokens = &c->prompt_tokens};
    srv_reply reply = {0};
    srv_dispatch(s, c->route, url, c->body.data ? c->body.data : "", c->body.len, &client, &reply);
    if (!s->cfg.obs.log_prompts) srv_buf_free(&c->body); /* else the request log line shows it */
    return queue(mc, c, &reply);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **req_cls, enum MHD_RequestTerminationCode toe) {
    srv *s = cls;
    conn *c = *req_cls;
    if (!c) return;
    *req_cls = NULL;
    double ms = (double)(clock_mono_ns() - c->start_ns) / 1e6;
    const char *how = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "ok"
                      : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "timeout"
                      : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                      : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT || toe == MHD_REQUEST_TERMINATED_READ_ERROR
                          ? "client_abort"
                          : "error";
    obs_request_done(s->obs, &(obs_request){
                                 .request_id = c->request_id,
                                 .key_name = srv_key_name(c->key),
                                 .method = c->method,
                                 .path = c->path,
                                 .route = srv_route_name(c->route),
                                 .model = c->model,
                                 .target = c->target[0] ? c->target : c->model,
                                 .end = how,
                                 .error = c->error_code,
                                 .status = c->status,
                                 .stream = c->stream,
                                 .quiet = srv_route_quiet(c->route),
                                 .prompt_tokens = c->prompt_tokens,
                                 .completion_tokens = c->stream ? -1 : c->completion_tokens,
                                 .duration_ms = ms,
                                 .trace = &c->trace,
                                 .body = c->body.data,
                                 .body_len = c->body.len,
                             });
    if (c->admitted)
        srv_key_done(c->key, (c->prompt_tokens > 0 ? c->prompt_tokens : 0) +
                                 (c->stream ? c->trace.tokens : c->completion_tokens > 0 ? c->completion_tokens : 0));
    srv_key_release(c->key);
    /* a kept-alive connection must send its next request's headers in time */
    MHD_set_connection_option(mc, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->header_timeout_s);
    srv_watch_next_request(s->watch, watched(mc));
    srv_buf_free(&c->body);
    mem_free(c);
    atomic_fetch_sub(&s->active, 1);
}

/* ---- daemon ------------------------------------------------------------------------ */

static hearth_status parse_host(const char *host, int port, struct sockaddr_storage *ss, bool *v6, hearth_err *err) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *v6 = false;
        return HEARTH_OK;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *v6 = true;
        return HEARTH_OK;
    }
    return err_set(err, HEARTH_ERR_INVALID, "--host '%s' is not an IPv4 or IPv6 address", host);
}

uint64_t srv_deadline(const srv *s, double request_timeout_s) {
    uint64_t t = atomic_load(&s->timeout_ns);
    if (request_timeout_s > 0 && request_timeout_s * 1e9 < (double)t) t = (uint64_t)(request_timeout_s * 1e9);
    return clock_mono_ns() + t;
}

hearth_status srv_new(const srv_config *cfg, srv **out, hearth_err *err) {
    *out = NULL;
    cfg_config *config = cfg->config;
    const cfg_server *cs = &config->server;
    srv *s = mem_calloc(1, sizeof *s);
    if (!s) {
        cfg_free(config);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    }
    s->cfg = *cfg;
    s->config = config;
    pthread_mutex_init(&s->reload_mu, NULL);
    atomic_init(&s->timeout_ns, (uint64_t)(cs->timeout_s * 1e9));
    s->max_body = cs->max_body;
    s->max_header = cs->max_header;
    s->started_unix = clock_unix_s();
    const char *host = cs->host ? cs->host : "127.0.0.1";
    struct sockaddr_storage ss;
    bool v6 = false;
    hearth_status st = parse_host(host, cs->port, &ss, &v6, err);
    obs_config oc = cfg->obs;
    oc.log = cfg->log;
    oc.log_ud = cfg->log_ud;
    if (st == HEARTH_OK) st = obs_new(&oc, &s->obs, err);
    if (st == HEARTH_OK) st = srv_auth_new(config, &s->auth, err);
    if (st == HEARTH_OK) st = srv_policy_new(config, &s->policy, err);
    s->loopback = cfg_host_is_loopback(host);
    s->header_timeout_s = config->limits.header_timeout_s;
    s->idle_timeout_s = config->limits.idle_timeout_s;
    if (st == HEARTH_OK && !s->loopback && config->n_keys == 0 && !cs->allow_unauthenticated)
        st = err_set(err, HEARTH_ERR_INVALID,
                     "refusing to listen on %s without API keys: configure keys or allow_unauthenticated", host);
    if (st == HEARTH_OK) st = srv_embed_new(&config->embeddings, s->obs, &s->embed, err);
    s->cfg.obs.db_path = NULL; /* the hub keeps its own copy */
    fleet_hooks hooks;
    srv_model_hooks(&hooks, s);
    if (st == HEARTH_OK) st = fleet_new(config, &hooks, cfg->fleet_opt, &s->fleet, err);
    if (st == HEARTH_OK) st = srv_gateway_new(s, err);
    if (st == HEARTH_OK) st = srv_watch_new(s->header_timeout_s, &s->watch, err);
    if (st != HEARTH_OK) {
        srv_free(s);
        return st;
    }
    s->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG |
            (v6 ? MHD_USE_IPv6 : 0),
        (uint16_t)cs->port, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cs->max_connections,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)cs->max_header + HEADER_POOL_EXTRA,
        MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)s->header_timeout_s, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)config->limits.connections_per_ip,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
    if (!s->daemon) {
        srv_free(s);
        return err_set(err, HEARTH_ERR_IO, "cannot listen on %s port %d (in use, or not an address of this machine)",
                       host, cs->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cs->port;
    srv_log(s, "info",
            json_pack("{s:s, s:s, s:i, s:i}", "msg", "listening", "host", host, "port", s->port, "models",
                      (int)config->n_models));
    obs_set_collector(s->obs, srv_obs_collect, s);
    *out = s;
    return HEARTH_OK;
}

void srv_free(srv *s) {
    if (!s) return;
    atomic_store(&s->stopping, true);
    if (s->daemon) {
        MHD_socket lfd = MHD_quiesce_daemon(s->daemon);
        if (lfd != MHD_INVALID_SOCKET) close(lfd);
        pthread_mutex_lock(&s->reload_mu);
        double grace = s->config->server.shutdown_grace_s;
        pthread_mutex_unlock(&s->reload_mu);
        uint64_t until = clock_mono_ns() + (uint64_t)(grace * 1e9);
        while (atomic_load(&s->active) > 0 && clock_mono_ns() < until) usleep(20000);
        atomic_store(&s->cancelling, true);
        MHD_stop_daemon(s->daemon);
    }
    srv_watch_free(s->watch);
    srv_gateway_free(s);
    fleet_free(s->fleet);
    srv_auth_free(s->auth);
    srv_policy_free(s->policy);
    srv_embed_free(s->embed);
    obs_free(s->obs);
    if (s->daemon) srv_log(s, "info", json_pack("{s:s}", "msg", "stopped"));
    pthread_mutex_destroy(&s->reload_mu);
    cfg_free(s->config);
    mem_free(s);
}

int srv_port(const srv *s) { return s->port; }
fleet *srv_fleet(const srv *s) { return s->fleet; }
