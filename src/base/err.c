/* Error record formatting and the status names of the public API. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

hearth_status err_set(hearth_err *err, hearth_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->status = status;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

void err_prefix(hearth_err *err, const char *fmt, ...) {
    if (!err) return;
    char head[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", head, old);
}

const char *hearth_strerror(hearth_status status) {
    switch (status) {
    case HEARTH_OK: return "ok";
    case HEARTH_ERR_IO: return "i/o error";
    case HEARTH_ERR_FORMAT: return "format error";
    case HEARTH_ERR_UNSUPPORTED: return "unsupported";
    case HEARTH_ERR_NOMEM: return "out of memory";
    case HEARTH_ERR_INVALID: return "invalid argument";
    case HEARTH_ERR_RANGE: return "out of range";
    case HEARTH_ERR_NOT_FOUND: return "not found";
    case HEARTH_ERR_INTERNAL: return "internal error";
    case HEARTH_ERR_BUSY: return "busy";
    case HEARTH_ERR_TIMEOUT: return "timeout";
    case HEARTH_ERR_CANCELLED: return "cancelled";
    }
    return "unknown status";
}
