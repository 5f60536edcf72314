/* The tool-call reply formats chat templates teach, chosen per model from what its
 * template renders for an assistant's tool calls, and the reading of replies (whole and
 * streamed) in that format into OpenAI tool calls:
 *
 *   TAGGED   <tool_call>{"name": "f", "arguments": {...}}</tool_call>, one block per call,
 *            text around the blocks is content (Qwen, Hermes, the built-in template;
 *            srv_tools.h).
 *   LLAMA    the whole reply is {"name": "f", "parameters": {...}} ("arguments" is read
 *            too), optionally after <|python_tag|>; several calls separated by ';' or
 *            newlines (Llama 3.1, 3.2, 3.3). The reply holds nothing else, and each name
 *            must be one of the request's tools: a JSON answer is not a call.
 *   MISTRAL  [TOOL_CALLS] followed by a JSON array of {"name", "arguments"} (Mistral Nemo)
 *            or by name[ARGS]{...}, optionally name[CALL_ID]id[ARGS]{...} (Ministral 3,
 *            Devstral, Mistral Small 3.2); text before the marker is content.
 *
 * A model whose template renders no tool calls (NONE) never has its reply read. A reply in
 * which a call does not parse stays content, whole. The stream filter releases content as
 * it comes and holds back only what may still turn into a call: from a marker anywhere
 * (TAGGED, MISTRAL), or, for LLAMA, a reply that opens with '{' or <|python_tag|>.
 * Values and buffers only; never touches a connection, never runs a tool. */
#ifndef SERVER_SRV_TOOLFMT_H
#define SERVER_SRV_TOOLFMT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/srv_json.h"
#include "server/srv_tools.h"

typedef enum srv_toolfmt {
    SRV_TOOLFMT_NONE,
    SRV_TOOLFMT_TAGGED,
    SRV_TOOLFMT_LLAMA,
    SRV_TOOLFMT_MISTRAL,      /* the template writes the JSON array form */
    SRV_TOOLFMT_MISTRAL_ARGS, /* it writes name[ARGS]{...}; replies are read in either form */
} srv_toolfmt;

#define SRV_TOOLFMT_PYTHON_TAG "<|python_tag|>"
#define SRV_TOOLFMT_MISTRAL_MARK "[TOOL_CALLS]"

/* The format a chat template's source teaches: TAGGED when it writes <tool_call>, MISTRAL
 * when it writes [TOOL_CALLS] (MISTRAL_ARGS with [ARGS]), LLAMA when it is a Llama 3
 * header template that writes "parameters" objects, NONE otherwise. */
srv_toolfmt srv_toolfmt_of_template(const char *src, size_t len);

/* "tagged", "llama", "mistral", "mistral-args" or "none". */
const char *srv_toolfmt_name(srv_toolfmt f);

/* The marker texts replies in format f are read by (*markers: a static array; returns
 * its length): TAGGED <tool_call> </tool_call>, LLAMA <|python_tag|>, MISTRAL and
 * MISTRAL_ARGS [TOOL_CALLS] [ARGS] [CALL_ID] (either form is read), NONE none. Where a
 * vocabulary makes one a control token, generation must show that token as text for the
 * marker to be seen (srv_prompter_shown_control, sched_request.shown_control). */
size_t srv_toolfmt_markers(srv_toolfmt f, const char *const **markers);
#define SRV_TOOLFMT_MAX_MARKERS 3 /* the longest list srv_toolfmt_markers returns */

/* The tool calls in text[0..len) written in format f, or NULL when it holds none, a call
 * does not parse, or f is NONE (NULL on NOMEM too). tools is the request's tool list
 * (LLAMA calls must name one of them). When calls are found, *content is the text outside
 * them, trimmed (a JSON string, or JSON null when empty). first_only keeps the first. */
json_t *srv_toolfmt_extract(srv_toolfmt f, const json_t *tools, const char *text, size_t len, bool first_only,
                            json_t **content);

/* Streaming in format f: adds generated text and appends to *release what can go out as
 * content now. */
bool srv_toolfmt_feed(srv_toolfmt f, srv_tool_stream *ts, const char *text, size_t len, srv_buf *release);

/* At the end of the choice: the tool calls of what was held (each with its "index"), or
 * NULL with every held byte appended to *release. Content read around calls is appended
 * to *release too (it goes out before the calls). *nomem on NOMEM. */
json_t *srv_toolfmt_finish(srv_toolfmt f, const json_t *tools, srv_tool_stream *ts, bool first_only,
                           srv_buf *release, bool *nomem);

/* A forced call to `name` in format f: appends to *out the opening of the call that ends
 * the prompt, so the model writes only the arguments; *stop is the stop string that ends
 * the call (NULL: the end of the turn does) and *close the text after the arguments that
 * closes the call ("}", "}]" or ""; srv_tools_forced_call's closed_by). False for NONE
 * (nothing appended) or on NOMEM.
 *   TAGGED        <tool_call>\n{"name": "NAME", "arguments":    stop </tool_call>, close }
 *   LLAMA         {"name": "NAME", "parameters":                end of turn, close }
 *   MISTRAL       [TOOL_CALLS][{"name": "NAME", "arguments":    end of turn, close }]
 *   MISTRAL_ARGS  [TOOL_CALLS]NAME[ARGS]                        end of turn, nothing */
bool srv_toolfmt_forced_open(srv_toolfmt f, const char *name, srv_buf *out, const char **stop, const char **close);

#endif
