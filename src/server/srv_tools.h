/* OpenAI tool calling on chat completions: validation of the request's `tools`,
 * `tool_choice` and `parallel_tool_calls` (and refusal of the legacy `functions` /
 * `function_call`), and the reading of tool calls out of generated text.
 *
 * Tool calls are read in the tagged form that ChatML-family templates (Qwen2.5, Qwen3,
 * Hermes 2/3, and the built-in template) teach their models:
 *   <tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>
 * Each block becomes one OpenAI tool call {"id","type":"function","function":{"name",
 * "arguments": a JSON string}}; text outside the blocks stays the message content. Text
 * holding a block that does not parse stays content, whole: a reply is never half
 * reinterpreted. Which form a model's replies are read in, the other forms and the stream
 * filter are in srv_toolfmt.h. Values and buffers only; never touches a connection. */
#ifndef SERVER_SRV_TOOLS_H
#define SERVER_SRV_TOOLS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/srv_error.h"
#include "server/srv_json.h"

#define SRV_TOOL_CALL_OPEN "<tool_call>"
#define SRV_TOOL_CALL_CLOSE "</tool_call>"

/* Checks the tool fields of a chat body. *tools is the request's tool list (borrowed
 * from root) to give the template, or NULL when there is none or tool_choice is "none".
 * *forced is the function a call must be made to (borrowed): tool_choice naming it, or
 * "required" with exactly one tool; NULL otherwise. "required" with several tools is
 * refused (400, param tool_choice): choosing among them needs constrained decoding. */
bool srv_tools_parse_request(const json_t *root, const json_t **tools, const char **forced, srv_error *e);

/* A forced call: the prompt ends with the opening of the call to `name` in the tagged
 * form, up to and including `"arguments": `, so the model writes only the arguments;
 * generation stops at SRV_TOOL_CALL_CLOSE (srv_toolfmt.h has the other forms). The
 * arguments are the text as generated, less the text closing the call when the call ended
 * at its own end (closed_by: "}" here, NULL when the user's stop string or a length limit
 * ended it): as OpenAI warns of its own, they are the model's text and may not be valid
 * JSON. */
bool srv_tools_prefill(const char *name, srv_buf *out);
/* tools (a request's checked list) has a function named name. */
bool srv_tools_has(const json_t *tools, const char *name);
/* A fresh call id: "call_" and 24 letters and digits. */
void srv_tools_call_id(char *out, size_t cap);
json_t *srv_tools_forced_call(const char *name, const char *text, size_t len, const char *closed_by);

/* An OpenAI tool call with a fresh id: name must be a valid function name (JSON string),
 * args a JSON object (sent as its compact text), a string (sent as written) or NULL ("{}").
 * NULL when they are not (or on NOMEM). */
json_t *srv_tools_call_new(const json_t *name, const json_t *args);

/* The tool calls in text[0..len), or NULL when it holds none or a block does not parse
 * (NULL on NOMEM too). When calls are found, *content is the text outside the blocks,
 * trimmed (a JSON string, or JSON null when empty). With first_only (the request's
 * parallel_tool_calls: false) only the first call is kept. */
json_t *srv_tools_extract(const char *text, size_t len, bool first_only, json_t **content);

/* The end of every form's reading: takes calls (read with no failure when ok) and frees
 * *outside (the text outside them). With calls, *content is that text trimmed (a JSON
 * string, or JSON null when empty) and first_only keeps the first call; else NULL and
 * *content NULL. */
json_t *srv_tools_calls_read(json_t *calls, bool ok, srv_buf *outside, bool first_only, json_t **content);

/* Per-choice stream state: text not yet released as content (fed and finished by
 * srv_toolfmt_feed / srv_toolfmt_finish in the model's format). */
typedef struct srv_tool_stream {
    srv_buf held;
    bool in_call; /* an opening tag was seen: everything from it waits for the end */
    bool passing; /* the reply can no longer be a call (srv_toolfmt.h, LLAMA): all goes out */
    size_t lead;  /* LLAMA: bytes of leading spaces held and already looked at */
} srv_tool_stream;

/* Streamed arguments of a forced call: releases text as it comes except a tail of
 * closing braces, brackets and spaces; at the end (end set) drops the text closing the
 * call (closed_by, as srv_tools_forced_call) and releases the rest. */
bool srv_tool_stream_forced(srv_tool_stream *ts, const char *text, size_t len, bool end, const char *closed_by,
                            srv_buf *release);

void srv_tool_stream_free(srv_tool_stream *ts);

#endif
