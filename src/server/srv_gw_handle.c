/* Chat/completions whose model is a route. Non-streamed: gw_call runs on the
 * connection's thread and its one body becomes the reply. Streamed: gw_call runs on a
 * worker thread whose events go into a bounded queue that the HTTP response reads, so a
 * slow client never holds up a target (and through it the scheduler); a full queue or a
 * gone client cancels the attempt. The reply's status is chosen at the first output:
 * failures before it are ordinary HTTP errors, failures after it end the stream with an
 * SSE error frame (nothing is retried once a byte went out). Every routed reply carries
 * X-Hearth-Target, and is accounted like a direct one (srv_gw_acct.h): TTFT, tokens and
 * inter-token gaps go into the connection's trace and prompt size for the request log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/mem.h"
#include "server/srv_gateway.h"
#include "server/srv_gw_acct.h"
#include "server/srv_json.h"

#define BODY_MAX ((size_t)64 << 20)
#define QUEUE_MAX ((size_t)8 << 20) /* streamed bytes waiting for the client; beyond: cancel */
#define WAIT_MS 100

static const char *api_name(srv_api api) { return api == SRV_API_CHAT ? "chat" : "completions"; }

/* A failed routed request as its HTTP error reply. */
static void reply_failure(gw_result *res, srv_reply *out) {
    out->status = res->http_status >= 400 ? res->http_status : 502;
    out->retry_after_s = res->retry_after_s;
    out->error_code = gw_outcome_name(res->kind);
    if (res->error_body) {
        out->raw = res->error_body;
        out->raw_len = res->error_len;
        out->content_type = "application/json";
        res->error_body = NULL;
        res->error_len = 0;
        return;
    }
    srv_error e;
    srv_fail(&e, out->status, "server_error", gw_outcome_name(res->kind), NULL, "%s", res->msg);
    srv_reply_json(out, e.status, srv_error_json(&e));
}

static void note_target(const gw_result *res, srv_reply *out) {
    srv_gateway_header(res, out->target_header, sizeof out->target_header);
    snprintf(out->target, sizeof out->target, "%s", res->target);
}

/* ---- non-streamed --------------------------------------------------------------------- */

typedef struct body_sink {
    const srv_client *client;
    srv_buf body;
} body_sink;

static bool body_add(void *ud, const char *data, size_t len) {
    body_sink *b = ud;
    return srv_buf_add(&b->body, data, len);
}

static bool body_gone(void *ud) { return srv_client_gone(((body_sink *)ud)->client); }

static void run_whole(srv *s, srv_gw_ref *ref, const gw_request *req, srv_api api, const srv_client *c,
                      srv_reply *out) {
    body_sink b = {.client = c, .body = {.max = BODY_MAX}};
    gw_sink sink = {.event = body_add, .body = body_add, .gone = body_gone, .ud = &b};
    gw_result res;
    srv_gw_acct acct;
    srv_gw_acct_init(&acct);
    srv_gw_acct_bind(&acct);
    gw_call(srv_gw_of(ref), req, &sink, &res);
    srv_gw_acct_bind(NULL);
    if (c->trace) srv_gw_acct_take(&acct, res.target, c->trace, &out->prompt_tokens);
    srv_gw_acct_destroy(&acct);
    srv_gateway_report(s, &res, api_name(api));
    note_target(&res, out);
    if (res.kind == GW_OUT_OK && b.body.len > 0) {
        json_t *reply = json_loadb(b.body.data, b.body.len, 0, NULL), *usage = json_object_get(reply, "usage");
        json_t *p = json_object_get(usage, "prompt_tokens"), *n = json_object_get(usage, "completion_tokens");
        if (json_is_integer(p)) out->prompt_tokens = json_integer_value(p);
        if (json_is_integer(n)) out->completion_tokens = json_integer_value(n);
        json_decref(reply);
    }
    if (res.kind == GW_OUT_OK && b.body.len > 0 && srv_buf_add(&b.body, "\n", 1)) {
        out->status = 200;
        out->raw = b.body.data;
        out->raw_len = b.body.len;
        out->content_type = "application/json";
        b.body = (srv_buf){0};
    } else {
        reply_failure(&res, out);
    }
    srv_buf_free(&b.body);
    gw_result_free(&res);
}

/* ---- streamed ----------------------------------------------------------------------------- */

typedef struct gw_stream {
    srv *s;
    srv_gw_ref *ref;
    srv_client client;         /* fd only: the connection's trace is not ours to touch */
    json_t *root;
    gw_request req;
    srv_api api;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    srv_buf queue;             /* SSE bytes the client has not read yet */
    bool committed, finished, closed, joined;
    _Atomic int attempts;
    char target[96];
    gw_result res;             /* valid once finished */
    srv_gw_acct acct;          /* a local target's numbers, published from the worker */
    srv_gw_events events;      /* what the events passed to the client show; under mu */
    obs_trace *conn_trace;     /* the connection's: touched only by st_read (its thread) */
    int64_t *conn_prompt;
} gw_stream;

static bool st_frame(gw_stream *st, const char *data, size_t len) {
    pthread_mutex_lock(&st->mu);
    bool ok = !st->closed && st->queue.len + len + 8 <= QUEUE_MAX && srv_buf_add(&st->queue, "data: ", 6) &&
              srv_buf_add(&st->queue, data, len) && srv_buf_add(&st->queue, "\n\n", 2);
    if (ok) srv_gw_events_add(&st->events, data, len);
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return ok; /* false: closed or full, the attempt is cancelled */
}

static bool st_event(void *ud, const char *data, size_t len) { return st_frame(ud, data, len); }

static bool st_gone(void *ud) {
    gw_stream *st = ud;
    pthread_mutex_lock(&st->mu);
    bool closed = st->closed;
    pthread_mutex_unlock(&st->mu);
    return closed || srv_client_gone(&st->client);
}

static void st_attempt(void *ud, const char *target) {
    (void)target;
    atomic_fetch_add(&((gw_stream *)ud)->attempts, 1);
}

static void st_commit(void *ud, const char *target) {
    gw_stream *st = ud;
    pthread_mutex_lock(&st->mu);
    st->committed = true;
    snprintf(st->target, sizeof st->target, "%s", target);
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

static void *st_worker(void *arg) {
    gw_stream *st = arg;
    gw_sink sink = {.event = st_event, .body = st_event, .gone = st_gone, .attempt = st_attempt, .commit = st_commit,
                    .ud = st};
    gw_result res;
    srv_gw_acct_bind(&st->acct);
    gw_call(srv_gw_of(st->ref), &st->req, &sink, &res);
    srv_gw_acct_bind(NULL);
    srv_gateway_report(st->s, &res, api_name(st->api));
    pthread_mutex_lock(&st->mu);
    if (st->committed) {
        st->queue.max = SIZE_MAX; /* the closing frame always fits */
        if (res.kind == GW_OUT_OK) {
            srv_buf_add(&st->queue, "data: [DONE]\n\n", 14);
        } else {
            srv_error e;
            srv_fail(&e, res.http_status >= 400 ? res.http_status : 502, "server_error", gw_outcome_name(res.kind), NULL,
                     "%s", res.msg);
            json_t *frame = srv_error_json(&e);
            if (frame && srv_buf_add(&st->queue, "data: ", 6) && srv_buf_add_json(&st->queue, frame))
                srv_buf_add(&st->queue, "\n\n", 2);
            json_decref(frame);
        }
    }
    st->res = res;
    st->finished = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static void st_free(gw_stream *st) {
    if (!st->joined) pthread_join(st->thread, NULL);
    gw_result_free(&st->res);
    srv_buf_free(&st->queue);
    srv_gw_acct_destroy(&st->acct);
    json_decref(st->root);
    srv_gw_release(st->ref);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    mem_free(st);
}

static void wait_a_little(gw_stream *st) {
    struct timespec ts;
    clock_timespec_in(CLOCK_REALTIME, WAIT_MS, &ts);
    pthread_cond_timedwait(&st->cv, &st->mu, &ts);
}

/* The connection's trace and prompt size as of what was produced so far (mu held): a
 * local target's own numbers, else what the events showed. */
static void st_account(gw_stream *st) {
    if (!st->conn_trace) return;
    int64_t prompt = st->conn_prompt ? *st->conn_prompt : 0;
    if (!srv_gw_acct_take(&st->acct, st->target, st->conn_trace, &prompt))
        srv_gw_events_apply(&st->events, st->conn_trace, &prompt);
    if (st->conn_prompt) *st->conn_prompt = prompt;
}

static ssize_t st_read(void *reader, char *buf, size_t cap) {
    gw_stream *st = reader;
    pthread_mutex_lock(&st->mu);
    while (st->queue.len == 0 && !st->finished) {
        st_account(st);
        pthread_mutex_unlock(&st->mu);
        if (srv_client_gone(&st->client)) return -1;
        pthread_mutex_lock(&st->mu);
        if (st->queue.len == 0 && !st->finished) wait_a_little(st);
    }
    st_account(st);
    size_t n = st->queue.len < cap ? st->queue.len : cap;
    memcpy(buf, st->queue.data, n);
    srv_buf_consume(&st->queue, n);
    pthread_mutex_unlock(&st->mu);
    return (ssize_t)n;
}

static void st_done(void *reader) {
    gw_stream *st = reader;
    pthread_mutex_lock(&st->mu);
    st->closed = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    st_free(st);
}

static void run_streamed(srv *s, srv_gw_ref *ref, const gw_request *req, json_t *root, srv_api api,
                         const srv_client *c, srv_reply *out) {
    gw_stream *st = mem_calloc(1, sizeof *st);
    if (!st) {
        srv_gw_release(ref);
        srv_error e;
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        srv_reply_error(out, &e);
        return;
    }
    *st = (gw_stream){.s = s, .ref = ref, .client = {.server = s, .fd = c->fd}, .root = json_incref(root),
                      .req = *req, .api = api, .queue = {.max = QUEUE_MAX}, .conn_trace = c->trace,
                      .conn_prompt = c->prompt_tokens};
    srv_gw_acct_init(&st->acct);
    srv_gw_events_init(&st->events);
    atomic_init(&st->attempts, 0);
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    if (pthread_create(&st->thread, NULL, st_worker, st) != 0) {
        st->joined = true;
        st_free(st);
        srv_error e;
        srv_fail(&e, 503, "server_error", "server_busy", NULL, "cannot start the routed request");
        srv_reply_error(out, &e);
        return;
    }
    pthread_mutex_lock(&st->mu);
    while (!st->committed && !st->finished) pthread_cond_wait(&st->cv, &st->mu);
    bool committed = st->committed;
    pthread_mutex_unlock(&st->mu);
    if (!committed) { /* finished with nothing sent: an ordinary HTTP answer */
        pthread_join(st->thread, NULL);
        st->joined = true;
        note_target(&st->res, out);
        reply_failure(&st->res, out);
        st_free(st);
        return;
    }
    /* the header tells what is known at the first byte: the target answering, attempts so far */
    snprintf(out->target_header, sizeof out->target_header, "route=%s; target=%s; attempts=%d", req->model, st->target,
             atomic_load(&st->attempts));
    snprintf(out->target, sizeof out->target, "%s", st->target);
    out->status = 200;
    out->read = st_read;
    out->done = st_done;
    out->reader = st;
}

/* ---- entry ------------------------------------------------------------------------------- */

bool srv_gateway_handle(srv *s, srv_api api, const json_t *root, const srv_client *c, srv_reply *out) {
    const char *name = json_string_value(json_object_get(root, "model"));
    if (!name) return false;
    srv_gw_ref *ref = srv_gw_acquire(s);
    if (!ref || !gw_has_route(srv_gw_of(ref), name)) {
        srv_gw_release(ref);
        return false;
    }
    snprintf(out->model, sizeof out->model, "%s", name);
    json_t *stream = json_object_get(root, "stream"), *user = json_object_get(root, "user");
    bool bad_stream = stream && !json_is_boolean(stream) && !json_is_null(stream);
    if (bad_stream || (user && !json_is_string(user) && !json_is_null(user))) {
        srv_gw_release(ref);
        srv_error e;
        srv_invalid(&e, bad_stream ? "stream" : "user", "%s must be a %s", bad_stream ? "stream" : "user",
                    bad_stream ? "boolean" : "string");
        srv_reply_error(out, &e);
        return true;
    }
    const json_t *lora = json_object_get(root, "lora");
    if (lora && !json_is_null(lora) && !srv_key_all_models(c->key)) {
        /* a route's target is what the key was given: a "lora" field could pick the
         * base model or any adapter of a local target instead */
        srv_gw_release(ref);
        srv_error e;
        srv_fail(&e, 403, "permission_error", "model_not_allowed", "lora",
                 "This API key may not choose adapters on the route '%.200s'", name);
        srv_reply_error(out, &e);
        return true;
    }
    cfg_limits limits;
    srv_policy_limits(s->policy, &limits);
    srv_error le;
    if (!srv_limits_check_json(&limits, root, &le)) { /* limits hold for routes as for models */
        srv_gw_release(ref);
        srv_reply_error(out, &le);
        return true;
    }
    gw_request req = {.api = api == SRV_API_CHAT ? GW_API_CHAT : GW_API_COMPLETION,
                      .model = name,
                      .body = root,
                      .stream = json_is_true(stream),
                      .user = json_string_value(user),
                      .deadline_ns = srv_deadline(s, 0)};
    if (!req.stream) {
        run_whole(s, ref, &req, api, c, out);
        srv_gw_release(ref);
        return true;
    }
    run_streamed(s, ref, &req, (json_t *)root, api, c, out);
    return true;
}
