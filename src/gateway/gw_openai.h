/* Provider kind `openai`: any server speaking the OpenAI HTTP API, over libcurl. One
 * call is one HTTP attempt: the client's body with its model renamed (and Hearth-only
 * fields removed) is POSTed to {base_url}/chat/completions or /completions; a streamed
 * answer is parsed as SSE and passed on chunk by chunk; everything that goes wrong is
 * classified into a gw_outcome. The API key goes only to base_url's host: redirects are
 * refused, proxies from the environment are ignored, and no message, log or report ever
 * holds the key. Never retries on its own (the route does). */
#ifndef GATEWAY_GW_OPENAI_H
#define GATEWAY_GW_OPENAI_H

#include "gateway/gw.h"

typedef struct gw_openai gw_openai;

/* Validates the URL, reads the key from cfg->api_key_env. INVALID, NOMEM. */
hearth_status gw_openai_new(const gw_provider_config *cfg, gw_openai **out, hearth_err *err);
void gw_openai_free(gw_openai *p);

const char *gw_openai_name(const gw_openai *p);
int gw_openai_max_attempts(const gw_openai *p);

/* One attempt of req on `model` (a name routes use; mapped through the provider's
 * models). Emits through sink; fills *out (reset first). Thread-safe. */
void gw_openai_call(gw_openai *p, const char *model, const gw_request *req, const gw_sink *sink, gw_outcome *out);

/* Once per process, before any thread uses libcurl (gw_new calls it). */
hearth_status gw_openai_global_init(hearth_err *err);

#endif
