/* bm25.c - Okapi BM25 index and search; see bm25.h for the formula and the
 * tokenization. The index is an inverted file in CSR form: for each term its
 * postings (document, term frequency), documents ascending. */
#include "bm25.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "eval_metrics.h"
#include "strmap.h"
#include "threads.h"

struct et_bm25 {
    et_bm25_opts o;
    size_t nd, nt;
    et_strmap terms;     /* term -> id */
    double *idf;         /* [nt] */
    size_t *post_off;    /* [nt + 1] */
    uint32_t *post_doc;  /* [post_off[nt]] */
    uint32_t *post_tf;   /* [post_off[nt]] */
    float *norm;         /* [nd] k1 * (1 - b + b * |D| / avgdl) */
    double avgdl;
};

void et_bm25_opts_default(et_bm25_opts *o) {
    o->k1 = 1.2;
    o->b = 0.75;
    o->stopwords = 1;
}

size_t et_bm25_n_docs(const et_bm25 *ix) { return ix->nd; }
size_t et_bm25_n_terms(const et_bm25 *ix) { return ix->nt; }

/* ---- tokenizer --------------------------------------------------------------------- */

/* Lucene's EnglishAnalyzer default stop set. */
static const char *const stop_words[] = {
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they",
    "this", "to", "was", "will", "with"};

static int is_stop(const char *t, size_t n) {
    if (n > 5) return 0;
    for (size_t i = 0; i < ET_ARRAY_LEN(stop_words); i++)
        if (strlen(stop_words[i]) == n && !memcmp(stop_words[i], t, n)) return 1;
    return 0;
}

/* Characters that are one token each (no spaces between words in these scripts). */
static int is_cjk(int32_t c) {
    return (c >= 0x3040 && c <= 0x30FF) ||   /* Hiragana, Katakana */
           (c >= 0x3400 && c <= 0x4DBF) ||   /* CJK extension A */
           (c >= 0x4E00 && c <= 0x9FFF) ||   /* CJK unified ideographs */
           (c >= 0xF900 && c <= 0xFAFF) ||   /* CJK compatibility ideographs */
           (c >= 0x20000 && c <= 0x3FFFF);   /* CJK extensions B.. */
}

static int is_alnum_cat(int32_t c) {
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return 1;
    default:
        return 0;
    }
}

typedef struct {
    et_buf *out;
    size_t start;   /* offset of the current token in out */
    size_t count;
    int stopwords;
} tok_state;

static int tok_end(tok_state *s, et_error *err) {
    size_t n = s->out->len - s->start;
    if (!n) return ET_OK;
    if (s->stopwords && is_stop(s->out->data + s->start, n)) {
        s->out->len = s->start;
        return ET_OK;
    }
    int rc = et_buf_append(s->out, "", 1, err);
    if (rc) return rc;
    s->count++;
    s->start = s->out->len;
    return ET_OK;
}

static int tok_put(tok_state *s, int32_t c, et_error *err) {
    utf8proc_uint8_t u[4];
    utf8proc_ssize_t n = utf8proc_encode_char(c, u);
    return et_buf_append(s->out, u, (size_t)n, err);
}

int et_bm25_tokenize(const char *text, size_t len, int stopwords, et_buf *out, size_t *n_tokens,
                     et_error *err) {
    const utf8proc_option_t fold = UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT | UTF8PROC_CASEFOLD |
                                   UTF8PROC_STRIPMARK | UTF8PROC_IGNORE;
    tok_state s = {out, out->len, 0, stopwords};
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
    size_t i = 0;
    int rc = ET_OK;
    while (i < len && !rc) {
        utf8proc_int32_t cp;
        size_t avail = ET_MIN(len - i, (size_t)4);
        utf8proc_ssize_t n = utf8proc_iterate(p + i, (utf8proc_ssize_t)avail, &cp);
        if (n <= 0) { /* invalid UTF-8: one byte, a separator */
            rc = tok_end(&s, err);
            i++;
            continue;
        }
        i += (size_t)n;
        if (cp < 128) { /* ASCII fast path */
            if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) {
                char c = (char)cp;
                rc = et_buf_append(out, &c, 1, err);
            } else if (cp >= 'A' && cp <= 'Z') {
                char c = (char)(cp - 'A' + 'a');
                rc = et_buf_append(out, &c, 1, err);
            } else {
                rc = tok_end(&s, err);
            }
            continue;
        }
        if (cp >= 0xAC00 && cp <= 0xD7A3) { /* Hangul syllable: kept whole, not split into jamo */
            rc = tok_put(&s, cp, err);
            continue;
        }
        utf8proc_int32_t dec[32];
        int bc = 0;
        utf8proc_ssize_t m = utf8proc_decompose_char(cp, dec, 32, fold, &bc);
        if (m < 0 || m > 32) {
            rc = tok_end(&s, err);
            continue;
        }
        for (utf8proc_ssize_t j = 0; j < m && !rc; j++) {
            int32_t c = dec[j];
            if (is_cjk(c)) {
                if (!(rc = tok_end(&s, err)) && !(rc = tok_put(&s, c, err))) rc = tok_end(&s, err);
            } else if (is_alnum_cat(c)) {
                rc = tok_put(&s, c, err);
            } else {
                rc = tok_end(&s, err);
            }
        }
    }
    if (!rc) rc = tok_end(&s, err);
    if (rc) return rc;
    if (n_tokens) *n_tokens = s.count;
    return ET_OK;
}

/* ---- index -------------------------------------------------------------------------- */

void et_bm25_free(et_bm25 *ix) {
    if (!ix) return;
    et_strmap_free(&ix->terms);
    free(ix->idf);
    free(ix->post_off);
    free(ix->post_doc);
    free(ix->post_tf);
    free(ix->norm);
    free(ix);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Grows *arr (elements of `size` bytes) to hold at least `need`. */
static int grow(void **arr, size_t *cap, size_t need, size_t size, et_error *err) {
    if (need <= *cap) return ET_OK;
    size_t nc = *cap ? *cap : 1024;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) return et_err_set(err, ET_ENOMEM, "bm25: index too large");
        nc *= 2;
    }
    void *p = et_realloc_n(*arr, nc, size, err);
    if (!p) return ET_ENOMEM;
    *arr = p;
    *cap = nc;
    return ET_OK;
}

int et_bm25_build(et_bm25 **out, const char *const *docs, size_t nd, const et_bm25_opts *opts,
                  et_error *err) {
    *out = NULL;
    if (nd >= UINT32_MAX) return et_err_set(err, ET_EINVAL, "bm25: too many documents (%zu)", nd);
    et_bm25 *ix = et_calloc(1, sizeof(*ix), err);
    if (!ix) return ET_ENOMEM;
    if (opts) ix->o = *opts;
    else et_bm25_opts_default(&ix->o);
    if (!(ix->o.k1 >= 0) || !(ix->o.b >= 0 && ix->o.b <= 1)) {
        double k1 = ix->o.k1, b = ix->o.b;
        free(ix);
        return et_err_set(err, ET_EINVAL, "bm25: k1 must be >= 0 and b in [0, 1] (got %g, %g)", k1, b);
    }
    et_strmap_init(&ix->terms);
    ix->nd = nd;

    /* pass 1: forward index, per document its (term, tf) pairs */
    et_buf toks = {0};
    uint32_t *ids = NULL, *fw_term = NULL, *fw_tf = NULL;
    size_t cap_ids = 0, cap_fw = 0, cap_tf = 0, n_fw = 0;
    size_t *fw_off = et_malloc_n(nd + 1, sizeof(size_t), err);
    uint32_t *dl = et_malloc_n(nd ? nd : 1, sizeof(uint32_t), err);
    int rc = (!fw_off || !dl) ? ET_ENOMEM : ET_OK;
    double total = 0;
    for (size_t d = 0; d < nd && !rc; d++) {
        fw_off[d] = n_fw;
        toks.len = 0;
        size_t nt = 0;
        const char *text = docs[d] ? docs[d] : "";
        if ((rc = et_bm25_tokenize(text, strlen(text), ix->o.stopwords, &toks, &nt, err))) break;
        if (nt > UINT32_MAX) {
            rc = et_err_set(err, ET_EINVAL, "bm25: document %zu has too many tokens", d);
            break;
        }
        dl[d] = (uint32_t)nt;
        total += (double)nt;
        if ((rc = grow((void **)&ids, &cap_ids, nt, sizeof(uint32_t), err))) break;
        const char *t = toks.data;
        for (size_t j = 0; j < nt; j++) {
            size_t tl = strlen(t);
            int64_t id = 0;
            int r = et_strmap_put_new(&ix->terms, t, tl, (int64_t)ix->nt, &id, err);
            if (r < 0) {
                rc = err ? err->code : ET_ENOMEM;
                break;
            }
            if (r == 0) {
                id = (int64_t)ix->nt++;
                if (ix->nt >= UINT32_MAX) {
                    rc = et_err_set(err, ET_EINVAL, "bm25: too many distinct terms");
                    break;
                }
            }
            ids[j] = (uint32_t)id;
            t += tl + 1;
        }
        if (rc) break;
        if (nt > 1) qsort(ids, nt, sizeof(uint32_t), cmp_u32);
        for (size_t j = 0; j < nt;) {
            size_t e = j;
            while (e < nt && ids[e] == ids[j]) e++;
            if ((rc = grow((void **)&fw_term, &cap_fw, n_fw + 1, sizeof(uint32_t), err))) break;
            if ((rc = grow((void **)&fw_tf, &cap_tf, n_fw + 1, sizeof(uint32_t), err))) break;
            fw_term[n_fw] = ids[j];
            fw_tf[n_fw] = (uint32_t)(e - j);
            n_fw++;
            j = e;
        }
    }
    et_buf_free(&toks);
    free(ids);
    if (!rc) {
        fw_off[nd] = n_fw;
        ix->avgdl = nd ? total / (double)nd : 0;
        /* pass 2: transpose to term-major postings */
        ix->idf = et_malloc_n(ix->nt ? ix->nt : 1, sizeof(double), err);
        ix->post_off = et_calloc(ix->nt + 1, sizeof(size_t), err);
        ix->post_doc = et_malloc_n(n_fw ? n_fw : 1, sizeof(uint32_t), err);
        ix->post_tf = et_malloc_n(n_fw ? n_fw : 1, sizeof(uint32_t), err);
        ix->norm = et_malloc_n(nd ? nd : 1, sizeof(float), err);
        if (!ix->idf || !ix->post_off || !ix->post_doc || !ix->post_tf || !ix->norm) rc = ET_ENOMEM;
    }
    if (!rc) {
        for (size_t p = 0; p < n_fw; p++) ix->post_off[fw_term[p] + 1]++;
        for (size_t t = 0; t < ix->nt; t++) {
            double df = (double)ix->post_off[t + 1];
            ix->idf[t] = log(1.0 + ((double)nd - df + 0.5) / (df + 0.5));
            ix->post_off[t + 1] += ix->post_off[t];
        }
        size_t *fill = et_malloc_n(ix->nt ? ix->nt : 1, sizeof(size_t), err);
        if (!fill) rc = ET_ENOMEM;
        else {
            memcpy(fill, ix->post_off, ix->nt * sizeof(size_t));
            for (size_t d = 0; d < nd; d++) /* documents ascending within each term */
                for (size_t p = fw_off[d]; p < fw_off[d + 1]; p++) {
                    size_t at = fill[fw_term[p]]++;
                    ix->post_doc[at] = (uint32_t)d;
                    ix->post_tf[at] = fw_tf[p];
                }
            free(fill);
            double avg = ix->avgdl > 0 ? ix->avgdl : 1.0;
            for (size_t d = 0; d < nd; d++)
                ix->norm[d] = (float)(ix->o.k1 * (1.0 - ix->o.b + ix->o.b * (double)dl[d] / avg));
        }
    }
    free(fw_off);
    free(fw_term);
    free(fw_tf);
    free(dl);
    if (rc) {
        et_bm25_free(ix);
        return rc;
    }
    *out = ix;
    return ET_OK;
}

/* ---- search -------------------------------------------------------------------------- */

/* acc[nd] = BM25 scores of the query whose tokens are in toks. */
static int score_into(const et_bm25 *ix, const char *query, et_buf *toks, double *acc, et_error *err) {
    toks->len = 0;
    size_t nt = 0;
    const char *q = query ? query : "";
    int rc = et_bm25_tokenize(q, strlen(q), ix->o.stopwords, toks, &nt, err);
    if (rc) return rc;
    memset(acc, 0, ix->nd * sizeof(double));
    const double k1p1 = ix->o.k1 + 1.0;
    const char *t = toks->data;
    for (size_t j = 0; j < nt; j++) {
        size_t tl = strlen(t);
        int64_t id;
        if (et_strmap_get(&ix->terms, t, tl, &id)) {
            double idf = ix->idf[id];
            for (size_t p = ix->post_off[id]; p < ix->post_off[id + 1]; p++) {
                double tf = (double)ix->post_tf[p];
                uint32_t d = ix->post_doc[p];
                acc[d] += idf * tf * k1p1 / (tf + (double)ix->norm[d]);
            }
        }
        t += tl + 1;
    }
    return ET_OK;
}

int et_bm25_score(const et_bm25 *ix, const char *query, float *scores, et_error *err) {
    et_buf toks = {0};
    double *acc = et_malloc_n(ix->nd ? ix->nd : 1, sizeof(double), err);
    if (!acc) return ET_ENOMEM;
    int rc = score_into(ix, query, &toks, acc, err);
    if (!rc)
        for (size_t d = 0; d < ix->nd; d++) scores[d] = (float)acc[d];
    free(acc);
    et_buf_free(&toks);
    return rc;
}

typedef struct {
    const et_bm25 *ix;
    const char *const *queries;
    size_t nq, k;
    size_t *ranked;
    float *scores;
    pthread_mutex_t mu;
    int rc;
    et_error err;
} bm25_task;

static void bm25_topk_task(void *arg, int ith, int nth) {
    bm25_task *t = arg;
    long lo, hi;
    et_split((long)t->nq, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    et_error err = {0};
    et_buf toks = {0};
    size_t nd = t->ix->nd;
    double *acc = et_malloc_n(nd ? nd : 1, sizeof(double), &err);
    float *sc = et_malloc_n(nd ? nd : 1, sizeof(float), &err);
    int rc = (!acc || !sc) ? ET_ENOMEM : ET_OK;
    for (long i = lo; i < hi && !rc; i++) {
        if ((rc = score_into(t->ix, t->queries[i], &toks, acc, &err))) break;
        for (size_t d = 0; d < nd; d++) sc[d] = (float)acc[d];
        rc = et_topk_row(t->ranked + (size_t)i * t->k, t->scores ? t->scores + (size_t)i * t->k : NULL, sc, nd,
                         t->k, &err);
    }
    free(acc);
    free(sc);
    et_buf_free(&toks);
    if (rc) {
        pthread_mutex_lock(&t->mu);
        if (!t->rc) {
            t->rc = rc;
            t->err = err;
        }
        pthread_mutex_unlock(&t->mu);
    }
}

int et_bm25_topk(const et_bm25 *ix, const char *const *queries, size_t nq, size_t k, size_t *ranked,
                 float *scores, et_error *err) {
    if (!k) return et_err_set(err, ET_EINVAL, "bm25: k must be >= 1");
    size_t tmp;
    if (!et_size_mul(nq, k, &tmp)) return et_err_set(err, ET_EINVAL, "bm25: size overflow");
    bm25_task t = {.ix = ix, .queries = queries, .nq = nq, .k = k, .ranked = ranked, .scores = scores};
    pthread_mutex_init(&t.mu, NULL);
    et_parallel(bm25_topk_task, &t);
    pthread_mutex_destroy(&t.mu);
    if (t.rc) {
        if (err) *err = t.err;
        return t.rc;
    }
    return ET_OK;
}
