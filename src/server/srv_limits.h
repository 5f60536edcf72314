/* Hardening limits at request time: the per-request caps of `limits:` (max_tokens, n,
 * stop strings, messages), the CORS origin list, and the DNS-rebinding check of the Host
 * header on a loopback bind. The reloadable part lives in a srv_policy swapped whole by
 * a reload. Pure checks: this file never touches a connection. */
#ifndef SERVER_SRV_LIMITS_H
#define SERVER_SRV_LIMITS_H

#include <stdbool.h>

#include "config/config.h"
#include "server/srv_error.h"
#include "server/srv_request.h"

typedef struct srv_policy srv_policy;

hearth_status srv_policy_new(const cfg_config *c, srv_policy **out, hearth_err *err);
hearth_status srv_policy_update(srv_policy *p, const cfg_config *c); /* NOMEM keeps the old one */
void srv_policy_free(srv_policy *p); /* accepts NULL */
void srv_policy_limits(srv_policy *p, cfg_limits *out);
/* Whether CORS is on, and whether origin is one of the configured origins (or "*" is). */
bool srv_policy_cors(srv_policy *p);
bool srv_policy_origin_allowed(srv_policy *p, const char *origin);

/* A parsed request against the limits: false with a 400 naming the field. */
bool srv_limits_check(const cfg_limits *l, const srv_req *r, srv_error *e);
/* The same caps read from a body that is not parsed here (a routed request's, sent on
 * as it is): fields of the wrong type are left to whoever parses the body. */
bool srv_limits_check_json(const cfg_limits *l, const json_t *root, srv_error *e);

/* Whether a Host header names this machine's loopback: localhost, 127.x.x.x or [::1],
 * each with an optional :port. NULL (no header, HTTP/1.0) is accepted. */
bool srv_host_header_loopback(const char *host);

#endif
