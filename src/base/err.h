/* Error helpers: fill a hearth_err with a formatted message and return its status,
 * so a failure path is one line: `return err_set(err, HEARTH_ERR_FORMAT, "...", ...)`. */
#ifndef BASE_ERR_H
#define BASE_ERR_H

#include "hearth.h"

/* Sets err (if non-NULL) to status and the printf-style message; returns status. */
hearth_status err_set(hearth_err *err, hearth_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "prefix: " to an error message already set (context from an outer layer). */
void err_prefix(hearth_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
