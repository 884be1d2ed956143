/* fuzz_pdf.c - PDF text extraction (ingest_pdf.c over poppler) on arbitrary
 * bytes: a corrupt, truncated or hostile PDF must end in a skip or an error,
 * never a crash. An accepted document is checked like fuzz_ingest checks
 * its extractors: blocks inside the text, page marks in order.
 * Seeds: the small PDFs of tests/make_test_pdfs.py. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    et_doc d;
    et_doc_init(&d);
    et_error err = {0};
    int skip = 0;
    if (et_extract_pdf(&d, (const char *)data, size, "fuzz.pdf", NULL, NULL, &skip, &err) == 0) {
        for (size_t i = 0; i < d.n_blocks; i++)
            if (d.blocks[i].off + d.blocks[i].len > d.text.len || d.blocks[i].len == 0) abort();
        for (size_t i = 0; i < d.n_marks; i++)
            if (d.marks[i].off > d.text.len || (i && d.marks[i].off < d.marks[i - 1].off)) abort();
    } else if (!err.msg[0]) {
        abort();
    }
    et_doc_free(&d);
    return 0;
}
