/* Helpers for the chat-template unit tests: render a template string with a JSON
 * context string and compare the text, or the error status and message. Header-only
 * (static functions) so that only the chat tests carry them. */
#ifndef TESTS_CHAT_CHECK_H
#define TESTS_CHAT_CHECK_H

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "chat/chat.h"
#include "testutil.h"

/* Renders src with ctx (JSON object text, NULL for {}); returns the status, fills *out
 * (mem_free it) and err. Compile errors are returned as they are. */
static inline hearth_status chat_try(const char *src, const char *ctx, const chat_limits *lim, char **out, hearth_err *err) {
    *out = NULL;
    json_error_t jerr;
    json_t *j = json_loads(ctx ? ctx : "{}", 0, &jerr);
    if (!j) fail_msg("bad test context JSON: %s", jerr.text);
    chat_template *t = NULL;
    hearth_status st = chat_template_new(src, strlen(src), &t, err);
    if (st == HEARTH_OK) st = chat_template_render(t, j, lim, out, NULL, err);
    chat_template_free(t);
    json_decref(j);
    return st;
}

static inline void check_render_ctx(const char *src, const char *ctx, const char *want) {
    char *out;
    hearth_err err = {0};
    hearth_status st = chat_try(src, ctx, NULL, &out, &err);
    if (st != HEARTH_OK) fail_msg("template %s\nfailed: %s", src, err.msg);
    if (strcmp(out, want)) printf("template: %s\n", src);
    assert_string_equal(out, want);
    mem_free(out);
}

static inline void check_render(const char *src, const char *want) { check_render_ctx(src, NULL, want); }

/* Expects status st and an error message containing `part`. */
static inline void check_error_lim(const char *src, const char *ctx, const chat_limits *lim, hearth_status st,
                            const char *part) {
    char *out;
    hearth_err err = {0};
    hearth_status got = chat_try(src, ctx, lim, &out, &err);
    if (got != st || !strstr(err.msg, part))
        fail_msg("template %s\nexpected status %d with \"%s\", got status %d: \"%s\" (output \"%s\")", src, st, part, got,
                 err.msg, out ? out : "");
    mem_free(out);
}

static inline void check_error(const char *src, hearth_status st, const char *part) { check_error_lim(src, NULL, NULL, st, part); }

#endif
