/* chunk.h - sentence-aware, token-budgeted splitting of an et_doc.
 *
 * Splitting (as llama-index's SentenceSplitter, with our own rules):
 * each block (paragraph, heading, list item, code block) that fits the budget
 * is one piece; a block over budget is split into sentences (code blocks: into
 * lines), a sentence over budget into clauses (, ; : and CJK marks), a clause
 * into words, a word into characters. Pieces are merged greedily up to the
 * budget; a heading is never left at the end of a chunk when it can start the
 * next one. Each new chunk starts with an overlap rebuilt from the previous
 * chunk's tail: the longest run of whole trailing sentences within `overlap`
 * tokens, else trailing whole words. Every chunk is an exact substring of
 * doc->text, so its pages follow from its offsets.
 *
 * Token counts: pieces are counted once and added (WordPiece counts are
 * additive across whitespace); each finished chunk is counted once exactly
 * and shrunk if the sum was optimistic.
 */
#ifndef ET_CHUNK_H
#define ET_CHUNK_H

#include "ingest.h"

/* Counts the tokens of text[0..n) (no special tokens). */
typedef int (*et_count_fn)(void *ctx, const char *text, size_t n, size_t *out, et_error *err);

/* The word-based estimate used without a tokenizer. Per whitespace-separated
 * word, in sixtieths of a token: every letter run (split at lower->upper case
 * changes) 60 + 10 per letter after the first; every digit run 45 per digit,
 * at least 60; every other character (punctuation, symbols, CJK and other
 * non-Latin characters) 60. The sum is scaled by 1.1 and rounded up. Fitted on
 * the shared corpus against bge's WordPiece and model2vec's Unigram
 * tokenizers so that no 64-word window is underestimated (see README). */
size_t et_estimate_tokens(const char *text, size_t n);
/* et_count_fn adapter for et_estimate_tokens (ctx unused). */
int et_estimate_count(void *ctx, const char *text, size_t n, size_t *out, et_error *err);

typedef struct et_span {
    size_t off, len;
} et_span;

typedef struct et_spans {
    et_span *v; /* [n] */
    size_t n, cap;
} et_spans;
int et_spans_push(et_spans *s, size_t off, size_t len, et_error *err);
void et_spans_free(et_spans *s);

/* Sentence boundaries of prose s[0..n): appends the sentences, blanks
 * trimmed, as spans offset by `base`. Abbreviations (e.g. i.e. etc. Fig. Dr.
 * vs. ...), initials, enumerators ("1. "), decimals, version numbers, URLs and
 * file names do not end a sentence; a period followed by a lower-case word
 * does not either. CJK 。！？ always do. */
int et_split_sentences(const char *s, size_t n, size_t base, et_spans *out, et_error *err);
/* Clause boundaries: after , ; : followed by a blank, and after CJK ，、；： */
int et_split_clauses(const char *s, size_t n, size_t base, et_spans *out, et_error *err);
/* Words: maximal runs of non-blank bytes. */
int et_split_words(const char *s, size_t n, size_t base, et_spans *out, et_error *err);
/* Lines (code): non-empty lines, trailing blanks trimmed. */
int et_split_lines(const char *s, size_t n, size_t base, et_spans *out, et_error *err);

typedef struct et_chunk_opts {
    size_t budget;   /* max tokens per chunk (>= 1) */
    size_t overlap;  /* max overlap tokens (< budget) */
    et_count_fn count;
    void *count_ctx;
} et_chunk_opts;

typedef struct et_chunk_span {
    size_t off, len;   /* substring of doc->text */
    size_t n_tokens;   /* exact count of that substring */
    size_t page_start, page_end;
} et_chunk_span;

/* Chunks a document. *out (caller frees) gets *n_out chunks in order. */
int et_chunk_doc(const et_doc *doc, const et_chunk_opts *o, et_chunk_span **out, size_t *n_out,
                 et_error *err);

#endif
