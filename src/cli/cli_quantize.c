/* `hearth quantize IN.gguf OUT.gguf TYPE`: rewrites a model with another tensor type or
 * mix (quant/quant.h does the work). Prints a summary on stdout, warnings on stderr, and
 * on failure one error line; never leaves a partial output file. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "cli/cli.h"
#include "cli/cli_tools.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"
#include "quant/quant.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth quantize [-t THREADS] [-v] IN.gguf OUT.gguf TYPE\n"
            "\n"
            "Writes IN with its matrices converted to TYPE (case-insensitive), one of\n"
            "  %s\n"
            "Mixes follow the llama.cpp recipe: Q4_K_M and Q5_K_M give attn_v and ffn_down Q6_K in\n"
            "the first and last eighth of the layers and every third layer between; the output\n"
            "matrix gets Q6_K (except with Q8_0); vectors and norms stay F32. Plain Q4_K and Q5_K\n"
            "apply no layer bumps. Input may be F32, F16, BF16 or already quantized (decoded and\n"
            "encoded again, with a warning).\n"
            "\n"
            "  -t THREADS  worker threads (default: one per physical core)\n"
            "  -v          print every tensor as it is written\n"
            "  -h, --help  show this help\n",
            quant_scheme_list());
}

typedef struct progress_state {
    bool verbose;
    bool warned_requant;
    uint64_t in_bytes, out_bytes;
} progress_state;

static void on_tensor(void *ud, uint64_t index, uint64_t count, const gguf_tensor *t, const quant_tensor_plan *plan,
                      bool requantized) {
    progress_state *ps = ud;
    const char *from = ggml_type_get(t->type)->name, *to = ggml_type_get(plan->type)->name;
    if (requantized && !ps->warned_requant) {
        fprintf(stderr, "hearth: warning: the input is already quantized (tensor '%.*s' is %s); "
                        "decoding and re-encoding it loses quality\n", (int)t->name.len, t->name.ptr, from);
        ps->warned_requant = true;
    }
    if (plan->fallback)
        fprintf(stderr, "hearth: warning: tensor '%.*s': rows of %" PRId64 " elements do not fit 256-element blocks; "
                        "using %s\n", (int)t->name.len, t->name.ptr, t->ne[0], to);
    uint64_t out_size = 0;
    gguf_tensor_bytes(plan->type, t->n_dims, t->ne, &out_size);
    ps->in_bytes += t->size;
    ps->out_bytes += out_size;
    if (ps->verbose)
        printf("[%4" PRIu64 "/%4" PRIu64 "] %-36.*s %-5s -> %-5s %8.2f MiB -> %8.2f MiB\n", index + 1, count,
               (int)t->name.len, t->name.ptr, from, to, t->size / 1048576.0, out_size / 1048576.0);
}

int cli_quantize(int argc, char **argv) {
    const char *pos[3];
    int n_pos = 0;
    int64_t n_threads = 0;
    progress_state ps = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            ps.verbose = true;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (!cli_tools_int(argc, argv, &i, 1, 512, &n_threads)) return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "hearth quantize: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "hearth quantize: too many arguments\n");
            usage(stderr);
            return 2;
        }
    }
    if (n_pos != 3) {
        usage(stderr);
        return 2;
    }
    const quant_scheme *s = quant_scheme_find(pos[2]);
    if (!s) {
        fprintf(stderr, "hearth quantize: unknown type '%s' (one of %s)\n", pos[2], quant_scheme_list());
        return 2;
    }
    hearth_err err = {0};
    gguf_file *in = NULL;
    if (gguf_open(pos[0], &in, &err)) return cli_gen_fail_err(&err);
    kern_pool *pool = kern_pool_new((int)n_threads);
    if (!pool) {
        gguf_close(in);
        fprintf(stderr, "hearth: error: cannot start %d threads\n", (int)n_threads);
        return 1;
    }
    double t0 = clock_mono_s();
    hearth_status st = quant_file(in, pos[1], s, pool, on_tensor, &ps, &err);
    double secs = clock_mono_s() - t0;
    kern_pool_free(pool);
    gguf_close(in);
    if (st) return cli_gen_fail_err(&err);
    printf("wrote %s: %s, %.2f MiB -> %.2f MiB in %.1f s\n", pos[1], s->name, ps.in_bytes / 1048576.0,
           ps.out_bytes / 1048576.0, secs);
    return 0;
}
