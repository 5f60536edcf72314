/* JSON helpers of the server (see srv_json.h). */
#include "server/srv_json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"
#include "base/utf8.h"

json_t *srv_json_text(const char *s, size_t n) {
    if (utf8_valid(s, n)) return json_stringn(s, n);
    srv_buf b = {.max = n * 3 + 1};
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = utf8_decode(s + i, n - i, &cp);
        bool ok = k ? srv_buf_add(&b, s + i, k) : srv_buf_add(&b, "\xEF\xBF\xBD", 3);
        if (!ok) {
            srv_buf_free(&b);
            return NULL;
        }
        i += k ? k : 1;
    }
    json_t *j = json_stringn(b.data ? b.data : "", b.len);
    srv_buf_free(&b);
    return j;
}

json_t *srv_json_bytes(const char *s, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_integer((unsigned char)s[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

bool srv_buf_add(srv_buf *b, const void *p, size_t n) {
    if (n > b->max || b->len > b->max - n) return false;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *nd = mem_realloc(b->data, cap);
        if (!nd) return false;
        b->data = nd;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool srv_buf_addf(srv_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < sizeof tmp && srv_buf_add(b, tmp, (size_t)n);
}

static int dump_cb(const char *buf, size_t size, void *data) { return srv_buf_add(data, buf, size) ? 0 : -1; }

bool srv_buf_add_json(srv_buf *b, const json_t *v) {
    return json_dump_callback(v, dump_cb, b, JSON_COMPACT | JSON_ENCODE_ANY) == 0;
}

void srv_buf_consume(srv_buf *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data) b->data[b->len] = '\0';
}

void srv_buf_free(srv_buf *b) {
    mem_free(b->data);
    *b = (srv_buf){.max = b->max};
}
