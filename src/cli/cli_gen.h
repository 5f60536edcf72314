/* Helpers shared by the subcommands that run a model (logits, run): option values,
 * reading a prompt, and the one-line error report. They print only to stderr and never
 * exit; callers return the exit code. */
#ifndef CLI_CLI_GEN_H
#define CLI_CLI_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* Prints "hearth: error: <message>" as one line on stderr and returns code. */
int cli_gen_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints err's message the same way and returns CLI_EXIT_FAIL. */
int cli_gen_fail_err(const hearth_err *err);

/* The value after option argv[*i] (advancing *i), or NULL after reporting a usage error. */
const char *cli_gen_value(int argc, char **argv, int *i);

/* Whole-string numbers within [lo, hi]; false (after reporting a usage error naming opt)
 * when s is not one. */
bool cli_gen_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
bool cli_gen_float(const char *opt, const char *s, double lo, double hi, float *out);
bool cli_gen_u64(const char *opt, const char *s, uint64_t *out);

/* Reads all of stdin (at most 64 MiB) into a mem_alloc'd buffer. */
hearth_status cli_gen_read_stdin(char **out, size_t *len, hearth_err *err);

#endif
