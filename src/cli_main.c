/* cli_main.c - `embtune <command> [options]`: dispatch to the subcommands. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_fail(const char *cmd, const et_error *err) {
    fprintf(stderr, "embtune %s: %s\n", cmd, err && err->msg[0] ? err->msg : "failed");
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "embtune %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'embtune %s --help')\n", cmd);
    return 2;
}

static const struct {
    const char *name;
    et_cli_fn fn;
    const char *summary;
} commands[] = {
    /* subcommands register here, one line each, in workflow order */
    {"embed", cli_embed, "embed texts with a model (.npy or .jsonl output)"},
    {"info", cli_info, "describe a model directory"},
    {"ingest", cli_ingest, "documents (PDF, HTML, Markdown, text) -> token-budgeted chunks (JSONL)"},
    {"generate", cli_generate, "synthetic training queries for chunks (embedded generator or an LLM)"},
    {"finetune", cli_finetune, "fine-tune a model or train an adapter on a retrieval dataset"},
    {"download", cli_download, "fetch a model from the Hugging Face Hub into the HF cache"},
    {"eval", cli_eval, "retrieval metrics: base vs fine-tuned vs BM25, with a report"},
    {"tokenize", cli_tokenize, "tokenize text as Hugging Face tokenizers does (ids, offsets)"},
    {NULL, NULL, NULL},
};

static void usage(FILE *f) {
    fprintf(f, "embtune %s - custom retrieval embedding models from your documents, on a CPU\n\n"
               "usage: embtune <command> [options]   (embtune <command> --help for details)\n\n"
               "commands:\n", ET_VERSION);
    for (size_t i = 0; commands[i].name; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-10s %s\n", "version", "print the version");
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("embtune %s\n", ET_VERSION);
        return 0;
    }
    for (size_t i = 0; commands[i].name; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "embtune: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
