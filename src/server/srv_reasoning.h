/* Reasoning ("thinking") in chat replies: models whose chat template knows <think> blocks
 * (Qwen3, QwQ, DeepSeek-R1 and its distills, GLM, Step) write
 *
 *   [<think>] reasoning </think> answer
 *
 * and the reply is split into reasoning_content (the block's text, leading whitespace
 * trimmed) and content (the answer after </think>, leading whitespace trimmed). A reply
 * starts inside the block when the rendered prompt already opened it (it ends in <think>);
 * otherwise a block is read only when the reply opens with one (after whitespace), and a
 * reply that does not is all answer (the model skipped thinking). A reply that ends inside
 * the block is all reasoning with an empty answer. Whole (srv_reason_split) and streamed
 * (srv_reason_feed / srv_reason_finish) reading agree for every way a reply is cut into
 * pieces; the stream holds back only what may still be a marker. Values and buffers only;
 * never reads tool calls (those are read from the answer, srv_toolfmt.h). */
#ifndef SERVER_SRV_REASONING_H
#define SERVER_SRV_REASONING_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "server/srv_error.h"
#include "server/srv_json.h"

#define SRV_REASON_OPEN "<think>"
#define SRV_REASON_CLOSE "</think>"

/* The template writes or strips think blocks (its source holds </think>): its replies are
 * read for reasoning. */
bool srv_reasoning_of_template(const char *src, size_t len);

/* The rendered prompt prompt[0..len) ends in <think> (then only whitespace): the reply
 * starts inside the block. */
bool srv_reasoning_opened(const char *prompt, size_t len);

/* Whole reply text[0..len): the reasoning is text[*r_off, *r_off + *r_len) and the answer
 * text[*c_off, *c_off + *c_len); r_len 0 when there was none. */
void srv_reason_split(bool opened, const char *text, size_t len, size_t *r_off, size_t *r_len, size_t *c_off,
                      size_t *c_len);

#define SRV_REASON_KWARGS_MAX_KEYS 64
#define SRV_REASON_KWARGS_MAX_BYTES 16384 /* serialized */

/* A chat request's controls: reasoning_format "auto" (the default: split) or "none" (the
 * whole reply is content; *none set), and chat_template_kwargs, an object of at most
 * SRV_REASON_KWARGS_MAX_KEYS names and SRV_REASON_KWARGS_MAX_BYTES serialized whose names
 * are not the context's own (messages, tools, add_generation_prompt, bos_token,
 * eos_token); *kwargs borrows it from root (NULL when absent). 400 naming the field. */
bool srv_reasoning_parse_request(const json_t *root, bool *none, const json_t **kwargs, srv_error *e);

/* srv_reason_split on the JSON string *text: *text becomes the answer, *reasoning the
 * reasoning (NULL when there was none). False on NOMEM (*text then NULL). */
bool srv_reason_split_json(bool opened, json_t **text, json_t **reasoning);

typedef struct srv_reason_stream {
    int state;
    char held[8]; /* a prefix of the marker being looked for */
    size_t n_held;
} srv_reason_stream;

void srv_reason_stream_init(srv_reason_stream *rs, bool opened);
/* Adds generated text: appends to *reasoning and *content what can go out now. False on
 * NOMEM. */
bool srv_reason_feed(srv_reason_stream *rs, const char *text, size_t len, srv_buf *reasoning, srv_buf *content);
/* At the end of the reply: releases what was held. */
bool srv_reason_finish(srv_reason_stream *rs, srv_buf *reasoning, srv_buf *content);

#endif
