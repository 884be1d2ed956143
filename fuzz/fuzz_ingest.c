/* fuzz_ingest.c - libFuzzer harness for the HTML / Markdown / text extractors,
 * the UTF-8 cleaner, the sentence splitter and the chunker.
 *
 * The first byte picks the path; the rest is the document. After a successful
 * extraction the document is chunked with a small budget and the chunker's
 * invariants are checked (every chunk non-empty, within the budget, inside the
 * text); a violation traps so the fuzzer reports it.
 *   FUZZ_SECONDS=600 make fuzz-run
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "ingest.h"

static void check_chunks(const et_doc *d, size_t budget, size_t overlap) {
    et_chunk_opts o = {budget, overlap, et_estimate_count, NULL};
    et_chunk_span *cs = NULL;
    size_t n = 0;
    et_error err = {0};
    if (et_chunk_doc(d, &o, &cs, &n, &err)) {
        if (err.code != ET_ENOMEM) __builtin_trap();
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const et_chunk_span *c = &cs[i];
        if (c->len == 0 || c->off + c->len > d->text.len) __builtin_trap();
        /* a single code point may exceed a tiny budget; nothing else may */
        if (c->n_tokens > budget && c->len > 4) __builtin_trap();
        if (et_estimate_tokens(d->text.data + c->off, c->len) != c->n_tokens) __builtin_trap();
        if (i && c->off <= cs[i - 1].off) __builtin_trap();
    }
    free(cs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0] % 5;
    size_t budget = 4 + data[0] / 5 % 40;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    et_doc d;
    et_doc_init(&d);
    et_error err = {0};
    int skip = 0, rc = 0;
    switch (mode) {
    case 0: rc = et_extract_html(&d, s, n, "fuzz.html", &skip, &err); break;
    case 1: rc = et_extract_text(&d, s, n, 1, "fuzz.md", &skip, &err); break;
    case 2: rc = et_extract_text(&d, s, n, 0, "fuzz.txt", &skip, &err); break;
    case 3: { /* cleaner + splitters on raw bytes */
        et_buf b = {0};
        size_t fb = 0;
        if (!et_clean_utf8(s, n, &b, &fb, &err)) {
            et_spans sp = {0};
            et_split_sentences(b.data ? b.data : "", b.len, 0, &sp, &err);
            for (size_t i = 0; i < sp.n; i++)
                if (sp.v[i].off + sp.v[i].len > b.len || sp.v[i].len == 0) __builtin_trap();
            sp.n = 0;
            et_split_clauses(s, n, 0, &sp, &err);
            et_spans_free(&sp);
        }
        et_buf_free(&b);
        rc = 1;
        break;
    }
    default: { /* furniture over lines split from the input, then the doc builder */
        et_line lines[256];
        size_t nl = 0, page = 1;
        for (size_t i = 0; i < n && nl < 256;) {
            size_t e = i;
            while (e < n && s[e] != '\n' && s[e] != '\f') e++;
            memset(&lines[nl], 0, sizeof(lines[nl]));
            lines[nl].s = s + i;
            lines[nl].n = e - i;
            lines[nl].page = page;
            nl++;
            if (e < n && s[e] == '\f') page++;
            i = e + 1;
        }
        et_clean_furniture(lines, nl, page, 0);
        for (size_t i = 0; i < nl && !rc; i++) {
            if (lines[i].drop) continue;
            if (lines[i].n == 0) rc = et_doc_end(&d, &err);
            else {
                if (i % 7 == 0) rc = et_doc_begin(&d, (int)(i % 4), &err);
                if (!rc) rc = et_doc_page(&d, lines[i].page, &err);
                if (!rc) rc = et_doc_line(&d, lines[i].s, lines[i].n, &err);
            }
        }
        if (!rc) rc = et_doc_end(&d, &err);
        break;
    }
    }
    if (!rc) {
        /* blocks inside the text, pages monotone */
        for (size_t i = 0; i < d.n_blocks; i++)
            if (d.blocks[i].off + d.blocks[i].len > d.text.len || d.blocks[i].len == 0) __builtin_trap();
        for (size_t i = 0; i < d.n_marks; i++)
            if (d.marks[i].off > d.text.len || (i && d.marks[i].off < d.marks[i - 1].off)) __builtin_trap();
        check_chunks(&d, budget, budget / 4);
    }
    et_doc_free(&d);
    return 0;
}
