/* `hearth loadgen --url URL ...`: drives a server on this machine with C concurrent
 * streamed completions until N have ended, then prints latency percentiles, throughput
 * and errors by kind (or one JSON object with --json). Exits 0 when at least one request
 * succeeded, 1 when none did or the server cannot be reached, 2 on a usage error. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "loadgen/loadgen.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth loadgen --url URL [options]\n"
            "\n"
            "Sends streamed completions (stream, ignore_eos, max_tokens T) to an OpenAI-compatible\n"
            "server on this machine, keeping exactly C in flight until N have ended, and reports\n"
            "time to first token (TTFT), inter-token latency (ITL, between content chunks), time\n"
            "per output token (TPOT), request throughput, output tokens/s over the run and errors\n"
            "by kind. Each prompt is W words drawn from a word list by a per-request seeded\n"
            "generator, so requests share no prefix worth caching. A 429, or a 503 with\n"
            "Retry-After, counts as rejected; nothing is retried.\n"
            "\n"
            "  --url URL            server base URL, loopback only (http://127.0.0.1:PORT)\n"
            "  -c, --concurrency C  requests in flight at once (default 1)\n"
            "  -n, --requests N     requests in all (default 1)\n"
            "  --prompt-words W     words per prompt (default 32)\n"
            "  --max-tokens T       output tokens per request (default 32)\n"
            "  --model NAME         model to ask for (default: the first of GET /v1/models)\n"
            "  --chat               use /v1/chat/completions (one user message), not /v1/completions\n"
            "  --temperature X      sampling temperature sent with each request (default 0, greedy)\n"
            "  --seed S             seed of the prompts; request i also sends seed S+i (default 1)\n"
            "  --timeout SECONDS    longest one request may take (default 600)\n"
            "  --json               print one JSON object instead of the text report\n"
            "  -h, --help           show this help\n");
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "hearth: error: %s%s%s (see 'hearth loadgen --help')\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static double num(json_t *o, const char *k1, const char *k2) {
    json_t *v = json_object_get(o, k1);
    if (k2) v = json_object_get(v, k2);
    return json_number_value(v);
}

static void print_latency(json_t *rep, const char *key, const char *label) {
    printf("%-5s ms  p50 %8.1f  p90 %8.1f  p99 %8.1f  (mean %.1f, max %.1f, n %.0f)\n", label, num(rep, key, "p50"),
           num(rep, key, "p90"), num(rep, key, "p99"), num(rep, key, "mean"), num(rep, key, "max"),
           num(rep, key, "n"));
}

static void print_text(json_t *rep) {
    printf("target      %s (model %s)\n", json_string_value(json_object_get(rep, "endpoint")),
           json_string_value(json_object_get(rep, "model")));
    printf("load        %.0f requests, %.0f concurrent, %.0f prompt words, %.0f max tokens\n",
           num(rep, "requests", NULL), num(rep, "concurrency", NULL), num(rep, "prompt_words", NULL),
           num(rep, "max_tokens", NULL));
    printf("requests    %.0f ok, %.0f failed in %.2f s: %.2f requests/s\n", num(rep, "ok", NULL),
           num(rep, "failed", NULL), num(rep, "duration_s", NULL), num(rep, "request_throughput", NULL));
    printf("output      %.0f tokens: %.1f tokens/s\n", num(rep, "output_tokens", NULL),
           num(rep, "output_tokens_per_s", NULL));
    print_latency(rep, "ttft_ms", "TTFT");
    print_latency(rep, "itl_ms", "ITL");
    print_latency(rep, "tpot_ms", "TPOT");
    const char *kind;
    json_t *count;
    json_object_foreach(json_object_get(rep, "errors"), kind, count) {
        const char *sample = json_string_value(json_object_get(json_object_get(rep, "error_samples"), kind));
        printf("error       %-13s %4lld  (first: %s)\n", kind, (long long)json_integer_value(count),
               sample ? sample : "");
    }
}

int cli_loadgen(int argc, char **argv) {
    loadgen_config cfg;
    loadgen_config_default(&cfg);
    cfg.url = NULL;
    bool json_out = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json_out = true;
            continue;
        }
        if (!strcmp(a, "--chat")) {
            cfg.chat = true;
            continue;
        }
        if (i + 1 >= argc) return usage_error("missing value or unknown option", a);
        const char *v = argv[++i];
        long n = 0;
        char *end = NULL;
        if (!strcmp(a, "--url")) {
            cfg.url = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--concurrency")) {
            if (!parse_long(v, 1, 1024, &n)) return usage_error("--concurrency must be 1..1024, got", v);
            cfg.concurrency = (int)n;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--requests")) {
            if (!parse_long(v, 1, 1000000, &n)) return usage_error("--requests must be 1..1000000, got", v);
            cfg.requests = n;
        } else if (!strcmp(a, "--prompt-words")) {
            if (!parse_long(v, 1, 100000, &n)) return usage_error("--prompt-words must be 1..100000, got", v);
            cfg.prompt_words = (int)n;
        } else if (!strcmp(a, "--max-tokens")) {
            if (!parse_long(v, 1, 1000000, &n)) return usage_error("--max-tokens must be 1..1000000, got", v);
            cfg.max_tokens = (int)n;
        } else if (!strcmp(a, "--model")) {
            cfg.model = v;
        } else if (!strcmp(a, "--temperature")) {
            double d = strtod(v, &end);
            if (!*v || *end || !(d >= 0 && d <= 2)) return usage_error("--temperature must be 0..2, got", v);
            cfg.temperature = d;
        } else if (!strcmp(a, "--seed")) {
            if (!parse_long(v, 0, INT32_MAX, &n)) return usage_error("--seed must be 0..2147483647, got", v);
            cfg.seed = (uint64_t)n;
        } else if (!strcmp(a, "--timeout")) {
            double d = strtod(v, &end);
            if (!*v || *end || !(d > 0 && d <= 86400))
                return usage_error("--timeout must be 0 < SECONDS <= 86400, got", v);
            cfg.timeout_s = d;
        } else {
            return usage_error("unknown option", a);
        }
    }
    if (!cfg.url) return usage_error("missing --url URL", NULL);
    signal(SIGPIPE, SIG_IGN);

    loadgen_result *res = NULL;
    hearth_err err = {0};
    if (loadgen_run(&cfg, &res, &err) != HEARTH_OK) {
        fprintf(stderr, "hearth: error: %s\n", err.msg);
        return err.status == HEARTH_ERR_INVALID ? 2 : 1;
    }
    json_t *rep = loadgen_report(&cfg, res);
    long ok = res->count[LOADGEN_OK];
    loadgen_result_free(res);
    if (!rep) {
        fprintf(stderr, "hearth: error: out of memory building the report\n");
        return 1;
    }
    if (json_out) {
        char *text = json_dumps(rep, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (text) printf("%s\n", text);
        free(text);
    } else {
        print_text(rep);
    }
    json_decref(rep);
    if (ok == 0) {
        fprintf(stderr, "hearth: error: no request succeeded\n");
        return 1;
    }
    return 0;
}
