/* `hearth stats [--db FILE] [--since 1h] [--json]`: request statistics per model and route
 * from the request store (requests, error rate, latency and TTFT percentiles, decode
 * tokens/s, top errors). Opens the database read-only; never changes it. Exits 1 when the
 * database cannot be read, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "obs/obs.h"
#include "obs/obs_json.h"

#define DEFAULT_SINCE_S 86400.0

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth stats [--db FILE] [--since DURATION] [--json]\n"
            "\n"
            "Summarises the requests in the request store written by 'hearth serve', per model\n"
            "and route: requests, errors (5xx) and error rate, latency and time-to-first-token\n"
            "percentiles (p50/p95/p99, ms), decode tokens/s and the most frequent error codes.\n"
            "\n"
            "  --db FILE           the database (default $HEARTH_DATA/hearth.db or\n"
            "                      ~/.local/share/hearth/hearth.db)\n"
            "  --since DURATION    only requests that ended in this past span (default 24h;\n"
            "                      e.g. 90s, 15m, 1h, 7d)\n"
            "  --json              one JSON object instead of a table\n"
            "  -h, --help          show this help\n");
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "hearth: error: %s%s%s (see 'hearth stats --help')\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

static void ms_cell(double v, int64_t n) {
    if (n == 0) printf(" %9s", "-");
    else printf(" %9.1f", v);
}

static void print_table(const obs_report *r, const char *since_text, double since) {
    char when[32];
    time_t t = (time_t)since;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("Requests since %s (%s): %lld requests, %lld errors (%.2f%%)\n", when, since_text,
           (long long)r->requests, (long long)r->errors,
           r->requests ? 100.0 * (double)r->errors / (double)r->requests : 0.0);
    if (r->n_groups == 0) return;
    printf("\n%-24s %-12s %8s %7s %7s %9s %9s %9s %9s %9s %9s %8s  %s\n", "model", "route", "requests", "errors",
           "err%",
           "p50 ms", "p95 ms", "p99 ms", "ttft p50", "ttft p95", "ttft p99", "tok/s", "top errors");
    for (size_t i = 0; i < r->n_groups; i++) {
        const obs_group *g = &r->groups[i];
        printf("%-24s %-12s %8lld %7lld %6.1f%%", g->model[0] ? g->model : "-", g->route, (long long)g->requests,
               (long long)g->errors, 100 * g->error_rate);
        ms_cell(g->latency_ms.p50, g->latency_ms.n);
        ms_cell(g->latency_ms.p95, g->latency_ms.n);
        ms_cell(g->latency_ms.p99, g->latency_ms.n);
        ms_cell(g->ttft_ms.p50, g->ttft_ms.n);
        ms_cell(g->ttft_ms.p95, g->ttft_ms.n);
        ms_cell(g->ttft_ms.p99, g->ttft_ms.n);
        if (g->tokens_per_s > 0) printf(" %8.1f ", g->tokens_per_s);
        else printf(" %8s ", "-");
        for (size_t k = 0; k < g->n_top; k++)
            printf("%s%s x%lld", k ? ", " : " ", g->top[k].code, (long long)g->top[k].count);
        printf("\n");
    }
}

int cli_stats(int argc, char **argv) {
    char default_db[4096];
    const char *db = obs_default_db_path(default_db, sizeof default_db) ? default_db : NULL;
    const char *since_text = "24h";
    double since_s = DEFAULT_SINCE_S;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (i + 1 >= argc) return usage_error("missing value or unknown option", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--db")) {
            db = v;
        } else if (!strcmp(a, "--since")) {
            if (!obs_parse_duration(v, &since_s))
                return usage_error("--since must be a duration like 15m, 1h or 7d, got", v);
            since_text = v;
        } else {
            return usage_error("unknown option", a);
        }
    }
    if (!db) return usage_error("no database: pass --db FILE (HOME and HEARTH_DATA are unset)", NULL);
    obs_agg *agg = obs_agg_new();
    if (!agg) {
        fprintf(stderr, "hearth: error: out of memory\n");
        return 1;
    }
    double now = (double)time(NULL), since = now - since_s, first = 0, last = 0;
    hearth_err err = {0};
    obs_report rep = {0};
    hearth_status st = obs_store_read_requests(db, since, agg, &first, &last, &err);
    if (st == HEARTH_OK && !obs_agg_report(agg, since_s, &rep))
        st = HEARTH_ERR_NOMEM, snprintf(err.msg, sizeof err.msg, "out of memory");
    obs_agg_free(agg);
    if (st != HEARTH_OK) {
        fprintf(stderr, "hearth: error: %s\n", err.msg);
        return 1;
    }
    if (json) {
        json_t *o = obs_report_json(&rep);
        if (o) {
            json_object_set_new(o, "db", obs_json_str(db));
            json_object_set_new(o, "since", json_real(since));
            json_object_set_new(o, "first", first > 0 ? json_real(first) : json_null());
            json_object_set_new(o, "last", last > 0 ? json_real(last) : json_null());
        }
        char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10)) : NULL;
        json_decref(o);
        if (!text) {
            obs_report_free(&rep);
            fprintf(stderr, "hearth: error: out of memory\n");
            return 1;
        }
        printf("%s\n", text);
        free(text);
    } else {
        print_table(&rep, since_text, since);
    }
    obs_report_free(&rep);
    return 0;
}
