/* JSON bodies of the OpenAI API as this server sends them: whole chat and text
 * completions, their streamed chunks, logprobs in both shapes, the model list. Builds
 * values only; never sends. Every builder returns NULL on NOMEM. */
#ifndef SERVER_SRV_RESPONSE_H
#define SERVER_SRV_RESPONSE_H

#include <jansson.h>

#include "engine/sched.h"
#include "server/srv_job.h"
#include "tokenizer/tokenizer.h"

#define SRV_SYSTEM_FINGERPRINT "fp_hearth_" HEARTH_VERSION

/* "stop", "length", or NULL for other finishes. */
const char *srv_finish_reason(sched_finish f);

/* Chat logprobs entries of ev's tokens: [{"token","logprob","bytes","top_logprobs":[...]}]. */
json_t *srv_logprobs_chat(const tok_vocab *v, const sched_event *ev, int n_top);

/* Completions logprobs of ev's tokens appended to obj (created when *obj is NULL):
 * {"tokens":[], "token_logprobs":[], "top_logprobs":[{tok: lp}], "text_offset":[]};
 * as OpenAI, text_offset counts characters from the start of the prompt: *offset starts
 * at the prompt's length (srv_job_prepare) and advances by each token's characters. */
bool srv_logprobs_completion(json_t **obj, const tok_vocab *v, const sched_event *ev, int n_top, int64_t *offset);

/* The whole reply of a finished job. A chat reply read for tool calls that holds some
 * has message.tool_calls, the rest of its text as content (null when none) and
 * finish_reason "tool_calls". */
json_t *srv_reply_full(const srv_job *j);

/* Streamed chunks. text may be NULL (no content); logprobs is stolen (may be NULL);
 * finish NULL while the choice runs. */
json_t *srv_chunk_role(const srv_job *j, size_t choice);
json_t *srv_chunk(const srv_job *j, size_t choice, const char *text, size_t len, json_t *logprobs, const char *finish);
/* A chat chunk whose delta carries reasoning_content (srv_reasoning.h). */
json_t *srv_chunk_reasoning(const srv_job *j, size_t choice, const char *text, size_t len);
/* A chat chunk whose delta carries tool calls (calls stolen; each with its "index"). */
json_t *srv_chunk_tool_calls(const srv_job *j, size_t choice, json_t *calls);
json_t *srv_chunk_usage(const srv_job *j);

json_t *srv_usage(const srv_job *j);
/* Unicode characters of the UTF-8 text s[0..n). */
size_t srv_utf8_chars(const char *s, size_t n);
json_t *srv_model_object(const char *id, int64_t created);

#endif
