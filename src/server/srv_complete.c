/* POST /v1/chat/completions and /v1/completions: parse, check the model, build the job,
 * submit, then either collect every choice into one JSON reply or hand the job to an
 * SSE stream. Never waits on the scheduler for more than 100 ms without checking the
 * client and the deadline. */
#define _GNU_SOURCE /* POLLRDHUP */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "server/srv_internal.h"
#include "server/srv_job.h"
#include "server/srv_response.h"

#define POLL_MS 100
#define DEADLINE_GRACE_NS 2000000000ull /* the scheduler reports timeouts; this is the backstop */

bool srv_client_gone(const srv_client *c) {
    if (atomic_load(&c->server->cancelling)) return true;
    if (c->fd < 0) return false;
    struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

bool srv_wait_event(srv_job *j, const srv_client *c, size_t *which, sched_event *ev, hearth_status *why) {
    for (;;) {
        if (srv_client_gone(c)) {
            srv_job_cancel(j);
            *why = HEARTH_ERR_CANCELLED;
            return false;
        }
        if (j->deadline_ns && clock_mono_ns() > j->deadline_ns + DEADLINE_GRACE_NS) {
            srv_job_cancel(j);
            *why = HEARTH_ERR_TIMEOUT;
            return false;
        }
        if (srv_job_all_done(j)) {
            *why = HEARTH_ERR_INTERNAL;
            return false;
        }
        if (srv_job_next(j, which, ev, POLL_MS)) return true;
    }
}

/* Collects every choice, then the whole reply. */
static void run_to_end(srv_job *j, const srv_client *c, srv_reply *out) {
    srv_error e;
    while (!srv_job_all_done(j)) {
        size_t which = 0;
        sched_event ev;
        hearth_status why = HEARTH_OK;
        if (!srv_wait_event(j, c, &which, &ev, &why)) {
            if (why == HEARTH_ERR_TIMEOUT)
                srv_fail(&e, 504, "timeout_error", "timeout", NULL, "the request did not finish before its deadline");
            else
                srv_fail(&e, 499, "server_error", "cancelled", NULL, "the client went away");
            srv_reply_error(out, &e);
            return;
        }
        if (!srv_job_record(j, which, &ev, true)) {
            srv_job_cancel(j);
            srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory collecting the completion");
            srv_reply_error(out, &e);
            return;
        }
    }
    for (size_t i = 0; i < j->n_choices; i++) {
        const srv_choice *ch = &j->ch[i];
        if (ch->finish == SCHED_FINISH_TIMEOUT) {
            srv_fail(&e, 504, "timeout_error", "timeout", NULL, "the request did not finish before its deadline");
        } else if (ch->finish == SCHED_FINISH_CANCELLED) {
            srv_fail(&e, 503, "server_error", "cancelled", NULL, "the server is stopping");
        } else if (ch->finish == SCHED_FINISH_ERROR) {
            srv_fail_status(&e, ch->err.status ? ch->err.status : HEARTH_ERR_INTERNAL, ch->err.msg);
        } else {
            continue;
        }
        srv_reply_error(out, &e);
        return;
    }
    json_t *body = srv_reply_full(j);
    if (!body) {
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory building the reply");
        srv_reply_error(out, &e);
        return;
    }
    srv_reply_json(out, 200, body);
}

static bool model_available(srv *s, const char *name, srv_error *e) {
    const char *id = srv_model_id(s->model);
    if (strcmp(name, id) != 0)
        return srv_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                        "The model '%.200s' does not exist (this server serves '%s')", name, id);
    srv_model_state st = srv_model_get_state(s->model);
    if (st == SRV_MODEL_LOADING || atomic_load(&s->stopping)) {
        srv_fail(e, 503, "server_error", st == SRV_MODEL_LOADING ? "model_loading" : "server_stopping", NULL,
                 st == SRV_MODEL_LOADING ? "the model '%s' is still loading" : "the server is stopping (model '%s')",
                 id);
        e->retry_after_s = 1;
        return false;
    }
    if (st == SRV_MODEL_FAILED)
        return srv_fail(e, 503, "server_error", "model_failed", NULL, "the model '%s' failed to load: %s", id,
                        srv_model_error(s->model)->msg);
    return true;
}

/* The model name without parsing the rest: an unknown model is 404 before validation. */
static bool check_model_first(srv *s, const char *body, size_t len, srv_error *e) {
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *m = json_object_get(root, "model");
    bool ok = !json_is_string(m) || model_available(s, json_string_value(m), e);
    json_decref(root);
    return ok;
}

void srv_handle_completion(srv *s, srv_api api, const char *body, size_t len, const srv_client *c, srv_reply *out) {
    srv_error e;
    if (!check_model_first(s, body, len, &e) ||
        (srv_model_get_state(s->model) != SRV_MODEL_READY && !model_available(s, srv_model_id(s->model), &e))) {
        srv_reply_error(out, &e);
        return;
    }
    srv_req req;
    if (!srv_req_parse(body, len, api, tok_n_vocab(srv_model_vocab(s->model)), &req, &e)) {
        srv_reply_error(out, &e);
        return;
    }
    double timeout = s->cfg.timeout_s;
    if (req.timeout_s > 0 && (timeout <= 0 || req.timeout_s < timeout)) timeout = req.timeout_s;
    srv_job job;
    if (!srv_job_prepare(&job, s->model, &req, timeout, &e) || !srv_job_submit(&job, &e)) {
        srv_job_free(&job);
        srv_req_free(&req);
        srv_reply_error(out, &e);
        return;
    }
    out->prompt_tokens = srv_job_prompt_tokens(&job);
    if (!req.stream) {
        run_to_end(&job, c, out);
        out->completion_tokens = srv_job_completion_tokens(&job);
        srv_job_free(&job);
        srv_req_free(&req);
        return;
    }
    srv_stream *st = srv_stream_new(c, &req, &job);
    if (!st) {
        srv_job_free(&job);
        srv_req_free(&req);
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        srv_reply_error(out, &e);
        return;
    }
    if (!srv_stream_start(st, &e)) {
        srv_stream_free(st);
        srv_reply_error(out, &e);
        return;
    }
    out->status = 200;
    out->stream = st;
}
