/* test_ingest_corpus.c - ingest the real PDFs in ../shared/corpus and check
 * the chunks against poppler-utils' pdftotext.
 *
 * Coverage method: both texts are cut into normalized words (maximal runs of
 * Unicode letters and digits, lower-cased; so "R-project.org" is "r project
 * org" on both sides, whatever each side did with the line break in it). The
 * covered fraction is LCS(reference words, chunk words) / reference words,
 * with the chunks of a document concatenated in order (overlaps only add
 * words, which an LCS ignores). LCS by Hyyro's bit-parallel algorithm.
 * Two references: the raw pdftotext text, and the same without page furniture
 * (lines among the first/last 2 of a page that repeat, digits ignored, on >= 3
 * pages, or that are bare page numbers) - identified here independently of
 * the library. ingest removes furniture on purpose, so the 99% bar applies to
 * the second; the raw coverage must stay >= 97.5%. Both understate: ingest
 * also drops chapter headers that recur on only 2 pages (running-header
 * slots), and rebuilds monospace tables row by row where pdftotext prints
 * them column by column (an LCS counts only one column of such a table).
 * Also: no chunk over the budget, none empty, n_tokens equal to the count of
 * the text (word estimate, then bge's WordPiece tokenizer), pages within the
 * document and non-decreasing, output byte-identical across runs and thread
 * counts.
 */
#include <poppler.h>
#include <utf8proc.h>

#include "chunks.h"
#include "ingest.h"
#include "strmap.h"
#include "chunk.h"
#include "test_util.h"

static char outdir[512];

typedef struct ids {
    int32_t *v;
    size_t n, cap;
} ids;

static void ids_push(ids *a, int32_t x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 4096;
        a->v = realloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = x;
}

/* Appends the normalized words of s[0..n) as ids from `vocab`. */
static void words(et_strmap *vocab, const char *s, size_t n, ids *out) {
    char w[256];
    size_t k = 0;
    for (size_t i = 0; i <= n;) {
        utf8proc_int32_t cp = 0;
        utf8proc_ssize_t l = i < n ? utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp) : 0;
        if (i < n && l <= 0) l = 1, cp = 0xFFFD;
        int cat = i < n ? utf8proc_category(cp) : 0;
        int wordch = i < n && ((cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                               (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO));
        if (wordch && k + 4 < sizeof(w)) {
            cp = utf8proc_tolower(cp);
            k += (size_t)utf8proc_encode_char(cp, (utf8proc_uint8_t *)w + k);
        } else if (k) {
            int64_t id;
            if (!et_strmap_get(vocab, w, k, &id)) {
                id = (int64_t)vocab->count;
                et_strmap_put(vocab, w, k, id, NULL);
            }
            ids_push(out, (int32_t)id);
            k = 0;
        }
        if (i >= n) break;
        i += (size_t)l;
    }
}

/* LCS length of a and b (Hyyro 2004, bit-parallel over a). */
static size_t lcs(const ids *a, const ids *b, size_t vocab) {
    size_t W = (a->n + 63) / 64;
    uint64_t *V = malloc(W * sizeof(uint64_t));
    int64_t *row = malloc(vocab * sizeof(int64_t)); /* symbol -> row of masks, -1 none */
    size_t nrows = 0;
    for (size_t i = 0; i < vocab; i++) row[i] = -1;
    for (size_t i = 0; i < a->n; i++)
        if (row[a->v[i]] < 0) row[a->v[i]] = (int64_t)nrows++;
    uint64_t *M = calloc(nrows * W, sizeof(uint64_t));
    for (size_t i = 0; i < a->n; i++) M[(size_t)row[a->v[i]] * W + i / 64] |= 1ull << (i % 64);
    for (size_t w = 0; w < W; w++) V[w] = ~0ull;
    for (size_t j = 0; j < b->n; j++) {
        if (b->v[j] >= (int32_t)vocab || row[b->v[j]] < 0) continue;
        const uint64_t *m = M + (size_t)row[b->v[j]] * W;
        uint64_t carry = 0, borrow = 0;
        for (size_t w = 0; w < W; w++) {
            uint64_t v = V[w], u = v & m[w];
            uint64_t sum = v + u, s2 = sum + carry;
            uint64_t c2 = (sum < v) | (s2 < sum);
            uint64_t diff = v - u, d2 = diff - borrow;
            uint64_t b2 = (v < u) | (diff < borrow);
            V[w] = s2 | d2;
            carry = c2;
            borrow = b2;
        }
    }
    size_t zeros = 0;
    for (size_t i = 0; i < a->n; i++) zeros += !((V[i / 64] >> (i % 64)) & 1);
    free(V);
    free(row);
    free(M);
    return zeros;
}

static char *run_pdftotext(const char *pdf, size_t *len) {
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "pdftotext -enc UTF-8 '%s' - 2>/dev/null", pdf);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    et_buf b = {0};
    char tmp[65536];
    size_t r;
    while ((r = fread(tmp, 1, sizeof(tmp), p)) > 0) et_buf_append(&b, tmp, r, NULL);
    int st = pclose(p);
    if (st != 0) {
        et_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.data;
}

static int is_number_line(const char *s, size_t n) {
    size_t i = 0, e = n;
    while (i < e && s[i] == ' ') i++;
    while (e > i && s[e - 1] == ' ') e--;
    if (i == e) return 0;
    int dig = 1, rom = 1;
    for (size_t k = i; k < e; k++) {
        if (s[k] < '0' || s[k] > '9') dig = 0;
        if (!strchr("ivxlcdm", s[k]) || !s[k]) rom = 0;
    }
    return dig || rom;
}

static size_t key_of(char *key, const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k < 250; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            key[k++] = '#';
            while (i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') i++;
        } else {
            key[k++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
        }
    }
    return k;
}

/* Removes furniture lines from pdftotext output (pages split by \f). */
static char *strip_furniture(const char *t, size_t n, size_t *out_len) {
    et_strmap cnt;
    et_strmap_init(&cnt);
    et_buf out = {0};
    char key[256];
    for (int pass = 0; pass < 2; pass++) {
        for (size_t a = 0; a < n;) {
            const char *ff = memchr(t + a, '\f', n - a);
            size_t b = ff ? (size_t)(ff - t) : n;
            /* non-blank lines of the page */
            size_t ls[4096], le[4096], m = 0;
            for (size_t i = a; i < b && m < 4096;) {
                const char *nl = memchr(t + i, '\n', b - i);
                size_t e = nl ? (size_t)(nl - t) : b;
                size_t k = i;
                while (k < e && t[k] == ' ') k++;
                if (k < e) ls[m] = i, le[m++] = e;
                i = e + 1;
            }
            et_strmap seen;
            et_strmap_init(&seen);
            for (size_t j = 0; j < m; j++) {
                int zone = j < 2 || j + 2 >= m;
                size_t kl = key_of(key, t + ls[j], le[j] - ls[j]);
                int64_t c = 0;
                if (pass == 0) {
                    if (zone && kl && !et_strmap_get(&seen, key, kl, &c)) {
                        et_strmap_put(&seen, key, kl, 1, NULL);
                        et_strmap_get(&cnt, key, kl, &c);
                        et_strmap_put(&cnt, key, kl, c + 1, NULL);
                    }
                } else {
                    et_strmap_get(&cnt, key, kl, &c);
                    int drop = zone && (c >= 3 || is_number_line(t + ls[j], le[j] - ls[j]));
                    if (!drop) {
                        et_buf_append(&out, t + ls[j], le[j] - ls[j], NULL);
                        et_buf_append(&out, "\n", 1, NULL);
                    }
                }
            }
            et_strmap_free(&seen);
            if (pass == 1) et_buf_append(&out, "\f", 1, NULL);
            a = b + 1;
        }
    }
    et_strmap_free(&cnt);
    *out_len = out.len;
    return out.data;
}

static size_t pdf_pages(const char *path) {
    char *uri = g_filename_to_uri(path, NULL, NULL);
    PopplerDocument *d = poppler_document_new_from_file(uri, NULL, NULL);
    g_free(uri);
    if (!d) return 0;
    size_t n = (size_t)poppler_document_get_n_pages(d);
    g_object_unref(d);
    return n;
}

static char *slurp(const char *path, size_t *n) {
    char *d = NULL;
    if (et_read_file(path, 0, &d, n, NULL)) return NULL;
    return d;
}

/* tok: NULL = the word-based estimate, else the model's tokenizer. */
static void check_pdf(const char *shared, const char *name, const et_tokenizer *tok) {
    char pdf[600], out1[700], out2[700];
    const char *how = tok ? "tok" : "est";
    snprintf(pdf, sizeof(pdf), "%s/corpus/%s", shared, name);
    snprintf(out1, sizeof(out1), "%s/%s.%s.1.jsonl", outdir, name, how);
    snprintf(out2, sizeof(out2), "%s/%s.%s.2.jsonl", outdir, name, how);
    et_ingest_opts o;
    et_ingest_opts_default(&o);
    o.tokenizer = tok;
    et_ingest_stats st;
    et_error err = {0};
    const char *paths[1] = {pdf};
    et_set_threads(2);
    double t0 = et_now();
    int rc = et_ingest(paths, 1, out1, &o, &st, &err);
    double dt = et_now() - t0;
    TEST_CHECK(rc == 0, "%s: ingest failed: %s", name, err.msg);
    if (rc) return;
    et_set_threads(1);
    rc = et_ingest(paths, 1, out2, &o, NULL, &err);
    et_set_threads(0);
    TEST_CHECK(rc == 0, "%s: second ingest failed: %s", name, err.msg);
    size_t n1 = 0, n2 = 0;
    char *d1 = slurp(out1, &n1), *d2 = slurp(out2, &n2);
    TEST_CHECK(d1 && d2 && n1 == n2 && !memcmp(d1, d2, n1), "%s: output differs between runs (1 vs 2 threads)", name);
    free(d1);
    free(d2);

    et_chunks cs;
    rc = et_chunks_load(&cs, out1, &err);
    TEST_CHECK(rc == 0, "%s: output does not load: %s", name, err.msg);
    if (rc) return;
    size_t pages = pdf_pages(pdf), over = 0, empty = 0, bad_est = 0, bad_page = 0, max_tok = 0, prev_start = 0;
    et_strmap vocab;
    et_strmap_init(&vocab);
    ids mine = {0}, ref = {0}, ref2 = {0};
    for (size_t i = 0; i < cs.n; i++) {
        const et_chunk *c = &cs.items[i];
        size_t len = strlen(c->text);
        if (c->n_tokens > o.chunk_size) over++;
        if (c->n_tokens > max_tok) max_tok = c->n_tokens;
        int blank = 1;
        for (size_t k = 0; k < len; k++)
            if (c->text[k] != ' ' && c->text[k] != '\n') blank = 0;
        empty += blank;
        size_t exact = 0;
        if (tok) et_tokenizer_count(tok, c->text, len, &exact, NULL);
        else exact = et_estimate_tokens(c->text, len);
        if (exact != c->n_tokens) bad_est++;
        if (c->page_start < 1 || c->page_end < c->page_start || c->page_end > pages || c->page_start < prev_start)
            bad_page++;
        prev_start = c->page_start;
        words(&vocab, c->text, len, &mine);
    }
    TEST_CHECK(over == 0, "%s: %zu chunks over the budget %zu", name, over, o.chunk_size);
    TEST_CHECK(empty == 0, "%s: %zu empty chunks", name, empty);
    TEST_CHECK(bad_est == 0, "%s: %zu chunks whose n_tokens is not the %s count of their text", name, bad_est,
               tok ? "tokenizer" : "estimate");
    TEST_CHECK(bad_page == 0, "%s: %zu chunks with implausible pages (document has %zu)", name, bad_page, pages);
    TEST_CHECK(st.pages == pages, "%s: stats pages %zu, poppler says %zu", name, st.pages, pages);

    size_t tlen = 0, slen = 0;
    char *txt = run_pdftotext(pdf, &tlen);
    TEST_CHECK(txt != NULL, "%s: pdftotext failed (poppler-utils installed?)", name);
    if (txt) {
        char *body = strip_furniture(txt, tlen, &slen);
        words(&vocab, txt, tlen, &ref);
        words(&vocab, body, slen, &ref2);
        size_t l1 = lcs(&ref, &mine, vocab.count), l2 = lcs(&ref2, &mine, vocab.count);
        double cov = (double)l1 / (double)ref.n, cov2 = (double)l2 / (double)ref2.n;
        printf("%s, %s: %zu pages, %zu chunks (max %zu tokens), %.2fs; coverage of pdftotext words: raw %.4f (%zu/%zu), "
               "without page furniture %.4f (%zu/%zu)\n",
               name, tok ? et_tokenizer_type(tok) : "estimate", pages, cs.n, max_tok, dt, cov, l1, ref.n, cov2, l2, ref2.n);
        TEST_CHECK(cov2 >= 0.99, "%s: coverage without furniture %.4f < 0.99", name, cov2);
        TEST_CHECK(cov >= 0.975, "%s: raw coverage %.4f < 0.975", name, cov);
        free(body);
        free(txt);
    }
    free(mine.v);
    free(ref.v);
    free(ref2.v);
    et_strmap_free(&vocab);
    et_chunks_free(&cs);
}

int main(void) {
    const char *shared = getenv("SHARED") ? getenv("SHARED") : "../shared";
    snprintf(outdir, sizeof(outdir), "%s/test-out/ingest_corpus", getenv("BUILD") ? getenv("BUILD") : "build");
    et_error err = {0};
    TEST_CHECK(et_mkdir_p(outdir, &err) == 0, "mkdir %s: %s", outdir, err.msg);
    check_pdf(shared, "R-data.pdf", NULL);
    check_pdf(shared, "R-intro.pdf", NULL);
    /* with bge's WordPiece tokenizer: n_tokens exact, none over the budget */
    char tdir[600];
    snprintf(tdir, sizeof(tdir), "%s/fixtures/bge-wordpiece", shared);
    et_tokenizer *tok = NULL;
    int rc = et_tokenizer_load_dir(&tok, tdir, &err);
    TEST_CHECK(rc == 0, "tokenizer %s: %s", tdir, err.msg);
    if (!rc) {
        check_pdf(shared, "R-data.pdf", tok);
        check_pdf(shared, "R-intro.pdf", tok);
        et_tokenizer_free(tok);
    }
    return test_summary("test_ingest_corpus");
}
