/* fuzz_chunks.c - the chunk JSONL reader (what `generate` reads from `ingest`)
 * on arbitrary bytes. An accepted file must hold non-empty texts and must come
 * back identical after a save + reload. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "chunks.h"
#include "fuzz_tmp.h"


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[256], p2[256];
    fuzz_write(path, sizeof(path), "c.jsonl", data, size);
    et_chunks cs;
    et_error err = {0};
    if (et_chunks_load(&cs, path, &err)) {
        check(err.msg[0] != 0);
        return 0;
    }
    check(cs.n > 0);
    for (size_t i = 0; i < cs.n; i++) check(cs.items[i].text && cs.items[i].text[0] && cs.items[i].id && cs.items[i].doc);
    fuzz_path(p2, sizeof(p2), "rt.jsonl");
    if (et_chunks_save(&cs, p2, &err) == 0) {
        et_chunks back;
        if (et_chunks_load(&back, p2, &err)) {
            fprintf(stderr, "reload failed: %s\n", err.msg);
            abort();
        }
        check(back.n == cs.n);
        for (size_t i = 0; i < cs.n; i++) {
            const et_chunk *a = &cs.items[i], *b = &back.items[i];
            check(!strcmp(a->id, b->id) && !strcmp(a->doc, b->doc) && !strcmp(a->text, b->text));
            check(a->page_start == b->page_start && a->page_end == b->page_end && a->n_tokens == b->n_tokens);
        }
        et_chunks_free(&back);
    }
    et_chunks_free(&cs);
    return 0;
}
