/* train_data.c - rows, the seeded shuffle and the no-duplicates batch
 * sampler; see train_data.h. */
#include "train_data.h"

#include <stdlib.h>
#include <string.h>

#include "rng.h"

int et_train_rows_build(et_train_rows *rows, const et_dataset *ds, et_error *err) {
    memset(rows, 0, sizeof(*rows));
    size_t n = ds->rel_off[ds->n_queries];
    if (n == 0) return et_err_set(err, ET_EINVAL, "dataset has no (query, relevant document) pairs to train on");
    rows->q = et_malloc_n(n, sizeof(size_t), err);
    rows->pos = et_malloc_n(n, sizeof(size_t), err);
    if (!rows->q || !rows->pos) {
        et_train_rows_free(rows);
        return ET_ENOMEM;
    }
    for (size_t q = 0, k = 0; q < ds->n_queries; q++)
        for (size_t r = ds->rel_off[q]; r < ds->rel_off[q + 1]; r++, k++) {
            rows->q[k] = q;
            rows->pos[k] = ds->rel[r];
        }
    rows->n = n;
    return ET_OK;
}

void et_train_rows_free(et_train_rows *rows) {
    free(rows->q);
    free(rows->pos);
    memset(rows, 0, sizeof(*rows));
}

void et_epoch_plan_free(et_epoch_plan *p) {
    free(p->batch_off);
    free(p->order);
    free(p->neg);
    memset(p, 0, sizeof(*p));
}

/* Open-addressing set of 64-bit keys, cleared per batch by a generation tag. */
typedef struct keyset {
    uint64_t *keys;
    uint32_t *gen;
    size_t cap;
    uint32_t cur;
} keyset;

static int ks_has(const keyset *s, uint64_t k) {
    for (size_t i = k & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->gen[i] != s->cur) return 0;
        if (s->keys[i] == k) return 1;
    }
}

static void ks_add(keyset *s, uint64_t k) {
    size_t i = k & (s->cap - 1);
    while (s->gen[i] == s->cur) {
        if (s->keys[i] == k) return;
        i = (i + 1) & (s->cap - 1);
    }
    s->gen[i] = s->cur;
    s->keys[i] = k;
}

static uint64_t text_key(const char *s) { return et_hash64(s, strlen(s), 0x7e47); }

int et_plan_epoch(et_epoch_plan *p, const et_dataset *ds, const et_train_rows *rows, size_t batch_size,
                  size_t n_neg, uint64_t seed, uint64_t epoch, et_error *err) {
    memset(p, 0, sizeof(*p));
    const size_t n = rows->n;
    if (batch_size == 0) return et_err_set(err, ET_EINVAL, "batch size must be >= 1");
    if (n == 0) return et_err_set(err, ET_EINVAL, "no training rows");
    int rc = ET_OK;
    size_t nn = 0;
    if (!et_size_mul(n, n_neg, &nn)) return et_err_set(err, ET_EINVAL, "too many negatives");
    size_t *perm = et_malloc_n(n, sizeof(size_t), err);
    size_t *row_neg = et_malloc_n(nn ? nn : 1, sizeof(size_t), err);
    uint8_t *used = et_calloc(n, 1, err);
    uint64_t *qkey = et_malloc_n(ds->n_queries ? ds->n_queries : 1, sizeof(uint64_t), err);
    uint64_t *dkey = et_malloc_n(ds->n_docs ? ds->n_docs : 1, sizeof(uint64_t), err);
    size_t *tmp = NULL;
    keyset ks = {0};
    /* keys per row <= 1 + |rel| + n_neg; batch_size rows: size the set for that */
    size_t max_rel = 0;
    for (size_t q = 0; q < ds->n_queries; q++) max_rel = ET_MAX(max_rel, ds->rel_off[q + 1] - ds->rel_off[q]);
    size_t want = 4 * (ET_MIN(batch_size, n) * (1 + max_rel + n_neg)) + 16;
    ks.cap = 16;
    while (ks.cap < want) ks.cap *= 2;
    ks.keys = et_malloc_n(ks.cap, sizeof(uint64_t), err);
    ks.gen = et_calloc(ks.cap, sizeof(uint32_t), err);
    p->batch_off = et_malloc_n(n + 1, sizeof(size_t), err);
    p->order = et_malloc_n(n, sizeof(size_t), err);
    p->neg = et_malloc_n(nn ? nn : 1, sizeof(size_t), err);
    if (!perm || !row_neg || !used || !qkey || !dkey || !ks.keys || !ks.gen || !p->batch_off || !p->order ||
        !p->neg) {
        rc = ET_ENOMEM;
        goto done;
    }
    for (size_t q = 0; q < ds->n_queries; q++) qkey[q] = text_key(ds->queries[q]);
    for (size_t d = 0; d < ds->n_docs; d++) dkey[d] = text_key(ds->docs[d]);

    /* shuffle (Fisher-Yates), stream 2*epoch */
    et_rng rng;
    et_rng_seed(&rng, seed, 2 * epoch);
    for (size_t i = 0; i < n; i++) perm[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)et_rng_below(&rng, i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    /* negatives per row, in row order, stream 2*epoch+1 */
    if (n_neg) {
        size_t max_neg = 0;
        for (size_t q = 0; q < ds->n_queries; q++) max_neg = ET_MAX(max_neg, ds->neg_off[q + 1] - ds->neg_off[q]);
        tmp = et_malloc_n(max_neg ? max_neg : 1, sizeof(size_t), err);
        if (!tmp) {
            rc = ET_ENOMEM;
            goto done;
        }
        et_rng_seed(&rng, seed, 2 * epoch + 1);
        for (size_t r = 0; r < n; r++) {
            size_t q = rows->q[r], c = 0;
            for (size_t k = ds->neg_off[q]; k < ds->neg_off[q + 1]; k++) {
                size_t dn = ds->neg[k];
                int is_rel = 0;
                for (size_t t = ds->rel_off[q]; t < ds->rel_off[q + 1] && !is_rel; t++)
                    is_rel = ds->rel[t] == dn || dkey[ds->rel[t]] == dkey[dn];
                if (!is_rel) tmp[c++] = dn;
            }
            for (size_t k = 0; k < n_neg; k++) { /* partial Fisher-Yates: k-th pick from the rest */
                if (k < c) {
                    size_t j = c > n_neg ? k + (size_t)et_rng_below(&rng, c - k) : k;
                    size_t t = tmp[k];
                    tmp[k] = tmp[j];
                    tmp[j] = t;
                    row_neg[r * n_neg + k] = tmp[k];
                } else {
                    row_neg[r * n_neg + k] = SIZE_MAX;
                }
            }
        }
    }
    /* pack batches */
    size_t first = 0, out = 0, nb = 0;
    p->batch_off[0] = 0;
    while (first < n) {
        ks.cur++;
        if (ks.cur == 0) { /* generation wrapped: clear */
            memset(ks.gen, 0, ks.cap * sizeof(uint32_t));
            ks.cur = 1;
        }
        size_t count = 0;
        for (size_t i = first; i < n && count < batch_size; i++) {
            size_t r = perm[i];
            if (used[r]) continue;
            size_t q = rows->q[r];
            int clash = ks_has(&ks, qkey[q]);
            for (size_t t = ds->rel_off[q]; t < ds->rel_off[q + 1] && !clash; t++) clash = ks_has(&ks, dkey[ds->rel[t]]);
            for (size_t k = 0; k < n_neg && !clash; k++)
                if (row_neg[r * n_neg + k] != SIZE_MAX) clash = ks_has(&ks, dkey[row_neg[r * n_neg + k]]);
            if (clash) continue;
            ks_add(&ks, qkey[q]);
            for (size_t t = ds->rel_off[q]; t < ds->rel_off[q + 1]; t++) ks_add(&ks, dkey[ds->rel[t]]);
            for (size_t k = 0; k < n_neg; k++)
                if (row_neg[r * n_neg + k] != SIZE_MAX) ks_add(&ks, dkey[row_neg[r * n_neg + k]]);
            used[r] = 1;
            p->order[out] = r;
            memcpy(p->neg + out * n_neg, row_neg + r * n_neg, n_neg * sizeof(size_t));
            out++, count++;
        }
        p->batch_off[++nb] = out;
        while (first < n && used[perm[first]]) first++;
    }
    p->n_rows = n;
    p->n_neg = n_neg;
    p->n_batches = nb;
done:
    free(perm), free(row_neg), free(used), free(qkey), free(dkey), free(tmp), free(ks.keys), free(ks.gen);
    if (rc) et_epoch_plan_free(p);
    return rc;
}
