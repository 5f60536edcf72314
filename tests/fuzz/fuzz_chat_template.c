/* libFuzzer target: chat templates. First byte even: the rest is a template, compiled and
 * (when it compiles) rendered with a fixed chat context. First byte odd: the second byte
 * picks one of the fixture templates (compiled once at start; skipped when absent) and
 * the rest is a JSON context it is rendered with. Either way a failure must be a status
 * with a message, a success a NUL-terminated string of the stated length; the render
 * limits are lowered so a slow template ends quickly as a RANGE error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "chat/chat.h"
#include "fz_util.h"

#define MAX_TEMPLATES 128

static chat_template *templates[MAX_TEMPLATES];
static size_t n_templates;
static json_t *fixed_ctx;
static const chat_limits limits = {.max_steps = 200000, .max_output = 1 << 20, .max_memory = 32 << 20};

static const char FIXED_CONTEXT[] =
    "{\"messages\":["
    "{\"role\":\"system\",\"content\":\"You are terse.\"},"
    "{\"role\":\"user\",\"content\":\"Weather in Paris? \\u00e9\\ud83d\\ude00\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
    "\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"18C\"},"
    "{\"role\":\"assistant\",\"content\":\"18C and sunny.\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Thanks\"}]}],"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}],"
    "\"add_generation_prompt\":true,\"bos_token\":\"<s>\",\"eos_token\":\"</s>\"}";

/* Compiles every fixture template, in the order fz_template_dirs gives (the seed
 * generator numbers its contexts the same way). */
static void load_templates(void) {
    char *dirs[MAX_TEMPLATES];
    size_t n = fz_template_dirs(dirs, MAX_TEMPLATES);
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/template.jinja", dirs[i]);
        size_t len;
        char *src = fz_read_file(fz_fixture(path), &len);
        hearth_err err;
        if (src && !chat_template_new(src, len, &templates[n_templates], &err)) n_templates++;
        free(src);
        free(dirs[i]);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    setenv("HEARTH_NOW", "2026-11-23 12:00:00", 1);
    fixed_ctx = json_loads(FIXED_CONTEXT, 0, NULL);
    if (!fixed_ctx) fz_fail("fixed context does not parse");
    load_templates();
    if (!n_templates) printf("SKIP: no fixture templates under %s; only template sources are fuzzed\n",
                             fz_fixture("templates"));
    return 0;
}

static void render(const chat_template *t, const json_t *ctx) {
    char *out = NULL;
    size_t out_len = 0;
    hearth_err err = {0};
    hearth_status st = chat_template_render(t, ctx, &limits, &out, &out_len, &err);
    if (st) {
        if (out) fz_fail("failed render returned text");
        if (st != HEARTH_ERR_INVALID && !err.msg[0]) fz_fail("render status %d without a message", st);
        return;
    }
    if (!out || out[out_len] != '\0') fz_fail("rendered text not NUL-terminated at its length %zu", out_len);
    mem_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] % 2 == 0) {
        chat_template *t = NULL;
        hearth_err err = {0};
        if (chat_template_new((const char *)data + 1, size - 1, &t, &err)) {
            if (t || !err.msg[0]) fz_fail("refused template without a message, or with a handle");
            return 0;
        }
        render(t, fixed_ctx);
        chat_template_free(t);
        return 0;
    }
    if (!n_templates || size < 2) return 0;
    json_t *ctx = json_loadb((const char *)data + 2, size - 2, JSON_DECODE_ANY, NULL);
    if (!ctx) return 0;
    render(templates[data[1] % n_templates], ctx);
    json_decref(ctx);
    return 0;
}
