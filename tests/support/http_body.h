/* The response body of a libcurl transfer, collected into a heap string that grows as
 * the data arrives: the one write callback of the tests that speak HTTP through libcurl
 * (srvtest and the in-process server tests). Only collects; never fails a test. */
#ifndef TESTS_HTTP_BODY_H
#define TESTS_HTTP_BODY_H

#include <curl/curl.h>
#include <stddef.h>

typedef struct http_body {
    char **text;        /* the body so far: malloc'd, NUL-terminated; the caller frees it */
    size_t *len;        /* its length in bytes */
    size_t hang_up_at;  /* > 0: the transfer ends (CURLE_WRITE_ERROR) once this many bytes arrived */
} http_body;

/* Starts *text as "" and *len as 0 (*text must not own memory yet) and makes the
 * transfer c append its body there through b, which must outlive the transfer. */
void http_body_collect(CURL *c, http_body *b, char **text, size_t *len, size_t hang_up_at);

#endif
