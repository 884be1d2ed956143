/* eval_metrics.c - retrieval metrics (sentence-transformers definitions) and
 * exact top-k search; see eval_metrics.h. */
#include "eval_metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "threads.h"

/* ---- metrics ------------------------------------------------------------------ */

size_t et_ir_depth(const size_t *ks, size_t n_k) {
    size_t depth = 100; /* MAP@100 */
    for (size_t i = 0; i < n_k; i++)
        if (ks[i] > depth) depth = ks[i];
    return depth;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted, deduplicated copy of rel[lo..hi) into tmp; returns the count. */
static size_t rel_set(size_t *tmp, const size_t *rel, size_t lo, size_t hi) {
    size_t n = hi - lo, m = 0;
    if (!n) return 0;
    memcpy(tmp, rel + lo, n * sizeof(size_t));
    qsort(tmp, n, sizeof(size_t), cmp_size);
    for (size_t i = 0; i < n; i++)
        if (m == 0 || tmp[m - 1] != tmp[i]) tmp[m++] = tmp[i];
    return m;
}

static int is_rel(const size_t *set, size_t n, size_t doc) {
    if (doc == SIZE_MAX) return 0;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set[mid] < doc) lo = mid + 1;
        else if (set[mid] > doc) hi = mid;
        else return 1;
    }
    return 0;
}

static int check_csr(size_t nq, const size_t *rel_off, const size_t *rel, size_t *max_rel,
                     et_error *err) {
    if (!rel_off) return et_err_set(err, ET_EINVAL, "relevance offsets are NULL");
    if (rel_off[0] != 0) return et_err_set(err, ET_EINVAL, "relevance offsets must start at 0");
    size_t mx = 0;
    for (size_t i = 0; i < nq; i++) {
        if (rel_off[i + 1] < rel_off[i])
            return et_err_set(err, ET_EINVAL, "relevance offsets decrease at query %zu", i);
        if (rel_off[i + 1] - rel_off[i] > mx) mx = rel_off[i + 1] - rel_off[i];
    }
    if (rel_off[nq] && !rel) return et_err_set(err, ET_EINVAL, "relevance list is NULL");
    *max_rel = mx;
    return ET_OK;
}

int et_ir_first_ranks(size_t *first, const size_t *ranked, size_t nq, size_t depth,
                      const size_t *rel_off, const size_t *rel, et_error *err) {
    size_t mx = 0;
    int rc = check_csr(nq, rel_off, rel, &mx, err);
    if (rc) return rc;
    size_t *set = et_malloc_n(mx ? mx : 1, sizeof(size_t), err);
    if (!set) return ET_ENOMEM;
    for (size_t i = 0; i < nq; i++) {
        size_t nr = rel_set(set, rel, rel_off[i], rel_off[i + 1]);
        first[i] = 0;
        for (size_t j = 0; j < depth && nr; j++)
            if (is_rel(set, nr, ranked[i * depth + j])) {
                first[i] = j + 1;
                break;
            }
    }
    free(set);
    return ET_OK;
}

/* DCG of a binary relevance row over its first n entries. */
static double dcg(const unsigned char *hit, size_t n) {
    double s = 0;
    for (size_t j = 0; j < n; j++)
        if (hit[j]) s += 1.0 / log2((double)j + 2.0);
    return s;
}

/* IDCG: n_ideal relevant documents at the top. */
static double idcg(size_t n_ideal) {
    double s = 0;
    for (size_t j = 0; j < n_ideal; j++) s += 1.0 / log2((double)j + 2.0);
    return s;
}

int et_ir_metrics(const size_t *ranked, size_t nq, size_t depth, const size_t *rel_off,
                  const size_t *rel, const size_t *ks, size_t n_k, et_ir_result *out, et_error *err) {
    static const size_t default_ks[4] = {1, 3, 5, 10};
    if (!ks || !n_k) {
        ks = default_ks;
        n_k = 4;
    }
    if (n_k > ET_IR_MAX_K)
        return et_err_set(err, ET_EINVAL, "at most %d cut-offs k (got %zu)", ET_IR_MAX_K, n_k);
    for (size_t i = 0; i < n_k; i++)
        if (ks[i] == 0) return et_err_set(err, ET_EINVAL, "cut-off k must be >= 1");
    if (nq && (!ranked || depth == 0))
        return et_err_set(err, ET_EINVAL, "empty ranking (depth 0)");
    size_t mx = 0;
    int rc = check_csr(nq, rel_off, rel, &mx, err);
    if (rc) return rc;

    memset(out, 0, sizeof(*out));
    out->n_k = n_k;
    memcpy(out->k, ks, n_k * sizeof(size_t));
    size_t *set = et_malloc_n(mx ? mx : 1, sizeof(size_t), err);
    unsigned char *hit = et_malloc_n(depth ? depth : 1, 1, err);
    if (!set || !hit) {
        free(set);
        free(hit);
        return ET_ENOMEM;
    }
    /* sums over queries, in query order */
    double acc[ET_IR_MAX_K] = {0}, prec[ET_IR_MAX_K] = {0}, rec[ET_IR_MAX_K] = {0};
    double mrr[ET_IR_MAX_K] = {0}, ndcg[ET_IR_MAX_K] = {0};
    double mrr10 = 0, ndcg10 = 0, map100 = 0;
    for (size_t i = 0; i < nq; i++) {
        size_t nr = rel_set(set, rel, rel_off[i], rel_off[i + 1]);
        if (!nr) {
            out->n_skipped++;
            continue;
        }
        out->n_queries++;
        const size_t *row = ranked + i * depth;
        size_t first = 0; /* 1-based rank of the first hit, 0 = none */
        for (size_t j = 0; j < depth; j++) {
            hit[j] = (unsigned char)is_rel(set, nr, row[j]);
            if (hit[j] && !first) first = j + 1;
        }
        for (size_t t = 0; t < n_k; t++) {
            size_t k = ks[t], kk = ET_MIN(k, depth), nh = 0;
            for (size_t j = 0; j < kk; j++) nh += hit[j];
            acc[t] += nh > 0;
            prec[t] += (double)nh / (double)k;
            rec[t] += (double)nh / (double)nr;
            if (first && first <= kk) mrr[t] += 1.0 / (double)first;
            ndcg[t] += dcg(hit, kk) / idcg(ET_MIN(k, nr));
        }
        size_t k10 = ET_MIN((size_t)10, depth);
        if (first && first <= k10) mrr10 += 1.0 / (double)first;
        ndcg10 += dcg(hit, k10) / idcg(ET_MIN((size_t)10, nr));
        /* AP@100: precision at each relevant hit, over min(100, |relevant|) */
        size_t k100 = ET_MIN((size_t)100, depth), nh = 0;
        double sp = 0;
        for (size_t j = 0; j < k100; j++)
            if (hit[j]) sp += (double)(++nh) / (double)(j + 1);
        map100 += sp / (double)ET_MIN((size_t)100, nr);
    }
    free(set);
    free(hit);
    if (!out->n_queries)
        return et_err_set(err, ET_EINVAL, "no query has a relevant document (%zu queries)", nq);
    double n = (double)out->n_queries;
    for (size_t t = 0; t < n_k; t++) {
        out->accuracy[t] = acc[t] / n;
        out->precision[t] = prec[t] / n;
        out->recall[t] = rec[t] / n;
        out->mrr[t] = mrr[t] / n;
        out->ndcg[t] = ndcg[t] / n;
    }
    out->mrr10 = mrr10 / n;
    out->ndcg10 = ndcg10 / n;
    out->map100 = map100 / n;
    return ET_OK;
}

/* ---- top-k selection ------------------------------------------------------------- */

/* Candidates are buffered and, when the buffer is full, cut down to the k
 * best by quickselect; the k-th best score then filters further candidates
 * (a threshold test per score, the common case). Faster than a binary heap:
 * no sift per accepted candidate, and no data-dependent branches in the scan.
 * Order: higher score first; equal scores: lower index first. */
typedef struct {
    float s;
    size_t i;
} cand;

static inline int better(const cand *a, const cand *b) {
    return a->s > b->s || (a->s == b->s && a->i < b->i);
}

static inline void cswap(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Reorders c[0..n) so that c[0..k) hold the k best (in no order); k <= n.
 * Indices are distinct, so the order is strict. */
static void select_best(cand *c, size_t n, size_t k) {
    size_t lo = 0, hi = n;
    while (hi - lo > 1 && lo < k && k < hi) {
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        /* median of three to c[last] */
        if (better(&c[mid], &c[lo])) cswap(&c[mid], &c[lo]);
        if (better(&c[last], &c[lo])) cswap(&c[last], &c[lo]);
        if (better(&c[mid], &c[last])) cswap(&c[mid], &c[last]);
        size_t st = lo;
        for (size_t j = lo; j < last; j++)
            if (better(&c[j], &c[last])) cswap(&c[j], &c[st++]);
        cswap(&c[st], &c[last]); /* c[lo..st) better than the pivot at st */
        if (st == k || st + 1 == k) return;
        if (st > k) hi = st;
        else lo = st + 1;
    }
}

static int cmp_cand(const void *a, const void *b) {
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

typedef struct {
    cand *buf;    /* [alloc], grown on demand up to cap */
    size_t n, alloc, cap, k;
    float thr;    /* once full: the k-th best score; only higher scores enter */
    int full;
    int oom;      /* growing the buffer failed */
} topk_acc;

/* Buffer capacity for k: room for k plus as many candidates again. */
static size_t acc_cap(size_t k) {
    return k < 32 ? k + 32 : 2 * k;
}

static void acc_init(topk_acc *a, size_t k) {
    memset(a, 0, sizeof(*a));
    a->cap = acc_cap(k);
    a->k = k;
    a->thr = -INFINITY;
}

static void acc_free(topk_acc *a) {
    free(a->buf);
    a->buf = NULL;
}

static void acc_compact(topk_acc *a) {
    select_best(a->buf, a->n, a->k);
    a->n = a->k;
    float w = a->buf[0].s;
    for (size_t j = 1; j < a->k; j++)
        if (a->buf[j].s < w) w = a->buf[j].s;
    a->thr = w;
    a->full = 1;
}

/* Appends one candidate; 0 on OOM. */
static inline int acc_push(topk_acc *a, float s, size_t i) {
    if (a->n == a->alloc) {
        size_t na = a->alloc ? ET_MIN(2 * a->alloc, a->cap) : ET_MIN((size_t)256, a->cap);
        cand *b = realloc(a->buf, na * sizeof(cand));
        if (!b) {
            a->oom = 1;
            return 0;
        }
        a->buf = b;
        a->alloc = na;
    }
    a->buf[a->n++] = (cand){s, i};
    if (a->n == a->cap) acc_compact(a);
    return 1;
}

/* Offers scores[0..n) with indices base + j. Indices must increase across
 * calls: then a score equal to the threshold belongs to a later (worse)
 * document than the k-th best, and "s > thr" is the whole test. */
static void acc_offer(topk_acc *a, const float *scores /* [n] */, size_t n, size_t base) {
    size_t j = 0;
    for (; j < n && !a->full; j++) /* filling: every score enters (NaN as -inf) */
        if (!acc_push(a, scores[j] != scores[j] ? -INFINITY : scores[j], base + j)) return;
    float thr = a->thr;
    for (; j < n; j++)
        if (scores[j] > thr) {
            if (!acc_push(a, scores[j], base + j)) return;
            thr = a->thr;
        }
}

/* Best first into ranked/top (top may be NULL), padded to out_k. */
static void acc_emit(topk_acc *a, size_t *ranked /* [out_k] */, float *top /* [out_k] or NULL */, size_t out_k) {
    size_t m = ET_MIN(a->k, a->n);
    if (m < a->n) select_best(a->buf, a->n, m);
    if (m > 1) qsort(a->buf, m, sizeof(cand), cmp_cand);
    for (size_t j = 0; j < out_k; j++) {
        ranked[j] = j < m ? a->buf[j].i : SIZE_MAX;
        if (top) top[j] = j < m ? a->buf[j].s : -INFINITY;
    }
}

int et_topk_row(size_t *ranked, float *top, const float *scores, size_t n, size_t k, et_error *err) {
    if (!k) return et_err_set(err, ET_EINVAL, "top-k: k must be >= 1");
    topk_acc a;
    acc_init(&a, k);
    acc_offer(&a, scores, n, 0);
    if (a.oom) {
        acc_free(&a);
        return et_err_set(err, ET_ENOMEM, "top-k: out of memory");
    }
    acc_emit(&a, ranked, top, k);
    acc_free(&a);
    return ET_OK;
}

/* ---- exact top-k ------------------------------------------------------------------- */

static int check_topk_args(const float *q, size_t nq, const float *docs, size_t nd, size_t d,
                           size_t k, const size_t *ranked, int finite, et_error *err) {
    if (!k) return et_err_set(err, ET_EINVAL, "top-k: k must be >= 1");
    if (!d) return et_err_set(err, ET_EINVAL, "top-k: dimension must be >= 1");
    size_t t;
    if (!et_size_mul(nq, d, &t) || !et_size_mul(nd, d, &t) || !et_size_mul(nq, k, &t))
        return et_err_set(err, ET_EINVAL, "top-k: size overflow");
    if ((nq && (!q || !ranked)) || (nd && !docs)) return et_err_set(err, ET_EINVAL, "top-k: NULL array");
    for (size_t i = 0; finite && i < nq * d; i++)
        if (!isfinite(q[i]))
            return et_err_set(err, ET_ENUMERIC, "top-k: query %zu has a non-finite value at dimension %zu",
                              i / d, i % d);
    for (size_t i = 0; finite && i < nd * d; i++)
        if (!isfinite(docs[i]))
            return et_err_set(err, ET_ENUMERIC,
                              "top-k: document %zu has a non-finite value at dimension %zu", i / d, i % d);
    return ET_OK;
}

static __thread const double *ref_sc;
static int cmp_ref(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (ref_sc[x] > ref_sc[y]) return -1;
    if (ref_sc[x] < ref_sc[y]) return 1;
    return x < y ? -1 : x > y;
}

int et_topk_ref(const float *q, size_t nq, const float *docs, size_t nd, size_t d, size_t k,
                size_t *ranked, float *scores, et_error *err) {
    int rc = check_topk_args(q, nq, docs, nd, d, k, ranked, 1, err);
    if (rc) return rc;
    double *sc = et_malloc_n(nd ? nd : 1, sizeof(double), err);
    size_t *ord = et_malloc_n(nd ? nd : 1, sizeof(size_t), err);
    if (!sc || !ord) {
        free(sc);
        free(ord);
        return ET_ENOMEM;
    }
    for (size_t i = 0; i < nq; i++) {
        for (size_t j = 0; j < nd; j++) {
            double s = 0;
            for (size_t c = 0; c < d; c++) s += (double)q[i * d + c] * (double)docs[j * d + c];
            sc[j] = s;
            ord[j] = j;
        }
        ref_sc = sc;
        qsort(ord, nd, sizeof(size_t), cmp_ref);
        for (size_t j = 0; j < k; j++) {
            ranked[i * k + j] = j < nd ? ord[j] : SIZE_MAX;
            if (scores) scores[i * k + j] = j < nd ? (float)sc[ord[j]] : -INFINITY;
        }
    }
    free(sc);
    free(ord);
    return ET_OK;
}

/* Block sizes: the score block is QB x DB floats (8 MiB). */
#define TOPK_QB 512
#define TOPK_DB 4096

struct et_topk_state {
    const float *q;  /* [nq, d] borrowed */
    size_t nq, d, k;
    size_t nd;       /* documents fed so far */
    float *S;        /* [TOPK_QB, TOPK_DB] */
    topk_acc *acc;   /* [nq] */
};

typedef struct {
    const float *S;  /* [qb, db] scores of the block */
    size_t qb, db, d0;
    topk_acc *acc;   /* [qb] */
} topk_task;

static void topk_block_task(void *arg, int ith, int nth) {
    topk_task *t = arg;
    long lo, hi;
    et_split((long)t->qb, ith, nth, &lo, &hi);
    for (long r = lo; r < hi; r++) acc_offer(&t->acc[r], t->S + (size_t)r * t->db, t->db, t->d0);
}

static int check_finite(const float *x, size_t n, size_t d, const char *what, size_t base, et_error *err) {
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(x[i]))
            return et_err_set(err, ET_ENUMERIC, "top-k: %s %zu has a non-finite value at dimension %zu", what,
                              base + i / d, i % d);
    return ET_OK;
}

void et_topk_free(et_topk_state *st) {
    if (!st) return;
    if (st->acc)
        for (size_t i = 0; i < st->nq; i++) acc_free(&st->acc[i]);
    free(st->acc);
    free(st->S);
    free(st);
}

int et_topk_begin(et_topk_state **out, const float *q, size_t nq, size_t d, size_t k, et_error *err) {
    *out = NULL;
    if (!k) return et_err_set(err, ET_EINVAL, "top-k: k must be >= 1");
    if (!d || d > INT32_MAX) return et_err_set(err, ET_EINVAL, "top-k: dimension must be in 1..2^31 (got %zu)", d);
    size_t t;
    if (!et_size_mul(nq, d, &t) || !et_size_mul(nq, k, &t)) return et_err_set(err, ET_EINVAL, "top-k: size overflow");
    if (nq && !q) return et_err_set(err, ET_EINVAL, "top-k: NULL queries");
    int rc = check_finite(q, nq, d, "query", 0, err);
    if (rc) return rc;
    et_topk_state *st = et_calloc(1, sizeof(*st), err);
    if (!st) return ET_ENOMEM;
    st->q = q;
    st->nq = nq;
    st->d = d;
    st->k = k;
    st->S = et_malloc_n((size_t)TOPK_QB * TOPK_DB, sizeof(float), err);
    st->acc = et_malloc_n(nq ? nq : 1, sizeof(topk_acc), err);
    if (!st->S || !st->acc) {
        free(st->acc);
        st->acc = NULL;
        et_topk_free(st);
        return ET_ENOMEM;
    }
    for (size_t i = 0; i < nq; i++) acc_init(&st->acc[i], k);
    *out = st;
    return ET_OK;
}

int et_topk_feed(et_topk_state *st, const float *docs, size_t nd, et_error *err) {
    size_t t, d = st->d;
    if (!et_size_mul(nd, d, &t) || !et_size_add(st->nd, nd, &t))
        return et_err_set(err, ET_EINVAL, "top-k: size overflow");
    if (nd && !docs) return et_err_set(err, ET_EINVAL, "top-k: NULL documents");
    int rc = check_finite(docs, nd, d, "document", st->nd, err);
    if (rc) return rc;
    for (size_t d0 = 0; d0 < nd; d0 += TOPK_DB) {
        size_t db = ET_MIN((size_t)TOPK_DB, nd - d0);
        for (size_t q0 = 0; q0 < st->nq; q0 += TOPK_QB) {
            size_t qb = ET_MIN((size_t)TOPK_QB, st->nq - q0);
            /* S[qb, db] = Q[q0:q0+qb] @ D[d0:d0+db]^T: the model's GEMM (AVX2/FMA
             * tiles over the full dimension, so results do not depend on the
             * thread count; OpenBLAS where AVX2 is missing; the reference
             * kernel under ET_KERNELS=ref) */
            matmul_forward(st->S, st->q + q0 * d, docs + d0 * d, NULL, qb, d, db);
            topk_task tk = {st->S, qb, db, st->nd + d0, st->acc + q0};
            et_parallel(topk_block_task, &tk);
        }
    }
    st->nd += nd;
    for (size_t i = 0; i < st->nq; i++)
        if (st->acc[i].oom) return et_err_set(err, ET_ENOMEM, "top-k: out of memory");
    return ET_OK;
}

int et_topk_end(et_topk_state *st, size_t *ranked, float *scores, et_error *err) {
    if (st->nq && !ranked) return et_err_set(err, ET_EINVAL, "top-k: NULL output");
    for (size_t i = 0; i < st->nq; i++)
        acc_emit(&st->acc[i], ranked + i * st->k, scores ? scores + i * st->k : NULL, st->k);
    return ET_OK;
}

int et_topk(const float *q, size_t nq, const float *docs, size_t nd, size_t d, size_t k,
            size_t *ranked, float *scores, et_error *err) {
    int rc = check_topk_args(q, nq, docs, nd, d, k, ranked, 0, err); /* begin/feed check values */
    if (rc) return rc;
    et_topk_state *st = NULL;
    rc = et_topk_begin(&st, q, nq, d, k, err);
    if (!rc) rc = et_topk_feed(st, docs, nd, err);
    if (!rc) rc = et_topk_end(st, ranked, scores, err);
    et_topk_free(st);
    return rc;
}

void et_l2_normalize(float *x, size_t n, size_t d) {
    for (size_t i = 0; i < n; i++) {
        float *r = x + i * d;
        double ss = 0;
        for (size_t c = 0; c < d; c++) ss += (double)r[c] * r[c];
        if (ss > 0) {
            float inv = (float)(1.0 / sqrt(ss));
            for (size_t c = 0; c < d; c++) r[c] *= inv;
        }
    }
}
