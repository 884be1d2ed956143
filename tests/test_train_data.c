/* test_train_data.c - rows, the seeded shuffle and the no-duplicates batch
 * sampler: every row once per epoch, no batch holding a text twice (query,
 * any relevant document, negatives), same seed = same plan, negatives never
 * relevant, missing negatives marked. */
#include "dataset.h"
#include "test_util.h"
#include "train_data.h"

static size_t ts_idx(const char **texts, size_t *n, const char *t) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(texts[i], t)) return i;
    texts[*n] = t;
    return (*n)++;
}

/* Checks one plan; returns 1 if valid. */
static int check_plan(const et_dataset *ds, const et_train_rows *rows, const et_epoch_plan *p, size_t B) {
    int ok = 1;
    size_t *seen = calloc(rows->n, sizeof(size_t));
    for (size_t i = 0; i < p->n_rows; i++) seen[p->order[i]]++;
    for (size_t r = 0; r < rows->n; r++) {
        if (seen[r] != 1) {
            fprintf(stderr, "row %zu used %zu times\n", r, seen[r]);
            ok = 0;
        }
    }
    free(seen);
    for (size_t b = 0; b < p->n_batches; b++) {
        size_t lo = p->batch_off[b], hi = p->batch_off[b + 1];
        if (hi <= lo || hi - lo > B) {
            fprintf(stderr, "batch %zu has %zu rows\n", b, hi - lo);
            ok = 0;
        }
        const char *texts[4096];
        size_t nt = 0;
        for (size_t i = lo; i < hi; i++) {
            size_t r = p->order[i], q = rows->q[r];
            size_t before = nt;
            const char *mine[256];
            size_t nm = 0;
            mine[nm++] = ds->queries[q];
            for (size_t t = ds->rel_off[q]; t < ds->rel_off[q + 1]; t++) mine[nm++] = ds->docs[ds->rel[t]];
            for (size_t k = 0; k < p->n_neg; k++) {
                size_t dn = p->neg[i * p->n_neg + k];
                if (dn == SIZE_MAX) continue;
                for (size_t t = ds->rel_off[q]; t < ds->rel_off[q + 1]; t++)
                    if (!strcmp(ds->docs[ds->rel[t]], ds->docs[dn])) {
                        fprintf(stderr, "negative is relevant\n");
                        ok = 0;
                    }
                mine[nm++] = ds->docs[dn];
            }
            for (size_t k = 0; k < nm; k++) /* own texts may repeat within the row; not across rows */
                for (size_t t = 0; t < before; t++)
                    if (!strcmp(texts[t], mine[k])) {
                        fprintf(stderr, "batch %zu: '%s' twice\n", b, mine[k]);
                        ok = 0;
                    }
            for (size_t k = 0; k < nm; k++) {
                size_t n2 = nt;
                ts_idx(texts, &n2, mine[k]);
                nt = n2;
            }
        }
    }
    return ok;
}

int main(void) {
    et_error err = {0};
    et_dataset *ds = et_dataset_new(&err);
    char id[64], text[256];
    size_t doc[40];
    for (int d = 0; d < 40; d++) {
        snprintf(id, sizeof(id), "n%d", d);
        snprintf(text, sizeof(text), "chunk text number %d", d);
        et_dataset_add_doc(ds, id, text, &doc[d], &err);
    }
    /* an extra id with the same text as n3: a duplicate passage under another id */
    size_t dup;
    et_dataset_add_doc(ds, "n3-copy", "chunk text number 3", &dup, &err);
    int qn = 0;
    for (int d = 0; d < 40; d++)
        for (int k = 0; k < 1 + d % 3; k++) { /* 1-3 queries per chunk */
            snprintf(id, sizeof(id), "q%d", qn);
            snprintf(text, sizeof(text), "question %d about chunk %d", qn, d);
            size_t rel[2] = {doc[d], doc[(d + 7) % 40]};
            size_t negs[3] = {doc[(d + 1) % 40], doc[(d + 2) % 40], doc[d]}; /* doc[d] is relevant: never drawn */
            size_t nrel = qn % 5 == 0 ? 2 : 1, nneg = (size_t)(qn % 4);
            if (d == 10 && k == 0) rel[0] = dup; /* relevant doc given by the duplicate id */
            TEST_CHECK(et_dataset_add_query(ds, id, text, rel, nrel, negs, nneg, &err) == 0, "%s", err.msg);
            qn++;
        }
    et_train_rows rows;
    TEST_CHECK(et_train_rows_build(&rows, ds, &err) == 0, "%s", err.msg);
    TEST_CHECK(rows.n == ds->rel_off[ds->n_queries], "rows %zu", rows.n);
    size_t sizes[] = {1, 4, 8, 32, 1000};
    for (size_t si = 0; si < ET_ARRAY_LEN(sizes); si++)
        for (size_t nneg = 0; nneg <= 2; nneg++)
            for (uint64_t ep = 0; ep < 3; ep++) {
                et_epoch_plan p;
                TEST_CHECK(et_plan_epoch(&p, ds, &rows, sizes[si], nneg, 42, ep, &err) == 0, "%s", err.msg);
                TEST_CHECK(check_plan(ds, &rows, &p, sizes[si]), "plan B=%zu neg=%zu epoch %llu invalid", sizes[si],
                           nneg, (unsigned long long)ep);
                et_epoch_plan_free(&p);
            }
    /* determinism and epochs differing */
    et_epoch_plan a, b, c;
    et_plan_epoch(&a, ds, &rows, 8, 2, 42, 1, &err);
    et_plan_epoch(&b, ds, &rows, 8, 2, 42, 1, &err);
    et_plan_epoch(&c, ds, &rows, 8, 2, 42, 2, &err);
    TEST_CHECK(a.n_batches == b.n_batches && !memcmp(a.order, b.order, a.n_rows * sizeof(size_t)) &&
                   !memcmp(a.neg, b.neg, a.n_rows * 2 * sizeof(size_t)),
               "same seed, same epoch: different plans");
    TEST_CHECK(memcmp(a.order, c.order, a.n_rows * sizeof(size_t)) != 0, "epochs 1 and 2 have the same order");
    /* missing negatives marked; queries with >= 2 negatives get 2 distinct */
    size_t missing = 0;
    for (size_t i = 0; i < a.n_rows; i++) {
        size_t q = rows.q[a.order[i]], avail = ds->neg_off[q + 1] - ds->neg_off[q];
        size_t n0 = a.neg[i * 2], n1 = a.neg[i * 2 + 1];
        if (n0 == SIZE_MAX || n1 == SIZE_MAX) missing++;
        if (avail >= 3) TEST_CHECK(n0 != SIZE_MAX && n1 != SIZE_MAX && n0 != n1, "query %zu: negatives %zu %zu", q, n0, n1);
    }
    TEST_CHECK(missing > 0, "some rows lack negatives");
    printf("%zu rows, B=8: %zu batches (%zu rows lack a negative)\n", a.n_rows, a.n_batches, missing);
    et_epoch_plan_free(&a), et_epoch_plan_free(&b), et_epoch_plan_free(&c);
    et_train_rows_free(&rows);
    et_dataset_free(ds);

    /* every query about one passage: one row per batch */
    ds = et_dataset_new(&err);
    size_t d0;
    et_dataset_add_doc(ds, "only", "the only passage", &d0, &err);
    for (int q = 0; q < 5; q++) {
        snprintf(id, sizeof(id), "q%d", q);
        snprintf(text, sizeof(text), "question %d", q);
        et_dataset_add_query(ds, id, text, &d0, 1, NULL, 0, &err);
    }
    et_train_rows_build(&rows, ds, &err);
    et_plan_epoch(&a, ds, &rows, 4, 0, 1, 0, &err);
    TEST_CHECK(a.n_batches == 5, "one passage: %zu batches, expected 5", a.n_batches);
    et_epoch_plan_free(&a);
    et_train_rows_free(&rows);
    et_dataset_free(ds);
    /* no pairs at all */
    ds = et_dataset_new(&err);
    et_dataset_add_query(ds, "q", "lonely question", NULL, 0, NULL, 0, &err);
    TEST_CHECK(et_train_rows_build(&rows, ds, &err) == ET_EINVAL && strstr(err.msg, "no (query"), "%s", err.msg);
    et_dataset_free(ds);
    return test_summary("test_train_data");
}
