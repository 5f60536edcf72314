/* The gateway's local target: runs a routed request on a local model through the very
 * path a direct request takes (srv_handle_completion: validation, fleet, job, scheduler),
 * with the model renamed to the target's and the caller's sink as the client. A
 * non-streamed answer goes out as one body; a streamed one is read from its SSE stream
 * and handed over one event at a time. Maps the server's statuses onto gateway outcomes:
 * 503 (overloaded) is retryable, other 4xx are the request's own fault. Never writes to
 * a connection itself. Publishes its engine timing and token counts to the routed
 * request's srv_gw_acct when one is bound to the calling thread (srv_gw_acct.h). */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "server/srv_gateway.h"
#include "server/srv_gw_acct.h"
#include "server/srv_json.h"

#define READ_BLOCK 4096
#define FRAME_MAX ((size_t)16 << 20)

/* Where a local attempt's numbers go: published before each output reaches the sink. */
typedef struct local_acct {
    srv_gw_acct *to;           /* NULL: nobody asked */
    const char *model;
    obs_trace trace;
    int64_t prompt_tokens;
} local_acct;

static void publish(local_acct *a) {
    if (a->to) srv_gw_acct_publish(a->to, a->model, &a->trace, a->prompt_tokens);
}

static bool sink_gone(void *ud) {
    const gw_sink *k = ud;
    return k->gone && k->gone(k->ud);
}

static void set_msg(gw_outcome *out, const json_t *err_body, const char *fallback) {
    const char *m = json_string_value(json_object_get(json_object_get(err_body, "error"), "message"));
    snprintf(out->msg, sizeof out->msg, "%s", m ? m : fallback);
}

/* A whole-body reply (success or error) as an outcome. */
static void from_reply(srv_reply *r, const gw_sink *sink, local_acct *acct, gw_outcome *out) {
    char *text = r->body ? json_dumps(r->body, JSON_COMPACT) : NULL;
    out->http_status = r->status;
    if (r->status == 200 && text) {
        publish(acct);
        if (!sink->body(sink->ud, text, strlen(text))) {
            out->kind = GW_OUT_CANCELLED;
            snprintf(out->msg, sizeof out->msg, "the client went away");
        }
    } else {
        set_msg(out, r->body, "local model error");
        if (r->status == 499) out->kind = GW_OUT_CANCELLED;
        else if (r->status == 504) out->kind = GW_OUT_DEADLINE;
        else if (r->status >= 400 && r->status < 500) out->kind = GW_OUT_CLIENT;
        else out->kind = GW_OUT_SERVER;
        if (r->retry_after_s > 0) out->retry_after_ms = (int64_t)r->retry_after_s * 1000;
        if (out->kind == GW_OUT_CLIENT && text) {
            out->error_body = mem_strdup(text);
            out->error_len = out->error_body ? strlen(out->error_body) : 0;
        }
    }
    free(text); /* from jansson */
    json_decref(r->body);
    r->body = NULL;
}

/* One SSE frame's data: an event, [DONE], or an error frame. False: stop reading. */
static bool frame(const char *data, size_t len, const gw_sink *sink, local_acct *acct, gw_outcome *out, bool *done) {
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        *done = true;
        return false;
    }
    if (len > 9 && !memcmp(data, "{\"error\":", 9)) {
        json_t *e = json_loadb(data, len, 0, NULL);
        const char *type = json_string_value(json_object_get(json_object_get(e, "error"), "type"));
        out->kind = type && !strcmp(type, "timeout_error") ? GW_OUT_DEADLINE : GW_OUT_BROKEN;
        set_msg(out, e, "the local model failed mid-stream");
        json_decref(e);
        return false;
    }
    publish(acct);
    if (!sink->event(sink->ud, data, len)) {
        out->kind = GW_OUT_CANCELLED;
        snprintf(out->msg, sizeof out->msg, "the client went away");
        return false;
    }
    return true;
}

static void from_stream(srv_stream *st, const gw_sink *sink, local_acct *acct, gw_outcome *out) {
    srv_buf in = {.max = FRAME_MAX};
    char block[READ_BLOCK];
    bool done = false, go = true;
    out->http_status = 200;
    while (go) {
        ssize_t n = srv_stream_read(st, block, sizeof block);
        if (n <= 0) {
            if (n < 0) {
                out->kind = GW_OUT_CANCELLED;
                snprintf(out->msg, sizeof out->msg, "the client went away or the server is stopping");
            } else {
                out->kind = GW_OUT_BROKEN;
                snprintf(out->msg, sizeof out->msg, "the local stream ended without [DONE]");
            }
            break;
        }
        if (!srv_buf_add(&in, block, (size_t)n)) {
            out->kind = GW_OUT_BROKEN;
            snprintf(out->msg, sizeof out->msg, "a local stream frame is too large");
            break;
        }
        for (;;) {
            char *end = in.len ? memmem(in.data, in.len, "\n\n", 2) : NULL;
            if (!end) break;
            size_t flen = (size_t)(end - in.data);
            if (flen >= 6 && !memcmp(in.data, "data: ", 6)) go = frame(in.data + 6, flen - 6, sink, acct, out, &done);
            srv_buf_consume(&in, flen + 2);
            if (!go) break;
        }
    }
    if (done) out->kind = GW_OUT_OK;
    srv_buf_free(&in);
}

void srv_gw_local_call(void *ud, const char *target_model, const gw_request *req, const gw_sink *sink, gw_outcome *out) {
    srv *s = ud;
    json_t *body = json_deep_copy(req->body);
    char *text = NULL;
    if (body && json_object_set_new(body, "model", json_string(target_model)) == 0) text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        out->kind = GW_OUT_SERVER;
        out->http_status = 500;
        snprintf(out->msg, sizeof out->msg, "out of memory");
        return;
    }
    local_acct acct = {.to = srv_gw_acct_current(), .model = target_model, .prompt_tokens = -1};
    obs_trace_start(&acct.trace);
    srv_client c = {.server = s, .fd = -1, .trace = &acct.trace, .gone = sink_gone, .gone_ud = (void *)sink};
    srv_reply r = {0};
    srv_handle_completion(s, req->api == GW_API_CHAT ? SRV_API_CHAT : SRV_API_COMPLETION, text, strlen(text), &c, &r);
    free(text); /* from jansson */
    acct.prompt_tokens = r.prompt_tokens;
    if (r.stream) {
        from_stream(r.stream, sink, &acct, out);
        srv_stream_free(r.stream);
    } else {
        from_reply(&r, sink, &acct, out);
    }
    mem_free(r.raw);
}
