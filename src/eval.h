/* eval.h - `embtune eval`: rank a dataset's corpus for its queries with one
 * or more systems (BM25, embedding models, adapters), score the rankings with
 * the metrics of eval_metrics.h, and write the results.
 *
 * A run is one system on one dataset. Its ranking keeps the top `depth`
 * documents per query (depth = et_ir_depth(ks), 100 by default), so MAP@100
 * and every accuracy@k are exact.
 *
 * Files written into the report directory (each atomically):
 *   metrics.json  {"dataset", "n_queries", "n_docs", "k", "runs": [{"name",
 *                  "kind", "source", "metrics": {"accuracy@1", ..., "mrr@10",
 *                  "ndcg@10", "map@100"}, "seconds", "queries_per_s"}]}
 *   ranks.jsonl   one line per (run, query): {"query_id", "model", "rank"
 *                  (1-based rank of the first relevant document, null if not
 *                  in the top depth), "relevant": [ids], "top": [10 best ids]}
 *   report.md, report.html, *.svg   (report.h)
 */
#ifndef ET_EVAL_H
#define ET_EVAL_H

#include "bm25.h"
#include "dataset.h"
#include "eval_metrics.h"

typedef struct et_eval_run {
    char *name;          /* row label in the table, e.g. "bm25", "bge-small-en-v1.5" */
    char *kind;          /* "bm25", "model", "adapter" */
    char *source;        /* model directory / adapter directory, or NULL */
    char *train_log;     /* training log (JSONL) found beside the model, or NULL */
    size_t nq, depth;
    size_t *ranked;      /* [nq, depth] corpus indices, SIZE_MAX padded */
    float *scores;       /* [nq, depth] */
    size_t *first;       /* [nq] rank of the first relevant document, 0 = none */
    et_ir_result m;
    double embed_seconds;  /* embedding queries (and corpus, if not cached) */
    double search_seconds; /* top-k + metrics */
} et_eval_run;

/* Frees the run's arrays and strings (not the struct). */
void et_eval_run_free(et_eval_run *r);

/* Sets name/kind/source (copied). */
int et_eval_run_init(et_eval_run *r, const char *name, const char *kind, const char *source,
                     et_error *err);

/* Ranks with BM25 (opts NULL = defaults), then scores the ranking. */
int et_eval_bm25(et_eval_run *r, const et_dataset *ds, const et_bm25_opts *opts, const size_t *ks,
                 size_t n_k, et_error *err);

/* Ranks by cosine similarity of given embeddings (rows are L2-normalized in
 * place), then scores the ranking. */
int et_eval_embeddings(et_eval_run *r, const et_dataset *ds, float *qemb /* [nq, dim] */,
                       float *demb /* [nd, dim] */, size_t dim, const size_t *ks, size_t n_k,
                       et_error *err);

/* Scores an existing ranking (r->ranked, r->depth set): fills r->m, r->first. */
int et_eval_score(et_eval_run *r, const et_dataset *ds, const size_t *ks, size_t n_k, et_error *err);

/* Writes metrics.json and ranks.jsonl into dir (created if needed). */
int et_eval_write(const char *dir, const char *dataset_path, const et_dataset *ds,
                  const et_eval_run *runs, size_t n_runs, et_error *err);

/* The comparison table (models as rows, metrics as columns) as text. */
int et_eval_table(et_buf *out, const et_eval_run *runs, size_t n_runs, et_error *err);

#endif
