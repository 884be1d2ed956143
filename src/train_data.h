/* train_data.h - training rows and the per-epoch batch plan.
 *
 * Rows: one per (query, relevant document) pair of a dataset, in dataset
 * order. An epoch plan shuffles the rows with a seed (stream = epoch) and
 * packs them into batches with a no-duplicates sampler, as
 * sentence-transformers' NoDuplicatesBatchSampler but stricter: a row is
 * skipped (left for a later batch) when any of its texts — the query, ANY
 * relevant document of the query, its hard negatives — equals a text already
 * in the batch. So two queries of one chunk, or the same passage twice,
 * never share a batch (they would be false in-batch negatives). Every row is
 * used exactly once per epoch; the last batches may be smaller.
 *
 * Hard negatives: n_neg columns per row, drawn per epoch from the query's
 * negatives (never one of its relevant documents); a query with fewer gets
 * SIZE_MAX (missing: masked out of the loss).
 *
 * The plan is a pure function of (dataset, batch size, n_neg, seed, epoch):
 * a resumed run rebuilds the same plan and needs only (epoch, batch index).
 */
#ifndef ET_TRAIN_DATA_H
#define ET_TRAIN_DATA_H

#include "dataset.h"

typedef struct et_train_rows {
    size_t n;
    size_t *q;    /* [n] query index */
    size_t *pos;  /* [n] positive document index */
} et_train_rows;

/* Rows of ds; ET_EINVAL if there are none (no query has a relevant document). */
int et_train_rows_build(et_train_rows *rows, const et_dataset *ds, et_error *err);
void et_train_rows_free(et_train_rows *rows);

typedef struct et_epoch_plan {
    size_t n_rows;
    size_t n_neg;
    size_t n_batches;
    size_t *batch_off;  /* [n_batches + 1] offsets into order */
    size_t *order;      /* [n_rows] row indices, batch after batch */
    size_t *neg;        /* [n_rows * n_neg] negatives of order[i]: doc index or SIZE_MAX */
} et_epoch_plan;

int et_plan_epoch(et_epoch_plan *plan, const et_dataset *ds, const et_train_rows *rows, size_t batch_size,
                  size_t n_neg, uint64_t seed, uint64_t epoch, et_error *err);
void et_epoch_plan_free(et_epoch_plan *plan);

#endif
