/* `hearth run -m FILE -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p M]
 * [--seed S] [-t THREADS] [--ctx N] [--lora ADAPTER[:SCALE]]...`: generates text from a prompt, streaming it to
 * stdout as it is produced (flushed per piece); one informational line before and the
 * timings after go to stderr. Failures are one error line on stderr. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/cli_gen.h"
#include "cli/cli_lora.h"
#include "engine/generate.h"

#define RUN_DEFAULT_N 256

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth run -m FILE -p TEXT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p M]\n"
            "                  [--seed S] [-t THREADS] [--ctx N] [--lora ADAPTER[:SCALE]]...\n"
            "\n"
            "Generates text from a prompt (special tokens in the prompt are recognised) and\n"
            "streams it to standard output. Timings go to standard error.\n"
            "\n"
            "  -m FILE       GGUF model\n"
            "  -p TEXT       prompt text\n"
            "  -n N          most tokens to generate (default %d; 0: until the model stops)\n"
            "  --temp T      temperature (default 0.8; 0: greedy)\n"
            "  --top-k K     keep the K most likely tokens (default 40; 0: off)\n"
            "  --top-p P     nucleus sampling mass (default 0.95; 1: off)\n"
            "  --min-p M     drop tokens below M times the best probability (default 0.05; 0: off)\n"
            "  --seed S      random seed (default: a new one each run, printed to stderr)\n"
            "  -t THREADS    worker threads (default: one per physical core)\n"
            "  --ctx N       context positions (default: min(model context, 4096))\n"
            CLI_LORA_HELP
            "  -h, --help    show this help\n",
            RUN_DEFAULT_N);
}

typedef struct run_opts {
    const char *model, *prompt;
    long long n_predict, threads, ctx;
    sampler_params sp;
    bool has_seed;
    cli_lora_list lora;
} run_opts;

static int parse_value(run_opts *o, const char *a, const char *v) {
    long long k;
    bool ok = true;
    if (!strcmp(a, "-m")) o->model = v;
    else if (!strcmp(a, "-p")) o->prompt = v;
    else if (!strcmp(a, "-n")) ok = cli_gen_int(a, v, 0, (long long)1 << 30, &o->n_predict);
    else if (!strcmp(a, "-t")) ok = cli_gen_int(a, v, 1, 1024, &o->threads);
    else if (!strcmp(a, "--ctx")) ok = cli_gen_int(a, v, 1, (long long)1 << 24, &o->ctx);
    else if (!strcmp(a, "--temp")) ok = cli_gen_float(a, v, 0.0, 1e6, &o->sp.temperature);
    else if (!strcmp(a, "--top-p")) ok = cli_gen_float(a, v, 0.0, 1.0, &o->sp.top_p);
    else if (!strcmp(a, "--min-p")) ok = cli_gen_float(a, v, 0.0, 1.0, &o->sp.min_p);
    else if (!strcmp(a, "--lora")) ok = cli_lora_parse(v, &o->lora);
    else if (!strcmp(a, "--seed")) ok = o->has_seed = cli_gen_u64(a, v, &o->sp.seed);
    else if (!strcmp(a, "--top-k")) {
        ok = cli_gen_int(a, v, 0, INT32_MAX, &k);
        o->sp.top_k = (int32_t)k;
    } else return cli_gen_fail(CLI_EXIT_USAGE, "run: unknown argument '%s' (see 'hearth run --help')", a);
    return ok ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

static int parse(int argc, char **argv, run_opts *o, bool *done) {
    memset(o, 0, sizeof *o);
    sampler_params_default(&o->sp);
    o->n_predict = RUN_DEFAULT_N;
    *done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            *done = true;
            return CLI_EXIT_OK;
        }
        if (a[0] != '-') return cli_gen_fail(CLI_EXIT_USAGE, "run: unexpected argument '%s'", a);
        if (!(v = cli_gen_value(argc, argv, &i))) return CLI_EXIT_USAGE;
        int code = parse_value(o, a, v);
        if (code) return code;
    }
    if (!o->model) return cli_gen_fail(CLI_EXIT_USAGE, "run: -m FILE is required");
    if (!o->prompt) return cli_gen_fail(CLI_EXIT_USAGE, "run: -p TEXT is required");
    if (!o->has_seed) o->sp.seed = sampler_random_seed();
    return CLI_EXIT_OK;
}

static bool print_piece(void *ud, int32_t token, const char *text, size_t len) {
    bool *ends_newline = ud;
    if (len == 0) return true;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    *ends_newline = text[len - 1] == '\n';
    return !ferror(stdout);
}

static void print_timings(const gen_stats *s) {
    static const char *reasons[] = {"", "end of generation", "token limit", "context full", "output closed"};
    double pr = s->prompt_s > 0 ? (double)s->n_prompt / s->prompt_s : 0.0;
    double gr = s->gen_s > 0 ? (double)s->n_generated / s->gen_s : 0.0;
    fprintf(stderr, "hearth: prompt %lld tokens in %.3f s (%.1f tokens/s); generated %lld tokens in %.3f s "
                    "(%.1f tokens/s); stopped: %s\n",
            (long long)s->n_prompt, s->prompt_s, pr, (long long)s->n_generated, s->gen_s, gr, reasons[s->stop]);
}

static hearth_status generate(const run_opts *o, gen_model *gm, const int32_t *ids, size_t n, hearth_err *err) {
    gen_config cfg = {.n_ctx = o->ctx, .n_threads = (int)o->threads};
    gen_engine *e = NULL;
    hearth_status st = gen_engine_new(gm->model, gm->vocab, &cfg, &e, err);
    if (!st) st = cli_lora_attach(e, gm->model, &o->lora, err);
    if (!st && (int64_t)n > gen_n_ctx(e))
        st = err_set(err, HEARTH_ERR_RANGE, "prompt of %zu tokens is longer than the context (%lld positions)", n,
                     (long long)gen_n_ctx(e));
    if (st) {
        gen_engine_free(e);
        return st;
    }
    const model_hparams *hp = model_hp(gm->model);
    fprintf(stderr, "hearth: %s, %lld layers, %lld-dim, vocab %lld; context %lld, threads %d, seed %llu\n",
            hp->arch_name, (long long)hp->n_layer, (long long)hp->n_embd, (long long)hp->n_vocab,
            (long long)gen_n_ctx(e), gen_n_threads(e), (unsigned long long)o->sp.seed);
    gen_request req = {.prompt = ids, .n_prompt = n, .n_predict = (int32_t)o->n_predict, .sampling = &o->sp};
    gen_stats stats;
    bool ends_newline = true;
    st = gen_generate(e, &req, print_piece, &ends_newline, &stats, err);
    if (!ends_newline && isatty(STDOUT_FILENO)) fputc('\n', stdout);
    if (!st) print_timings(&stats);
    gen_engine_free(e);
    return st;
}

int cli_run(int argc, char **argv) {
    run_opts o;
    bool done;
    int code = parse(argc, argv, &o, &done);
    if (code || done) return code;

    signal(SIGPIPE, SIG_IGN); /* a closed stdout ends generation (write error), not the process */
    hearth_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    gen_model *gm = NULL;
    hearth_status st = gen_model_open(o.model, &gm, &err);
    if (!st) st = tok_encode(gm->vocab, o.prompt, strlen(o.prompt), true, true, &ids, &n, &err);
    if (!st) st = generate(&o, gm, ids, n, &err);
    mem_free(ids);
    gen_model_close(gm);
    return st ? cli_gen_fail_err(&err) : CLI_EXIT_OK;
}
