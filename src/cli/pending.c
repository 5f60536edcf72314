/* TRANSITIONAL: subcommands whose module has not landed yet answer that they are not
 * built. Each definition here disappears when its real cli_<name>.c lands. */
#include <stdio.h>

#include "cli/cli.h"

static int pending(const char *name) {
    fprintf(stderr, "hearth: '%s' is not built yet\n", name);
    return 1;
}

__attribute__((weak)) int cli_info(int argc, char **argv) { return pending("info"); }
__attribute__((weak)) int cli_tokenize(int argc, char **argv) { return pending("tokenize"); }
__attribute__((weak)) int cli_logits(int argc, char **argv) { return pending("logits"); }
__attribute__((weak)) int cli_run(int argc, char **argv) { return pending("run"); }
__attribute__((weak)) int cli_template(int argc, char **argv) { return pending("template"); }
