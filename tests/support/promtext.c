/* Strict Prometheus text reader for tests (see promtext.h). */
#include "promtext.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool fail(char *why, size_t cap, int line, const char *msg, const char *text) {
    snprintf(why, cap, "line %d: %s: %.120s", line, msg, text);
    return false;
}

static size_t name_len(const char *p) {
    size_t n = 0;
    while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z') || p[n] == '_' || p[n] == ':' ||
           (n > 0 && p[n] >= '0' && p[n] <= '9'))
        n++;
    return n;
}

static bool parse_value(const char *p, double *v) {
    if (!strcmp(p, "+Inf")) return *v = INFINITY, true;
    if (!strcmp(p, "-Inf")) return *v = -INFINITY, true;
    if (!strcmp(p, "NaN")) return *v = NAN, true;
    char *end = NULL;
    *v = strtod(p, &end);
    return end != p && *end == '\0';
}

static const prom_family *family_for_sample(const prom_doc *d, const char *name) {
    for (size_t i = 0; i < d->n_fam; i++) {
        const prom_family *f = &d->fam[i];
        size_t n = strlen(f->name);
        if (!strcmp(name, f->name)) return f;
        if (!strcmp(f->type, "histogram") && !strncmp(name, f->name, n) &&
            (!strcmp(name + n, "_bucket") || !strcmp(name + n, "_sum") || !strcmp(name + n, "_count")))
            return f;
    }
    return NULL;
}

const prom_family *prom_family_of(const prom_doc *d, const char *name) {
    for (size_t i = 0; i < d->n_fam; i++)
        if (!strcmp(d->fam[i].name, name)) return &d->fam[i];
    return NULL;
}

static bool parse_sample(const char *line, prom_sample *s, char *err, size_t cap) {
    memset(s, 0, sizeof *s);
    size_t n = name_len(line);
    if (n == 0 || n >= sizeof s->name) return snprintf(err, cap, "bad metric name"), false;
    memcpy(s->name, line, n);
    const char *p = line + n;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            if (s->n_labels == PROM_MAX_LABELS) return snprintf(err, cap, "too many labels"), false;
            size_t k = name_len(p);
            if (k == 0 || k >= sizeof s->key[0] || p[k] != '=' || p[k + 1] != '"')
                return snprintf(err, cap, "bad label"), false;
            memcpy(s->key[s->n_labels], p, k);
            p += k + 2;
            size_t o = 0;
            while (*p != '"') {
                if (!*p || *p == '\n') return snprintf(err, cap, "unterminated label value"), false;
                char c = *p++;
                if (c == '\\') {
                    c = *p++;
                    if (c == 'n') c = '\n';
                    else if (c != '\\' && c != '"') return snprintf(err, cap, "bad escape"), false;
                }
                if (o + 1 >= sizeof s->val[0]) return snprintf(err, cap, "label value too long"), false;
                s->val[s->n_labels][o++] = c;
            }
            p++;
            for (size_t i = 0; i < s->n_labels; i++)
                if (!strcmp(s->key[i], s->key[s->n_labels])) return snprintf(err, cap, "duplicate label"), false;
            s->n_labels++;
            if (*p == ',') p++;
            else if (*p != '}') return snprintf(err, cap, "expected , or }"), false;
        }
        p++;
    }
    if (*p != ' ') return snprintf(err, cap, "expected a space before the value"), false;
    if (!parse_value(p + 1, &s->value)) return snprintf(err, cap, "bad value"), false;
    return true;
}

bool prom_parse(const char *text, prom_doc *d, char *why, size_t cap) {
    memset(d, 0, sizeof *d);
    size_t cap_s = 0;
    const prom_family *current = NULL;
    int lineno = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        if (!nl) return fail(why, cap, lineno + 1, "last line lacks a newline", p);
        char line[4096];
        size_t len = (size_t)(nl - p);
        if (len >= sizeof line) return fail(why, cap, lineno + 1, "line too long", p);
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl + 1;
        lineno++;
        if (len == 0) return fail(why, cap, lineno, "empty line", line);
        if (!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7)) {
            bool help = line[2] == 'H';
            const char *name = line + 7;
            size_t n = name_len(name);
            if (n == 0 || (name[n] != ' ' && name[n] != '\0')) return fail(why, cap, lineno, "bad family name", line);
            char fname[128];
            snprintf(fname, sizeof fname, "%.*s", (int)n, name);
            prom_family *f = (prom_family *)prom_family_of(d, fname);
            if (!f) {
                if (d->n_fam == 256) return fail(why, cap, lineno, "too many families", line);
                f = &d->fam[d->n_fam++];
                snprintf(f->name, sizeof f->name, "%s", fname);
            } else if (f != current) {
                return fail(why, cap, lineno, "family metadata not contiguous", line);
            }
            if (help) {
                if (f->has_help) return fail(why, cap, lineno, "second HELP", line);
                f->has_help = true;
            } else {
                const char *type = name + n + 1;
                if (f->type[0]) return fail(why, cap, lineno, "second TYPE", line);
                if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram") &&
                    strcmp(type, "summary") && strcmp(type, "untyped"))
                    return fail(why, cap, lineno, "unknown type", line);
                for (size_t i = 0; i < d->n; i++)
                    if (family_for_sample(d, d->s[i].name) == f)
                        return fail(why, cap, lineno, "TYPE after the family's samples", line);
                snprintf(f->type, sizeof f->type, "%s", type);
            }
            current = f;
            continue;
        }
        if (line[0] == '#') continue;
        if (d->n == cap_s) {
            cap_s = cap_s ? cap_s * 2 : 256;
            prom_sample *ns = realloc(d->s, cap_s * sizeof *ns);
            if (!ns) return fail(why, cap, lineno, "out of memory", line);
            d->s = ns;
        }
        char err[128];
        if (!parse_sample(line, &d->s[d->n], err, sizeof err)) return fail(why, cap, lineno, err, line);
        const prom_family *f = family_for_sample(d, d->s[d->n].name);
        if (!f || !f->type[0]) return fail(why, cap, lineno, "sample without a TYPE", line);
        if (f != current) return fail(why, cap, lineno, "sample outside its family's block", line);
        d->n++;
    }
    return true;
}

void prom_free(prom_doc *d) {
    free(d->s);
    memset(d, 0, sizeof *d);
}

static const char *label(const prom_sample *s, const char *k) {
    for (size_t i = 0; i < s->n_labels; i++)
        if (!strcmp(s->key[i], k)) return s->val[i];
    return NULL;
}

/* Same labels except le. */
static bool same_series(const prom_sample *a, const prom_sample *b) {
    size_t na = 0, nb = 0;
    for (size_t i = 0; i < a->n_labels; i++) {
        if (!strcmp(a->key[i], "le")) continue;
        na++;
        const char *v = label(b, a->key[i]);
        if (!v || strcmp(v, a->val[i])) return false;
    }
    for (size_t i = 0; i < b->n_labels; i++)
        if (strcmp(b->key[i], "le")) nb++;
    return na == nb;
}

bool prom_check_histograms(const prom_doc *d, char *why, size_t cap) {
    char bucket[160], sum[160], count[160];
    for (size_t fi = 0; fi < d->n_fam; fi++) {
        const prom_family *f = &d->fam[fi];
        if (strcmp(f->type, "histogram")) continue;
        snprintf(bucket, sizeof bucket, "%s_bucket", f->name);
        snprintf(sum, sizeof sum, "%s_sum", f->name);
        snprintf(count, sizeof count, "%s_count", f->name);
        for (size_t i = 0; i < d->n; i++) {
            const prom_sample *c = &d->s[i];
            if (strcmp(c->name, count)) continue;
            double prev_le = -INFINITY, prev = 0, inf = -1;
            bool has_sum = false;
            size_t n_buckets = 0;
            for (size_t k = 0; k < d->n; k++) {
                const prom_sample *b = &d->s[k];
                if (!same_series(b, c)) continue;
                if (!strcmp(b->name, sum)) has_sum = true;
                if (strcmp(b->name, bucket)) continue;
                const char *le = label(b, "le");
                double lv;
                if (!le || !parse_value(le, &lv))
                    return snprintf(why, cap, "%s: bucket without a valid le", f->name), false;
                if (!(lv > prev_le)) return snprintf(why, cap, "%s: le %s not increasing", f->name, le), false;
                if (b->value < prev)
                    return snprintf(why, cap, "%s: bucket le=%s count %g below the previous %g", f->name, le, b->value,
                                    prev), false;
                prev_le = lv;
                prev = b->value;
                n_buckets++;
                if (isinf(lv)) inf = b->value;
            }
            if (n_buckets == 0 || !isinf(prev_le)) return snprintf(why, cap, "%s: no +Inf bucket", f->name), false;
            if (inf != c->value)
                return snprintf(why, cap, "%s: +Inf bucket %g != _count %g", f->name, inf, c->value), false;
            if (!has_sum) return snprintf(why, cap, "%s: no _sum", f->name), false;
        }
    }
    return true;
}

double prom_value(const prom_doc *d, bool *found, const char *name, ...) {
    const char *kv[2 * PROM_MAX_LABELS];
    size_t n = 0;
    va_list ap;
    va_start(ap, name);
    for (const char *k; n < 2 * PROM_MAX_LABELS && (k = va_arg(ap, const char *));) {
        kv[n++] = k;
        kv[n++] = va_arg(ap, const char *);
    }
    va_end(ap);
    double sum = 0;
    bool any = false;
    for (size_t i = 0; i < d->n; i++) {
        const prom_sample *s = &d->s[i];
        if (strcmp(s->name, name)) continue;
        bool ok = true;
        for (size_t k = 0; ok && k < n; k += 2) {
            const char *v = label(s, kv[k]);
            ok = v && !strcmp(v, kv[k + 1]);
        }
        if (!ok) continue;
        sum += s->value;
        any = true;
    }
    if (found) *found = any;
    return sum;
}
