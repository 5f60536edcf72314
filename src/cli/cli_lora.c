/* `--lora ADAPTER[:SCALE]` parsing and loading (see cli_lora.h). Never exits. */
#include "cli/cli_lora.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "cli/cli_gen.h"

#define SCALE_LIMIT 1e6

bool cli_lora_parse(const char *value, cli_lora_list *l) {
    if (l->n >= CLI_LORA_MAX) {
        cli_gen_fail(CLI_EXIT_USAGE, "--lora: at most %d adapters", CLI_LORA_MAX);
        return false;
    }
    cli_lora_arg a = {value, strlen(value), 1.0f};
    const char *colon = strrchr(value, ':');
    if (colon && colon[1]) {
        char *end;
        errno = 0;
        double s = strtod(colon + 1, &end);
        if (!errno && !*end && isfinite(s)) {
            if (fabs(s) > SCALE_LIMIT) {
                cli_gen_fail(CLI_EXIT_USAGE, "--lora %s: scale must lie in [-%g, %g]", value, SCALE_LIMIT, SCALE_LIMIT);
                return false;
            }
            a.path_len = (size_t)(colon - value);
            a.scale = (float)s;
        }
    }
    if (a.path_len == 0) {
        cli_gen_fail(CLI_EXIT_USAGE, "--lora expects ADAPTER.gguf[:SCALE], got '%s'", value);
        return false;
    }
    l->arg[l->n++] = a;
    return true;
}

hearth_status cli_lora_attach(gen_engine *e, const model *m, const cli_lora_list *l, hearth_err *err) {
    if (l->n == 0) return HEARTH_OK;
    model_lora_use uses[CLI_LORA_MAX] = {{0}};
    hearth_status st = HEARTH_OK;
    for (int i = 0; i < l->n && !st; i++) {
        char *path = mem_strndup(l->arg[i].spec, l->arg[i].path_len);
        if (!path) {
            st = err_set(err, HEARTH_ERR_NOMEM, "--lora: out of memory");
            break;
        }
        st = model_lora_open(m, path, &uses[i].adapter, err);
        uses[i].scale = l->arg[i].scale;
        mem_free(path);
    }
    if (!st) st = gen_set_lora(e, uses, l->n, err);
    for (int i = 0; i < l->n; i++) model_lora_release(uses[i].adapter);
    return st;
}
