/* Chat templates: compile a model's Jinja chat template once, render it many times
 * with a JSON context (messages, tools, add_generation_prompt, bos_token, ...), byte for
 * byte as Hugging Face renders it (Jinja2 sandbox, trim_blocks, lstrip_blocks,
 * loopcontrols, tojson keeping non-ASCII, raise_exception, strftime_now).
 *
 * A compiled template is immutable: any number of threads may render it at once.
 * Rendering is sandboxed: a step budget, an output cap, a memory budget and a macro
 * depth limit bound every render; exceeding one is an error, never a hang or crash.
 * A render uses up to about 1 MiB of C stack at the deepest macro nesting. */
#ifndef CHAT_CHAT_H
#define CHAT_CHAT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

typedef struct chat_template chat_template;

/* Limits of one render; zero fields take the defaults below. */
typedef struct chat_limits {
    uint64_t max_steps;  /* evaluation steps (default 10,000,000) */
    size_t max_output;   /* bytes of rendered text and of any string (default 16 MiB) */
    size_t max_memory;   /* bytes held by the render's values at once (default 256 MiB) */
    int max_depth;       /* nested macro calls (default 100) */
} chat_limits;

/* Compiles src[0..len). On a syntax error returns HEARTH_ERR_FORMAT with a message
 * naming the line ("template syntax error at line 3: ..."). *out owned by the caller. */
hearth_status chat_template_new(const char *src, size_t len, chat_template **out, hearth_err *err);
void chat_template_free(chat_template *t);

/* Renders t with the variables of the JSON object `context` (borrowed). On success
 * *out is a NUL-terminated string from mem_alloc (free with mem_free) and *out_len its
 * length (may be NULL). limits may be NULL. strftime_now() formats the local time, or
 * the time in the environment variable HEARTH_NOW ("YYYY-MM-DD HH:MM:SS") when set.
 * Errors:
 *   HEARTH_ERR_INVALID  the template called raise_exception(msg): err->msg is msg
 *                       verbatim (a client error: the template rejects the request);
 *                       also a context that is not a JSON object.
 *   HEARTH_ERR_FORMAT   the template failed at run time ("UndefinedError: 'x' is
 *                       undefined (template line 12)", TypeError, SecurityError, ...).
 *   HEARTH_ERR_RANGE    a limit was exceeded (steps, output, memory, macro depth).
 *   HEARTH_ERR_NOMEM    an allocation failed. */
hearth_status chat_template_render(const chat_template *t, const json_t *context, const chat_limits *limits,
                                   char **out, size_t *out_len, hearth_err *err);

#endif
