/* Growable capped text buffer (see obs_text.h). */
#include "obs/obs_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/mem.h"

#define TEXT_DEFAULT_MAX ((size_t)64 << 20)

static bool reserve(obs_text *t, size_t more) {
    size_t max = t->max ? t->max : TEXT_DEFAULT_MAX;
    if (t->failed || more > max || t->len > max - more - 1) return t->failed = true, false;
    size_t need = t->len + more + 1;
    if (need <= t->cap) return true;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < need) cap = cap > max / 2 ? max : cap * 2;
    char *d = mem_realloc(t->data, cap);
    if (!d) return t->failed = true, false;
    t->data = d;
    t->cap = cap;
    return true;
}

bool obs_text_add(obs_text *t, const char *s, size_t n) {
    if (!reserve(t, n)) return false;
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
    return true;
}

bool obs_text_addf(obs_text *t, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return t->failed = true, false;
    if ((size_t)n < sizeof small) return obs_text_add(t, small, (size_t)n);
    if (!reserve(t, (size_t)n)) return false;
    va_start(ap, fmt);
    vsnprintf(t->data + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
    return true;
}

char *obs_text_take(obs_text *t, size_t *len) {
    if (t->failed || !reserve(t, 0)) {
        obs_text_free(t);
        return NULL;
    }
    char *d = t->data;
    if (len) *len = t->len;
    *t = (obs_text){.max = t->max};
    return d;
}

void obs_text_free(obs_text *t) {
    mem_free(t->data);
    *t = (obs_text){.max = t->max};
}
