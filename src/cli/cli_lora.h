/* The `--lora ADAPTER[:SCALE]` option shared by `hearth logits` and `hearth run`:
 * parsing the repeatable flag and attaching the adapters to an engine. Prints only
 * usage errors (stderr); never exits. */
#ifndef CLI_CLI_LORA_H
#define CLI_CLI_LORA_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/generate.h"

#define CLI_LORA_MAX 16
#define CLI_LORA_HELP "  --lora F[:S]  apply the LoRA adapter F with scale S (default 1.0); repeatable\n"

typedef struct cli_lora_arg {
    const char *spec; /* the option's value; the path is its first path_len bytes */
    size_t path_len;
    float scale;
} cli_lora_arg;

typedef struct cli_lora_list {
    int n;
    cli_lora_arg arg[CLI_LORA_MAX];
} cli_lora_list;

/* Adds one --lora value: "PATH" or "PATH:SCALE" (SCALE a finite number; a suffix that is
 * not a number is part of the path). False after reporting a usage error. */
bool cli_lora_parse(const char *value, cli_lora_list *l);

/* Loads every adapter of l against m and sets them on e (which keeps its own
 * references). Errors name the adapter file. */
hearth_status cli_lora_attach(gen_engine *e, const model *m, const cli_lora_list *l, hearth_err *err);

#endif
