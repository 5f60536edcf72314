/* Shared helpers of the model tools (see cli_tools.h). Never exits. */
#include "cli/cli_tools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int cli_tools_fail(const hearth_err *err) {
    fputs("hearth: error: ", stderr);
    for (const char *p = err->msg; *p; p++) fputc(*p == '\n' || *p == '\r' ? ' ' : *p, stderr);
    fputc('\n', stderr);
    return 1;
}

const char *cli_tools_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "hearth: error: option %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool cli_tools_int(int argc, char **argv, int *i, int64_t lo, int64_t hi, int64_t *out) {
    const char *opt = argv[*i], *s = cli_tools_value(argc, argv, i);
    if (!s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "hearth: error: %s expects an integer in [%lld, %lld], got '%s'\n", opt, (long long)lo,
                (long long)hi, s);
        return false;
    }
    *out = v;
    return true;
}
