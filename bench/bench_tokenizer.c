/* bench_tokenizer.c - tokenizer throughput: tokens/s and MB/s over a text file, one text per
 * line (the ingest use: many short texts) and the whole file as one text.
 *
 *   bench_tokenizer TOKENIZER.json TEXT_FILE [REPEAT]
 *
 * Prints one JSON object: {"lines": {...}, "whole": {...}} with bytes, tokens, seconds (best
 * of REPEAT runs, one thread). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embtune.h"
#include "util.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER.json TEXT_FILE [REPEAT]\n");
        return 2;
    }
    int repeat = argc > 3 ? atoi(argv[3]) : 3;
    if (repeat < 1) repeat = 1;
    et_error err = {0};
    et_tokenizer *t = NULL;
    if (et_tokenizer_load(&t, argv[1], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    char *data;
    size_t len;
    if (et_read_file(argv[2], 0, &data, &len, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    et_encoding enc = {0};
    double best_lines = 1e30, best_whole = 1e30;
    size_t tok_lines = 0, tok_whole = 0, nlines = 0, line_bytes = 0;
    for (int r = 0; r < repeat; r++) {
        size_t nt = 0, nl = 0, nb = 0;
        double t0 = et_now();
        for (char *p = data, *end = data + len; p < end;) {
            char *nlp = memchr(p, '\n', (size_t)(end - p));
            size_t l = nlp ? (size_t)(nlp - p) : (size_t)(end - p);
            if (et_tokenizer_encode(t, p, l, 1, 0, &enc, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            nt += enc.n;
            nl++;
            nb += l;
            p += l + 1;
        }
        double dt = et_now() - t0;
        if (dt < best_lines) best_lines = dt;
        tok_lines = nt;
        nlines = nl;
        line_bytes = nb;
        t0 = et_now();
        if (et_tokenizer_encode(t, data, len, 0, 0, &enc, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        dt = et_now() - t0;
        if (dt < best_whole) best_whole = dt;
        tok_whole = enc.n;
    }
    printf("{\"tokenizer\": \"%s\", \"lines\": {\"texts\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f}, "
           "\"whole\": {\"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f}}\n",
           argv[1], nlines, line_bytes, tok_lines, best_lines, len, tok_whole, best_whole);
    et_encoding_free(&enc);
    et_tokenizer_free(t);
    free(data);
    return 0;
}
