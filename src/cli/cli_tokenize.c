/* `hearth tokenize -m FILE [--raw] (--stdin | TEXT)`: prints the token ids of a text on one
 * line, space-separated. BOS/EOS are added as the model says unless --raw; text that looks
 * like a special token ("<s>", "<|endoftext|>") stays text. --stdin reads the exact bytes
 * of standard input. Failures print one "hearth: error:" line (exit 1, or 2 for usage). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

#define STDIN_MAX ((size_t)1 << 30) /* refuse more than 1 GiB of text */

static void usage(FILE *out) {
    fprintf(out,
            "usage: hearth tokenize -m FILE [--raw] (--stdin | TEXT)\n"
            "\n"
            "Prints the token ids of TEXT (or of all of standard input) with the vocabulary\n"
            "of the GGUF model FILE, on one line, separated by spaces.\n"
            "\n"
            "  -m, --model FILE  the GGUF file whose vocabulary to use\n"
            "  --raw             add no BOS/EOS tokens (by default they are added as the model says)\n"
            "  --stdin           read the text from standard input, byte for byte\n"
            "  -h, --help        show this help\n");
}

static int usage_error(const char *msg, const char *arg) {
    fprintf(stderr, "hearth: error: %s%s%s (see 'hearth tokenize --help')\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

/* Reads all of stdin into a mem_alloc'd buffer; NULL on failure with *why set. */
static char *read_stdin(size_t *len, const char **why) {
    size_t cap = 65536, n = 0;
    char *buf = mem_alloc(cap);
    if (!buf) {
        *why = "out of memory";
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= STDIN_MAX) {
                mem_free(buf);
                *why = "standard input is larger than 1 GiB";
                return NULL;
            }
            char *nb = mem_realloc(buf, cap * 2);
            if (!nb) {
                mem_free(buf);
                *why = "out of memory";
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) break;
    }
    if (ferror(stdin)) {
        mem_free(buf);
        *why = "cannot read standard input";
        return NULL;
    }
    *len = n;
    return buf;
}

static int print_ids(const int32_t *ids, size_t n) {
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "hearth: error: cannot write to standard output\n");
        return 1;
    }
    return 0;
}

int cli_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    bool raw = false, from_stdin = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) return usage_error("missing FILE after", a);
            model = argv[++i];
        } else if (!strcmp(a, "--raw")) {
            raw = true;
        } else if (!strcmp(a, "--stdin")) {
            from_stdin = true;
        } else if (!strcmp(a, "--")) {
            if (i + 2 != argc || text) return usage_error("expected exactly one TEXT after", "--");
            text = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option", a);
        } else {
            if (text) return usage_error("more than one TEXT; quote the text as one argument", NULL);
            text = a;
        }
    }
    if (!model) return usage_error("missing -m FILE", NULL);
    if (from_stdin && text) return usage_error("give either --stdin or TEXT, not both", NULL);
    if (!from_stdin && !text) return usage_error("missing TEXT (or --stdin)", NULL);

    size_t len = 0;
    char *input = NULL;
    if (from_stdin) {
        const char *why = NULL;
        if (!(input = read_stdin(&len, &why))) {
            fprintf(stderr, "hearth: error: %s\n", why);
            return 1;
        }
    } else {
        len = strlen(text);
    }

    hearth_err err = {0};
    gguf_file *f = NULL;
    tok_vocab *v = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int rc = 1;
    if (gguf_open(model, &f, &err) != HEARTH_OK)
        fprintf(stderr, "hearth: error: %s\n", err.msg);
    else if (tok_load(f, &v, &err) != HEARTH_OK)
        fprintf(stderr, "hearth: error: %s: %s\n", model, err.msg);
    else if (tok_encode(v, input ? input : text, len, !raw, false, &ids, &n_ids, &err) != HEARTH_OK)
        fprintf(stderr, "hearth: error: %s\n", err.msg);
    else
        rc = print_ids(ids, n_ids);
    mem_free(ids);
    tok_free(v);
    gguf_close(f);
    mem_free(input);
    return rc;
}
