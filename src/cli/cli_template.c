/* `hearth template TEMPLATE.jinja CONTEXT.json`: renders a chat template with a JSON
 * context and prints the result exactly (no newline added). A template that raises
 * prints "hearth: error: <message>" and exits 1; bad usage exits 2. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "chat/chat.h"
#include "cli/cli.h"

static int usage(FILE *out) {
    fprintf(out, "usage: hearth template TEMPLATE.jinja CONTEXT.json\n"
                 "Renders a chat template with the variables of a JSON object (messages, tools,\n"
                 "add_generation_prompt, bos_token, eos_token, ...) and prints the result.\n"
                 "strftime_now() uses $HEARTH_NOW (\"YYYY-MM-DD HH:MM:SS\") when set.\n");
    return out == stdout ? 0 : 2;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 65536, n = 0;
    char *buf = mem_alloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        char *bigger = cap < ((size_t)1 << 30) ? mem_realloc(buf, cap * 2) : NULL;
        if (!bigger) {
            mem_free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        mem_free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int cli_template(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return usage(stdout);
    if (argc != 3) return usage(stderr);
    size_t len;
    char *src = slurp(argv[1], &len);
    if (!src) {
        fprintf(stderr, "hearth: error: cannot read template '%s'\n", argv[1]);
        return 1;
    }
    json_error_t jerr;
    json_t *ctx = json_load_file(argv[2], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!ctx) {
        fprintf(stderr, "hearth: error: %s: line %d: %s\n", argv[2], jerr.line, jerr.text);
        mem_free(src);
        return 1;
    }
    int rc = 0;
    hearth_err err = {0};
    chat_template *t = NULL;
    char *out = NULL;
    size_t out_len = 0;
    if (!json_is_object(ctx)) {
        fprintf(stderr, "hearth: error: %s: the context must be a JSON object\n", argv[2]);
        rc = 1;
    } else if (chat_template_new(src, len, &t, &err) != HEARTH_OK ||
               chat_template_render(t, ctx, NULL, &out, &out_len, &err) != HEARTH_OK) {
        fprintf(stderr, "hearth: error: %s\n", err.msg);
        rc = 1;
    } else if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout)) {
        fprintf(stderr, "hearth: error: cannot write the output\n");
        rc = 1;
    }
    mem_free(out);
    chat_template_free(t);
    json_decref(ctx);
    mem_free(src);
    return rc;
}
