/* `hearth config check FILE`: reads FILE as `hearth serve -c FILE` would (with the
 * HEARTH_* environment applied), prints every problem as file:line:column: key: what is
 * wrong, or the effective configuration as YAML. Exits 0 when valid, 1 when not, 2 on a
 * usage error. */
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "cli/cli.h"
#include "config/config.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth config check FILE\n"
            "\n"
            "Checks a configuration file (docs/CONFIG.md) and prints the effective configuration:\n"
            "built-in defaults < FILE < HEARTH_* environment variables. Every problem is\n"
            "reported with its file:line:column and key.\n");
}

int cli_config(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 3 || strcmp(argv[1], "check") != 0) {
        usage(stderr);
        return 2;
    }
    cfg_config *c = NULL;
    cfg_errors errs;
    hearth_err err = {0};
    if (cfg_build(argv[2], true, NULL, 0, &c, &errs, &err) != HEARTH_OK) {
        if (errs.n == 0) fprintf(stderr, "hearth: error: %s\n", err.msg);
        for (size_t i = 0; i < errs.n; i++) fprintf(stderr, "%s\n", errs.msg[i]);
        if (errs.more) fprintf(stderr, "... and %zu more\n", errs.more);
        fprintf(stderr, "%s: invalid (%zu problem%s)\n", argv[2], errs.n + errs.more, errs.n + errs.more == 1 ? "" : "s");
        return 1;
    }
    char *text = cfg_dump(c);
    cfg_free(c);
    if (!text) {
        fprintf(stderr, "hearth: error: out of memory\n");
        return 1;
    }
    printf("# %s: valid. Effective configuration (defaults < file < HEARTH_* environment):\n%s", argv[2], text);
    mem_free(text);
    return 0;
}
