/* fuzz_dataset.c - the retrieval dataset loaders on arbitrary bytes: llama-index
 * JSON, pairs/triplets JSONL, FlagEmbedding JSONL, a BEIR folder (the input cut
 * at NUL bytes into corpus.jsonl, queries.jsonl and qrels/test.tsv), and format
 * detection. The first byte picks the loader. An accepted dataset must be
 * consistent (every index inside the corpus, offsets monotone, no NULL text),
 * and must survive a save + reload in llama-index format with the same counts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_check.h"
#include "dataset.h"
#include "fuzz_tmp.h"


static void check_ds(const et_dataset *ds) {
    check(ds->n_queries > 0 && ds->rel_off[0] == 0 && ds->neg_off[0] == 0);
    for (size_t q = 0; q < ds->n_queries; q++) {
        check(ds->qids[q] && ds->queries[q]);
        check(ds->rel_off[q] <= ds->rel_off[q + 1] && ds->neg_off[q] <= ds->neg_off[q + 1]);
    }
    for (size_t i = 0; i < ds->rel_off[ds->n_queries]; i++) check(ds->rel[i] < ds->n_docs);
    for (size_t i = 0; i < ds->neg_off[ds->n_queries]; i++) check(ds->neg[i] < ds->n_docs);
    for (size_t d = 0; d < ds->n_docs; d++) check(ds->doc_ids[d] && ds->docs[d]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int which = data[0] % 5;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char path[256], p2[256];
    et_error err = {0};
    int fmt = ET_DS_AUTO;
    switch (which) {
    case 0: fuzz_write(path, sizeof(path), "d.json", s, n); fmt = ET_DS_LLAMA; break;
    case 1: fuzz_write(path, sizeof(path), "d.jsonl", s, n); fmt = ET_DS_PAIRS; break;
    case 2: fuzz_write(path, sizeof(path), "d.jsonl", s, n); fmt = ET_DS_FLAG; break;
    case 3: fuzz_write(path, sizeof(path), "d.jsonl", s, n); fmt = ET_DS_AUTO; break;
    default: {
        static const char *const names[3] = {"beir/corpus.jsonl", "beir/queries.jsonl", "beir/qrels/test.tsv"};
        mkdir(fuzz_path(path, sizeof(path), "beir"), 0755);
        mkdir(fuzz_path(path, sizeof(path), "beir/qrels"), 0755);
        size_t pos = 0;
        for (int k = 0; k < 3; k++) {
            const char *z = pos < n ? memchr(s + pos, 0, n - pos) : NULL;
            size_t e = k == 2 || !z ? n : (size_t)(z - s);
            fuzz_write(path, sizeof(path), names[k], s + pos, e - pos);
            pos = e < n ? e + 1 : n;
        }
        fuzz_path(path, sizeof(path), "beir");
        fmt = ET_DS_BEIR;
    }
    }
    et_dataset *ds = NULL;
    if (et_dataset_load(&ds, path, fmt, NULL, &err)) {
        check(ds == NULL && err.msg[0]); /* every failure says why */
        return 0;
    }
    check_ds(ds);
    fuzz_path(p2, sizeof(p2), "rt.json");
    if (et_dataset_save(ds, p2, ET_DS_LLAMA, &err) == 0) {
        et_dataset *back = NULL;
        if (et_dataset_load(&back, p2, ET_DS_LLAMA, NULL, &err)) {
            fprintf(stderr, "reload failed: %s\n", err.msg);
            abort();
        }
        check_ds(back);
        check(back->n_queries == ds->n_queries && back->n_docs == ds->n_docs);
        check(back->rel_off[back->n_queries] == ds->rel_off[ds->n_queries]);
        et_dataset_free(back);
    } else {
        check(err.code == ET_ENOMEM || err.code == ET_EIO);
    }
    et_dataset_free(ds);
    return 0;
}
