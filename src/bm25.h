/* bm25.h - Okapi BM25 lexical retrieval, the baseline of `embtune eval`.
 *
 * Score of document D for query Q (each query token counts, repeats included):
 *   sum_{t in Q} idf(t) * tf(t,D) * (k1 + 1) / (tf(t,D) + k1 * (1 - b + b * |D| / avgdl))
 *   idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))       (Lucene's idf, never negative)
 * with N documents, df(t) documents containing t, |D| the token count of D and
 * avgdl the mean |D|. Defaults k1 = 1.2, b = 0.75. The (k1 + 1) factor is the
 * classic Okapi / rank_bm25 form; Lucene >= 8 omits it, which scales every
 * score by a constant and so gives the same ranking.
 *
 * Tokenization (queries and documents alike):
 *   1. Unicode compatibility decomposition + case folding + marks removed
 *      (utf8proc: "ﬁle" -> "file", "Café" -> "cafe", "ＡＢＣ" -> "abc");
 *   2. tokens are maximal runs of letters and digits (Unicode categories L*
 *      and N*); everything else separates; invalid UTF-8 bytes separate;
 *   3. CJK ideographs, Hiragana and Katakana are one token per character;
 *      Hangul syllables are kept whole (not split into jamo);
 *   4. optionally, Lucene's 33 English stop words are dropped
 *      (a an and are as at be but by for if in into is it no not of on or such
 *      that the their then there these they this to was will with);
 *   5. no stemming.
 */
#ifndef ET_BM25_H
#define ET_BM25_H

#include "util.h"

typedef struct et_bm25_opts {
    double k1;     /* default 1.2 */
    double b;      /* default 0.75 */
    int stopwords; /* 1 = drop English stop words */
} et_bm25_opts;

/* k1 1.2, b 0.75, stop words dropped. */
void et_bm25_opts_default(et_bm25_opts *o);

typedef struct et_bm25 et_bm25;

/* Indexes nd documents (copied into the index; texts may be freed after).
 * opts NULL = defaults. Caller frees with et_bm25_free. */
int et_bm25_build(et_bm25 **out, const char *const *docs /* [nd] */, size_t nd,
                  const et_bm25_opts *opts, et_error *err);
void et_bm25_free(et_bm25 *ix);

size_t et_bm25_n_docs(const et_bm25 *ix);
size_t et_bm25_n_terms(const et_bm25 *ix);

/* Scores of every document for one query (plain loop over postings). */
int et_bm25_score(const et_bm25 *ix, const char *query, float *scores /* [nd] */, et_error *err);

/* Top k documents for nq queries, best first (ties: lower index first;
 * k > nd pads with SIZE_MAX / -INFINITY). Threaded over queries. */
int et_bm25_topk(const et_bm25 *ix, const char *const *queries /* [nq] */, size_t nq, size_t k,
                 size_t *ranked /* [nq, k] */, float *scores /* [nq, k] or NULL */, et_error *err);

/* Tokenizes len bytes: the tokens are appended to out, each followed by a
 * NUL byte; *n_tokens (may be NULL) gets their count. */
int et_bm25_tokenize(const char *text, size_t len, int stopwords, et_buf *out, size_t *n_tokens,
                     et_error *err);

#endif
