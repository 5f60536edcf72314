/* Shared helpers of `hearth logits` and `hearth run` (see cli_gen.h). Never exits. */
#include "cli/cli_gen.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"

#define STDIN_MAX ((size_t)64 << 20)

int cli_gen_fail(int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "hearth: error: %s\n", msg);
    return code;
}

int cli_gen_fail_err(const hearth_err *err) { return cli_gen_fail(CLI_EXIT_FAIL, "%s", err->msg); }

const char *cli_gen_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_gen_fail(CLI_EXIT_USAGE, "option %s needs a value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool cli_gen_int(const char *opt, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_gen_fail(CLI_EXIT_USAGE, "%s expects an integer in [%lld, %lld], got '%s'", opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_gen_float(const char *opt, const char *s, double lo, double hi, float *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_gen_fail(CLI_EXIT_USAGE, "%s expects a number in [%g, %g], got '%s'", opt, lo, hi, s);
        return false;
    }
    *out = (float)v;
    return true;
}

bool cli_gen_u64(const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-') {
        cli_gen_fail(CLI_EXIT_USAGE, "%s expects a non-negative integer, got '%s'", opt, s);
        return false;
    }
    *out = v;
    return true;
}

hearth_status cli_gen_read_stdin(char **out, size_t *len, hearth_err *err) {
    size_t cap = 4096, n = 0;
    char *buf = mem_alloc(cap);
    if (!buf) return err_set(err, HEARTH_ERR_NOMEM, "stdin: out of memory");
    for (;;) {
        if (n == cap) {
            if (cap >= STDIN_MAX) {
                mem_free(buf);
                return err_set(err, HEARTH_ERR_RANGE, "stdin: input longer than %zu bytes", STDIN_MAX);
            }
            char *nb = mem_realloc(buf, cap * 2);
            if (!nb) {
                mem_free(buf);
                return err_set(err, HEARTH_ERR_NOMEM, "stdin: out of memory");
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        mem_free(buf);
        return err_set(err, HEARTH_ERR_IO, "stdin: read error");
    }
    *out = buf;
    *len = n;
    return HEARTH_OK;
}
