/* Decode speed with and without a LoRA adapter, measured in one process: rounds
 * alternate between the base model and the model with the adapter (same engine, same
 * prompt, greedy), each timing N single-token decode steps by wall clock and by process
 * CPU time (robust when other programs share the cores). Prints the median of each.
 * Measurement only, never a test. Build and run from the project root after a build:
 *   gcc -O2 -Iinclude -Isrc bench/bench_lora.c build/libhearth.a \
 *       -lpcre2-8 -lutf8proc -ljansson -lm -lpthread -o build/bench_lora
 *   build/bench_lora MODEL.gguf ADAPTER.gguf [N_TOKENS] [ROUNDS] [THREADS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/mem.h"
#include "engine/generate.h"
#include "model/lora.h"

static double now(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static hearth_status keep_argmax(void *ud, int64_t index, const float *logits, int64_t n_vocab, hearth_err *err) {
    int32_t best = 0;
    for (int64_t i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = (int32_t)i;
    *(int32_t *)ud = best;
    return HEARTH_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Prefills the prompt, then decodes n tokens; *wall and *cpu get the decode seconds. */
static hearth_status decode(gen_engine *e, const int32_t *prompt, size_t n_prompt, int n, double *wall, double *cpu,
                            hearth_err *err) {
    gen_reset(e);
    int32_t tok;
    hearth_status st = gen_eval(e, prompt, n_prompt, false, keep_argmax, &tok, err);
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < n && !st; i++) st = gen_eval(e, &tok, 1, false, keep_argmax, &tok, err);
    *wall = now(CLOCK_MONOTONIC) - w0;
    *cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    return st;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_lora MODEL.gguf ADAPTER.gguf [N_TOKENS] [ROUNDS] [THREADS]\n");
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 128, rounds = argc > 4 ? atoi(argv[4]) : 5;
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    if (n < 1 || rounds < 1 || rounds > 100) return 2;
    hearth_err err = {0};
    gen_model *gm = NULL;
    gen_engine *e = NULL;
    model_lora *a = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    const char *prompt = "Once upon a time";
    gen_config cfg = {.n_ctx = 1024, .n_threads = threads};
    hearth_status st = gen_model_open(argv[1], &gm, &err);
    if (!st) st = model_lora_open(gm->model, argv[2], &a, &err);
    if (!st) st = tok_encode(gm->vocab, prompt, strlen(prompt), true, false, &ids, &n_ids, &err);
    if (!st) st = gen_engine_new(gm->model, gm->vocab, &cfg, &e, &err);
    double wall[2][100], cpu[2][100];
    model_lora_use use = {a, 1.0f};
    for (int r = 0; r < rounds && !st; r++)
        for (int mode = 0; mode < 2 && !st; mode++)
            if (!(st = gen_set_lora(e, &use, mode, &err)))
                st = decode(e, ids, n_ids, n, &wall[mode][r], &cpu[mode][r], &err);
    if (st) {
        fprintf(stderr, "bench_lora: %s\n", err.msg);
    } else {
        const char *names[2] = {"base", "lora"};
        double tps[2][2];
        for (int mode = 0; mode < 2; mode++) {
            tps[mode][0] = n / median(wall[mode], rounds);
            tps[mode][1] = n / median(cpu[mode], rounds);
            printf("%s: %.1f tokens/s (wall), %.1f tokens/s (cpu), median of %d x %d decode steps, %d thread(s)\n",
                   names[mode], tps[mode][0], tps[mode][1], rounds, n, gen_n_threads(e));
        }
        printf("adapter '%s' rank %lld on %lld matrices: decode cost %+.1f%% (wall), %+.1f%% (cpu)\n",
               model_lora_name(a), (long long)model_lora_rank(a), (long long)model_lora_n_targets(a),
               100.0 * (tps[0][0] / tps[1][0] - 1.0), 100.0 * (tps[0][1] / tps[1][1] - 1.0));
    }
    gen_engine_free(e);
    model_lora_release(a);
    mem_free(ids);
    gen_model_close(gm);
    return st ? 1 : 0;
}
