/* cli.h - the embtune command line: one cli_<name>.c per subcommand. */
#ifndef ET_CLI_H
#define ET_CLI_H

#include "embtune.h"

/* Each subcommand gets argv with argv[0] = its name; returns the exit code. */
typedef int (*et_cli_fn)(int argc, char **argv);

/* Prints "embtune <cmd>: <err.msg>" to stderr; returns 1. */
int cli_fail(const char *cmd, const et_error *err);
/* Prints "embtune <cmd>: <formatted>" to stderr; returns 2 (usage error). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* embed and info (cli_embed.c, cli_info.c) */
int cli_embed(int argc, char **argv);
int cli_info(int argc, char **argv);
/* ingest (cli_ingest.c) */
int cli_ingest(int argc, char **argv);

/* generate (cli_generate.c) */
int cli_generate(int argc, char **argv);

/* evaluation (cli_eval.c) */
int cli_eval(int argc, char **argv);

/* fine-tuning (cli_finetune.c) */
int cli_finetune(int argc, char **argv);

/* serve and hub (cli_serve.c, cli_download.c) */
int cli_serve(int argc, char **argv);
int cli_download(int argc, char **argv);
/* tokenizer (cli_tokenize.c) */
int cli_tokenize(int argc, char **argv);

#endif
