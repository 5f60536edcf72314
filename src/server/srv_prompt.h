/* Prompt building: chat messages rendered with the model's chat template (or the
 * built-in ChatML one), and completions text, turned into token ids.
 *
 * Chat prompts keep a trust boundary: special tokens written by the TEMPLATE become
 * control tokens, while special-token text typed by users ("<|im_end|>", "</s>") in any
 * string of the messages or tools stays plain text. Before rendering, every occurrence
 * of a control token's text in those strings is replaced by a private-use marker
 * (U+E000, the token's index in private-use digits, U+E001); the rendered text is cut at
 * control-token texts (all written by the template), the markers are turned back into
 * their text inside the plain fragments, and each fragment is tokenized with special
 * parsing off. For text without user-typed specials this gives the same ids as
 * tokenizing the rendered prompt with special parsing on. A BOS token is put first when
 * the vocabulary adds one and the template did not write it.
 *
 * Completions prompts are the client's own raw text: special-token text in them becomes
 * control tokens (as the reference server does), with BOS first when the vocabulary adds
 * one. A prompter is immutable once built and may be used by many threads at once. */
#ifndef SERVER_SRV_PROMPT_H
#define SERVER_SRV_PROMPT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"
#include "server/srv_error.h"
#include "server/srv_toolfmt.h"
#include "tokenizer/tokenizer.h"

/* The template used when the model file has none: ChatML
 * ("<|im_start|>ROLE\nCONTENT<|im_end|>\n" per message, then "<|im_start|>assistant\n"), plus
 * a system turn listing the tools and the <tool_call> form when the request has tools. */
extern const char srv_builtin_chat_template[];

typedef struct srv_prompter srv_prompter;

/* Compiles template_src[0..len) (NULL: the built-in ChatML template) for vocabulary v
 * (borrowed; must outlive the prompter). FORMAT on a template syntax error, NOMEM. */
hearth_status srv_prompter_new(const tok_vocab *v, const char *template_src, size_t len, srv_prompter **out,
                               hearth_err *err);
void srv_prompter_free(srv_prompter *p);
bool srv_prompter_builtin(const srv_prompter *p);
/* The template knows <think> blocks: chat replies are read for reasoning (srv_reasoning.h). */
bool srv_prompter_reasoning(const srv_prompter *p);
/* <think> and </think> where the vocabulary makes them control tokens (none unless the
 * template knows them): shown as text where replies are read for reasoning. */
size_t srv_prompter_think_control(const srv_prompter *p, const int32_t **ids);
/* The template teaches a tool-call form (srv_toolfmt.h): replies are read for tool calls. */
bool srv_prompter_tool_calls(const srv_prompter *p);
/* Which form it teaches (SRV_TOOLFMT_NONE: none). */
srv_toolfmt srv_prompter_toolfmt(const srv_prompter *p);
/* The control tokens of the vocabulary whose text is one of that form's markers
 * (srv_toolfmt_markers), found once when the prompter is built: the tokens a request
 * read for tool calls shows as text (sched_request.shown_control). *ids lives as long as
 * p; returns the count (0: the markers are plain text, or no form). */
size_t srv_prompter_shown_control(const srv_prompter *p, const int32_t **ids);

/* Renders messages (and tools, may be NULL) with add_generation_prompt true and
 * tokenizes them. *ids is mem_alloc'd. Errors: 400 for a template's raise_exception
 * (its message) or a render limit, 500 for a template run-time failure or NOMEM. */
bool srv_prompt_chat(const srv_prompter *p, const json_t *messages, const json_t *tools, int32_t **ids, size_t *n,
                     srv_error *e);

/* As srv_prompt_chat, with prefill[0..prefill_len) (server-written text, which may hold
 * control-token texts) after the rendered prompt: the start of the assistant's reply. */
bool srv_prompt_chat_prefill(const srv_prompter *p, const json_t *messages, const json_t *tools, const char *prefill,
                             size_t prefill_len, int32_t **ids, size_t *n, srv_error *e);

/* Tokenizes a completions prompt (special-token text parsed). *ids is mem_alloc'd. */
/* srv_prompt_chat_prefill with the client's chat_template_kwargs (an object, or NULL)
 * joined to the template's context; *think_opened (when not NULL) tells whether the
 * rendered prompt opened a think block (srv_reasoning_opened; false with a prefill). */
bool srv_prompt_chat_kw(const srv_prompter *p, const json_t *messages, const json_t *tools, const json_t *kwargs,
                        const char *prefill, size_t prefill_len, int32_t **ids, size_t *n, bool *think_opened,
                        srv_error *e);
bool srv_prompt_text(const srv_prompter *p, const char *text, size_t len, int32_t **ids, size_t *n, srv_error *e);

#endif
