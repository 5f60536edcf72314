/* Kernel benchmark (not a test): decode matvec GB/s, batched decode (8 tokens) speed-up
 * and prefill matmul GOP/s for Q4_K, Q5_K, Q6_K, Q8_0, Q4_0, F16, BF16 and F32 at
 * TinyLlama shapes, 1 and 2 threads, for every CPU level this machine has (each level in
 * a child process run with HEARTH_CPU set, so all levels are compared in one run).
 *   kern_bench [--quick] [--type q4_k|q5_k|q6_k|q8_0|q4_0|f16|bf16|f32] [--level scalar|avx2|avx512]
 * GB/s counts the weights' GGUF bytes once per matvec; GOP/s counts 2 ops per MAC.
 * Decode and batch8 cycle through enough stacked copies of the matrix (>= 256 MB) that
 * the weights come from memory, as in a whole model; prefill reuses one copy. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kern_internal.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x1234567;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random quant bits with small positive f16 scales (fast: no quantizer search); float
   types get values in [-0.1, 0.1]. */
static void fill_weights(uint32_t type, uint8_t *data, size_t bytes, size_t block_bytes) {
    if (type == GGML_F32 || type == GGML_F16 || type == GGML_BF16) {
        for (size_t off = 0; off < bytes; off += block_bytes) {
            float v = (float)((int64_t)(rnd() % 2001) - 1000) * 1e-4f;
            if (type == GGML_F32) memcpy(data + off, &v, 4);
            else {
                uint16_t h = type == GGML_F16 ? kern_f32_to_f16(v) : kern_f32_to_bf16(v);
                memcpy(data + off, &h, 2);
            }
        }
        return;
    }
    for (size_t i = 0; i < bytes; i++) data[i] = (uint8_t)rnd();
    uint16_t d = kern_f32_to_f16(0.001f);
    for (size_t off = 0; off < bytes; off += block_bytes) {
        uint8_t *b = data + off;
        if (type == GGML_Q6_K) memcpy(b + block_bytes - 2, &d, 2);
        else {
            memcpy(b, &d, 2);
            if (type == GGML_Q4_K || type == GGML_Q5_K) memcpy(b + 2, &d, 2);
        }
    }
}

#define COLD_BYTES ((size_t)256 << 20)

/* Copy k of the stacked matrix big (copies of rows rows each, panels included). */
static kern_matrix view(const kern_matrix *big, int64_t rows, int64_t k) {
    kern_matrix v = *big;
    v.rows = rows;
    v.data = (const uint8_t *)big->data + (size_t)(k * rows) * big->row_bytes;
    if (big->packed) {
        v.packed_bytes = kern_panel_bytes(big->type, rows, big->cols);
        v.packed = (uint8_t *)big->packed + (size_t)k * v.packed_bytes;
    }
    return v;
}

/* Seconds per call, cycling through the copies until about `budget` seconds passed. */
static double time_matmul(kern_pool *pool, const kern_matrix *big, int64_t rows, int64_t copies,
                          const float *x, int64_t n_tok, float *y, double budget) {
    kern_matrix v0 = view(big, rows, 0);
    kern_matmul(pool, &v0, x, n_tok, y, rows);   /* warm-up: scratch, pool */
    int64_t reps = 0;
    double t0 = now(), t;
    do {
        kern_matrix v = view(big, rows, reps % copies);
        if (kern_matmul(pool, &v, x, n_tok, y, rows) != HEARTH_OK) {
            fprintf(stderr, "matmul failed\n");
            exit(1);
        }
        reps++;
        t = now() - t0;
    } while (t < budget || reps < copies);
    return t / (double)reps;
}

static int run_level(const char *only_type, int quick) {
    static const struct { uint32_t type; const char *name; } types[] = {
        {GGML_Q4_K, "q4_k"}, {GGML_Q5_K, "q5_k"}, {GGML_Q6_K, "q6_k"}, {GGML_Q8_0, "q8_0"}, {GGML_Q4_0, "q4_0"},
        {GGML_F16, "f16"},   {GGML_BF16, "bf16"}, {GGML_F32, "f32"}};
    static const int64_t shapes[][2] = {{2048, 2048}, {5632, 2048}, {2048, 5632}, {32000, 2048}};
    kern_cpu_level level = kern_cpu_level_active();
    int64_t prefill_tok = level == KERN_CPU_AVX512 ? 512 : level == KERN_CPU_AVX2 ? 64 : 8;
    double budget = quick ? 0.1 : 0.4;
    kern_pool *pools[2] = {kern_pool_new(1), kern_pool_new(2)};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        if (only_type && strcmp(only_type, types[ti].name) != 0) continue;
        for (size_t si = 0; si < 4; si++) {
            int64_t rows = shapes[si][0], cols = shapes[si][1];
            const kern_type_traits *t = kern_traits(types[ti].type);
            size_t rb = kern_row_bytes(t->type, cols), bytes = rb * (size_t)rows;
            int64_t copies = (int64_t)((COLD_BYTES + bytes - 1) / bytes);
            uint8_t *data = malloc(bytes * (size_t)copies);
            float *x = malloc(sizeof(float) * (size_t)(prefill_tok * cols));
            float *y = malloc(sizeof(float) * (size_t)(prefill_tok * rows));
            if (!data || !x || !y) return 1;
            fill_weights(t->type, data, bytes * (size_t)copies, t->block_bytes);
            for (int64_t i = 0; i < prefill_tok * cols; i++) x[i] = (float)((int64_t)(rnd() % 2001) - 1000) * 1e-3f;
            kern_matrix m = {.type = t->type, .rows = rows * copies, .cols = cols, .row_bytes = rb, .data = data};
            size_t packed = 0;
            if (kern_matrix_prepare(&m, &packed) != HEARTH_OK) return 1;
            for (int th = 0; th < 2; th++) {
                double t1 = time_matmul(pools[th], &m, rows, copies, x, 1, y, budget);
                double t8 = time_matmul(pools[th], &m, rows, copies, x, 8, y, budget);
                double tp = time_matmul(pools[th], &m, rows, 1, x, prefill_tok, y, budget);
                printf("%-6s %-4s %5ldx%-5ld %dT  decode %6.1f GB/s %7.1f us  batch8 x%4.2f  prefill(%3ld tok) %7.1f GOP/s%s\n",
                       kern_cpu_level_name(level), t->name, (long)rows, (long)cols, th + 1, (double)bytes / t1 * 1e-9,
                       t1 * 1e6, 8.0 * t1 / t8, (long)prefill_tok, 2.0 * (double)rows * (double)cols * (double)prefill_tok / tp * 1e-9,
                       packed ? "  [repacked]" : "");
                fflush(stdout);
            }
            kern_matrix_release(&m);
            free(data);
            free(x);
            free(y);
        }
    }
    kern_pool_free(pools[0]);
    kern_pool_free(pools[1]);
    return 0;
}

int main(int argc, char **argv) {
    const char *only_type = NULL, *only_level = NULL;
    int quick = 0, child = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--child") == 0) child = 1;
        else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc) only_type = argv[++i];
        else if (strcmp(argv[i], "--level") == 0 && i + 1 < argc) only_level = argv[++i];
        else {
            fprintf(stderr, "usage: kern_bench [--quick] [--type q4_k|q5_k|q6_k|q8_0|q4_0|f16|bf16|f32] "
                            "[--level scalar|avx2|avx512]\n");
            return 2;
        }
    }
    if (child) return run_level(only_type, quick);
    printf("CPU: best level %s\n", kern_cpu_level_name(kern_cpu_level_best()));
    for (int l = kern_cpu_level_best(); l >= 0; l--) {
        const char *name = kern_cpu_level_name((kern_cpu_level)l);
        if (only_level && strcmp(only_level, name) != 0) continue;
        pid_t pid = fork();
        if (pid == 0) {
            setenv("HEARTH_CPU", name, 1);
            char *args[8];
            int n = 0;
            args[n++] = argv[0];
            args[n++] = "--child";
            if (quick) args[n++] = "--quick";
            if (only_type) {
                args[n++] = "--type";
                args[n++] = (char *)only_type;
            }
            args[n] = NULL;
            execv("/proc/self/exe", args);
            _exit(127);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "level %s: benchmark failed\n", name);
            return 1;
        }
    }
    return 0;
}
