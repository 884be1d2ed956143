/* test_eval_metrics.c - retrieval metrics against values computed by hand, and
 * the fast top-k against the plain reference on odd shapes and ties. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval_metrics.h"
#include "test_util.h"
#include "threads.h"

#define EPS 1e-12

/* Three scored queries and one without relevant documents; 12 documents,
 * rankings of depth 10, k = {1, 3, 5, 10}.
 *   A: relevant {2};        ranking 5 2 7 1 0 3 4 6 8 9   -> hit at rank 2
 *   B: relevant {9, 4, 9};  ranking 4 0 1 9 2 3 5 6 7 8   -> hits at ranks 1, 4
 *      (9 listed twice: the relevant set is {4, 9}, |rel| = 2)
 *   C: relevant {11};       ranking 0 1 2 3 4 5 6 7 8 9   -> no hit
 *   D: no relevant documents -> skipped, as sentence-transformers does.
 * Per query (A, B, C):
 *   acc@1 0 1 0, acc@3 1 1 0, acc@5 1 1 0, acc@10 1 1 0
 *   P@1 0 1 0;  P@3 1/3 1/3 0;  P@5 1/5 2/5 0;  P@10 1/10 2/10 0
 *   R@1 0 1/2 0; R@3 1 1/2 0;  R@5 1 1 0;     R@10 1 1 0
 *   RR@10 1/2 1 0
 *   NDCG@10: A  DCG = 1/log2(3) = 0.6309297535714575, IDCG = 1/log2(2) = 1
 *            B  DCG = 1/log2(2) + 1/log2(5) = 1.4306765580733931,
 *               IDCG = 1 + 1/log2(3) = 1.6309297535714575 -> 0.8772153153380493
 *            C  0
 *   NDCG@3:  A 0.6309297535714575; B 1 / 1.6309297535714575 = 0.6131471927654584; C 0
 *   NDCG@1:  A 0, B 1, C 0
 *   AP@100:  A (1/2) / min(100, 1) = 0.5; B (1/1 + 2/4) / min(100, 2) = 0.75; C 0
 * Means over 3 queries:
 *   acc@1 1/3, acc@3 = acc@5 = acc@10 = 2/3
 *   P@1 1/3, P@3 2/9, P@5 (1/5 + 2/5)/3 = 0.2, P@10 (0.1 + 0.2)/3 = 0.1
 *   R@1 1/6, R@3 1.5/3 = 0.5, R@5 = R@10 = 2/3
 *   MRR@10 1.5/3 = 0.5, MRR@1 1/3
 *   NDCG@10 (0.6309297535714575 + 0.8772153153380493)/3 = 0.5027150229698356
 *   NDCG@3  (0.6309297535714575 + 0.6131471927654584)/3 = 0.4146923154456386
 *   NDCG@1  1/3
 *   MAP@100 (0.5 + 0.75)/3 = 0.4166666666666667 */
static void test_hand_metrics(void) {
    size_t ranked[4 * 10] = {
        5, 2, 7, 1, 0, 3, 4, 6, 8, 9, /* A */
        4, 0, 1, 9, 2, 3, 5, 6, 7, 8, /* B */
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, /* C */
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, /* D */
    };
    size_t rel_off[5] = {0, 1, 4, 5, 5};
    size_t rel[5] = {2, 9, 4, 9, 11};
    size_t ks[4] = {1, 3, 5, 10};
    et_ir_result r;
    et_error err = {0};
    int rc = et_ir_metrics(ranked, 4, 10, rel_off, rel, ks, 4, &r, &err);
    TEST_CHECK(rc == 0, "et_ir_metrics: %s", err.msg);
    TEST_CHECK(r.n_queries == 3 && r.n_skipped == 1, "queries %zu skipped %zu", r.n_queries, r.n_skipped);
    TEST_CLOSE(r.accuracy[0], 1.0 / 3, EPS, 0);
    TEST_CLOSE(r.accuracy[1], 2.0 / 3, EPS, 0);
    TEST_CLOSE(r.accuracy[2], 2.0 / 3, EPS, 0);
    TEST_CLOSE(r.accuracy[3], 2.0 / 3, EPS, 0);
    TEST_CLOSE(r.precision[0], 1.0 / 3, EPS, 0);
    TEST_CLOSE(r.precision[1], 2.0 / 9, EPS, 0);
    TEST_CLOSE(r.precision[2], 0.2, EPS, 0);
    TEST_CLOSE(r.precision[3], 0.1, EPS, 0);
    TEST_CLOSE(r.recall[0], 1.0 / 6, EPS, 0);
    TEST_CLOSE(r.recall[1], 0.5, EPS, 0);
    TEST_CLOSE(r.recall[2], 2.0 / 3, EPS, 0);
    TEST_CLOSE(r.recall[3], 2.0 / 3, EPS, 0);
    TEST_CLOSE(r.mrr[0], 1.0 / 3, EPS, 0);
    TEST_CLOSE(r.mrr[3], 0.5, EPS, 0);
    TEST_CLOSE(r.mrr10, 0.5, EPS, 0);
    TEST_CLOSE(r.ndcg[0], 1.0 / 3, EPS, 0);
    TEST_CLOSE(r.ndcg[1], 0.4146923154456386, EPS, 0);
    TEST_CLOSE(r.ndcg[3], 0.5027150229698356, EPS, 0);
    TEST_CLOSE(r.ndcg10, 0.5027150229698356, EPS, 0);
    TEST_CLOSE(r.map100, 0.4166666666666667, EPS, 0);

    size_t first[4];
    rc = et_ir_first_ranks(first, ranked, 4, 10, rel_off, rel, &err);
    TEST_CHECK(rc == 0 && first[0] == 2 && first[1] == 1 && first[2] == 0 && first[3] == 0,
               "first ranks %zu %zu %zu %zu", first[0], first[1], first[2], first[3]);

    /* default ks (NULL) = {1, 3, 5, 10} gives the same numbers */
    et_ir_result r2;
    rc = et_ir_metrics(ranked, 4, 10, rel_off, rel, NULL, 0, &r2, &err);
    TEST_CHECK(rc == 0 && r2.n_k == 4 && r2.k[3] == 10 && r2.ndcg10 == r.ndcg10, "default ks");
}

/* MAP@100's normalization: one query with 120 relevant documents (0..119),
 * ranked perfectly (identity over 200 documents). Every rank r <= 100 is a hit
 * with precision r/r = 1, so AP@100 = 100 / min(100, 120) = 1 (dividing by
 * |rel| = 120 would give 0.8333). recall@10 = 10/120, precision@10 = 1,
 * NDCG@10 = 1 (IDCG over min(10, 120) = 10 ideal hits). */
static void test_map_normalization(void) {
    size_t ranked[200], rel[120], rel_off[2] = {0, 120}, ks[1] = {10};
    for (size_t i = 0; i < 200; i++) ranked[i] = i;
    for (size_t i = 0; i < 120; i++) rel[i] = 119 - i;
    et_ir_result r;
    et_error err = {0};
    int rc = et_ir_metrics(ranked, 1, 200, rel_off, rel, ks, 1, &r, &err);
    TEST_CHECK(rc == 0, "%s", err.msg);
    TEST_CLOSE(r.map100, 1.0, EPS, 0);
    TEST_CLOSE(r.recall[0], 10.0 / 120, EPS, 0);
    TEST_CLOSE(r.precision[0], 1.0, EPS, 0);
    TEST_CLOSE(r.ndcg10, 1.0, EPS, 0);
}

/* A corpus of 3 documents, rankings padded with SIZE_MAX (depth 4 > 3).
 * Query relevant {1, 2}, ranking 2 0 1 (pad).
 *   P@5 = 2/5 (divided by k, not by the list length, as sentence-transformers)
 *   R@5 = 1, MRR@10 = 1
 *   NDCG@10 = (1 + 1/log2(4)) / (1 + 1/log2(3)) = 1.5 / 1.6309297535714575 = 0.9197207891481876
 *   AP@100 = (1/1 + 2/3) / 2 = 0.8333333333333334 */
static void test_padding(void) {
    size_t ranked[4] = {2, 0, 1, SIZE_MAX}, rel_off[2] = {0, 2}, rel[2] = {1, 2}, ks[2] = {1, 5};
    et_ir_result r;
    et_error err = {0};
    int rc = et_ir_metrics(ranked, 1, 4, rel_off, rel, ks, 2, &r, &err);
    TEST_CHECK(rc == 0, "%s", err.msg);
    TEST_CLOSE(r.precision[1], 0.4, EPS, 0);
    TEST_CLOSE(r.recall[1], 1.0, EPS, 0);
    TEST_CLOSE(r.mrr10, 1.0, EPS, 0);
    TEST_CLOSE(r.ndcg10, 0.9197207891481876, EPS, 0);
    TEST_CLOSE(r.map100, 0.8333333333333334, EPS, 0);
}

static void test_bad_args(void) {
    size_t ranked[2] = {0, 1}, rel_off_bad[3] = {0, 2, 1}, rel[2] = {0, 1}, ks0[1] = {0};
    size_t rel_off[3] = {0, 1, 2}, ks9[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    et_ir_result r;
    et_error err = {0};
    TEST_CHECK(et_ir_metrics(ranked, 2, 1, rel_off_bad, rel, NULL, 0, &r, &err) == ET_EINVAL,
               "decreasing offsets rejected");
    TEST_CHECK(et_ir_metrics(ranked, 2, 1, rel_off, rel, ks0, 1, &r, &err) == ET_EINVAL, "k = 0 rejected");
    TEST_CHECK(et_ir_metrics(ranked, 2, 1, rel_off, rel, ks9, 9, &r, &err) == ET_EINVAL, "9 ks rejected");
    TEST_CHECK(et_ir_metrics(ranked, 2, 0, rel_off, rel, NULL, 0, &r, &err) == ET_EINVAL, "depth 0 rejected");
    size_t none[3] = {0, 0, 0};
    TEST_CHECK(et_ir_metrics(ranked, 2, 1, none, rel, NULL, 0, &r, &err) == ET_EINVAL,
               "no relevant documents at all rejected");
    float q[2] = {1, NAN}, dd[2] = {1, 0};
    size_t rk[1];
    TEST_CHECK(et_topk(q, 1, dd, 1, 2, 1, rk, NULL, &err) == ET_ENUMERIC, "NaN query rejected");
    TEST_CHECK(et_topk(dd, 1, q, 1, 2, 1, rk, NULL, &err) == ET_ENUMERIC, "NaN document rejected");
    TEST_CHECK(et_topk(dd, 1, dd, 1, 2, 0, rk, NULL, &err) == ET_EINVAL, "k = 0 rejected");
    TEST_CHECK(et_ir_depth((size_t[]){1, 3, 500}, 3) == 500 && et_ir_depth(NULL, 0) == 100, "depth");
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Fast top-k vs the reference on random data: the same score at every rank
 * (atol 1e-5 for unit vectors, sgemm in float vs double), and where the two
 * disagree on the index it must be a near-tie under the exact scores. */
static void compare_topk(size_t nq, size_t nd, size_t d, size_t k, int normalize) {
    float *q = malloc(nq * d * sizeof(float) + 1), *docs = malloc(nd * d * sizeof(float) + 1);
    size_t *rf = malloc(nq * k * sizeof(size_t)), *rr = malloc(nq * k * sizeof(size_t));
    float *sf = malloc(nq * k * sizeof(float)), *sr = malloc(nq * k * sizeof(float));
    for (size_t i = 0; i < nq * d; i++) q[i] = frand();
    for (size_t i = 0; i < nd * d; i++) docs[i] = frand();
    if (normalize) {
        et_l2_normalize(q, nq, d);
        et_l2_normalize(docs, nd, d);
    }
    et_error err = {0};
    int rc1 = et_topk(q, nq, docs, nd, d, k, rf, sf, &err);
    int rc2 = et_topk_ref(q, nq, docs, nd, d, k, rr, sr, &err);
    TEST_CHECK(rc1 == 0 && rc2 == 0, "topk %zux%zu d%zu k%zu: %s", nq, nd, d, k, err.msg);
    double atol = normalize ? 1e-5 : 1e-4 * (double)d;
    size_t mism = 0, bad = 0;
    double mx = 0;
    for (size_t i = 0; i < nq * k; i++) {
        if (rr[i] == SIZE_MAX || rf[i] == SIZE_MAX) {
            if (rr[i] != rf[i] || sf[i] != -INFINITY) bad++;
            continue;
        }
        double e = fabs((double)sf[i] - (double)sr[i]);
        if (e > mx) mx = e;
        if (e > atol) bad++;
        if (rf[i] != rr[i]) {
            mism++;
            /* exact score of the fast pick must tie with the reference pick */
            const float *a = q + (i / k) * d, *b = docs + rf[i] * d;
            double s = 0;
            for (size_t c = 0; c < d; c++) s += (double)a[c] * b[c];
            if (fabs(s - sr[i]) > atol) bad++;
        }
    }
    test_checks++;
    printf("topk %4zu queries x %5zu docs d %3zu k %3zu: max score err %.3g, %zu index swaps at near-ties\n",
           nq, nd, d, k, mx, mism);
    if (bad) {
        test_failures++;
        fprintf(stderr, "FAIL topk %zux%zu d%zu k%zu: %zu entries differ beyond atol %g\n", nq, nd, d, k,
                bad, atol);
    }
    free(q); free(docs); free(rf); free(rr); free(sf); free(sr);
}

/* Ties: documents are integer vectors (exact in float, so sgemm is exact),
 * with duplicates; the lower index must come first, in both kernels, across
 * block boundaries (5000 documents > one 4096-document block). */
static void test_ties(void) {
    size_t nq = 7, nd = 5000, d = 3, k = 50;
    float *q = malloc(nq * d * sizeof(float)), *docs = malloc(nd * d * sizeof(float));
    for (size_t i = 0; i < nq * d; i++) q[i] = (float)((i * 7) % 5) - 2.0f;
    for (size_t i = 0; i < nd * d; i++) docs[i] = (float)((i * 13) % 7) - 3.0f;
    size_t *rf = malloc(nq * k * sizeof(size_t)), *rr = malloc(nq * k * sizeof(size_t));
    float *sf = malloc(nq * k * sizeof(float)), *sr = malloc(nq * k * sizeof(float));
    et_error err = {0};
    TEST_CHECK(et_topk(q, nq, docs, nd, d, k, rf, sf, &err) == 0, "%s", err.msg);
    TEST_CHECK(et_topk_ref(q, nq, docs, nd, d, k, rr, sr, &err) == 0, "%s", err.msg);
    size_t diff = 0, order = 0;
    for (size_t i = 0; i < nq * k; i++) {
        if (rf[i] != rr[i] || sf[i] != sr[i]) diff++;
        if (i % k && (sf[i] > sf[i - 1] || (sf[i] == sf[i - 1] && rf[i] <= rf[i - 1]))) order++;
    }
    TEST_CHECK(diff == 0, "ties: %zu of %zu entries differ from the reference", diff, nq * k);
    TEST_CHECK(order == 0, "ties: %zu entries out of (score desc, index asc) order", order);
    free(q); free(docs); free(rf); free(rr); free(sf); free(sr);
}

/* et_topk_row on a hand example: scores 0.5 0.9 NaN 0.9 0.1, k 4
 * -> indices 1 3 0 4 (0.9 tie: lower index first; NaN last). k 7 pads. */
static void test_topk_row(void) {
    float s[5] = {0.5f, 0.9f, NAN, 0.9f, 0.1f}, top[7];
    size_t r[7];
    TEST_CHECK(et_topk_row(r, top, s, 5, 4, NULL) == 0, "row");
    TEST_CHECK(r[0] == 1 && r[1] == 3 && r[2] == 0 && r[3] == 4, "row: %zu %zu %zu %zu", r[0], r[1], r[2], r[3]);
    TEST_CHECK(top[0] == 0.9f && top[3] == 0.1f, "row scores");
    TEST_CHECK(et_topk_row(r, top, s, 5, 7, NULL) == 0, "row k > n");
    TEST_CHECK(r[4] == 2 && top[4] == -INFINITY && r[5] == SIZE_MAX && r[6] == SIZE_MAX, "row padding");
}

/* et_topk_row against a full sort on orders that stress the selection:
 * ascending (every score enters, many compactions), descending, constant
 * (all ties), few distinct values, NaN and -inf mixed in. */
static const float *ord_s;
static int ord_cmp(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    float sx = ord_s[x] != ord_s[x] ? -INFINITY : ord_s[x], sy = ord_s[y] != ord_s[y] ? -INFINITY : ord_s[y];
    if (sx > sy) return -1;
    if (sx < sy) return 1;
    return x < y ? -1 : x > y;
}
static void test_topk_row_orders(void) {
    static const size_t ns[] = {1, 50, 1000, 5000}, ks[] = {1, 7, 100, 6000};
    size_t bad = 0, cases = 0;
    for (int pat = 0; pat < 5; pat++)
        for (size_t a = 0; a < 4; a++)
            for (size_t b = 0; b < 4; b++) {
                size_t n = ns[a], k = ks[b];
                float *s = malloc(n * sizeof(float)), *top = malloc(k * sizeof(float));
                size_t *r = malloc(k * sizeof(size_t)), *ord = malloc(n * sizeof(size_t));
                for (size_t i = 0; i < n; i++) {
                    s[i] = pat == 0 ? (float)i : pat == 1 ? -(float)i : pat == 2 ? 0.5f
                         : pat == 3 ? (float)(int)(frand() * 3) : frand();
                    if (pat == 4 && i % 17 == 3) s[i] = NAN;
                    if (pat == 4 && i % 23 == 5) s[i] = -INFINITY;
                    ord[i] = i;
                }
                ord_s = s;
                qsort(ord, n, sizeof(size_t), ord_cmp);
                if (et_topk_row(r, top, s, n, k, NULL)) bad++;
                for (size_t j = 0; j < k; j++)
                    if (j < n ? r[j] != ord[j] : r[j] != SIZE_MAX) {
                        bad++;
                        break;
                    }
                cases++;
                free(s); free(top); free(r); free(ord);
            }
    TEST_CHECK(bad == 0, "et_topk_row: %zu of %zu cases differ from a full sort", bad, cases);
    printf("et_topk_row vs full sort: %zu cases (ascending, descending, ties, NaN/-inf), %zu mismatches\n", cases, bad);
}

/* Streaming: the corpus fed in uneven blocks (1, 4096, 7, the rest) gives
 * the one-shot result. sgemm may round a 1-column block differently from a
 * wide one (last bit), so: scores within 1e-6, indices equal except at
 * such near-ties. */
static void test_topk_stream(void) {
    size_t nq = 29, nd = 9000, d = 24, k = 33;
    float *q = malloc(nq * d * sizeof(float)), *docs = malloc(nd * d * sizeof(float));
    for (size_t i = 0; i < nq * d; i++) q[i] = frand();
    for (size_t i = 0; i < nd * d; i++) docs[i] = frand();
    size_t *r1 = malloc(nq * k * sizeof(size_t)), *r2 = malloc(nq * k * sizeof(size_t));
    float *s1 = malloc(nq * k * sizeof(float)), *s2 = malloc(nq * k * sizeof(float));
    et_error err = {0};
    TEST_CHECK(et_topk(q, nq, docs, nd, d, k, r1, s1, &err) == 0, "%s", err.msg);
    et_topk_state *st = NULL;
    size_t cuts[5] = {0, 1, 4097, 4104, nd};
    int rc = et_topk_begin(&st, q, nq, d, k, &err);
    for (int c = 0; c < 4 && !rc; c++) rc = et_topk_feed(st, docs + cuts[c] * d, cuts[c + 1] - cuts[c], &err);
    if (!rc) rc = et_topk_end(st, r2, s2, &err);
    TEST_CHECK(rc == 0, "stream: %s", err.msg);
    size_t diff = 0, swaps = 0;
    for (size_t i = 0; i < nq * k; i++) {
        if (fabsf(s1[i] - s2[i]) > 1e-6f) diff++;
        if (r1[i] != r2[i]) {
            swaps++;
            const float *a = q + (i / k) * d, *b1 = docs + r1[i] * d, *b2 = docs + r2[i] * d;
            double x1 = 0, x2 = 0;
            for (size_t c = 0; c < d; c++) x1 += (double)a[c] * b1[c], x2 += (double)a[c] * b2[c];
            if (fabs(x1 - x2) > 1e-6) diff++;
        }
    }
    TEST_CHECK(diff == 0, "stream: %zu of %zu entries differ from one-shot et_topk", diff, nq * k);
    printf("streamed top-k vs one-shot: %zu entries, %zu index swaps at near-ties\n", nq * k, swaps);
    docs[5 * d + 3] = INFINITY;
    TEST_CHECK(et_topk_feed(st, docs, 10, &err) == ET_ENUMERIC && strstr(err.msg, "document 9005"),
               "stream: non-finite document named by its global index: %s", err.msg);
    et_topk_free(st);
    free(q); free(docs); free(r1); free(r2); free(s1); free(s2);
}

/* Same result bit for bit with 1 thread (ours and OpenBLAS's) and with 2. */
extern void openblas_set_num_threads(int);
static void test_topk_threads(void) {
    size_t nq = 700, nd = 5000, d = 40, k = 20;
    float *q = malloc(nq * d * sizeof(float)), *docs = malloc(nd * d * sizeof(float));
    for (size_t i = 0; i < nq * d; i++) q[i] = frand();
    for (size_t i = 0; i < nd * d; i++) docs[i] = frand();
    size_t *r1 = malloc(nq * k * sizeof(size_t)), *r2 = malloc(nq * k * sizeof(size_t));
    float *s1 = malloc(nq * k * sizeof(float)), *s2 = malloc(nq * k * sizeof(float));
    et_error err = {0};
    et_set_threads(1);
    openblas_set_num_threads(1);
    int rc = et_topk(q, nq, docs, nd, d, k, r1, s1, &err);
    et_set_threads(2);
    openblas_set_num_threads(2);
    rc |= et_topk(q, nq, docs, nd, d, k, r2, s2, &err);
    et_set_threads(0);
    size_t diff = 0;
    for (size_t i = 0; i < nq * k; i++) diff += r1[i] != r2[i] || s1[i] != s2[i];
    TEST_CHECK(rc == 0 && diff == 0, "1 vs 2 threads: %zu of %zu entries differ", diff, nq * k);
    free(q); free(docs); free(r1); free(r2); free(s1); free(s2);
}

int main(void) {
    test_hand_metrics();
    test_map_normalization();
    test_padding();
    test_bad_args();
    test_topk_row();
    test_topk_row_orders();
    test_topk_stream();
    test_topk_threads();
    test_ties();
    compare_topk(1, 1, 1, 1, 1);
    compare_topk(3, 2, 5, 5, 1);        /* k > nd: padding */
    compare_topk(17, 333, 7, 10, 1);
    compare_topk(600, 4100, 33, 100, 1); /* crosses query (512) and document (4096) blocks */
    compare_topk(5, 9000, 64, 1, 0);     /* unnormalized */
    compare_topk(0, 10, 4, 3, 1);        /* no queries */
    compare_topk(4, 0, 4, 3, 1);         /* empty corpus */
    et_set_threads(1);
    compare_topk(33, 777, 17, 9, 1);
    et_set_threads(0);
    return test_summary("test_eval_metrics");
}
