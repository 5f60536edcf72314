/* POST /v1/chat/completions and /v1/completions: parse, check the model, build the job,
 * submit, then either collect every choice into one JSON reply or hand the job to an
 * SSE stream. Never waits on the scheduler for more than 100 ms without checking the
 * client and the deadline. */
#define _GNU_SOURCE /* POLLRDHUP */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "server/srv_admit.h"
#include "server/srv_gateway.h"
#include "server/srv_internal.h"
#include "server/srv_job.h"
#include "server/srv_lora.h"
#include "server/srv_response.h"

#define POLL_MS 100
#define DEADLINE_GRACE_NS 2000000000ull /* the scheduler reports timeouts; this is the backstop */

bool srv_client_gone(const srv_client *c) {
    if (atomic_load(&c->server->cancelling)) return true;
    if (c->gone && c->gone(c->gone_ud)) return true;
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
        if (srv_job_next(j, which, ev, POLL_MS)) {
            obs_trace_tokens(c->trace, *which, ev->n_tokens);
            return true;
        }
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
            srv_admit_finish_error(c->server->obs, j, &ch->err, &e);
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

/* The model name and keep_alive, without parsing the rest: an unknown model is 404
 * before validation. *name is NULL when the body has no usable model (the full parse
 * then says why). */
static bool model_of(srv *s, const json_t *root, const char **name, double *keep_alive, srv_error *e) {
    json_t *m = json_object_get(root, "model");
    *name = json_is_string(m) ? json_string_value(m) : NULL;
    if (*name && !fleet_has(s->fleet, *name))
        return srv_fail(e, 404, "invalid_request_error", "model_not_found", "model",
                        "The model '%.200s' does not exist", *name);
    return srv_model_keep_alive(root, keep_alive, e);
}

bool srv_key_permits_model(srv *s, srv_key *key, const char *name, srv_error *e) {
    if (srv_key_model_allowed(key, name)) return true;
    obs_auth_failure(s->obs, "model");
    return srv_fail(e, 403, "permission_error", "model_not_allowed", "model",
                    "This API key may not use the model '%.200s'", name);
}

/* The caller's key may use the requested model (or route) and the tools the body carries. */
static bool key_allows(srv *s, const srv_client *c, const json_t *root, srv_error *e) {
    const char *name = json_string_value(json_object_get(root, "model"));
    if (name && !srv_key_permits_model(s, c->key, name, e)) return false;
    if (!srv_key_tools_allowed(c->key, json_object_get(root, "tools"), e)) {
        obs_auth_failure(s->obs, "tools");
        return false;
    }
    return true;
}

static void reply_error(srv_reply *out, srv_error *e, srv_req *req, json_t *root) {
    if (req) srv_req_free(req);
    json_decref(root);
    srv_reply_error(out, e);
}

void srv_handle_completion(srv *s, srv_api api, const char *body, size_t len, const srv_client *c, srv_reply *out) {
    srv_error e;
    srv_req req;
    const char *name = NULL;
    double keep_alive = -2;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    /* the key's permissions hold for routes as for models: checked before routing */
    if (root && json_is_object(root) && !key_allows(s, c, root, &e)) return reply_error(out, &e, NULL, root);
    if (root && json_is_object(root) && srv_gateway_handle(s, api, root, c, out)) {
        json_decref(root);
        return;
    }
    if (root && json_is_object(root) && !model_of(s, root, &name, &keep_alive, &e)) return reply_error(out, &e, NULL, root);
    /* everything that does not need the model's vocabulary is checked before loading it */
    if (!srv_req_parse(body, len, api, INT32_MAX, &req, &e)) return reply_error(out, &e, NULL, root);
    cfg_limits limits;
    srv_policy_limits(s->policy, &limits);
    if (!srv_limits_check(&limits, &req, &e)) return reply_error(out, &e, &req, root);
    srv_lora_req lora;
    if (!srv_lora_parse(req.root, &lora, &e)) return reply_error(out, &e, &req, root);
    uint64_t deadline = srv_deadline(s, req.timeout_s);
    srv_req_free(&req);
    if (!name) { /* the parse accepted a body whose model jansson did not see: cannot happen */
        srv_invalid(&e, "model", "you must provide a model parameter");
        return reply_error(out, &e, NULL, root);
    }
    srv_model *m = NULL;
    if (!srv_model_acquire(s->fleet, name, keep_alive, deadline, false, &m, &e)) return reply_error(out, &e, NULL, root);
    json_decref(root);
    snprintf(out->model, sizeof out->model, "%s", srv_model_id(m));
    if (!srv_model_sched(m)) {
        srv_fail(&e, 400, "invalid_request_error", "model_not_supported", "model",
                 "the model '%s' is an embedding model: it cannot do completions", srv_model_id(m));
        srv_model_release(m);
        return reply_error(out, &e, NULL, NULL);
    }
    if (!srv_req_parse(body, len, api, tok_n_vocab(srv_model_vocab(m)), &req, &e)) {
        srv_model_release(m);
        return reply_error(out, &e, NULL, NULL);
    }
    srv_model_apply_defaults(m, &req);
    /* a model default or a chat's open-ended reply stays within limits.max_tokens too */
    if (req.max_tokens > limits.max_tokens || (req.max_tokens == 0 && api == SRV_API_CHAT && srv_model_n_ctx(m) > limits.max_tokens))
        req.max_tokens = (int32_t)limits.max_tokens;
    uint64_t now = clock_mono_ns();
    double timeout = deadline > now ? (double)(deadline - now) / 1e9 : 1e-3;
    srv_job job;
    /* the job owns the model from here: srv_job_free releases it */
    if (!srv_job_prepare(&job, m, &req, timeout, &e) || !srv_lora_parse(req.root, &lora, &e) ||
        !srv_lora_key_allows(m, &lora, c->key, &e) || !srv_lora_select(m, &lora, job.lora, &job.n_lora, &e) || !srv_job_submit(&job, &e)) {
        if (job.refused) obs_refused(s->obs, out->model, job.refused);
        srv_job_free(&job);
        return reply_error(out, &e, &req, NULL);
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
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        return reply_error(out, &e, &req, NULL);
    }
    if (!srv_stream_start(st, &e)) {
        srv_stream_free(st);
        srv_reply_error(out, &e);
        return;
    }
    out->status = 200;
    out->stream = st;
}
