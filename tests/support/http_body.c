/* The growing response body of a libcurl transfer (see http_body.h). */
#include "http_body.h"

#include <stdlib.h>
#include <string.h>

static size_t append(char *p, size_t size, size_t n, void *ud) {
    http_body *b = ud;
    size_t k = size * n;
    char *grown = realloc(*b->text, *b->len + k + 1);
    if (!grown) return 0;
    memcpy(grown + *b->len, p, k);
    *b->text = grown;
    *b->len += k;
    grown[*b->len] = '\0';
    if (b->hang_up_at && *b->len >= b->hang_up_at) return 0;
    return k;
}

void http_body_collect(CURL *c, http_body *b, char **text, size_t *len, size_t hang_up_at) {
    *text = calloc(1, 1);
    *len = 0;
    *b = (http_body){text, len, hang_up_at};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
}
