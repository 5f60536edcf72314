/* Helpers shared by the model tools (quantize, mkmodel, bench): option values and the
 * one-line error report. They print only to stderr and never exit. */
#ifndef CLI_CLI_TOOLS_H
#define CLI_CLI_TOOLS_H

#include <stdbool.h>
#include <stdint.h>

#include "hearth.h"

/* Prints "hearth: error: <message>" as one line on stderr and returns 1. */
int cli_tools_fail(const hearth_err *err);

/* Parses the value after option argv[*i] (advancing *i) as an integer in [lo, hi];
 * false after printing a usage error naming the option. */
bool cli_tools_int(int argc, char **argv, int *i, int64_t lo, int64_t hi, int64_t *out);

/* The value after option argv[*i] (advancing *i), or NULL after printing a usage error. */
const char *cli_tools_value(int argc, char **argv, int *i);

#endif
