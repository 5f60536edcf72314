/* API keys at request time: who is calling (Authorization: Bearer), what the key may use
 * (models, tools, admin routes) and its limits (requests/min and tokens/min buckets,
 * requests in flight). Keys are matched by the sha256 of the presented secret against
 * every configured digest in constant time; the secret itself is hashed and forgotten.
 * A key's limiter state survives reloads by name. Never logs and never stores a secret. */
#ifndef SERVER_SRV_AUTH_H
#define SERVER_SRV_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "server/srv_error.h"

typedef struct srv_auth srv_auth;
typedef struct srv_key srv_key;

hearth_status srv_auth_new(const cfg_config *c, srv_auth **out, hearth_err *err);
void srv_auth_free(srv_auth *a); /* accepts NULL; keys still held by requests stay valid until released */
/* Takes the keys of a new configuration (reload). Keys keep their limiter state by name.
 * NOMEM leaves the old keys in force. */
hearth_status srv_auth_update(srv_auth *a, const cfg_config *c);
/* True when any key is configured (every route but /health and /ready needs one). */
bool srv_auth_enabled(srv_auth *a);

/* The key of an Authorization header value (NULL: missing). On success a reference the
 * caller releases; else NULL with e (401) and *reason ("missing" or "invalid"). */
srv_key *srv_auth_check(srv_auth *a, const char *authorization, srv_error *e, const char **reason);
void srv_key_release(srv_key *k); /* accepts NULL */
const char *srv_key_name(const srv_key *k);
bool srv_key_admin(srv_key *k);

/* Admits a request: the requests/min bucket, the concurrency cap and (when tokens) a
 * non-empty tokens/min bucket. On success the request counts as in flight until
 * srv_key_done; else e is a 429 with Retry-After and *kind is "requests", "concurrency"
 * or "tokens". */
bool srv_key_admit(srv_key *k, bool tokens, srv_error *e, const char **kind);
/* The request ends: no longer in flight, and tokens (prompt + completion) are charged. */
void srv_key_done(srv_key *k, int64_t tokens);

/* Whether the key may use model (a configured name or alias; "base:adapter" when it may
 * use base). NULL key: yes. */
bool srv_key_model_allowed(srv_key *k, const char *model);
/* True when k may use every model (models: ["*"]), or without a key. */
bool srv_key_all_models(srv_key *k);
/* Checks a request's tools (a JSON array of {"type":"function","function":{"name"}}, or
 * NULL) against the key; false with e (403) when it may not use them. */
bool srv_key_tools_allowed(srv_key *k, const json_t *tools, srv_error *e);

#endif
