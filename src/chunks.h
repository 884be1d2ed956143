/* chunks.h - the chunk file that `ingest` writes and `generate` reads.
 *
 * JSONL, one chunk per line:
 *   {"id": "c<16 hex>", "doc": "R-intro.pdf", "page_start": 3, "page_end": 4,
 *    "text": "...", "n_tokens": 231}
 * id is a stable hash of the document name and the text; pages are 1-based
 * (0 when the source has no pages); n_tokens is counted with the model's
 * tokenizer (or the word-based estimate when no model was given).
 */
#ifndef ET_CHUNKS_H
#define ET_CHUNKS_H

#include "util.h"

typedef struct et_chunk {
    char *id;    /* owned */
    char *doc;   /* owned */
    char *text;  /* owned */
    size_t page_start, page_end;
    size_t n_tokens;
} et_chunk;

typedef struct et_chunks {
    et_chunk *items; /* [n] */
    size_t n, cap;
} et_chunks;

/* "c" + 16 hex digits of a hash of doc and text; out has room for 18 bytes. */
void et_chunk_make_id(char out[18], const char *doc, const char *text);

/* Appends a copy of the fields (id computed when NULL). */
int et_chunks_add(et_chunks *cs, const char *id, const char *doc, const char *text, size_t page_start,
                  size_t page_end, size_t n_tokens, et_error *err);
void et_chunks_free(et_chunks *cs);

/* Reads a chunk file; errors name file:line and field. Empty texts are errors. */
int et_chunks_load(et_chunks *cs, const char *path, et_error *err);
/* Formats one chunk as a JSON line (with '\n') appended to b. */
int et_chunk_to_json(et_buf *b, const et_chunk *c, et_error *err);
/* Writes all chunks atomically. */
int et_chunks_save(const et_chunks *cs, const char *path, et_error *err);

#endif
