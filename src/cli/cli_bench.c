/* `hearth bench`: llama-bench style throughput of the model layer. pp<P> runs one
 * prefill batch of P random tokens from an empty cache (logits for the last only);
 * tg<N> runs N decode steps of one token; tg<N>x<B> runs N steps of B sequences, one
 * token each per step in one forward pass. Each test runs once to warm up (optional), then r times;
 * the result is the mean and sample standard deviation of tokens per second. Prints a
 * markdown table, or one JSON array with --json. Tokens come from a fixed-seed generator,
 * so runs are comparable; nothing is sampled. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/cli_tools.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "quant/quant.h"
#include "synth/synth_rng.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth bench -m FILE [-p 512] [-n 128] [-t 2] [-r 3] [--batch B] [--no-warmup] [--json]\n"
            "\n"
            "Measures tokens per second like llama-bench:\n"
            "  pp<P>     one prefill batch of P random tokens from an empty cache\n"
            "  tg<N>     N decode steps of one token each\n"
            "  tg<N>x<B> N steps of B sequences decoding one token each (one forward over B\n"
            "            tokens), reported as aggregate tokens per second\n"
            "Each test runs once to warm up (unless --no-warmup), then -r times; t/s is the mean ±\n"
            "sample standard deviation.\n"
            "\n"
            "  -m FILE     GGUF model\n"
            "  -p P        prompt tokens (0 skips pp)\n"
            "  -n N        generated tokens (0 skips tg)\n"
            "  -t THREADS  threads (default 2)\n"
            "  -r REPS     repetitions (default 3)\n"
            "  --batch B   also run tg<N>x<B>\n"
            "  --no-warmup skip the warm-up run (for models too slow to run each test twice)\n"
            "  --json      print [{\"test\":...,\"tps_mean\":...,\"tps_sd\":...}, ...]\n");
}

typedef struct bench_opts {
    const char *model;
    int64_t p, n, threads, reps, batch;
    bool json, warmup;
} bench_opts;

typedef struct bench_state {
    model *m;
    model_ctx *ctx;
    kv_cache *kv;
    model_batch batch;
    synth_rng rng;
    int64_t n_vocab;
    int32_t n_seq;
} bench_state;

typedef enum bench_kind { BENCH_PP, BENCH_TG, BENCH_TG_BATCH } bench_kind;

static int32_t random_token(bench_state *b) { return (int32_t)synth_below(&b->rng, (uint64_t)b->n_vocab); }

static void clear_cache(bench_state *b) {
    for (int32_t s = 0; s < b->n_seq; s++) kv_seq_clear(b->kv, s);
}

/* One timed run from an empty cache. */
static hearth_status run_once(bench_state *b, bench_kind kind, int64_t len, int64_t n_par, double *secs,
                              hearth_err *err) {
    clear_cache(b);
    hearth_status st = HEARTH_OK;
    double t0 = clock_mono_s();
    if (kind == BENCH_PP) {
        model_batch_clear(&b->batch);
        for (int64_t i = 0; i < len; i++)
            model_batch_add(&b->batch, random_token(b), (int32_t)i, 0, i == len - 1);
        st = model_forward(b->ctx, b->kv, &b->batch, err);
    } else {
        for (int64_t step = 0; step < len && !st; step++) {
            model_batch_clear(&b->batch);
            for (int64_t s = 0; s < n_par; s++)
                model_batch_add(&b->batch, random_token(b), (int32_t)step, (int32_t)s, true);
            st = model_forward(b->ctx, b->kv, &b->batch, err);
        }
    }
    *secs = clock_mono_s() - t0;
    return st;
}

typedef struct bench_result {
    char name[48];
    double mean, sd;
} bench_result;

static hearth_status run_test(bench_state *b, const bench_opts *o, bench_kind kind, bench_result *res,
                              hearth_err *err) {
    int64_t len = kind == BENCH_PP ? o->p : o->n, n_par = kind == BENCH_TG_BATCH ? o->batch : 1;
    if (kind == BENCH_PP) snprintf(res->name, sizeof res->name, "pp%" PRId64, len);
    else if (kind == BENCH_TG) snprintf(res->name, sizeof res->name, "tg%" PRId64, len);
    else snprintf(res->name, sizeof res->name, "tg%" PRId64 "x%" PRId64, len, n_par);
    double sum = 0, sumsq = 0, secs;
    for (int64_t r = o->warmup ? -1 : 0; r < o->reps; r++) {
        hearth_status st = run_once(b, kind, len, n_par, &secs, err);
        if (st) {
            err_prefix(err, "%s", res->name);
            return st;
        }
        if (r < 0) continue; /* warm-up */
        double tps = (double)(len * n_par) / (secs > 0 ? secs : 1e-9);
        sum += tps;
        sumsq += tps * tps;
    }
    res->mean = sum / (double)o->reps;
    double var = o->reps > 1 ? (sumsq - sum * res->mean) / (double)(o->reps - 1) : 0.0;
    res->sd = var > 0 ? sqrt(var) : 0.0;
    return HEARTH_OK;
}

static hearth_status open_state(bench_state *b, const gguf_file *f, const bench_opts *o, kern_pool *pool,
                                hearth_err *err) {
    hearth_status st = model_new(f, &b->m, err);
    if (st) return st;
    b->n_vocab = model_hp(b->m)->n_vocab;
    b->n_seq = (int32_t)(o->batch > 1 ? o->batch : 1);
    int64_t n_ctx = o->p > o->n ? o->p : o->n;
    int32_t n_batch = (int32_t)(o->p > b->n_seq ? o->p : b->n_seq);
    model_ctx_params mp = {.n_batch = n_batch, .n_outputs = b->n_seq, .n_ctx = n_ctx};
    kv_config kc = model_kv_config(b->m, n_ctx, b->n_seq);
    b->rng = synth_rng_for(1234, 0, 0);
    if ((st = model_ctx_new(b->m, &mp, pool, &b->ctx, err)) || (st = kv_cache_new(&kc, &b->kv, err)) ||
        (st = model_batch_init(&b->batch, n_batch, err)))
        return st;
    return HEARTH_OK;
}

static void close_state(bench_state *b) {
    model_batch_free(&b->batch);
    kv_cache_free(b->kv);
    model_ctx_free(b->ctx);
    model_free(b->m);
}

/* The model columns of a table row: "model | size | params | threads | cpu path". */
static void model_columns(const gguf_file *f, const bench_opts *o, char *buf, size_t cap) {
    gguf_str arch = {"?", 1};
    gguf_get_str(f, "general.architecture", &arch);
    uint64_t ftype = UINT64_MAX, bytes = 0, params = 0;
    gguf_get_uint(f, "general.file_type", &ftype);
    const char *tname = ftype <= UINT32_MAX ? quant_ftype_name((uint32_t)ftype) : NULL;
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        bytes += t->size;
        params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]); /* the reader checked the sizes */
    }
    bool billions = params >= 1000000000;
    snprintf(buf, cap, "%.*s %s | %.2f MiB | %.2f %s | %" PRId64 " | %s", (int)(arch.len > 32 ? 32 : arch.len),
             arch.ptr, tname ? tname : "?", bytes / 1048576.0, billions ? params / 1e9 : params / 1e6,
             billions ? "B" : "M", o->threads, kern_cpu_level_name(kern_cpu_level_active()));
}

static int parse(int argc, char **argv, bench_opts *o) {
    *o = (bench_opts){.p = 512, .n = 128, .threads = 2, .reps = 3, .batch = 0, .warmup = true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--no-warmup")) {
            o->warmup = false;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(o->model = cli_gen_value(argc, argv, &i))) return 2;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
            if (!cli_tools_int(argc, argv, &i, 0, 1 << 16, &o->p)) return 2;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
            if (!cli_tools_int(argc, argv, &i, 0, 1 << 16, &o->n)) return 2;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_tools_int(argc, argv, &i, 1, 512, &o->threads)) return 2;
        } else if (!strcmp(a, "-r") || !strcmp(a, "--repetitions")) {
            if (!cli_tools_int(argc, argv, &i, 1, 1000, &o->reps)) return 2;
        } else if (!strcmp(a, "--batch")) {
            if (!cli_tools_int(argc, argv, &i, 1, 1024, &o->batch)) return 2;
        } else {
            fprintf(stderr, "hearth bench: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o->model) {
        usage(stderr);
        return 2;
    }
    if (o->p == 0 && o->n == 0) {
        fprintf(stderr, "hearth bench: nothing to run (-p 0 and -n 0)\n");
        return 2;
    }
    return 0;
}

/* Runs the tests; text rows are printed as they finish, the JSON array once all have. */
static int run_all(const gguf_file *f, const bench_opts *o, bench_state *b, kern_pool *pool, hearth_err *err) {
    bench_kind kinds[3];
    bench_result res[3];
    int n_kinds = 0;
    if (o->p > 0) kinds[n_kinds++] = BENCH_PP;
    if (o->n > 0) kinds[n_kinds++] = BENCH_TG;
    if (o->n > 0 && o->batch > 0) kinds[n_kinds++] = BENCH_TG_BATCH;
    char cols[256];
    model_columns(f, o, cols, sizeof cols);
    if (open_state(b, f, o, pool, err)) return cli_gen_fail_err(err);
    if (!o->json)
        printf("| model | size | params | threads | cpu path | test | t/s |\n"
               "| --- | ---: | ---: | ---: | --- | ---: | ---: |\n");
    for (int k = 0; k < n_kinds; k++) {
        fflush(stdout);
        if (run_test(b, o, kinds[k], &res[k], err)) return cli_gen_fail_err(err);
        if (!o->json) printf("| %s | %s | %.2f ± %.2f |\n", cols, res[k].name, res[k].mean, res[k].sd);
    }
    if (o->json) {
        printf("[");
        for (int k = 0; k < n_kinds; k++)
            printf("%s{\"test\":\"%s\",\"tps_mean\":%.4f,\"tps_sd\":%.4f}", k ? "," : "", res[k].name, res[k].mean,
                   res[k].sd);
        printf("]\n");
    }
    return 0;
}

int cli_bench(int argc, char **argv) {
    bench_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    hearth_err err = {0};
    gguf_file *f = NULL;
    if (gguf_open(o.model, &f, &err)) return cli_gen_fail_err(&err);
    kern_pool *pool = kern_pool_new((int)o.threads);
    if (!pool) {
        gguf_close(f);
        fprintf(stderr, "hearth: error: cannot start %" PRId64 " threads\n", o.threads);
        return 1;
    }
    bench_state b = {0};
    rc = run_all(f, &o, &b, pool, &err);
    close_state(&b);
    kern_pool_free(pool);
    gguf_close(f);
    return rc;
}
