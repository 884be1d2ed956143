/* eval_metrics.h - retrieval metrics and exact top-k search.
 *
 * Metrics follow sentence-transformers' InformationRetrievalEvaluator exactly
 * (binary relevance, the relevant set of a query deduplicated):
 *   accuracy@k  1 if any relevant document is in the top k, else 0
 *               (= llama-index "hit rate" at k)
 *   precision@k (relevant in top k) / k          (k, not the list length)
 *   recall@k    (relevant in top k) / |relevant|
 *   MRR@k       1 / rank of the first relevant in the top k, 0 if none
 *   NDCG@k      DCG@k / IDCG@k, DCG = sum_{i<k} rel_i / log2(i + 2) over the
 *               ranking, IDCG the same over min(k, |relevant|) ones
 *   MAP@k       sum over relevant hits at rank r <= k of (hits so far / r),
 *               divided by min(k, |relevant|)
 * each averaged over the queries that have at least one relevant document
 * (queries without any are skipped, as the evaluator does, and counted).
 *
 * Rankings are arrays [nq, depth] of corpus indices, best first. SIZE_MAX
 * marks "no document" (a corpus smaller than depth); such slots never count as
 * hits. For exact values pass depth >= min(et_ir_depth(ks, n_k), corpus size):
 * metrics at k only read the first min(k, depth) entries.
 *
 * Top-k: scores are dot products (L2-normalize rows first for cosine, see
 * et_l2_normalize); equal scores rank the lower corpus index first. Results
 * are the same on every run and thread count (fixed block shapes; the GEMM
 * splits the output, not the dot products, across threads).
 */
#ifndef ET_EVAL_METRICS_H
#define ET_EVAL_METRICS_H

#include <stddef.h>

#include "util.h"

#define ET_IR_MAX_K 8

typedef struct et_ir_result {
    size_t n_queries;               /* queries scored (>= 1 relevant document) */
    size_t n_skipped;               /* queries without relevant documents */
    size_t n_k;                     /* cut-offs in k[] */
    size_t k[ET_IR_MAX_K];
    double accuracy[ET_IR_MAX_K];   /* accuracy@k[i] (hit rate) */
    double precision[ET_IR_MAX_K];  /* precision@k[i] */
    double recall[ET_IR_MAX_K];     /* recall@k[i] */
    double mrr[ET_IR_MAX_K];        /* MRR@k[i] */
    double ndcg[ET_IR_MAX_K];       /* NDCG@k[i] */
    double mrr10, ndcg10, map100;   /* the evaluator's fixed cut-offs */
} et_ir_result;

/* Ranking depth the metrics need: max(100, max k). */
size_t et_ir_depth(const size_t *ks, size_t n_k);

/* Metrics of rankings `ranked` [nq, depth] against the relevant documents in
 * CSR form (rel_off [nq + 1], rel [rel_off[nq]], as et_dataset). ks: n_k
 * cut-offs (1..ET_IR_MAX_K of them, each >= 1); NULL/0 = {1, 3, 5, 10}.
 * Fills *out. ET_EINVAL on bad sizes or a malformed rel_off. */
int et_ir_metrics(const size_t *ranked /* [nq, depth] */, size_t nq, size_t depth,
                  const size_t *rel_off /* [nq + 1] */, const size_t *rel,
                  const size_t *ks, size_t n_k, et_ir_result *out, et_error *err);

/* Per query: 1-based rank of the first relevant document in the ranking, 0
 * if none in the first `depth` (or the query has no relevant documents). */
int et_ir_first_ranks(size_t *first /* [nq] */, const size_t *ranked /* [nq, depth] */,
                      size_t nq, size_t depth, const size_t *rel_off /* [nq + 1] */,
                      const size_t *rel, et_error *err);

/* Exact top-k by dot product: ranked[i] = the k best documents of query i,
 * best first, scores[i] their scores (may be NULL). k > nd pads with SIZE_MAX
 * and -INFINITY. Streams over the corpus in blocks (GEMM + a selection buffer
 * per query, threaded with et_parallel): memory is O(block + nq * k).
 * ET_ENUMERIC if an input holds NaN or infinity; ET_EINVAL if k or d is 0. */
int et_topk(const float *q /* [nq, d] */, size_t nq, const float *docs /* [nd, d] */, size_t nd,
            size_t d, size_t k, size_t *ranked /* [nq, k] */, float *scores /* [nq, k] or NULL */,
            et_error *err);
/* The same, streaming: feed the corpus in blocks of any size (e.g. as it is
 * embedded); documents are numbered in feeding order from 0. Memory is
 * O(nq * k + one block). q stays borrowed until et_topk_free. */
typedef struct et_topk_state et_topk_state;
int et_topk_begin(et_topk_state **st, const float *q /* [nq, d] */, size_t nq, size_t d, size_t k,
                  et_error *err);
int et_topk_feed(et_topk_state *st, const float *docs /* [nd, d] */, size_t nd, et_error *err);
/* Writes the result (the state stays valid: more documents may be fed). */
int et_topk_end(et_topk_state *st, size_t *ranked /* [nq, k] */, float *scores /* [nq, k] or NULL */,
                et_error *err);
void et_topk_free(et_topk_state *st);

/* Plain reference: every score in double, full sort. Same contract. */
int et_topk_ref(const float *q /* [nq, d] */, size_t nq, const float *docs /* [nd, d] */, size_t nd,
                size_t d, size_t k, size_t *ranked /* [nq, k] */, float *scores /* [nq, k] or NULL */,
                et_error *err);

/* Partial selection on one score row: the k best of scores[0..n) by (score
 * descending, index ascending), written best first into ranked and top (may
 * be NULL). NaN counts as -infinity. k > n pads with SIZE_MAX / -INFINITY. */
int et_topk_row(size_t *ranked /* [k] */, float *top /* [k] or NULL */, const float *scores /* [n] */,
                size_t n, size_t k, et_error *err);

/* Scales each row to unit L2 norm in place (rows of zeros stay zero). */
void et_l2_normalize(float *x /* [n, d] */, size_t n, size_t d);

#endif
