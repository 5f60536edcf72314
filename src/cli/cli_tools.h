/* Option parsing shared by the model tools (quantize, mkmodel, bench), on top of the
 * helpers in cli_gen.h. Prints only to stderr and never exits. */
#ifndef CLI_CLI_TOOLS_H
#define CLI_CLI_TOOLS_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/cli_gen.h"

/* Parses the value after option argv[*i] (advancing *i) as an integer in [lo, hi];
 * false after printing a usage error naming the option. */
bool cli_tools_int(int argc, char **argv, int *i, int64_t lo, int64_t hi, int64_t *out);

#endif
