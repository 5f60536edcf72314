/* OpenAI-shaped API errors (see srv_error.h). Never sends anything itself. */
#include "server/srv_error.h"

#include "server/srv_json.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static void fill(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt,
                 va_list ap) {
    e->status = status;
    e->type = type;
    e->code = code;
    e->retry_after_s = 0;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

bool srv_fail(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fill(e, status, type, code, param, fmt, ap);
    va_end(ap);
    return false;
}

bool srv_invalid(srv_error *e, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fill(e, 400, "invalid_request_error", NULL, param, fmt, ap);
    va_end(ap);
    return false;
}

void srv_fail_status(srv_error *e, hearth_status st, const char *msg) {
    switch (st) {
    case HEARTH_ERR_INVALID:
    case HEARTH_ERR_RANGE:
        srv_fail(e, 400, "invalid_request_error", NULL, NULL, "%s", msg);
        break;
    case HEARTH_ERR_NOT_FOUND:
        srv_fail(e, 404, "invalid_request_error", NULL, NULL, "%s", msg);
        break;
    case HEARTH_ERR_BUSY:
        srv_fail(e, 503, "server_error", "server_busy", NULL, "%s", msg);
        break;
    case HEARTH_ERR_TIMEOUT:
        srv_fail(e, 504, "timeout_error", "timeout", NULL, "%s", msg);
        break;
    case HEARTH_ERR_CANCELLED:
        srv_fail(e, 499, "server_error", "cancelled", NULL, "%s", msg);
        break;
    default:
        srv_fail(e, 500, "server_error", NULL, NULL, "%s", msg);
        break;
    }
}

json_t *srv_error_json(const srv_error *e) {
    return json_pack("{s:{s:o, s:s, s:o, s:o}}", "error", "message", srv_json_text(e->message, strlen(e->message)),
                     "type", e->type, "param", e->param[0] ? srv_json_text(e->param, strlen(e->param)) : json_null(),
                     "code", e->code ? json_string(e->code) : json_null());
}
