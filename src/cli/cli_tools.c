/* Shared option parsing of the model tools (see cli_tools.h). Never exits. */
#include "cli/cli_tools.h"

bool cli_tools_int(int argc, char **argv, int *i, int64_t lo, int64_t hi, int64_t *out) {
    const char *opt = argv[*i], *s = cli_gen_value(argc, argv, i);
    long long v;
    if (!s || !cli_gen_int(opt, s, lo, hi, &v)) return false;
    *out = v;
    return true;
}
