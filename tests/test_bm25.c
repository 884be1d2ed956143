/* test_bm25.c - BM25 scores against a worked example computed by hand, the
 * tokenizer, and top-k search against a full sort of the plain scores. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bm25.h"
#include "eval_metrics.h"
#include "test_util.h"

static void check_tokens(const char *text, int stop, const char *want /* space separated */) {
    et_buf b = {0};
    size_t n = 0;
    et_error err = {0};
    int rc = et_bm25_tokenize(text, strlen(text), stop, &b, &n, &err);
    TEST_CHECK(rc == 0, "tokenize: %s", err.msg);
    et_buf got = {0};
    const char *t = b.data;
    for (size_t i = 0; i < n; i++) {
        if (i) et_buf_puts(&got, " ", NULL);
        et_buf_puts(&got, t, NULL);
        t += strlen(t) + 1;
    }
    TEST_CHECK(!strcmp(got.len ? got.data : "", want), "tokens of \"%s\": got [%s], want [%s]", text,
               got.len ? got.data : "", want);
    et_buf_free(&b);
    et_buf_free(&got);
}

static void test_tokenizer(void) {
    check_tokens("Hello, WORLD! x2y 3.14", 0, "hello world x2y 3 14");
    /* ligature (PDF text), accents, full-width letters, German sharp s (case fold) */
    check_tokens("\xef\xac\x81le Caf\xc3\xa9 \xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3 Stra\xc3\x9f" "e", 0,
                 "file cafe abc strasse");
    /* CJK: one token per ideograph; Hangul stays a word */
    check_tokens("\xe6\x9d\xb1\xe4\xba\xac is \xed\x95\x9c\xea\xb5\xad", 0,
                 "\xe6\x9d\xb1 \xe4\xba\xac is \xed\x95\x9c\xea\xb5\xad");
    /* stop words (Lucene's English set), invalid UTF-8 separates */
    check_tokens("The cat is on the mat, and it sat.", 1, "cat mat sat");
    check_tokens("ab\xff" "cd\xc3", 0, "ab cd");
    check_tokens("", 1, "");
    check_tokens("the a an", 1, "");
}

/* Worked example, k1 = 1.2, b = 0.75, stop words dropped:
 *   d0 "The cat sat on the mat."  -> cat sat mat   |D| = 3
 *   d1 "The dog sat!"             -> dog sat       |D| = 2
 *   d2 "Cats and dogs"            -> cats dogs     |D| = 2    avgdl = 7/3
 * query "cat sat":
 *   idf(cat) = ln(1 + (3 - 1 + 0.5)/(1 + 0.5)) = ln(8/3) = 0.9808292530117263
 *   idf(sat) = ln(1 + (3 - 2 + 0.5)/(2 + 0.5)) = ln(1.6) = 0.47000362924573563
 *   d0: tf 1, norm = 1.2 (0.25 + 0.75 * 3/(7/3)) = 1.4571428571428573,
 *       tf (k1+1)/(tf + norm) = 2.2 / 2.4571428571428573 = 0.8953488372093024
 *       score = (0.9808292530117263 + 0.47000362924573563) * 0.8953488372093024
 *             = 1.2990015341142391
 *   d1: norm = 1.2 (0.25 + 0.75 * 2/(7/3)) = 1.0714285714285714, 2.2 / 2.0714285714285714
 *       = 1.0620689655172415; score = 0.47000362924573563 * 1.0620689655172415 = 0.49917626830236755
 *   d2: 0 ("cats" is not "cat": no stemming)
 * Without stop words, query "the sat": |D| = 6, 3, 3, avgdl = 4; idf(the) = idf(sat) = ln(1.6)
 *   d0: the tf 2: 4.4 / (2 + 1.2 (0.25 + 0.75 * 6/4)) = 4.4/3.65 = 1.2054794520547945
 *       sat tf 1: 2.2 / 2.65 = 0.8301886792452831 -> (sum) * ln 1.6 = 0.9567714096509212
 *   d1: the, sat tf 1 each: 2 * 2.2 / (1 + 1.2 (0.25 + 0.75 * 3/4)) = 4.4/1.975
 *       -> * ln 1.6 = 1.0470966930031578
 *   d2: 0 */
static void test_worked_example(void) {
    const char *docs[3] = {"The cat sat on the mat.", "The dog sat!", "Cats and dogs"};
    et_bm25 *ix = NULL;
    et_error err = {0};
    TEST_CHECK(et_bm25_build(&ix, docs, 3, NULL, &err) == 0, "build: %s", err.msg);
    if (!ix) return;
    TEST_CHECK(et_bm25_n_terms(ix) == 6, "terms %zu, want 6 (cat sat mat dog cats dogs)", et_bm25_n_terms(ix));
    float s[3];
    TEST_CHECK(et_bm25_score(ix, "cat sat", s, &err) == 0, "%s", err.msg);
    TEST_CLOSE(s[0], 1.2990015341142391, 0, 1e-6);
    TEST_CLOSE(s[1], 0.49917626830236755, 0, 1e-6);
    TEST_CLOSE(s[2], 0.0, 0, 0);
    /* a repeated query term counts twice; unknown terms and stop words count nothing */
    TEST_CHECK(et_bm25_score(ix, "sat SAT the zebra", s, &err) == 0, "%s", err.msg);
    TEST_CLOSE(s[1], 2 * 0.49917626830236755, 0, 1e-6);
    size_t r[4];
    float top[4];
    const char *qs[1] = {"cat sat"};
    TEST_CHECK(et_bm25_topk(ix, qs, 1, 4, r, top, &err) == 0, "%s", err.msg);
    TEST_CHECK(r[0] == 0 && r[1] == 1 && r[2] == 2 && r[3] == SIZE_MAX, "topk %zu %zu %zu %zu", r[0], r[1],
               r[2], r[3]);
    et_bm25_free(ix);

    et_bm25_opts o;
    et_bm25_opts_default(&o);
    o.stopwords = 0;
    TEST_CHECK(et_bm25_build(&ix, docs, 3, &o, &err) == 0, "build: %s", err.msg);
    if (!ix) return;
    TEST_CHECK(et_bm25_score(ix, "the sat", s, &err) == 0, "%s", err.msg);
    TEST_CLOSE(s[0], 0.9567714096509212, 0, 1e-6);
    TEST_CLOSE(s[1], 1.0470966930031578, 0, 1e-6);
    TEST_CLOSE(s[2], 0.0, 0, 0);
    et_bm25_free(ix);

    o.k1 = -1;
    TEST_CHECK(et_bm25_build(&ix, docs, 3, &o, &err) == ET_EINVAL, "negative k1 rejected");
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static unsigned rnd(unsigned n) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* Random texts over a 60-word vocabulary: threaded top-k must equal a full sort
 * of et_bm25_score (score descending, index ascending) exactly. */
static void test_topk_vs_sort(void) {
    enum { ND = 701, NQ = 37, K = 25 };
    static char dbuf[ND][400], qbuf[NQ][64];
    const char *docs[ND], *qs[NQ];
    for (int d = 0; d < ND; d++) {
        int n = (int)rnd(40), o = 0;
        for (int j = 0; j < n; j++) o += snprintf(dbuf[d] + o, sizeof dbuf[d] - (size_t)o, "w%u ", rnd(60));
        docs[d] = dbuf[d];
    }
    for (int q = 0; q < NQ; q++) {
        int n = 1 + (int)rnd(5), o = 0;
        for (int j = 0; j < n; j++) o += snprintf(qbuf[q] + o, sizeof qbuf[q] - (size_t)o, "w%u ", rnd(70));
        qs[q] = qbuf[q];
    }
    et_bm25 *ix = NULL;
    et_error err = {0};
    TEST_CHECK(et_bm25_build(&ix, docs, ND, NULL, &err) == 0, "%s", err.msg);
    if (!ix) return;
    size_t *r = malloc(NQ * K * sizeof(size_t));
    float *top = malloc(NQ * K * sizeof(float)), s[ND];
    TEST_CHECK(et_bm25_topk(ix, qs, NQ, K, r, top, &err) == 0, "%s", err.msg);
    size_t bad = 0;
    for (int q = 0; q < NQ; q++) {
        et_bm25_score(ix, qs[q], s, &err);
        /* reference: selection sort by (score desc, index asc) */
        unsigned char used[ND] = {0};
        for (int j = 0; j < K; j++) {
            int best = -1;
            for (int d = 0; d < ND; d++)
                if (!used[d] && (best < 0 || s[d] > s[best])) best = d;
            used[best] = 1;
            if (r[q * K + j] != (size_t)best || top[q * K + j] != s[best]) bad++;
        }
    }
    TEST_CHECK(bad == 0, "bm25 top-k: %d entries differ from the full sort", (int)bad);
    printf("bm25 top-k vs full sort: %d queries x %d docs, k %d, %zu mismatches\n", NQ, ND, K, bad);
    free(r);
    free(top);
    et_bm25_free(ix);

    /* empty corpus: everything padded */
    TEST_CHECK(et_bm25_build(&ix, NULL, 0, NULL, &err) == 0, "empty build: %s", err.msg);
    size_t r2[2];
    TEST_CHECK(et_bm25_topk(ix, qs, 1, 2, r2, NULL, &err) == 0 && r2[0] == SIZE_MAX && r2[1] == SIZE_MAX,
               "empty corpus top-k");
    et_bm25_free(ix);
}

int main(void) {
    test_tokenizer();
    test_worked_example();
    test_topk_vs_sort();
    return test_summary("test_bm25");
}
