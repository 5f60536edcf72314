/* Embedding benchmark (not a test): inputs per second for ~36-token inputs on a bert
 * model, one input per forward pass versus 8 inputs packed into one pass.
 *   embed_bench MODEL.gguf [THREADS]
 * Build against the library after `cmake --build build`:
 *   cc -O2 -Iinclude -Isrc bench/embed_bench.c build/libhearth.a \
 *      $(pkg-config --libs libpcre2-8 libutf8proc jansson) -lpthread -lm -o build/embed_bench */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/mem.h"
#include "engine/embed.h"
#include "engine/generate.h"

#define N_INPUTS 64
#define BATCH 8

static const char *const sentences[] = {
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch, "
    "wondering whether the rain will come before the harvest is finished this year.",
    "Local inference servers load model files once, keep them in memory and answer many "
    "requests, so the time to embed a short text matters more than the time to load.",
    "A search index stores one vector per document; a query is embedded the same way and "
    "the closest vectors, by cosine similarity, name the documents to show first.",
    "Every size read from a file is checked against what remains, and every sum of sizes "
    "is computed with overflow-checked arithmetic before a single byte is allocated.",
};

static double run(embed_ctx *e, const embed_input *in, size_t per_pass, float *out) {
    embed_opts o;
    embed_opts_default(&o);
    hearth_err err = {0};
    double t0 = clock_mono_s();
    for (size_t i = 0; i < N_INPUTS; i += per_pass)
        if (embed_batch(e, in + i, per_pass, &o, out, per_pass, &err)) {
            fprintf(stderr, "embed_bench: %s\n", err.msg);
            exit(1);
        }
    return N_INPUTS / (clock_mono_s() - t0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: embed_bench MODEL.gguf [THREADS]\n");
        return 2;
    }
    hearth_err err = {0};
    gen_model *gm = NULL;
    if (gen_model_open(argv[1], &gm, &err)) {
        fprintf(stderr, "embed_bench: %s\n", err.msg);
        return 1;
    }
    embed_input in[N_INPUTS];
    int32_t *ids[4];
    size_t n[4], total = 0;
    for (int s = 0; s < 4; s++) {
        if (tok_encode(gm->vocab, sentences[s], strlen(sentences[s]), true, false, &ids[s], &n[s], &err)) return 1;
        total += n[s];
    }
    for (int i = 0; i < N_INPUTS; i++) in[i] = (embed_input){ids[i % 4], n[i % 4]};
    embed_config cfg = {.n_threads = argc > 2 ? atoi(argv[2]) : 0};
    embed_ctx *e = NULL;
    if (embed_ctx_new(gm->model, &cfg, &e, &err)) {
        fprintf(stderr, "embed_bench: %s\n", err.msg);
        return 1;
    }
    float *out = malloc(BATCH * (size_t)embed_n_embd(e) * sizeof(float));
    run(e, in, BATCH, out); /* warm-up */
    double single = run(e, in, 1, out), batched = run(e, in, BATCH, out);
    printf("%s: %.1f tokens per input, %d threads\n", argv[1], (double)total / 4.0, cfg.n_threads);
    printf("  one input per pass:  %8.1f inputs/s\n", single);
    printf("  %d inputs per pass:   %8.1f inputs/s (x%.2f)\n", BATCH, batched, batched / single);
    free(out);
    embed_ctx_free(e);
    for (int s = 0; s < 4; s++) mem_free(ids[s]);
    gen_model_close(gm);
    return 0;
}
