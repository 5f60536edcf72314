/* The metric registry and its Prometheus text rendering (see obs_metrics.h). Each family
 * has its own mutex; the registry's mutex guards only the list of families. A series is
 * found by a linear scan of its family (at most OBS_MAX_SERIES + 1 entries), which costs
 * far less than one generated token. Never prints, never exits. */
#include "obs/obs_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/utf8.h"
#include "obs/obs_text.h"

#define OBS_MAX_FAMILIES 128

typedef struct series {
    char values[OBS_MAX_LABELS][OBS_LABEL_MAX + 1];
    double value;                          /* counter / gauge */
    uint64_t buckets[OBS_MAX_BUCKETS + 1]; /* histogram, per bucket (not cumulative); last is +Inf */
    uint64_t count;
    double sum;
} series;

struct obs_family {
    obs_kind kind;
    char *name, *help;
    size_t n_labels;
    char *labels[OBS_MAX_LABELS];
    double bounds[OBS_MAX_BUCKETS];
    size_t n_bounds;
    pthread_mutex_t mu;
    series **series;     /* [n_series], creation order; capacity OBS_MAX_SERIES + 1 */
    size_t n_series;
    bool has_overflow;   /* the "_other" series exists (it counts against no limit) */
};

struct obs_registry {
    pthread_mutex_t mu;
    obs_family *fam[OBS_MAX_FAMILIES];
    size_t n_fam;
};

obs_registry *obs_registry_new(void) {
    obs_registry *r = mem_calloc(1, sizeof *r);
    if (r) pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void family_free(obs_family *f) {
    if (!f) return;
    for (size_t i = 0; i < f->n_series; i++) mem_free(f->series[i]);
    mem_free(f->series);
    for (size_t i = 0; i < f->n_labels; i++) mem_free(f->labels[i]);
    mem_free(f->name);
    mem_free(f->help);
    pthread_mutex_destroy(&f->mu);
    mem_free(f);
}

void obs_registry_free(obs_registry *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_fam; i++) family_free(r->fam[i]);
    pthread_mutex_destroy(&r->mu);
    mem_free(r);
}

static bool valid_name(const char *s, bool colon_ok) {
    if (!s || !*s) return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':') ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

static bool valid_bounds(const double *b, size_t n) {
    if (n > OBS_MAX_BUCKETS || (n > 0 && !b)) return false;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1]))) return false;
    return true;
}

obs_family *obs_family_new(obs_registry *r, obs_kind kind, const char *name, const char *help,
                           const char *const *labels, const double *bounds, size_t n_bounds) {
    if (!r || !valid_name(name, true) || (kind == OBS_HISTOGRAM && !valid_bounds(bounds, n_bounds))) return NULL;
    size_t n_labels = 0;
    while (labels && labels[n_labels]) {
        if (n_labels == OBS_MAX_LABELS || !valid_name(labels[n_labels], false) || !strcmp(labels[n_labels], "le"))
            return NULL;
        n_labels++;
    }
    obs_family *f = mem_calloc(1, sizeof *f);
    if (!f) return NULL;
    pthread_mutex_init(&f->mu, NULL);
    f->kind = kind;
    f->name = mem_strdup(name);
    f->help = mem_strdup(help ? help : "");
    f->series = mem_calloc(OBS_MAX_SERIES + 1, sizeof *f->series);
    bool ok = f->name && f->help && f->series;
    for (size_t i = 0; ok && i < n_labels; i++) {
        f->labels[i] = mem_strdup(labels[i]);
        ok = f->labels[i] != NULL;
        f->n_labels = i + 1;
    }
    if (kind == OBS_HISTOGRAM) {
        if (n_bounds) memcpy(f->bounds, bounds, n_bounds * sizeof *bounds);
        f->n_bounds = n_bounds;
    }
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; ok && i < r->n_fam; i++)
        if (!strcmp(r->fam[i]->name, name)) ok = false;
    if (ok && r->n_fam < OBS_MAX_FAMILIES)
        r->fam[r->n_fam++] = f;
    else
        ok = false;
    pthread_mutex_unlock(&r->mu);
    if (!ok) {
        family_free(f);
        return NULL;
    }
    return f;
}

/* Copies a label value, cut to OBS_LABEL_MAX bytes at a character boundary; bytes that
 * are not valid UTF-8 become '?'. */
static void label_copy(char *dst, const char *src) {
    size_t n = 0;
    if (src) {
        size_t len = strlen(src);
        for (size_t i = 0; i < len;) {
            uint32_t cp;
            size_t k = utf8_decode(src + i, len - i, &cp);
            if (k == 0) {
                if (n + 1 > OBS_LABEL_MAX) break;
                dst[n++] = '?';
                i++;
                continue;
            }
            if (n + k > OBS_LABEL_MAX) break;
            memcpy(dst + n, src + i, k);
            n += k;
            i += k;
        }
    }
    dst[n] = '\0';
}

static bool series_matches(const obs_family *f, const series *s, char (*want)[OBS_LABEL_MAX + 1]) {
    for (size_t i = 0; i < f->n_labels; i++)
        if (strcmp(s->values[i], want[i]) != 0) return false;
    return true;
}

/* The series of values, created when new (or the overflow series past the limit); NULL
 * on NOMEM or when create is false and it does not exist. Called with f->mu held. */
static series *find_series(obs_family *f, const char *const *values, bool create) {
    char want[OBS_MAX_LABELS][OBS_LABEL_MAX + 1];
    for (size_t i = 0; i < f->n_labels; i++) label_copy(want[i], values ? values[i] : NULL);
    for (size_t i = 0; i < f->n_series; i++)
        if (series_matches(f, f->series[i], want)) return f->series[i];
    if (!create) return NULL;
    bool overflow = f->n_series - (f->has_overflow ? 1 : 0) >= OBS_MAX_SERIES;
    if (overflow) {
        for (size_t i = 0; i < f->n_labels; i++) snprintf(want[i], sizeof want[i], "%s", OBS_OVERFLOW_VALUE);
        for (size_t i = 0; i < f->n_series; i++)
            if (series_matches(f, f->series[i], want)) return f->series[i];
    }
    series *s = mem_calloc(1, sizeof *s);
    if (!s) return NULL;
    for (size_t i = 0; i < f->n_labels; i++) memcpy(s->values[i], want[i], sizeof want[i]);
    f->series[f->n_series++] = s;
    if (overflow) f->has_overflow = true;
    return s;
}

static void update(obs_family *f, const char *const *values, int op, double v) {
    if (!f || isnan(v)) return;
    pthread_mutex_lock(&f->mu);
    series *s = find_series(f, values, true);
    if (s) {
        if (op == 0 && f->kind != OBS_HISTOGRAM && (f->kind == OBS_GAUGE || v >= 0)) s->value += v;
        else if (op == 1 && f->kind != OBS_HISTOGRAM) s->value = v;
        else if (op == 2 && f->kind == OBS_HISTOGRAM) {
            size_t b = 0;
            while (b < f->n_bounds && v > f->bounds[b]) b++;
            s->buckets[b]++;
            s->count++;
            s->sum += v;
        }
    }
    pthread_mutex_unlock(&f->mu);
}

void obs_add(obs_family *f, const char *const *values, double v) { update(f, values, 0, v); }
void obs_set(obs_family *f, const char *const *values, double v) { update(f, values, 1, v); }
void obs_observe(obs_family *f, const char *const *values, double v) { update(f, values, 2, v); }

void obs_observe_counts(obs_family *f, const char *const *values, const uint64_t *counts, size_t n_counts,
                        double sum) {
    if (!f || f->kind != OBS_HISTOGRAM || n_counts != f->n_bounds + 1 || isnan(sum)) return;
    uint64_t total = 0;
    for (size_t i = 0; i < n_counts; i++) total += counts[i];
    if (total == 0) return;
    pthread_mutex_lock(&f->mu);
    series *s = find_series(f, values, true);
    if (s) {
        for (size_t i = 0; i < n_counts; i++) s->buckets[i] += counts[i];
        s->count += total;
        s->sum += sum;
    }
    pthread_mutex_unlock(&f->mu);
}

double obs_value(obs_family *f, const char *const *values) {
    if (!f) return 0;
    pthread_mutex_lock(&f->mu);
    series *s = find_series(f, values, false);
    double v = !s ? 0 : f->kind == OBS_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&f->mu);
    return v;
}

/* ---- rendering --------------------------------------------------------------------- */

/* Shortest decimal that reads back as v; integers without exponent up to 2^53. */
static void format_number(char *out, size_t cap, double v) {
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(out, cap, "%.0f", v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(out, cap, "%.*g", p, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void add_escaped(obs_text *t, const char *s, bool quote_too) {
    for (; *s; s++) {
        if (*s == '\\') obs_text_add(t, "\\\\", 2);
        else if (*s == '\n') obs_text_add(t, "\\n", 2);
        else if (quote_too && *s == '"') obs_text_add(t, "\\\"", 2);
        else obs_text_add(t, s, 1);
    }
}

/* `name{a="x",b="y"[,le="..."]} ` */
static void add_sample_head(obs_text *t, const obs_family *f, const series *s, const char *suffix, const char *le) {
    obs_text_addf(t, "%s%s", f->name, suffix);
    if (f->n_labels == 0 && !le) return;
    obs_text_add(t, "{", 1);
    for (size_t i = 0; i < f->n_labels; i++) {
        obs_text_addf(t, "%s%s=\"", i ? "," : "", f->labels[i]);
        add_escaped(t, s->values[i], true);
        obs_text_add(t, "\"", 1);
    }
    if (le) obs_text_addf(t, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    obs_text_add(t, "}", 1);
}

static void render_family(obs_text *t, obs_family *f) {
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    obs_text_addf(t, "# HELP %s ", f->name);
    add_escaped(t, f->help, false);
    obs_text_addf(t, "\n# TYPE %s %s\n", f->name, kinds[f->kind]);
    char num[40], le[40];
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n_series; i++) {
        const series *s = f->series[i];
        if (f->kind != OBS_HISTOGRAM) {
            add_sample_head(t, f, s, "", NULL);
            format_number(num, sizeof num, s->value);
            obs_text_addf(t, " %s\n", num);
            continue;
        }
        uint64_t cum = 0;
        for (size_t b = 0; b <= f->n_bounds; b++) {
            cum += s->buckets[b];
            if (b < f->n_bounds) format_number(le, sizeof le, f->bounds[b]);
            else snprintf(le, sizeof le, "+Inf");
            add_sample_head(t, f, s, "_bucket", le);
            obs_text_addf(t, " %llu\n", (unsigned long long)cum);
        }
        add_sample_head(t, f, s, "_sum", NULL);
        format_number(num, sizeof num, s->sum);
        obs_text_addf(t, " %s\n", num);
        add_sample_head(t, f, s, "_count", NULL);
        obs_text_addf(t, " %llu\n", (unsigned long long)s->count);
    }
    pthread_mutex_unlock(&f->mu);
}

char *obs_registry_render(obs_registry *r, size_t *len) {
    if (!r) return NULL;
    obs_text t = {0};
    pthread_mutex_lock(&r->mu);
    size_t n = r->n_fam;
    pthread_mutex_unlock(&r->mu);
    /* families are only appended, never removed before obs_registry_free */
    for (size_t i = 0; i < n; i++) render_family(&t, r->fam[i]);
    return obs_text_take(&t, len);
}
