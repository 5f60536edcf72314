/* Hearth public C API: status codes and the error record every library call fills.
 * Library functions never exit or print; they return a hearth_status and, where a
 * hearth_err is passed, a one-line message with context. Numbers are never reused. */
#ifndef HEARTH_H
#define HEARTH_H

#ifdef __cplusplus
extern "C" {
#endif

#define HEARTH_VERSION "0.1.0"

typedef enum hearth_status {
    HEARTH_OK = 0,
    HEARTH_ERR_IO = 1,          /* file or socket could not be read or written */
    HEARTH_ERR_FORMAT = 2,      /* malformed input file or data */
    HEARTH_ERR_UNSUPPORTED = 3, /* valid but not supported (architecture, tensor type, ...) */
    HEARTH_ERR_NOMEM = 4,       /* an allocation failed */
    HEARTH_ERR_INVALID = 5,     /* bad argument or request */
    HEARTH_ERR_RANGE = 6,       /* a value is out of range (e.g. prompt longer than the context) */
    HEARTH_ERR_NOT_FOUND = 7,   /* missing file, key, model */
    HEARTH_ERR_INTERNAL = 8,    /* a broken invariant: a bug */
    HEARTH_ERR_BUSY = 9,        /* overloaded; try again later */
    HEARTH_ERR_TIMEOUT = 10,    /* a deadline passed */
    HEARTH_ERR_CANCELLED = 11,  /* the caller cancelled */
} hearth_status;

/* Filled by a failing call: its status and one line naming what is wrong and where. */
typedef struct hearth_err {
    hearth_status status;
    char msg[512];
} hearth_err;

/* Short stable name of a status ("format error", ...). Never NULL. */
const char *hearth_strerror(hearth_status status);

#ifdef __cplusplus
}
#endif
#endif
