/* bench_eval.c - speed of `embtune eval` with cached embeddings: exact top-k
 * + metrics for NQ queries over ND passages (random unit vectors), and BM25
 * over a synthetic Zipfian text corpus of the same size.
 *
 *   bench_eval OUT_DIR [ND NQ DIM]     (default 10000 1000 384)
 *
 * Writes OUT_DIR/eval_{queries,docs}.f32 ([n, dim] float32), eval_rel.u32
 * (relevant doc per query) and eval_{docs,queries}.txt (one BM25 text per
 * line) for the Python peers, and prints one JSON object with the timings. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bm25.h"
#include "eval_metrics.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return rng;
}
static double unif(void) { return (double)(next() >> 11) / 9007199254740992.0; }
static float gauss(void) {
    double u = unif() + 1e-300, v = unif();
    return (float)(sqrt(-2 * log(u)) * cos(2 * M_PI * v));
}

static int dump(const char *dir, const char *name, const void *p, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) != 0 || w != n;
}

/* Zipf word index in [0, V) by inverse CDF over a precomputed table. */
static size_t zipf(const double *cdf, size_t V) {
    double u = unif();
    size_t lo = 0, hi = V - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cdf[mid] < u) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_eval OUT_DIR [ND NQ DIM]\n");
        return 2;
    }
    const char *dir = argv[1];
    size_t nd = argc > 2 ? (size_t)atol(argv[2]) : 10000;
    size_t nq = argc > 3 ? (size_t)atol(argv[3]) : 1000;
    size_t dim = argc > 4 ? (size_t)atol(argv[4]) : 384;
    size_t depth = 100, ks[4] = {1, 3, 5, 10};
    et_error err = {0};

    /* embeddings: queries are noisy copies of their relevant passage, so the
     * metrics are in a realistic range (not all 1, not all 0) */
    float *docs = malloc(nd * dim * sizeof(float)), *q = malloc(nq * dim * sizeof(float));
    size_t *rel = malloc(nq * sizeof(size_t)), *rel_off = malloc((nq + 1) * sizeof(size_t));
    uint32_t *rel32 = malloc(nq * sizeof(uint32_t));
    for (size_t i = 0; i < nd * dim; i++) docs[i] = gauss();
    et_l2_normalize(docs, nd, dim);
    for (size_t i = 0; i < nq; i++) {
        rel[i] = (size_t)(next() % nd);
        rel32[i] = (uint32_t)rel[i];
        rel_off[i] = i;
        for (size_t c = 0; c < dim; c++) q[i * dim + c] = docs[rel[i] * dim + c] + 0.3f * gauss();
    }
    rel_off[nq] = nq;
    et_l2_normalize(q, nq, dim);
    if (dump(dir, "eval_docs.f32", docs, nd * dim * sizeof(float)) ||
        dump(dir, "eval_queries.f32", q, nq * dim * sizeof(float)) ||
        dump(dir, "eval_rel.u32", rel32, nq * sizeof(uint32_t))) {
        fprintf(stderr, "bench_eval: cannot write into %s\n", dir);
        return 1;
    }

    size_t *ranked = malloc(nq * depth * sizeof(size_t));
    float *scores = malloc(nq * depth * sizeof(float));
    et_ir_result m;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = et_now();
        if (et_topk(q, nq, docs, nd, dim, depth, ranked, scores, &err) ||
            et_ir_metrics(ranked, nq, depth, rel_off, rel, ks, 4, &m, &err)) {
            fprintf(stderr, "bench_eval: %s\n", err.msg);
            return 1;
        }
        double t = et_now() - t0;
        if (t < best) best = t;
    }
    /* the plain reference kernel on a slice of the queries */
    size_t nref = nq < 50 ? nq : 50;
    double t0 = et_now();
    if (et_topk_ref(q, nref, docs, nd, dim, depth, ranked, scores, &err)) return 1;
    double tref = (et_now() - t0) * (double)nq / (double)nref;

    /* BM25: ND passages of 40-80 words, NQ queries of 4-10 words, Zipf over 20k words */
    size_t V = 20000;
    double *cdf = malloc(V * sizeof(double)), z = 0;
    for (size_t i = 0; i < V; i++) z += 1.0 / (double)(i + 1);
    double acc = 0;
    for (size_t i = 0; i < V; i++) cdf[i] = (acc += 1.0 / (double)(i + 1) / z);
    char **dtext = malloc(nd * sizeof(char *)), **qtext = malloc(nq * sizeof(char *));
    et_buf all = {0};
    for (size_t d = 0; d < nd; d++) {
        et_buf b = {0};
        size_t n = 40 + next() % 41;
        for (size_t j = 0; j < n; j++) et_buf_printf(&b, NULL, "%sw%zu", j ? " " : "", zipf(cdf, V));
        dtext[d] = b.data;
        et_buf_printf(&all, NULL, "%s\n", b.data);
    }
    dump(dir, "eval_docs.txt", all.data, all.len);
    all.len = 0;
    for (size_t i = 0; i < nq; i++) {
        /* words of the relevant passage, some replaced by random ones */
        et_buf b = {0};
        size_t n = 4 + next() % 7;
        const char *src = dtext[rel[i]];
        size_t nw = 1;
        for (const char *p = src; *p; p++) nw += *p == ' ';
        for (size_t j = 0; j < n; j++) {
            size_t w = next() % nw, k = 0;
            const char *p = src;
            while (k < w) k += *p++ == ' ';
            const char *e = strchr(p, ' ');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if (next() % 4 == 0) et_buf_printf(&b, NULL, "%sw%zu", j ? " " : "", zipf(cdf, V));
            else et_buf_printf(&b, NULL, "%s%.*s", j ? " " : "", (int)len, p);
        }
        qtext[i] = b.data;
        et_buf_printf(&all, NULL, "%s\n", b.data);
    }
    dump(dir, "eval_queries.txt", all.data, all.len);
    et_buf_free(&all);
    et_bm25 *ix = NULL;
    t0 = et_now();
    if (et_bm25_build(&ix, (const char *const *)dtext, nd, NULL, &err)) {
        fprintf(stderr, "bench_eval: %s\n", err.msg);
        return 1;
    }
    double tb_build = et_now() - t0;
    et_ir_result mb;
    double tb = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        t0 = et_now();
        if (et_bm25_topk(ix, (const char *const *)qtext, nq, depth, ranked, scores, &err) ||
            et_ir_metrics(ranked, nq, depth, rel_off, rel, ks, 4, &mb, &err)) {
            fprintf(stderr, "bench_eval: %s\n", err.msg);
            return 1;
        }
        double t = et_now() - t0;
        if (t < tb) tb = t;
    }

    printf("{\"nd\": %zu, \"nq\": %zu, \"dim\": %zu, \"threads\": %d,\n"
           " \"topk_metrics_s\": %.6f, \"topk_qps\": %.1f, \"topk_ref_qps\": %.1f,\n"
           " \"acc1\": %.6f, \"acc5\": %.6f, \"mrr10\": %.6f, \"ndcg10\": %.6f, \"map100\": %.6f,\n"
           " \"bm25_build_s\": %.6f, \"bm25_search_s\": %.6f, \"bm25_qps\": %.1f,\n"
           " \"bm25_acc5\": %.6f, \"bm25_mrr10\": %.6f}\n",
           nd, nq, dim, et_get_threads(), best, (double)nq / best, (double)nq / tref, m.accuracy[0],
           m.accuracy[2], m.mrr10, m.ndcg10, m.map100, tb_build, tb, (double)nq / tb, mb.accuracy[2], mb.mrr10);
    for (size_t d = 0; d < nd; d++) free(dtext[d]);
    for (size_t i = 0; i < nq; i++) free(qtext[i]);
    free(dtext); free(qtext); free(cdf);
    et_bm25_free(ix);
    free(docs); free(q); free(rel); free(rel_off); free(rel32); free(ranked); free(scores);
    return 0;
}
