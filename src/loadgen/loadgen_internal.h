/* Shared between the load generator's files: the libcurl settings every transfer uses
 * and the checked target. Not for use outside src/loadgen. */
#ifndef LOADGEN_INTERNAL_H
#define LOADGEN_INTERNAL_H

#include <curl/curl.h>

#include "loadgen/loadgen.h"

typedef struct loadgen_target {
    char base[400];     /* http://HOST:PORT/.../v1, no trailing slash */
    char endpoint[512]; /* base + /completions or /chat/completions */
} loadgen_target;

/* Accepts only http:// URLs whose host is localhost, 127.0.0.0/8 or [::1]. */
hearth_status loadgen_target_check(const loadgen_config *cfg, loadgen_target *t, hearth_err *err);

/* GET base/models: fails when the server cannot be reached; fills model (cap bytes) with
 * cfg->model, or else the first listed id. */
hearth_status loadgen_target_model(const loadgen_config *cfg, const loadgen_target *t, char *model, size_t cap,
                                   hearth_err *err);

/* Options every transfer gets: no proxy, http only, no signals, the timeouts. */
void loadgen_easy_setup(CURL *h, const char *url, double timeout_s);

#endif
