/* SSE bodies of streamed completions, framed as OpenAI sends them: "data: {json}\n\n"
 * per chunk, chat choices opening with a role delta, a finish chunk per choice, an
 * optional usage chunk (empty choices), then "data: [DONE]\n\n". A failure after the
 * first byte (deadline, scheduler error) is sent as one `data: {"error":{...}}` frame and
 * the body ends there, without [DONE]; a client that hung up gets its connection closed. Runs on the connection's thread; never blocks longer
 * than 100 ms without checking the client. */
#include <string.h>

#include "base/mem.h"
#include "server/srv_admit.h"
#include "server/srv_internal.h"
#include "server/srv_job.h"
#include "server/srv_response.h"
#include "server/srv_reasoning.h"
#include "server/srv_toolfmt.h"

#define OUT_MAX ((size_t)64 << 20)

struct srv_stream {
    srv_client client;
    srv_req req;
    srv_job job;
    srv_buf out;
    bool ended; /* every frame is in out; nothing more to wait for */
};

srv_stream *srv_stream_new(const srv_client *c, srv_req *req, srv_job *job) {
    srv_stream *st = mem_calloc(1, sizeof *st);
    if (!st) return NULL;
    st->client = *c;
    st->req = *req;
    st->job = *job;
    st->job.req = &st->req;
    st->out.max = OUT_MAX;
    *req = (srv_req){0};
    *job = (srv_job){0};
    return st;
}

void srv_stream_free(srv_stream *st) {
    if (!st) return;
    srv_job_free(&st->job);
    srv_req_free(&st->req);
    srv_buf_free(&st->out);
    mem_free(st);
}

static bool frame(srv_stream *st, json_t *v) {
    bool ok = v && srv_buf_add(&st->out, "data: ", 6) && srv_buf_add_json(&st->out, v) &&
              srv_buf_add(&st->out, "\n\n", 2);
    json_decref(v);
    return ok;
}

static void error_frame(srv_stream *st, const srv_error *e) {
    srv_job_cancel(&st->job);
    frame(st, srv_error_json(e));
    st->ended = true;
}

static void failure(srv_stream *st, hearth_status why, const char *msg) {
    srv_error e;
    if (why == HEARTH_ERR_TIMEOUT)
        srv_fail(&e, 504, "timeout_error", "timeout", NULL, "the request did not finish before its deadline");
    else
        srv_fail_status(&e, why, msg);
    error_frame(st, &e);
}

static void failed_choice(srv_stream *st, const hearth_err *err) {
    srv_error e;
    srv_admit_finish_error(st->client.server->obs, &st->job, err, &e);
    error_frame(st, &e);
}

/* With tool calls read, text that may open a call in the template's form is held back
 * (srv_toolfmt.h); at the choice's end the held text goes out as content, or as one
 * tool_calls delta. */
static bool tool_text(srv_stream *st, size_t which, const sched_event *ev, srv_buf *release, const char **finish) {
    srv_choice *ch = &st->job.ch[which];
    srv_toolfmt fmt = srv_prompter_toolfmt(srv_model_prompter(st->job.model));
    if (!srv_toolfmt_feed(fmt, &ch->tools, ev->text, ev->len, release)) return false;
    if (ev->finish != SCHED_FINISH_STOP && ev->finish != SCHED_FINISH_LENGTH) return true;
    bool nomem = false;
    json_t *calls = srv_toolfmt_finish(fmt, st->req.tools, &ch->tools, st->req.one_tool_call, release, &nomem);
    if (nomem) return false;
    if (!calls) return true;
    if (ev->finish == SCHED_FINISH_STOP) *finish = "tool_calls"; /* as a whole reply says */
    json_t *text = release->len ? srv_chunk(&st->job, which, release->data, release->len, NULL, NULL) : NULL;
    srv_buf_consume(release, release->len);
    return (!text || frame(st, text)) && frame(st, srv_chunk_tool_calls(&st->job, which, calls));
}

/* The frames of one event whose text is ev->text (after any holding back). */
static bool emit(srv_stream *st, size_t which, const sched_event *ev, const char *finish) {
    srv_job *j = &st->job;
    if (ev->len > 0 || (st->req.n_logprobs >= 0 && ev->n_tokens > 0)) {
        json_t *lp = NULL;
        if (st->req.n_logprobs >= 0 && ev->n_tokens > 0) {
            const tok_vocab *v = srv_model_vocab(j->model);
            if (st->req.api == SRV_API_CHAT) {
                lp = srv_logprobs_chat(v, ev, st->req.n_logprobs);
                if (!lp) return false;
            } else if (!srv_logprobs_completion(&lp, v, ev, st->req.n_logprobs, &j->ch[which].text_offset)) {
                json_decref(lp);
                return false;
            }
        }
        if (!frame(st, srv_chunk(j, which, ev->text, ev->len, lp, NULL))) return false;
    }
    switch (ev->finish) {
    case SCHED_FINISH_NONE:
        return true;
    case SCHED_FINISH_STOP:
    case SCHED_FINISH_LENGTH:
        if (!frame(st, srv_chunk(j, which, NULL, 0, NULL, finish))) return false;
        break;
    case SCHED_FINISH_TIMEOUT:
        failure(st, HEARTH_ERR_TIMEOUT, "");
        return true;
    case SCHED_FINISH_CANCELLED:
        failure(st, HEARTH_ERR_CANCELLED, "the request was cancelled (the server is stopping)");
        return true;
    case SCHED_FINISH_ERROR:
        failed_choice(st, &ev->err);
        return true;
    }
    if (!srv_job_all_done(j)) return true;
    if (st->req.include_usage && !frame(st, srv_chunk_usage(j))) return false;
    st->ended = true;
    return srv_buf_add(&st->out, "data: [DONE]\n\n", 14);
}

/* A forced call streams as OpenAI streams calls: one delta with its id, type and name,
 * then its arguments in pieces; the events' text goes out only there. */
static bool forced_text(srv_stream *st, size_t which, const sched_event *ev, const char **finish) {
    srv_choice *ch = &st->job.ch[which];
    const char *name = st->req.forced_tool;
    if (!ch->tools.in_call) {
        ch->tools.in_call = true;
        char id[40];
        srv_tools_call_id(id, sizeof id);
        json_t *call = json_pack("[{s:i, s:s, s:s, s:{s:s, s:s}}]", "index", 0, "id", id, "type", "function", "function",
                                 "name", name, "arguments", "");
        if (!call || !frame(st, srv_chunk_tool_calls(&st->job, which, call))) return false;
    }
    bool end = ev->finish == SCHED_FINISH_STOP || ev->finish == SCHED_FINISH_LENGTH;
    srv_buf args = {.max = OUT_MAX};
    bool ok = srv_tool_stream_forced(&ch->tools, ev->text, ev->len, end, srv_job_call_closed_by(&st->job, which, ev), &args);
    if (ok && args.len) {
        json_t *piece = json_pack("[{s:i, s:{s:o}}]", "index", 0, "function", "arguments", srv_json_text(args.data, args.len));
        ok = piece && frame(st, srv_chunk_tool_calls(&st->job, which, piece));
    }
    srv_buf_free(&args);
    if (ev->finish == SCHED_FINISH_STOP) *finish = "tool_calls";
    return ok;
}

/* A reply read for reasoning: the reasoning in the event's text goes out as a
 * reasoning_content delta; *answer gets the answer's part, to go on as content. */
static bool reasoning_text(srv_stream *st, size_t which, const sched_event *ev, srv_buf *answer) {
    srv_choice *ch = &st->job.ch[which];
    srv_buf reasoning = {.max = OUT_MAX};
    bool ok = srv_reason_feed(&ch->reason, ev->text, ev->len, &reasoning, answer) &&
              (ev->finish == SCHED_FINISH_NONE || srv_reason_finish(&ch->reason, &reasoning, answer)) &&
              (reasoning.len == 0 || frame(st, srv_chunk_reasoning(&st->job, which, reasoning.data, reasoning.len)));
    srv_buf_free(&reasoning);
    return ok;
}

/* Frames of one event; ends the stream after the last choice finishes. */
static bool on_event(srv_stream *st, size_t which, const sched_event *ev) {
    srv_job *j = &st->job;
    if (!srv_job_record(j, which, ev, false)) return false;
    const char *finish = srv_finish_reason(ev->finish);
    srv_buf held = {.max = OUT_MAX}, answer = {.max = OUT_MAX};
    sched_event shown = *ev;
    if (srv_job_reads_reasoning(j)) { /* reasoning goes out first; the rest reads on as the answer */
        bool ok = reasoning_text(st, which, ev, &answer);
        shown.text = answer.data ? answer.data : "";
        shown.len = answer.len;
        if (!ok) {
            srv_buf_free(&answer);
            return false;
        }
    }
    if (st->req.api == SRV_API_CHAT && st->req.forced_tool) {
        if (!forced_text(st, which, ev, &finish)) return false;
        shown.text = NULL;
        shown.len = 0;
    } else if (srv_job_reads_tool_calls(j)) {
        bool ok = tool_text(st, which, &shown, &held, &finish);
        shown.text = held.data;
        shown.len = held.len;
        if (!ok) {
            srv_buf_free(&held);
            srv_buf_free(&answer);
            return false;
        }
    }
    bool ok = emit(st, which, &shown, finish);
    srv_buf_free(&held);
    srv_buf_free(&answer);
    return ok;
}

bool srv_stream_start(srv_stream *st, srv_error *e) {
    size_t which = 0;
    sched_event ev;
    hearth_status why = HEARTH_OK;
    if (!srv_wait_event(&st->job, &st->client, &which, &ev, &why)) {
        if (why == HEARTH_ERR_TIMEOUT)
            return srv_fail(e, 504, "timeout_error", "timeout", NULL, "the request did not finish before its deadline");
        return srv_fail(e, 499, "server_error", "cancelled", NULL, "the client went away");
    }
    if (ev.finish == SCHED_FINISH_TIMEOUT)
        return srv_fail(e, 504, "timeout_error", "timeout", NULL, "the request did not finish before its deadline");
    if (ev.finish == SCHED_FINISH_ERROR) {
        srv_admit_finish_error(st->client.server->obs, &st->job, &ev.err, e);
        return false;
    }
    if (ev.finish == SCHED_FINISH_CANCELLED)
        return srv_fail(e, 503, "server_error", "cancelled", NULL, "the server is stopping");
    if (st->req.api == SRV_API_CHAT)
        for (size_t i = 0; i < st->job.n_choices; i++)
            if (!frame(st, srv_chunk_role(&st->job, i)))
                return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    for (size_t i = 0; st->req.api == SRV_API_COMPLETION && st->req.echo && i < st->job.n_choices; i++) {
        srv_buf prompt = {.max = OUT_MAX};
        bool ok = srv_job_echo(&st->job, i, &prompt) &&
                  (prompt.len == 0 || frame(st, srv_chunk(&st->job, i, prompt.data, prompt.len, NULL, NULL)));
        srv_buf_free(&prompt);
        if (!ok) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (!on_event(st, which, &ev)) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    return true;
}

ssize_t srv_stream_read(srv_stream *st, char *buf, size_t cap) {
    while (st->out.len == 0) {
        if (st->ended) return 0;
        size_t which = 0;
        sched_event ev;
        hearth_status why = HEARTH_OK;
        if (!srv_wait_event(&st->job, &st->client, &which, &ev, &why)) {
            if (why != HEARTH_ERR_TIMEOUT) return -1; /* gone or stopping: nobody to tell */
            failure(st, why, "");
        } else if (!on_event(st, which, &ev)) {
            srv_job_cancel(&st->job);
            return -1;
        }
    }
    size_t n = st->out.len < cap ? st->out.len : cap;
    memcpy(buf, st->out.data, n);
    srv_buf_consume(&st->out, n);
    return (ssize_t)n;
}
