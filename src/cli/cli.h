/* Subcommands of the hearth binary. Each takes the arguments after its name and
 * returns the process exit code: 0 ok, 1 runtime failure, 2 usage error. */
#ifndef CLI_CLI_H
#define CLI_CLI_H

int cli_info(int argc, char **argv);
int cli_tokenize(int argc, char **argv);
int cli_logits(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_template(int argc, char **argv);
int cli_quantize(int argc, char **argv);
int cli_mkmodel(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_embed(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_pull(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_loadgen(int argc, char **argv);

#endif
