/* Helpers for tests that run `hearth serve` as a child process and talk to it over
 * HTTP with libcurl: start on a free port, wait for /ready, requests (plain, streamed,
 * aborted mid-stream), SSE parsing, and a clean stop. */
#ifndef TESTS_SRVTEST_H
#define TESTS_SRVTEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct srvtest {
    pid_t pid;
    int port;
    char log_path[64];
} srvtest;

/* Starts `hearth serve -m MODEL --port 0 EXTRA` and waits until /ready answers 200
 * (at most 60 s). False (with a message printed) when it does not come up. */
bool srvtest_start(srvtest *t, const char *model, const char *extra_args);
/* The same with every argument after `hearth serve --port 0` given (shell-quoted). */
bool srvtest_start_args(srvtest *t, const char *args);
/* SIGTERM, then waits; returns the exit status (or -1). Removes the log. */
int srvtest_stop(srvtest *t);

typedef struct srvtest_resp {
    long status;
    char *body;          /* malloc'd, NUL-terminated */
    size_t len;
    char retry_after[32];/* the Retry-After header or "" */
    char content_type[64];
    char error[128];     /* why the transfer failed (libcurl's words), or "" */
} srvtest_resp;

/* When the raw header line p[0..len) (as libcurl hands it over) is `name: value`, copies
 * the value without leading spaces and the line end into out[cap]; else leaves out as is. */
void srvtest_header_value(const char *p, size_t len, const char *name, char *out, size_t cap);

/* One request. body NULL: no body. content_type NULL: application/json when a body is given. */
bool srvtest_http(const srvtest *t, const char *method, const char *path, const char *body, const char *content_type,
                  srvtest_resp *r);
/* A streamed request that hangs up after max_bytes of body (0: read to the end). */
bool srvtest_http_abort_after(const srvtest *t, const char *path, const char *body, size_t max_bytes, srvtest_resp *r);
void srvtest_resp_free(srvtest_resp *r);

/* Parses an SSE body into a JSON array of the data payloads (objects), and reports
 * whether it ended with "data: [DONE]". NULL when a frame is malformed. */
json_t *srvtest_sse(const char *body, bool *done);

/* Parses r->body as JSON (NULL when it is not). */
json_t *srvtest_json(const srvtest_resp *r);

/* POSTs body to path and fails the test unless the answer is 200 with a JSON body, or
 * (stream) a whole SSE stream ending in [DONE]: returns the JSON, or the array of events. */
json_t *srvtest_post_ok(const srvtest *t, const char *path, const char *body, bool stream);

#endif
