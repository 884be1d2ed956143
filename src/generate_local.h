/* generate_local.h - the embedded query generator: no model, deterministic, fast.
 *
 * Method (documented in the README):
 * 1. Statistics over the whole chunk set: document frequency of every
 *    lowercase word (letters, digits, '.', '_' inside identifiers such as
 *    read.table), idf = ln((N + 1) / (df + 1)) + 1.
 * 2. Each chunk is split into sentences; code-like lines (R prompts "> ",
 *    assignments "<-", many symbols), headings and sentences shorter than 6
 *    words are skipped. A sentence scores the sum of tf-idf of its distinct
 *    content words (not stopwords), divided by sqrt(its length).
 * 3. Question k uses the k-th best sentence (cycling when the chunk has fewer
 *    sentences than questions asked). Its key phrases are runs of up to three
 *    content words, ranked by their best idf; the question combines the top
 *    phrases in one of several templates ("How is P1 used with P2?",
 *    "What does the text say about P1 and P2?", ...), chosen by a hash of the
 *    seed, the chunk id and k. A sentence of the form "X is/are ..." gives
 *    "What is X ...?" instead.
 * So a query shares the chunk's most distinctive terms (answerable from it)
 * without copying a sentence, and template words are the same everywhere, so
 * a model trained on the pairs learns to weight domain terms.
 */
#ifndef ET_GENERATE_LOCAL_H
#define ET_GENERATE_LOCAL_H

#include "chunks.h"
#include "generate_parse.h"

typedef struct et_genlocal et_genlocal;

/* Builds the word statistics over all chunks (borrowed: cs must outlive g).
 * Caller frees with et_genlocal_free. */
int et_genlocal_new(et_genlocal **out, const et_chunks *cs, uint64_t seed, et_error *err);
void et_genlocal_free(et_genlocal *g);

/* Appends up to n distinct questions for chunk i to out (fewer only when the
 * chunk has no usable words). */
int et_genlocal_questions(const et_genlocal *g, size_t i, size_t n, et_strlist *out, et_error *err);

#endif
