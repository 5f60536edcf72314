/* One request in flight (see srv_job.h for its lifecycle). */
#include "server/srv_job.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "server/srv_admit.h"
#include "server/srv_response.h"

#define TEXT_MAX ((size_t)1 << 30)

static void random_id(char *out, size_t cap, const char *prefix) {
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    uint64_t a = sampler_random_seed(), b = sampler_random_seed();
    size_t n = (size_t)snprintf(out, cap, "%s", prefix);
    for (int i = 0; i < 24 && n + 1 < cap; i++) {
        uint64_t *r = i < 12 ? &a : &b;
        out[n++] = alnum[*r % 62];
        *r /= 62;
    }
    out[n] = '\0';
}

/* A forced tool call: the prompt ends with the call's opening in the template's form
 * (srv_toolfmt_forced_open) and generation stops at its end: the form's stop string, kept
 * last among the stop strings, or the end of the turn (srv_job_call_closed_by). */
static bool forced_call_prompt(srv_job *j, srv_error *e) {
    const srv_req *r = j->req;
    const srv_prompter *p = srv_model_prompter(j->model);
    if (!srv_prompter_tool_calls(p))
        return srv_invalid(e, "tool_choice",
                           "forcing a tool call needs a chat template that teaches tool calls; the template of "
                           "'%.100s' has none",
                           srv_model_id(j->model));
    srv_buf prefill = {.max = 4096};
    const char *stop = NULL;
    bool ok = srv_toolfmt_forced_open(srv_prompter_toolfmt(p), r->forced_tool, &prefill, &stop, &j->call_close);
    if (!ok) {
        srv_buf_free(&prefill);
        return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (stop && j->n_stop >= STOP_MAX_STRINGS) {
        srv_buf_free(&prefill);
        return srv_invalid(e, "stop", "a forced tool call takes one stop string: at most %d others", STOP_MAX_STRINGS - 1);
    }
    if (stop) {
        j->stop[j->n_stop++] = stop;
        j->call_stop = true;
    }
    ok = srv_prompt_chat_kw(p, r->messages, r->tools, r->template_kwargs, prefill.data, prefill.len,
                            &j->prompt_ids[0], &j->n_prompt_ids[0], NULL, e);
    srv_buf_free(&prefill);
    return ok;
}

static bool tokenize_prompts(srv_job *j, srv_error *e) {
    const srv_req *r = j->req;
    const srv_prompter *p = srv_model_prompter(j->model);
    if (r->api == SRV_API_CHAT && r->forced_tool) return forced_call_prompt(j, e);
    if (r->api == SRV_API_CHAT)
        return srv_prompt_chat_kw(p, r->messages, r->tools, r->template_kwargs, NULL, 0, &j->prompt_ids[0],
                                  &j->n_prompt_ids[0], &j->think_opened, e);
    for (size_t i = 0; i < r->n_prompts; i++) {
        const srv_prompt_in *in = &r->prompts[i];
        if (in->ids) {
            j->prompt_ids[i] = mem_alloc_array(in->n_ids, sizeof *in->ids);
            if (!j->prompt_ids[i]) return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory");
            memcpy(j->prompt_ids[i], in->ids, in->n_ids * sizeof *in->ids);
            j->n_prompt_ids[i] = in->n_ids;
        } else if (!srv_prompt_text(p, in->text, in->len, &j->prompt_ids[i], &j->n_prompt_ids[i], e)) {
            return false;
        }
        if (j->n_prompt_ids[i] == 0) return srv_invalid(e, "prompt", "the prompt is empty (it gives no tokens)");
    }
    return true;
}

/* Characters of completions prompt i, where OpenAI's text_offset of the first generated
 * token points: its text, or the text its token ids stand for. */
static int64_t prompt_chars(const srv_job *j, size_t i) {
    const srv_prompt_in *in = &j->req->prompts[i];
    if (!in->ids) return (int64_t)srv_utf8_chars(in->text, in->len);
    const tok_vocab *v = srv_model_vocab(j->model);
    int64_t n = 0;
    char buf[256];
    for (size_t k = 0; k < in->n_ids; k++) {
        size_t len = tok_piece(v, in->ids[k], false, buf, sizeof buf);
        n += (int64_t)srv_utf8_chars(buf, len < sizeof buf ? len : sizeof buf);
    }
    return n;
}

bool srv_job_prepare(srv_job *j, srv_model *m, const srv_req *r, double timeout_s, srv_error *e) {
    *j = (srv_job){.model = m, .req = r, .created = clock_unix_s()};
    random_id(j->id, sizeof j->id, r->api == SRV_API_CHAT ? "chatcmpl-" : "cmpl-");
    if (timeout_s > 0) j->deadline_ns = clock_mono_ns() + (uint64_t)(timeout_s * 1e9);
    for (size_t i = 0; i < r->n_stop; i++) j->stop[j->n_stop++] = r->stop[i];
    if (!tokenize_prompts(j, e)) return false;
    size_t n_prompts = r->api == SRV_API_CHAT ? 1 : r->n_prompts;
    int64_t n_ctx = srv_model_n_ctx(m);
    for (size_t i = 0; i < n_prompts; i++) {
        if ((int64_t)j->n_prompt_ids[i] >= n_ctx)
            return srv_fail(e, 400, "invalid_request_error", "context_length_exceeded",
                            r->api == SRV_API_CHAT ? "messages" : "prompt",
                            "This model's maximum context length is %lld tokens. However, your %s resulted in %zu "
                            "tokens, which leaves no room for a completion.",
                            (long long)n_ctx, r->api == SRV_API_CHAT ? "messages" : "prompt", j->n_prompt_ids[i]);
    }
    for (size_t pi = 0; pi < n_prompts; pi++)
        for (int k = 0; k < r->n; k++) {
            srv_choice *c = &j->ch[j->n_choices++];
            c->prompt = pi;
            c->text.max = TEXT_MAX;
            if (r->api == SRV_API_COMPLETION) c->text_offset = prompt_chars(j, pi);
            srv_reason_stream_init(&c->reason, j->think_opened);
        }
    return true;
}

bool srv_job_submit(srv_job *j, srv_error *e) {
    const srv_req *r = j->req;
    sched *s = srv_model_sched(j->model);
    uint64_t base_seed = r->seed_given ? r->sampling.seed : sampler_random_seed();
    /* the format's markers that are control tokens are text where the reply is read for
       calls, and where a forced call ends at one (the stop string </tool_call>) */
    const int32_t *tool_ids = NULL, *think_ids = NULL;
    size_t n_tool = srv_job_reads_tool_calls(j) || j->call_stop
                        ? srv_prompter_shown_control(srv_model_prompter(j->model), &tool_ids)
                        : 0;
    /* and so are <think> and </think> where the reply is read for reasoning */
    size_t n_think = srv_job_reads_reasoning(j) ? srv_prompter_think_control(srv_model_prompter(j->model), &think_ids) : 0;
    size_t n_shown = 0;
    for (size_t i = 0; i < n_tool && n_shown < sizeof j->shown / sizeof *j->shown; i++) j->shown[n_shown++] = tool_ids[i];
    for (size_t i = 0; i < n_think && n_shown < sizeof j->shown / sizeof *j->shown; i++) j->shown[n_shown++] = think_ids[i];
    const int32_t *shown = j->shown;
    for (size_t i = 0; i < j->n_choices; i++) {
        srv_choice *c = &j->ch[i];
        sched_refusal refusal;
        sched_request sr = {
            .prompt = j->prompt_ids[c->prompt],
            .n_prompt = j->n_prompt_ids[c->prompt],
            .max_tokens = r->max_tokens > 0 ? r->max_tokens
                          : r->api == SRV_API_COMPLETION ? 16
                                                          : (int32_t)(srv_model_n_ctx(j->model) > INT32_MAX
                                                                          ? INT32_MAX
                                                                          : srv_model_n_ctx(j->model)),
            .ignore_eos = r->ignore_eos,
            .shown_control = shown,
            .n_shown_control = n_shown,
            .sampling = r->sampling,
            .stop = j->stop,
            .n_stop = j->n_stop,
            .n_logprobs = r->n_logprobs,
            .deadline_ns = j->deadline_ns,
            .lora = {j->n_lora, j->lora},
            /* the request's first choice is admitted or refused; the others (n > 1) follow
               it, or each would count its siblings' budgets as a wait and refuse the request */
            .max_queue_wait_s = i == 0 ? fleet_lease_max_queue_wait(j->model) : 0,
            .refusal = &refusal,
        };
        sr.sampling.seed = base_seed + (uint64_t)(i % (size_t)r->n);
        hearth_err err = {0};
        hearth_status st = sched_submit(s, &sr, &c->q, &err);
        if (st != HEARTH_OK) {
            c->q = NULL;
            for (size_t k = 0; k < i; k++) {
                sched_release(j->ch[k].q);
                j->ch[k].q = NULL;
            }
            if (st == HEARTH_ERR_BUSY) {
                j->refused = srv_admit_refused(e, &refusal, err.msg);
                return false;
            }
            srv_fail_status(e, st, err.msg);
            if (st == HEARTH_ERR_RANGE) e->code = "context_length_exceeded";
            return false;
        }
    }
    return true;
}

bool srv_job_next(srv_job *j, size_t *which, sched_event *ev, int timeout_ms) {
    size_t first = j->n_choices;
    for (size_t k = 0; k < j->n_choices; k++) {
        size_t i = (j->rr + k) % j->n_choices;
        if (j->ch[i].done) continue;
        if (first == j->n_choices) first = i;
        if (sched_next(j->ch[i].q, ev, 0)) {
            j->rr = (i + 1) % j->n_choices;
            *which = i;
            return true;
        }
    }
    if (first == j->n_choices) return false;
    /* nothing ready: block on one unfinished choice (others are polled next time) */
    if (!sched_next(j->ch[first].q, ev, timeout_ms)) return false;
    j->rr = (first + 1) % j->n_choices;
    *which = first;
    return true;
}

bool srv_job_record(srv_job *j, size_t which, const sched_event *ev, bool keep) {
    srv_choice *c = &j->ch[which];
    bool ok = true;
    if (keep) {
        ok = srv_buf_add(&c->text, ev->text, ev->len);
        if (ok && j->req->n_logprobs >= 0 && ev->n_tokens > 0) {
            const tok_vocab *v = srv_model_vocab(j->model);
            if (j->req->api == SRV_API_CHAT) {
                if (!c->logprobs) c->logprobs = json_array();
                json_t *more = srv_logprobs_chat(v, ev, j->req->n_logprobs);
                ok = c->logprobs && more && json_array_extend(c->logprobs, more) == 0;
                json_decref(more);
            } else {
                ok = srv_logprobs_completion(&c->logprobs, v, ev, j->req->n_logprobs, &c->text_offset);
            }
        }
    }
    if (ev->finish != SCHED_FINISH_NONE) {
        c->done = true;
        c->finish = ev->finish;
        c->stop_index = ev->stop_index;
        c->err = ev->err;
        c->completion_tokens = ev->completion_tokens;
        c->cached_tokens = ev->cached_tokens;
    }
    return ok;
}

bool srv_job_all_done(const srv_job *j) {
    for (size_t i = 0; i < j->n_choices; i++)
        if (!j->ch[i].done) return false;
    return true;
}

bool srv_job_echo(const srv_job *j, size_t i, srv_buf *out) {
    const srv_prompt_in *in = &j->req->prompts[j->ch[i].prompt];
    if (!in->ids) return srv_buf_add(out, in->text, in->len);
    const tok_vocab *v = srv_model_vocab(j->model);
    char buf[256];
    for (size_t k = 0; k < in->n_ids; k++) {
        size_t len = tok_piece(v, in->ids[k], false, buf, sizeof buf);
        if (!srv_buf_add(out, buf, len < sizeof buf ? len : sizeof buf)) return false;
    }
    return true;
}

bool srv_job_reads_reasoning(const srv_job *j) {
    return j->req->api == SRV_API_CHAT && !j->req->forced_tool && !j->req->reasoning_none &&
           srv_prompter_reasoning(srv_model_prompter(j->model));
}

bool srv_job_reads_tool_calls(const srv_job *j) {
    return j->req->api == SRV_API_CHAT && j->req->tools && !j->req->forced_tool &&
           srv_prompter_tool_calls(srv_model_prompter(j->model));
}

const char *srv_job_call_closed_by(const srv_job *j, size_t i, const sched_event *ev) {
    sched_finish f = ev ? ev->finish : j->ch[i].finish;
    int stop = ev ? ev->stop_index : j->ch[i].stop_index;
    /* the user's stop strings come first: one equal to the call's end matches first */
    bool own_end = stop < 0 || (j->call_stop && (size_t)stop < j->n_stop && j->stop[stop] &&
                                !strcmp(j->stop[stop], j->stop[j->n_stop - 1]));
    return f == SCHED_FINISH_STOP && own_end ? j->call_close : NULL;
}

void srv_job_cancel(srv_job *j) {
    for (size_t i = 0; i < j->n_choices; i++)
        if (j->ch[i].q && !j->ch[i].done) sched_cancel(j->ch[i].q);
}

int64_t srv_job_prompt_tokens(const srv_job *j) {
    int64_t n = 0;
    size_t n_prompts = j->req->api == SRV_API_CHAT ? 1 : j->req->n_prompts;
    for (size_t i = 0; i < n_prompts; i++) n += (int64_t)j->n_prompt_ids[i];
    return n;
}

int64_t srv_job_completion_tokens(const srv_job *j) {
    int64_t n = 0;
    for (size_t i = 0; i < j->n_choices; i++) n += j->ch[i].completion_tokens;
    return n;
}

int64_t srv_job_cached_tokens(const srv_job *j) {
    int64_t n = 0;
    for (size_t i = 0; i < j->n_choices; i += (size_t)j->req->n) n += j->ch[i].cached_tokens;
    return n;
}

void srv_job_free(srv_job *j) {
    srv_model *m = j->model;
    for (size_t i = 0; i < j->n_choices; i++) {
        if (j->ch[i].q) sched_release(j->ch[i].q);
        srv_buf_free(&j->ch[i].text);
        json_decref(j->ch[i].logprobs);
        srv_tool_stream_free(&j->ch[i].tools);
    }
    for (size_t i = 0; i < SRV_MAX_CHOICES; i++) mem_free(j->prompt_ids[i]);
    for (int32_t i = 0; i < j->n_lora; i++) model_lora_release(j->lora[i].adapter);
    *j = (srv_job){0};
    srv_model_release(m); /* after the sequences: the scheduler must outlive them */
}
