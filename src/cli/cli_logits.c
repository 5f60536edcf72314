/* `hearth logits -m FILE [--all] (--stdin | -p TEXT) -o OUT.f32 [-t THREADS] [--ctx N]
 * [--lora ADAPTER[:SCALE]]...`:
 * tokenizes the text (special tokens added, not parsed), runs it and writes float32
 * little-endian logits, one row of n_vocab per position (the last, or every one with
 * --all), then prints one JSON line {"tokens":[...],"n_vocab":N,"rows":R} on stdout.
 * Any failure is one error line on stderr; a partly written output file is removed. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/cli_gen.h"
#include "cli/cli_lora.h"
#include "engine/generate.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "logits files are written as little-endian floats");

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth logits -m FILE (-p TEXT | --stdin) -o OUT.f32 [--all] [-t THREADS] [--ctx N]\n"
            "                     [--lora ADAPTER[:SCALE]]...\n"
            "\n"
            "Runs a prompt and writes its logits as little-endian float32 rows of n_vocab, then\n"
            "prints {\"tokens\":[...],\"n_vocab\":N,\"rows\":R} on one line.\n"
            "\n"
            "  -m FILE       GGUF model\n"
            "  -p TEXT       prompt text\n"
            "  --stdin       read the prompt from standard input\n"
            "  -o OUT        output file\n"
            "  --all         one row per prompt token (default: the last token only)\n"
            "  -t THREADS    worker threads (default: one per physical core)\n"
            "  --ctx N       context positions (default: min(model context, 4096))\n"
            CLI_LORA_HELP
            "  -h, --help    show this help\n");
}

typedef struct logits_opts {
    const char *model, *prompt, *out;
    bool from_stdin, all;
    long long threads, ctx;
    cli_lora_list lora;
} logits_opts;

/* 0 when parsed, else the exit code (help: 0 via *done). */
static int parse(int argc, char **argv, logits_opts *o, bool *done) {
    memset(o, 0, sizeof *o);
    *done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            *done = true;
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--all")) {
            o->all = true;
        } else if (!strcmp(a, "--stdin")) {
            o->from_stdin = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "-p") || !strcmp(a, "-o") || !strcmp(a, "-t") ||
                   !strcmp(a, "--ctx") || !strcmp(a, "--lora")) {
            if (!(v = cli_gen_value(argc, argv, &i))) return CLI_EXIT_USAGE;
            if (!strcmp(a, "-m")) o->model = v;
            else if (!strcmp(a, "-p")) o->prompt = v;
            else if (!strcmp(a, "-o")) o->out = v;
            else if (!strcmp(a, "--lora") && !cli_lora_parse(v, &o->lora)) return CLI_EXIT_USAGE;
            else if (!strcmp(a, "-t") && !cli_gen_int("-t", v, 1, 1024, &o->threads)) return CLI_EXIT_USAGE;
            else if (!strcmp(a, "--ctx") && !cli_gen_int("--ctx", v, 1, (long long)1 << 24, &o->ctx))
                return CLI_EXIT_USAGE;
        } else {
            return cli_gen_fail(CLI_EXIT_USAGE, "logits: unknown argument '%s' (see 'hearth logits --help')", a);
        }
    }
    if (!o->model) return cli_gen_fail(CLI_EXIT_USAGE, "logits: -m FILE is required");
    if (!o->out) return cli_gen_fail(CLI_EXIT_USAGE, "logits: -o OUT.f32 is required");
    if (!o->prompt == !o->from_stdin)
        return cli_gen_fail(CLI_EXIT_USAGE, "logits: give exactly one of -p TEXT and --stdin");
    return CLI_EXIT_OK;
}

typedef struct row_sink {
    FILE *f;
    const char *path;
    int64_t rows;
} row_sink;

static hearth_status write_row(void *ud, int64_t index, const float *logits, int64_t n_vocab, hearth_err *err) {
    row_sink *s = ud;
    if (fwrite(logits, sizeof(float), (size_t)n_vocab, s->f) != (size_t)n_vocab)
        return err_set(err, HEARTH_ERR_IO, "%s: write failed", s->path);
    s->rows++;
    return HEARTH_OK;
}

static void print_summary(const int32_t *ids, size_t n, int64_t n_vocab, int64_t rows) {
    fputs("{\"tokens\":[", stdout);
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? "," : "", ids[i]);
    printf("],\"n_vocab\":%lld,\"rows\":%lld}\n", (long long)n_vocab, (long long)rows);
}

/* Runs the prompt and writes the output file; removes it again on failure. */
static hearth_status run_logits(const logits_opts *o, gen_model *gm, const int32_t *ids, size_t n,
                                row_sink *sink, hearth_err *err) {
    gen_config cfg = {.n_ctx = o->ctx, .n_threads = (int)o->threads, .all_logits = o->all};
    gen_engine *e = NULL;
    hearth_status st = gen_engine_new(gm->model, gm->vocab, &cfg, &e, err);
    if (!st) st = cli_lora_attach(e, gm->model, &o->lora, err);
    if (!st && (int64_t)n > gen_n_ctx(e))
        st = err_set(err, HEARTH_ERR_RANGE, "prompt of %zu tokens is longer than the context (%lld positions)", n,
                     (long long)gen_n_ctx(e));
    if (!st && !(sink->f = fopen(o->out, "wb"))) st = err_set(err, HEARTH_ERR_IO, "%s: cannot create file", o->out);
    if (!st) st = gen_eval(e, ids, n, o->all, write_row, sink, err);
    if (sink->f && fclose(sink->f) != 0 && !st) st = err_set(err, HEARTH_ERR_IO, "%s: write failed", o->out);
    if (st && sink->f) unlink(o->out);
    gen_engine_free(e);
    return st;
}

int cli_logits(int argc, char **argv) {
    logits_opts o;
    bool done;
    int code = parse(argc, argv, &o, &done);
    if (code || done) return code;

    hearth_err err = {0};
    char *text = NULL;
    size_t text_len = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    gen_model *gm = NULL;
    row_sink sink = {NULL, o.out, 0};
    hearth_status st = HEARTH_OK;
    if (o.from_stdin) st = cli_gen_read_stdin(&text, &text_len, &err);
    if (!st) st = gen_model_open(o.model, &gm, &err);
    if (!st) {
        const char *p = o.from_stdin ? text : o.prompt;
        st = tok_encode(gm->vocab, p, o.from_stdin ? text_len : strlen(p), true, false, &ids, &n, &err);
    }
    if (!st) st = run_logits(&o, gm, ids, n, &sink, &err);
    if (!st) print_summary(ids, n, model_hp(gm->model)->n_vocab, sink.rows);
    mem_free(ids);
    mem_free(text);
    gen_model_close(gm);
    return st ? cli_gen_fail_err(&err) : CLI_EXIT_OK;
}
