/* hearth: dispatches to one subcommand per file (cli_<name>.c). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "hearth.h"

typedef struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} cli_command;

static const cli_command commands[] = {
    {"info", cli_info, "show a GGUF file's metadata and tensors"},
    {"tokenize", cli_tokenize, "print the token ids of a text"},
    {"logits", cli_logits, "run a prompt and write its logits"},
    {"run", cli_run, "generate text from a prompt"},
    {"embed", cli_embed, "print the embedding of a text"},
    {"template", cli_template, "render a chat template with a JSON context"},
    {"serve", cli_serve, "serve models over the OpenAI-compatible HTTP API"},
    {"config", cli_config, "check a configuration file and print the effective configuration"},
    {"pull", cli_pull, "download a model into the model store"},
    {"stats", cli_stats, "summarise the requests in the request store"},
    {"quantize", cli_quantize, "convert a model's tensors to another type or mix"},
    {"mkmodel", cli_mkmodel, "write a synthetic model with random weights"},
    {"bench", cli_bench, "measure prompt and generation speed"},
    {"loadgen", cli_loadgen, "load-test a local OpenAI-compatible server (streamed completions)"},
};

static void usage(FILE *out) {
    fprintf(out, "hearth %s - local LLM inference\n\nusage: hearth COMMAND [ARGS]\n\n", HEARTH_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'hearth COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("hearth %s\n", HEARTH_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "hearth: unknown command '%s' (see 'hearth --help')\n", argv[1]);
    return 2;
}
