/* Per-(model, route) request statistics (see obs_stats.h for the definitions). Each
 * group keeps its latencies in growable arrays and sorts them once for the report. */
#include "obs/obs_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "obs/obs_json.h"

#define MAX_ERROR_CODES 32 /* distinct codes kept per group; the rest count as "_other" */

typedef struct darray {
    double *v;
    size_t n, cap;
} darray;

typedef struct agg_group {
    obs_group g;
    darray lat, ttft;
    double gen_s;              /* sum of (duration - ttft) of requests with >= 2 tokens */
    int64_t gen_tokens;        /* their completion tokens after the first */
    obs_error_count codes[MAX_ERROR_CODES + 1];
    size_t n_codes;
} agg_group;

struct obs_agg {
    agg_group *groups;
    size_t n, cap;
};

obs_agg *obs_agg_new(void) { return mem_calloc(1, sizeof(obs_agg)); }

void obs_agg_free(obs_agg *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) {
        mem_free(a->groups[i].lat.v);
        mem_free(a->groups[i].ttft.v);
    }
    mem_free(a->groups);
    mem_free(a);
}

static bool push(darray *d, double v) {
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        double *nv = mem_realloc_array(d->v, cap, sizeof *nv);
        if (!nv) return false;
        d->v = nv;
        d->cap = cap;
    }
    d->v[d->n++] = v;
    return true;
}

static void copy_cut(char *dst, size_t cap, const char *src) {
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = '\0';
}

static agg_group *group_of(obs_agg *a, const char *model, const char *route) {
    char m[OBS_LABEL_MAX + 1], r[OBS_ROUTE_MAX + 1];
    copy_cut(m, sizeof m, model);
    copy_cut(r, sizeof r, route);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < a->n; i++)
            if (!strcmp(a->groups[i].g.model, m) && !strcmp(a->groups[i].g.route, r)) return &a->groups[i];
        if (a->n < OBS_MAX_GROUPS || pass == 1) break;
        copy_cut(m, sizeof m, OBS_OVERFLOW_VALUE);
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        agg_group *ng = mem_realloc_array(a->groups, cap, sizeof *ng);
        if (!ng) return NULL;
        a->groups = ng;
        a->cap = cap;
    }
    agg_group *g = &a->groups[a->n++];
    memset(g, 0, sizeof *g);
    memcpy(g->g.model, m, sizeof m);
    memcpy(g->g.route, r, sizeof r);
    return g;
}

static void count_error(agg_group *g, const char *code) {
    char c[OBS_ERROR_MAX + 1];
    copy_cut(c, sizeof c, code);
    for (size_t i = 0; i < g->n_codes; i++)
        if (!strcmp(g->codes[i].code, c)) {
            g->codes[i].count++;
            return;
        }
    if (g->n_codes == MAX_ERROR_CODES) copy_cut(c, sizeof c, OBS_OVERFLOW_VALUE);
    for (size_t i = 0; i < g->n_codes; i++)
        if (!strcmp(g->codes[i].code, c)) {
            g->codes[i].count++;
            return;
        }
    memcpy(g->codes[g->n_codes].code, c, sizeof c);
    g->codes[g->n_codes++].count = 1;
}

bool obs_agg_add(obs_agg *a, const obs_sample *s) {
    agg_group *g = group_of(a, s->model, s->route);
    if (!g) return false;
    double lat = isfinite(s->duration_ms) && s->duration_ms > 0 ? s->duration_ms : 0;
    if (!push(&g->lat, lat)) return false;
    bool has_ttft = isfinite(s->ttft_ms) && s->ttft_ms >= 0;
    if (has_ttft && !push(&g->ttft, s->ttft_ms)) {
        g->lat.n--;
        return false;
    }
    g->g.requests++;
    if (s->status >= 500) g->g.errors++;
    else if (s->status >= 400) g->g.client_errors++;
    if (s->status >= 400 || (s->error && *s->error)) count_error(g, s->error && *s->error ? s->error : "http_error");
    if (s->prompt_tokens > 0) g->g.prompt_tokens += s->prompt_tokens;
    if (s->completion_tokens > 0) g->g.completion_tokens += s->completion_tokens;
    if (has_ttft && s->completion_tokens >= 2 && lat > s->ttft_ms) {
        g->gen_s += (lat - s->ttft_ms) / 1000.0;
        g->gen_tokens += s->completion_tokens - 1;
    }
    return true;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double rank(const double *v, size_t n, double p) {
    size_t k = (size_t)ceil(p * (double)n);
    return v[k > 0 ? k - 1 : 0];
}

static obs_pcts percentiles(darray *d) {
    obs_pcts p = {.n = (int64_t)d->n};
    if (d->n == 0) return p;
    qsort(d->v, d->n, sizeof *d->v, cmp_double);
    p.p50 = rank(d->v, d->n, 0.50);
    p.p95 = rank(d->v, d->n, 0.95);
    p.p99 = rank(d->v, d->n, 0.99);
    return p;
}

static int cmp_group(const void *a, const void *b) {
    const obs_group *x = a, *y = b;
    int c = strcmp(x->model, y->model);
    return c ? c : strcmp(x->route, y->route);
}

static int cmp_code(const void *a, const void *b) {
    const obs_error_count *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->code, y->code);
}

bool obs_agg_report(obs_agg *a, double window_s, obs_report *out) {
    *out = (obs_report){.window_s = window_s};
    if (a->n == 0) return true;
    out->groups = mem_calloc(a->n, sizeof *out->groups);
    if (!out->groups) return false;
    for (size_t i = 0; i < a->n; i++) {
        agg_group *g = &a->groups[i];
        obs_group *o = &out->groups[i];
        *o = g->g;
        o->error_rate = o->requests ? (double)o->errors / (double)o->requests : 0;
        o->latency_ms = percentiles(&g->lat);
        o->ttft_ms = percentiles(&g->ttft);
        o->tokens_per_s = g->gen_s > 0 ? (double)g->gen_tokens / g->gen_s : 0;
        qsort(g->codes, g->n_codes, sizeof *g->codes, cmp_code);
        o->n_top = g->n_codes < OBS_TOP_ERRORS ? g->n_codes : OBS_TOP_ERRORS;
        memcpy(o->top, g->codes, o->n_top * sizeof *o->top);
        out->requests += o->requests;
        out->errors += o->errors;
    }
    out->n_groups = a->n;
    qsort(out->groups, out->n_groups, sizeof *out->groups, cmp_group);
    return true;
}

void obs_report_free(obs_report *r) {
    mem_free(r->groups);
    *r = (obs_report){0};
}

static json_t *pcts_json(const obs_pcts *p) {
    if (p->n == 0) return json_null();
    return json_pack("{s:f, s:f, s:f}", "p50", p->p50, "p95", p->p95, "p99", p->p99);
}

json_t *obs_report_json(const obs_report *r) {
    json_t *groups = json_array();
    for (size_t i = 0; groups && i < r->n_groups; i++) {
        const obs_group *g = &r->groups[i];
        json_t *top = json_array();
        for (size_t k = 0; top && k < g->n_top; k++)
            json_array_append_new(top, json_pack("{s:o, s:I}", "code", obs_json_str(g->top[k].code), "count",
                                                 (json_int_t)g->top[k].count));
        json_t *o = json_pack("{s:o, s:o, s:I, s:I, s:I, s:f, s:o, s:o, s:I, s:I, s:f, s:o}", "model",
                              obs_json_str(g->model), "route", obs_json_str(g->route), "requests",
                              (json_int_t)g->requests, "errors", (json_int_t)g->errors, "client_errors",
                              (json_int_t)g->client_errors, "error_rate", g->error_rate,
                              "latency_ms", pcts_json(&g->latency_ms), "ttft_ms", pcts_json(&g->ttft_ms),
                              "prompt_tokens", (json_int_t)g->prompt_tokens, "completion_tokens",
                              (json_int_t)g->completion_tokens, "tokens_per_s", g->tokens_per_s, "top_errors",
                              top ? top : json_null());
        if (!o || json_array_append_new(groups, o) != 0) {
            json_decref(groups);
            return NULL;
        }
    }
    if (!groups) return NULL;
    double rate = r->window_s > 0 ? (double)r->requests / r->window_s : 0;
    return json_pack("{s:f, s:I, s:I, s:f, s:o}", "window_s", r->window_s, "requests", (json_int_t)r->requests,
                     "errors", (json_int_t)r->errors, "rate_per_s", rate, "groups", groups);
}
