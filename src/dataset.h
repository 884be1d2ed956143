/* dataset.h - retrieval datasets in memory, and the four file formats.
 *
 * A dataset is queries, a corpus, the relevant documents of each query, and
 * optional hard negatives, all as indices into the corpus (CSR layout).
 *
 * Formats (read and write):
 *   ET_DS_LLAMA  llama-index EmbeddingQAFinetuneDataset JSON:
 *                {"queries": {qid: text}, "corpus": {id: text},
 *                 "relevant_docs": {qid: [id, ...]}, "mode": "text"}
 *   ET_DS_PAIRS  sentence-transformers pairs/triplets JSONL: one row per line,
 *                an object whose values in order are anchor, positive,
 *                negative... (e.g. {"anchor","positive","negative"}) or an array
 *   ET_DS_FLAG   FlagEmbedding JSONL: {"query": str, "pos": [str], "neg": [str]}
 *   ET_DS_BEIR   BEIR folder: corpus.jsonl ({"_id","title","text"}),
 *                queries.jsonl ({"_id","text"}), qrels/<split>.tsv
 *                ("query-id corpus-id score", header line, score > 0 = relevant)
 * Texts in the JSONL formats get ids from a hash of the text ("d" + 16 hex
 * digits), so a passage that appears in many rows is one corpus entry.
 */
#ifndef ET_DATASET_H
#define ET_DATASET_H

#include "strmap.h"
#include "util.h"

enum et_ds_format { ET_DS_AUTO = 0, ET_DS_LLAMA, ET_DS_PAIRS, ET_DS_FLAG, ET_DS_BEIR };

struct et_dataset {
    size_t n_queries;
    char **qids;       /* [n_queries] owned */
    char **queries;    /* [n_queries] owned */
    size_t n_docs;
    char **doc_ids;    /* [n_docs] owned */
    char **docs;       /* [n_docs] owned */
    size_t *rel_off;   /* [n_queries + 1] offsets into rel */
    size_t *rel;       /* [rel_off[n_queries]] corpus indices, relevant docs */
    size_t *neg_off;   /* [n_queries + 1] offsets into neg */
    size_t *neg;       /* [neg_off[n_queries]] corpus indices, hard negatives */
    size_t n_skipped;  /* rows skipped while loading (empty texts) */
    char skip_reason[256]; /* the first skip, for the summary */
    /* building state */
    size_t cap_q, cap_d, cap_rel, cap_neg;
    et_strmap doc_index;   /* doc id -> index */
    et_strmap query_index; /* query id -> index */
};
typedef struct et_dataset et_dataset;

/* Empty dataset (caller owns, et_dataset_free). */
et_dataset *et_dataset_new(et_error *err);
void et_dataset_free(et_dataset *ds);

/* Adds a corpus document; returns its index in *index. An id seen before
 * with the same text returns the old index; with another text it is an error. */
int et_dataset_add_doc(et_dataset *ds, const char *id, const char *text, size_t *index, et_error *err);
/* Adds a document whose id is derived from its text ("d" + hash). */
int et_dataset_add_doc_text(et_dataset *ds, const char *text, size_t *index, et_error *err);
/* Adds a query with its relevant and negative document indices. */
int et_dataset_add_query(et_dataset *ds, const char *qid, const char *text, const size_t *rel,
                         size_t n_rel, const size_t *neg, size_t n_neg, et_error *err);

/* Format from the path: a directory is BEIR; a .json file is llama-index;
 * .jsonl is FlagEmbedding if its first row has "query" and "pos", else pairs. */
int et_dataset_detect(const char *path, int *format, et_error *err);
/* Loads a dataset (format ET_DS_AUTO detects). For BEIR, split names the
 * qrels file (NULL: test, then dev, then train). Empty texts are skipped and
 * counted; malformed rows are errors with file:line; a relevant id missing
 * from the corpus is an error; a dataset without queries is an error. */
int et_dataset_load(et_dataset **out, const char *path, int format, const char *split, et_error *err);
/* Writes atomically in the given format (BEIR: path is a directory). */
int et_dataset_save(const et_dataset *ds, const char *path, int format, et_error *err);

int et_dataset_format_parse(const char *name, int *format); /* "llama", "pairs", "flag", "beir" */
const char *et_dataset_format_name(int format);

#endif
