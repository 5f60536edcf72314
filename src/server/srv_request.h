/* Parsing and validation of /v1/chat/completions and /v1/completions bodies into a typed
 * request. Every field is type- and range-checked; the first problem becomes a 400 error
 * naming the field (param). Unknown fields are ignored, as OpenAI does, except the ones
 * whose silent omission would change the answer (echo with logprobs, suffix, best_of > n, non-text
 * response_format, non-text content parts, modalities other than text, audio,
 * web_search_options, and the tool fields srv_tools.h refuses). This file knows no model internals beyond
 * the vocabulary size and never touches a connection.
 *
 * Extensions beyond OpenAI's fields: top_k, min_p, repetition_penalty (alias
 * repeat_penalty), ignore_eos, and timeout (seconds for the whole request, capped by
 * the server's --timeout). */
#ifndef SERVER_SRV_REQUEST_H
#define SERVER_SRV_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "engine/stop.h"
#include "server/srv_error.h"

#define SRV_MAX_CHOICES 8        /* n, and prompts x n for completions */
#define SRV_MAX_MESSAGES 4096
#define SRV_MAX_PROMPT_TOKENS_IN 1048576 /* token ids given directly in "prompt" */
#define SRV_MAX_TIMEOUT_S 86400.0

typedef enum srv_api { SRV_API_CHAT, SRV_API_COMPLETION } srv_api;

/* One completions prompt: text, or token ids given by the client. */
typedef struct srv_prompt_in {
    const char *text;      /* in the request's JSON; NULL when ids */
    size_t len;
    int32_t *ids;          /* mem_alloc'd when given as ids */
    size_t n_ids;
} srv_prompt_in;

typedef struct srv_req {
    srv_api api;
    json_t *root;                 /* owned; strings below point into it */
    const char *model;
    /* chat */
    json_t *messages;             /* normalised copy: roles checked, content as a string; owned */
    json_t *tools;                /* borrowed from root; NULL when none or tool_choice "none" */
    const char *forced_tool;      /* tool_choice forces a call to this function (borrowed), or NULL */
    bool one_tool_call;           /* parallel_tool_calls: false: a reply keeps its first call only */
    bool reasoning_none;          /* reasoning_format "none": thinking stays in content (srv_reasoning.h) */
    const json_t *template_kwargs; /* chat_template_kwargs, borrowed from root, or NULL */
    /* completions */
    srv_prompt_in prompts[SRV_MAX_CHOICES];
    size_t n_prompts;
    /* shared */
    bool stream, include_usage;
    int32_t max_tokens;           /* 0: not given */
    int n;                        /* choices per prompt */
    sampler_params sampling;
    bool seed_given;
    sampler_bias *bias;           /* mem_alloc'd [n_bias] */
    size_t n_bias;
    const char *stop[STOP_MAX_STRINGS];
    size_t n_stop;
    int n_logprobs;               /* -1 none, else 0..20 top alternatives */
    bool echo;                    /* completions: the prompt's text opens each choice's text */
    bool ignore_eos;
    double timeout_s;             /* 0: the server's */
} srv_req;

/* Parses body[0..len). n_vocab bounds token ids (logit_bias keys, prompt ids). On
 * failure fills e (400, or 415/413 are the HTTP glue's) and leaves *r empty. */
bool srv_req_parse(const char *body, size_t len, srv_api api, int32_t n_vocab, srv_req *r, srv_error *e);
void srv_req_free(srv_req *r);

#endif
