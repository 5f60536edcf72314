/* One HTTP request to a test server through libcurl, keeping the X-Hearth-Target header
 * the gateway answers routed requests with: the client of the gateway server tests.
 * Fails the test on a transport error (other than a hang-up it was asked for). */
#ifndef TESTS_ROUTE_HTTP_H
#define TESTS_ROUTE_HTTP_H

#include <stddef.h>

typedef struct route_resp {
    long status;
    char *body;         /* malloc'd; freed by route_resp_free and by the next route_http into it */
    size_t len;
    size_t abort_after; /* > 0: hang up once this many body bytes arrived (kept across requests) */
    char target[400];   /* X-Hearth-Target */
} route_resp;

/* method path on 127.0.0.1:port with a JSON body (or NULL); request_id (or NULL) goes as
 * X-Request-Id. r is zeroed or holds an earlier answer. */
void route_http(int port, const char *method, const char *path, const char *body, const char *request_id,
                route_resp *r);
/* Frees r's body and r itself (calloc'd by the caller). NULL is fine. */
void route_resp_free(route_resp *r);
/* The value of key in X-Hearth-Target ("route=a; target=b; attempts=2") into out; "" when absent. */
const char *route_target_field(const route_resp *r, const char *key, char *out, size_t cap);

#endif
