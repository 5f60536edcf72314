/* `hearth embed -m FILE (TEXT | --stdin) [--json] [--pooling P] [--no-normalize] ...`:
 * tokenizes the text (special tokens added, not parsed), embeds it and prints the vector
 * as space-separated floats on one line (one line per token with --pooling none), or
 * {"embedding":[...]} with --json. Any failure is one error line on stderr. */
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "cli/cli.h"
#include "cli/cli_gen.h"
#include "engine/embed.h"
#include "engine/generate.h"

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth embed -m FILE (TEXT | --stdin) [--json] [--pooling none|mean|cls|last]\n"
            "                    [--no-normalize] [--truncate] [-t THREADS] [--ctx N]\n"
            "\n"
            "Prints the embedding of a text as space-separated floats (one line per token with\n"
            "--pooling none), or {\"embedding\":[...]} with --json.\n"
            "\n"
            "  -m FILE         GGUF model (bert, or a decoder: llama, qwen2, qwen3)\n"
            "  --stdin         read the text from standard input\n"
            "  --json          print a JSON object\n"
            "  --pooling P     none, mean, cls or last (default: the model's pooling_type, else\n"
            "                  mean for bert and last for decoders)\n"
            "  --no-normalize  do not scale the embedding to unit length\n"
            "  --truncate      embed the first N tokens of a longer text instead of failing\n"
            "  -t THREADS      worker threads (default: one per physical core)\n"
            "  --ctx N         longest input in tokens (default: min(model context, 4096))\n"
            "  -h, --help      show this help\n");
}

typedef struct embed_cli_opts {
    const char *model, *text;
    bool from_stdin, json;
    embed_opts eo;
    long long threads, ctx;
} embed_cli_opts;

static int parse_option(int argc, char **argv, int *i, embed_cli_opts *o) {
    const char *a = argv[*i], *v;
    if (!(v = cli_gen_value(argc, argv, i))) return CLI_EXIT_USAGE;
    if (!strcmp(a, "-m")) o->model = v;
    else if (!strcmp(a, "--pooling") && !embed_pooling_parse(v, &o->eo.pooling))
        return cli_gen_fail(CLI_EXIT_USAGE, "--pooling expects none, mean, cls or last, got '%s'", v);
    else if (!strcmp(a, "-t") && !cli_gen_int("-t", v, 1, 1024, &o->threads)) return CLI_EXIT_USAGE;
    else if (!strcmp(a, "--ctx") && !cli_gen_int("--ctx", v, 1, (long long)1 << 24, &o->ctx)) return CLI_EXIT_USAGE;
    return CLI_EXIT_OK;
}

/* 0 when parsed, else the exit code (help: 0 via *done). */
static int parse(int argc, char **argv, embed_cli_opts *o, bool *done) {
    memset(o, 0, sizeof *o);
    embed_opts_default(&o->eo);
    *done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int code;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            *done = true;
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--stdin")) {
            o->from_stdin = true;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (!strcmp(a, "--no-normalize")) {
            o->eo.normalize = false;
        } else if (!strcmp(a, "--truncate")) {
            o->eo.truncate = true;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--pooling") || !strcmp(a, "-t") || !strcmp(a, "--ctx")) {
            if ((code = parse_option(argc, argv, &i, o))) return code;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_gen_fail(CLI_EXIT_USAGE, "embed: unknown option '%s' (see 'hearth embed --help')", a);
        } else if (o->text) {
            return cli_gen_fail(CLI_EXIT_USAGE, "embed: give one TEXT (quote it), got '%s' as well", a);
        } else {
            o->text = a;
        }
    }
    if (!o->model) return cli_gen_fail(CLI_EXIT_USAGE, "embed: -m FILE is required");
    if (!o->text == !o->from_stdin) return cli_gen_fail(CLI_EXIT_USAGE, "embed: give exactly one of TEXT and --stdin");
    return CLI_EXIT_OK;
}

/* One line per row, or JSON: a flat array, or an array of rows when per_token. */
static void print_rows(const float *v, size_t rows, int64_t dim, bool json, bool per_token) {
    if (json) fputs(per_token ? "{\"embedding\":[" : "{\"embedding\":", stdout);
    for (size_t r = 0; r < rows; r++) {
        const float *row = v + r * (size_t)dim;
        if (json) fputs(r ? ",[" : "[", stdout);
        for (int64_t i = 0; i < dim; i++) printf("%s%.9g", i ? (json ? "," : " ") : "", row[i]);
        fputs(json ? "]" : "\n", stdout);
    }
    if (json) fputs(per_token ? "]}\n" : "}\n", stdout);
}

static hearth_status embed_text(const embed_cli_opts *o, gen_model *gm, const char *text, size_t len,
                                hearth_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    float *out = NULL;
    embed_ctx *e = NULL;
    embed_config cfg = {.n_ctx = o->ctx, .n_threads = (int)o->threads};
    hearth_status st = tok_encode(gm->vocab, text, len, true, false, &ids, &n, err);
    if (!st) st = embed_ctx_new(gm->model, &cfg, &e, err);
    embed_input in = {ids, n};
    size_t rows = st ? 0 : embed_rows(e, &in, 1, &o->eo);
    int64_t dim = st ? 0 : embed_n_embd(e);
    if (!st && !(out = mem_alloc_array(rows ? rows : 1, (size_t)dim * sizeof(float))))
        st = err_set(err, HEARTH_ERR_NOMEM, "out of memory for %zu embedding rows", rows);
    if (!st) st = embed_batch(e, &in, 1, &o->eo, out, rows, err);
    bool per_token = !st && (o->eo.pooling == EMBED_POOL_DEFAULT ? embed_model_pooling(gm->model) : o->eo.pooling) ==
                                 EMBED_POOL_NONE;
    if (!st) print_rows(out, rows, dim, o->json, per_token);
    mem_free(out);
    embed_ctx_free(e);
    mem_free(ids);
    return st;
}

int cli_embed(int argc, char **argv) {
    embed_cli_opts o;
    bool done;
    int code = parse(argc, argv, &o, &done);
    if (code || done) return code;

    hearth_err err = {0};
    char *text = NULL;
    size_t text_len = 0;
    gen_model *gm = NULL;
    hearth_status st = HEARTH_OK;
    if (o.from_stdin) st = cli_gen_read_stdin(&text, &text_len, &err);
    if (!st) st = gen_model_open(o.model, &gm, &err);
    if (!st)
        st = embed_text(&o, gm, o.from_stdin ? text : o.text, o.from_stdin ? text_len : strlen(o.text), &err);
    mem_free(text);
    gen_model_close(gm);
    return st ? cli_gen_fail_err(&err) : CLI_EXIT_OK;
}
