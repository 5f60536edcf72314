/* libFuzzer target: configuration text (YAML) through cfg_build_text, the environment
 * ignored. A refusal must leave no configuration and carry messages; an accepted one
 * must find every model by its name and aliases, and its dump (cfg_dump) must build
 * again to the same dump. */
#include <string.h>

#include "base/mem.h"
#include "config/config.h"
#include "fz_util.h"

static void check_refusal(hearth_status st, const cfg_config *c, const cfg_errors *errs, const hearth_err *err) {
    if (c) fz_fail("refusal (%d) left a configuration", st);
    if (!err->msg[0]) fz_fail("refusal (%d) without a message", st);
    if (st == HEARTH_ERR_INVALID && errs->n == 0) fz_fail("INVALID without a listed problem: %s", err->msg);
    for (size_t i = 0; i < errs->n && i < CFG_MAX_ERRORS; i++)
        if (!errs->msg[i][0] || strnlen(errs->msg[i], sizeof errs->msg[i]) == sizeof errs->msg[i])
            fz_fail("problem %zu has an empty or unterminated message", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    hearth_status st = cfg_build_text((const char *)data, size, "fuzz.yaml", false, NULL, 0, &c, &errs, &err);
    if (st != HEARTH_OK) {
        check_refusal(st, c, &errs, &err);
        return 0;
    }
    for (size_t i = 0; i < c->n_models; i++) {
        const cfg_model *m = &c->models[i];
        if (!m->name || cfg_find_model(c, m->name) != m) fz_fail("model %zu is not found by its name", i);
        for (size_t a = 0; a < m->n_aliases; a++)
            if (cfg_find_model(c, m->aliases[a]) != m) fz_fail("model %zu is not found by alias %zu", i, a);
        if (!m->path == !m->url) fz_fail("model '%s' has %s", m->name, m->path ? "a path and a url" : "no path or url");
    }
    char *dump = cfg_dump(c);
    if (!dump) fz_fail("cfg_dump failed");
    cfg_config *again = NULL;
    st = cfg_build_text(dump, strlen(dump), "dump.yaml", false, NULL, 0, &again, &errs, &err);
    if (st != HEARTH_OK) fz_fail("the dump of an accepted configuration is refused: %s\n--- dump:\n%s", err.msg, dump);
    char *dump2 = cfg_dump(again);
    if (!dump2 || strcmp(dump, dump2) != 0)
        fz_fail("the dump changes when built again:\n--- first:\n%s\n--- second:\n%s", dump, dump2 ? dump2 : "(null)");
    mem_free(dump2);
    mem_free(dump);
    cfg_free(again);
    cfg_free(c);
    return 0;
}
