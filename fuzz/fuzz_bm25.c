/* fuzz_bm25.c - BM25 tokenizer, index and search on arbitrary bytes: the
 * input's lines are the documents and each one is also a query. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bm25.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    const char *docs[64];
    size_t nd = 0;
    for (char *p = text; nd < 64;) {
        docs[nd++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    et_buf toks = {0};
    size_t nt;
    et_bm25_tokenize((const char *)data, size, 1, &toks, &nt, NULL); /* raw bytes, NULs included */
    et_buf_free(&toks);
    et_bm25 *ix = NULL;
    if (!et_bm25_build(&ix, docs, nd, NULL, NULL)) {
        size_t *ranked = malloc(nd * 5 * sizeof(size_t));
        float *scores = malloc(nd * 5 * sizeof(float));
        if (ranked && scores) et_bm25_topk(ix, docs, nd, 5, ranked, scores, NULL);
        free(ranked);
        free(scores);
        et_bm25_free(ix);
    }
    free(text);
    return 0;
}
