/* One API request in flight: its prompts tokenized, one scheduler sequence per choice,
 * and what each choice has produced so far. The HTTP thread that owns the job polls its
 * sequences; nothing here is shared with other threads except through the scheduler.
 * Request lifecycle:
 *
 *   prepared ──submit──► running ──(every choice finished)──► done
 *      │                    │
 *      └─(BUSY/invalid)─► error   └─(deadline, client gone, shutdown)─► cancelled
 *
 * Invariants: 1. a choice's sequence is released exactly once (srv_job_free);
 * 2. choices submit all-or-nothing: if one is refused, the others are released first. */
#ifndef SERVER_SRV_JOB_H
#define SERVER_SRV_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/sched.h"
#include "server/srv_error.h"
#include "server/srv_json.h"
#include "server/srv_model.h"
#include "server/srv_reasoning.h"
#include "server/srv_request.h"
#include "server/srv_toolfmt.h"

typedef struct srv_choice {
    sched_seq *q;
    size_t prompt;              /* index into the job's prompts */
    bool done;
    sched_finish finish;
    int stop_index;             /* when finish is STOP: the job's stop string that matched, or -1 */
    hearth_err err;             /* when finish is ERROR */
    int64_t completion_tokens, cached_tokens;
    srv_buf text;               /* everything released so far (non-streamed replies) */
    json_t *logprobs;           /* accumulated logprobs (non-streamed replies), or NULL */
    int64_t text_offset;        /* completions logprobs: bytes of token pieces so far */
    srv_tool_stream tools;      /* streamed chat with tool calls read: text held back */
    srv_reason_stream reason;   /* streamed chat read for reasoning */
} srv_choice;

typedef struct srv_job {
    srv_model *model;
    const srv_req *req;
    char id[48];                /* "chatcmpl-..." or "cmpl-..." */
    int64_t created;
    uint64_t deadline_ns;       /* clock_mono_ns; 0 none */
    int32_t *prompt_ids[SRV_MAX_CHOICES];
    size_t n_prompt_ids[SRV_MAX_CHOICES];
    size_t n_choices;
    srv_choice ch[SRV_MAX_CHOICES];
    size_t rr;                  /* round-robin cursor of srv_job_next */
    model_lora_use lora[SCHED_MAX_LORA]; /* adapters of every choice, one reference each */
    const char *stop[STOP_MAX_STRINGS];  /* the request's, plus the call's end for a forced call */
    size_t n_stop;
    bool call_stop;             /* a forced call: the last stop string is the call's end */
    const char *call_close;     /* a forced call: the text closing it (srv_toolfmt_forced_open) */
    int32_t n_lora;
    bool think_opened;          /* the chat prompt ended inside a think block */
    int32_t shown[SRV_TOOLFMT_MAX_MARKERS + 2]; /* control tokens shown as text: tool and think markers */
    const char *refused;        /* set when submit was refused for load: the metric reason
                                   (srv_admit.h), static */
} srv_job;

/* Tokenizes the prompts and checks them against the context. timeout_s > 0 sets the
 * deadline. Takes ownership of m whatever the outcome (srv_job_free releases it).
 * Errors: 400 (template, context length with both counts), 500. */
bool srv_job_prepare(srv_job *j, srv_model *m, const srv_req *r, double timeout_s, srv_error *e);

/* Submits every choice. 503 with Retry-After when the scheduler is full. */
bool srv_job_submit(srv_job *j, srv_error *e);

/* Waits up to timeout_ms for an event of any unfinished choice; *which is its index.
 * The event is valid until the next call. False when none came (or all are done). */
bool srv_job_next(srv_job *j, size_t *which, sched_event *ev, int timeout_ms);

/* Completions with echo: appends the text of choice i's prompt (its text, or the text
 * its token ids stand for) to out. */
bool srv_job_echo(const srv_job *j, size_t i, srv_buf *out);

/* Records an event into its choice: done/finish/usage always; text and logprobs
 * accumulated when keep is set (non-streamed replies). False on NOMEM. */
bool srv_job_record(srv_job *j, size_t which, const sched_event *ev, bool keep);

bool srv_job_all_done(const srv_job *j);
/* A chat request with tools (tool_choice "auto") on a template that teaches a tool-call
 * form: its replies are read for tool calls (srv_toolfmt.h). A forced call is not read:
 * its whole reply is the call's arguments. */
bool srv_job_reads_tool_calls(const srv_job *j);
/* A forced call's choice i ended at the call's own end (the form's stop string or an
 * end-of-generation token), not at one of the user's stop strings nor at a length limit:
 * the text closing the call (call_close), which is not part of the arguments; else NULL.
 * ev: the choice's last event when streaming (NULL: what srv_job_record kept). */
const char *srv_job_call_closed_by(const srv_job *j, size_t i, const sched_event *ev);
/* A chat request (not a forced call, reasoning_format not "none") on a template that knows
 * think blocks: its replies are split into reasoning and answer (srv_reasoning.h). */
bool srv_job_reads_reasoning(const srv_job *j);
void srv_job_cancel(srv_job *j);
int64_t srv_job_prompt_tokens(const srv_job *j);
int64_t srv_job_completion_tokens(const srv_job *j);
int64_t srv_job_cached_tokens(const srv_job *j);
void srv_job_free(srv_job *j);

#endif
