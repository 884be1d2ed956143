/* cli_info.c - `embtune info -m MODEL_DIR`: what a model directory holds. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_info(int argc, char **argv) {
    const char *dir = NULL;
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
        if (c == 'm') dir = optarg;
        else if (c == 'h') {
            printf("usage: embtune info -m MODEL_DIR\n\n"
                   "Prints the architecture, parameter count, dimension, pooling, max length,\n"
                   "tokenizer type and weight dtype of a model directory.\n");
            return 0;
        } else return 2;
    }
    if (optind < argc) return cli_usage_error("info", "unexpected argument '%s'", argv[optind]);
    if (!dir) return cli_usage_error("info", "missing -m MODEL_DIR");
    et_error err = {0};
    et_model *m = NULL;
    et_model_opts mo = {0, 0, 1};
    char *resolved = NULL; /* a directory, or a Hub id fetched into the HF cache */
    if (et_resolve_model(dir, &resolved, &err)) return cli_fail("info", &err);
    int lrc = et_model_load(&m, resolved, &mo, &err);
    free(resolved);
    if (lrc) return cli_fail("info", &err);
    et_model_info i;
    et_model_get_info(m, &i);
    printf("model         %s\n", dir);
    printf("architecture  %s\n", i.architecture);
    printf("parameters    %zu (%.1fM)\n", i.n_params, (double)i.n_params / 1e6);
    printf("dimension     %zu\n", i.dim);
    if (i.n_layers)
        printf("layers        %zu (heads %zu, intermediate %zu)\n", i.n_layers, i.n_heads, i.intermediate);
    et_model_static_info si;
    if (et_model_get_static_info(m, &si) == 0 && si.rows != i.vocab_size)
        printf("table         %zu rows for %zu tokens (vocabulary-quantized%s)\n", si.rows, i.vocab_size,
               si.weighted ? ", per-token weights" : "");
    printf("pooling       %s%s%s\n", i.pooling, i.include_prompt ? "" : " (prompt excluded)",
           i.normalize ? " + normalize" : "");
    printf("max length    %zu tokens\n", i.max_length);
    printf("tokenizer     %s (vocabulary %zu)%s\n", i.tokenizer, i.vocab_size,
           i.lower_case ? ", input lowercased (do_lower_case)" : "");
    printf("dtype         %s (computed in F32)\n", i.dtype);
    const char *names[] = {"query", "document", "passage", "search_query", "search_document"};
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        const char *p = et_model_prompt(m, names[k]);
        if (p) printf("prompt        %s: \"%s\"\n", names[k], p);
    }
    et_model_free(m);
    return 0;
}
