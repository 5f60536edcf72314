/* OpenAI-shaped API errors: {"error":{"message","type","param","code"}} with the HTTP
 * status that goes with them. Handlers fill one srv_error and the HTTP glue sends it.
 * This file builds values only; it never touches a connection. */
#ifndef SERVER_SRV_ERROR_H
#define SERVER_SRV_ERROR_H

#include <jansson.h>
#include <stdbool.h>

#include "hearth.h"

typedef struct srv_error {
    int status;          /* HTTP status, 4xx or 5xx */
    const char *type;    /* "invalid_request_error", "server_error", ... (static) */
    const char *code;    /* static or NULL */
    char param[96];      /* request field at fault ("messages[2].role"); "" for none */
    char message[640];
    int retry_after_s;   /* > 0: send a Retry-After header */
} srv_error;

/* Sets every field of e; returns false so a validator can `return srv_fail(...)`. */
bool srv_fail(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* 400 invalid_request_error naming param. */
bool srv_invalid(srv_error *e, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Maps a library status and message to an API error: INVALID/RANGE 400, NOT_FOUND 404,
 * BUSY 503, TIMEOUT 504, CANCELLED 499, others 500. */
void srv_fail_status(srv_error *e, hearth_status st, const char *msg);

/* The error body as a new JSON object. NULL on NOMEM. */
json_t *srv_error_json(const srv_error *e);

#endif
