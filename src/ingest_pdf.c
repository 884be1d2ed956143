/* ingest_pdf.c - PDF -> et_doc with poppler-glib.
 *
 * Per page: poppler's reading-order text, one rectangle per character and the
 * font runs (name, size). From those, per line: bounding box, dominant font
 * size, monospace fraction. Then, over the whole document:
 * - page furniture (repeated headers/footers, page numbers) is dropped;
 * - monospace lines become code blocks (indentation rebuilt from x offsets);
 * - lines in a font >= 1.15x the body size become headings;
 * - prose lines are joined into paragraphs; a paragraph ends at a short line
 *   (ends before its column's right edge), a larger vertical gap, a font size
 *   change, an indented first line, or a list marker (which opens a list item);
 * - words hyphenated across lines (and pages) are rejoined.
 * Pages are extracted by up to 2 threads, each with its own PopplerDocument
 * over the same bytes; the result does not depend on the thread count.
 * Detected: encrypted (password) PDFs, unparsable PDFs, PDFs without any
 * extractable text (image-only / scanned).
 */
#include <math.h>
#include <poppler.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "threads.h"

typedef struct page_out {
    et_buf text;    /* cleaned line texts, back to back */
    et_line *lines; /* [n]; .s holds an offset into text until fixed up */
    size_t n, cap;
    size_t chars;   /* non-blank characters */
    float w, h;
    int failed;     /* the page could not be loaded */
} page_out;

static int is_mono_font(const char *name) {
    if (!name) return 0;
    const char *plus = strchr(name, '+');
    if (plus && plus - name == 6) name = plus + 1; /* subset prefix "ABCDEF+" */
    char low[96];
    size_t k = 0;
    for (; name[k] && k + 1 < sizeof(low); k++) low[k] = (char)((name[k] >= 'A' && name[k] <= 'Z') ? name[k] + 32 : name[k]);
    low[k] = 0;
    static const char *const marks[] = {"mono",  "courier", "consol", "menlo",  "inconsolata", "code",
                                        "cmtt",  "cmsltt",  "cmitt",  "sftt",   "txtt",        "nimbusmon",
                                        "pcrr",  "pcrb",    "pcro",   "fixed",  "typewriter",  "lucidaconsole",
                                        "andale", "lettergothic", NULL};
    for (size_t i = 0; marks[i]; i++)
        if (strstr(low, marks[i])) return 1;
    return 0;
}

static size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1; }

/* Font runs of a page, flattened for a forward scan. */
typedef struct frun {
    int start, end; /* char indices, inclusive */
    float size;
    int mono;
} frun;

static int extract_page(PopplerDocument *pd, int idx, page_out *po, et_error *err) {
    PopplerPage *pg = poppler_document_get_page(pd, idx);
    if (!pg) {
        po->failed = 1;
        return ET_OK;
    }
    double w = 0, h = 0;
    poppler_page_get_size(pg, &w, &h);
    po->w = isfinite(w) && w > 0 ? (float)w : 0;
    po->h = isfinite(h) && h > 0 ? (float)h : 0;
    char *text = poppler_page_get_text(pg);
    PopplerRectangle *rects = NULL;
    guint nr = 0;
    frun *runs = NULL;
    size_t n_runs = 0;
    int rc = ET_OK;
    if (text && *text) {
        if (!poppler_page_get_text_layout(pg, &rects, &nr)) nr = 0;
        GList *attrs = poppler_page_get_text_attributes(pg);
        size_t na = g_list_length(attrs);
        runs = na ? et_malloc_n(na, sizeof(*runs), err) : NULL;
        if (na && !runs) rc = ET_ENOMEM;
        for (GList *a = attrs; a && !rc; a = a->next) {
            PopplerTextAttributes *t = a->data;
            runs[n_runs++] = (frun){t->start_index, t->end_index, isfinite(t->font_size) ? (float)t->font_size : 0,
                                    is_mono_font(t->font_name)};
        }
        poppler_page_free_text_attributes(attrs);
    }
    size_t total_chars = 0;
    if (text)
        for (const char *p = text; *p; p += utf8_len((unsigned char)*p)) total_chars++;
    int have_rects = nr > 0 && nr == total_chars;
    size_t ci = 0, ri = 0; /* char index, run index */
    const char *s = text ? text : "";
    while (*s && !rc) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        float x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
        float sizes[8], counts[8];
        size_t nsz = 0, vis = 0, mono = 0;
        for (size_t b = 0; b < len;) {
            unsigned char c = (unsigned char)s[b];
            size_t l = utf8_len(c);
            int blank = c == ' ' || c == '\t';
            if (!blank) {
                vis++;
                if (have_rects) {
                    const PopplerRectangle *r = &rects[ci];
                    if (isfinite(r->x1) && isfinite(r->x2) && isfinite(r->y1) && isfinite(r->y2)) {
                        x0 = fminf(x0, (float)fmin(r->x1, r->x2));
                        x1 = fmaxf(x1, (float)fmax(r->x1, r->x2));
                        y0 = fminf(y0, (float)fmin(r->y1, r->y2));
                        y1 = fmaxf(y1, (float)fmax(r->y1, r->y2));
                    }
                }
                while (ri < n_runs && runs[ri].end < (int)ci) ri++;
                if (ri < n_runs && runs[ri].start <= (int)ci) {
                    mono += runs[ri].mono;
                    float fs = roundf(runs[ri].size * 2) / 2;
                    size_t k = 0;
                    while (k < nsz && sizes[k] != fs) k++;
                    if (k == nsz && nsz < 8) sizes[nsz] = fs, counts[nsz++] = 0;
                    if (k < nsz) counts[k]++;
                }
            }
            b += l;
            ci++;
        }
        ci++; /* the newline */
        if (po->n == po->cap) {
            size_t cap = po->cap ? 2 * po->cap : 64;
            et_line *p = et_realloc_n(po->lines, cap, sizeof(*p), err);
            if (!p) {
                rc = ET_ENOMEM;
                break;
            }
            po->lines = p;
            po->cap = cap;
        }
        et_line *L = &po->lines[po->n];
        memset(L, 0, sizeof(*L));
        size_t off = po->text.len;
        if ((rc = et_clean_utf8(s, len, &po->text, NULL, err))) break;
        /* et_clean_utf8 may produce '\n' (U+2028) or '\f': keep lines single */
        for (size_t k = off; k < po->text.len; k++)
            if (po->text.data[k] == '\n' || po->text.data[k] == '\f') po->text.data[k] = ' ';
        L->s = (const char *)(uintptr_t)off;
        L->n = po->text.len - off;
        L->page = (size_t)idx + 1;
        if (x1 >= x0) L->x0 = x0, L->x1 = x1, L->y0 = y0, L->y1 = y1;
        float best = 0, bc = -1;
        for (size_t k = 0; k < nsz; k++)
            if (counts[k] > bc) best = sizes[k], bc = counts[k];
        L->size = best;
        L->mono = vis ? (float)mono / (float)vis : 0;
        po->chars += vis;
        po->n++;
        if (!nl) break;
        s = nl + 1;
    }
    free(runs);
    g_free(rects);
    g_free(text);
    g_object_unref(pg);
    return rc;
}

/* ---- threads: each worker opens its own document over the same bytes ---- */

typedef struct pdf_job {
    GBytes *bytes;
    page_out *pages;
    int n_pages;
    size_t done; /* atomic */
    et_page_cb cb;
    void *cb_ctx;
    int rc[2];
    et_error errs[2];
} pdf_job;

static void pdf_worker(void *ctx, int ith, int nth) {
    pdf_job *j = ctx;
    long lo, hi;
    et_split(j->n_pages, ith, nth, &lo, &hi);
    PopplerDocument *pd = poppler_document_new_from_bytes(j->bytes, NULL, NULL);
    if (!pd) {
        j->rc[ith] = et_err_set(&j->errs[ith], ET_EFORMAT, "PDF could not be reopened");
        return;
    }
    for (long p = lo; p < hi && !j->rc[ith]; p++) {
        j->rc[ith] = extract_page(pd, (int)p, &j->pages[p], &j->errs[ith]);
        size_t d = __atomic_add_fetch(&j->done, 1, __ATOMIC_RELAXED);
        if (ith == 0 && j->cb) j->cb(j->cb_ctx, d, (size_t)j->n_pages);
    }
    g_object_unref(pd);
}

/* ---- layout -> blocks --------------------------------------------------------- */

static size_t pdf_list_marker(const char *s, size_t n) {
    static const char *const bullets[] = {"\xe2\x80\xa2", "\xe2\x97\xa6", "\xe2\x96\xaa", "\xe2\x96\xa0",
                                          "\xe2\x80\x93", "\xe2\x80\x94", "\xe2\x97\x8f", "-", "*", "\xc2\xb7", NULL};
    for (size_t i = 0; bullets[i]; i++) {
        size_t l = strlen(bullets[i]);
        if (n > l && !memcmp(s, bullets[i], l) && (s[l] == ' ' || s[l] == '\t')) return l + 1;
    }
    size_t i = 0;
    if (n && s[0] == '(') i++;
    size_t d = i;
    while (i < n && i - d < 3 && ((s[i] >= '0' && s[i] <= '9') || (i == d && s[i] >= 'a' && s[i] <= 'z'))) i++;
    if (i == d || i >= n) return 0;
    if (s[i] != '.' && s[i] != ')') return 0;
    if (s[d] >= 'a' && s[d] <= 'z' && i - d > 1) return 0;
    i++;
    return (i < n && s[i] == ' ') ? i + 1 : 0;
}

/* 1 if the line ends like a sentence or a heading: . : ! ? or a closing quote. */
static int ends_sentence(const char *s, size_t n) {
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (!n) return 1;
    unsigned char c = (unsigned char)s[n - 1];
    if (strchr(".:!?;)\"'", c)) return 1;
    return c >= 0x80; /* closing quotes and other marks: assume an end */
}

/* Column edges of line L: extremes of body-size lines whose left edge is within
 * a quarter page of L's (two-column pages have two columns). */
static void column_edges(const et_line *pl, size_t n, const et_line *L, float page_w, float body, float *left,
                         float *right) {
    float lo = L->x0, hi = L->x1, tol = page_w > 0 ? 0.25f * page_w : 150;
    for (size_t i = 0; i < n; i++) {
        const et_line *o = &pl[i];
        if (o->drop || o->x1 <= o->x0 || fabsf(o->x0 - L->x0) > tol || fabsf(o->size - body) > 1.0f || o->mono > 0.5f)
            continue;
        lo = fminf(lo, o->x0);
        hi = fmaxf(hi, o->x1);
    }
    *left = lo;
    *right = hi;
}

static int cmp_line_y(const void *a, const void *b) {
    const et_line *x = *(const et_line *const *)a, *y = *(const et_line *const *)b;
    if (x->y1 != y->y1) return x->y1 < y->y1 ? -1 : 1;
    if (x->x0 != y->x0) return x->x0 < y->x0 ? -1 : 1;
    return x < y ? -1 : x > y;
}

static size_t n_chars(const char *s, size_t n) {
    size_t c = 0;
    for (size_t k = 0; k < n; k += utf8_len((unsigned char)s[k])) c++;
    return c;
}

/* Appends code lines run[0..n) (one page, poppler order) to the open code
 * block as rows: lines on one baseline are joined left to right, and blanks
 * are rebuilt from x offsets in character widths (indentation relative to
 * *block_x0, the block's left edge, which a new block resets). */
static int code_rows(et_doc *doc, const et_line **run, size_t n, float *block_x0, int new_block, et_buf *tmp,
                     et_error *err) {
    int geo = 1;
    float minx = INFINITY, cw = 0;
    for (size_t k = 0; k < n; k++) {
        if (run[k]->x1 <= run[k]->x0) geo = 0;
        minx = fminf(minx, run[k]->x0);
        size_t nc = n_chars(run[k]->s, run[k]->n);
        if (nc >= 3 && cw == 0) cw = (run[k]->x1 - run[k]->x0) / (float)nc;
    }
    if (geo) qsort(run, n, sizeof(*run), cmp_line_y); /* stable order: ties by address */
    *block_x0 = new_block ? minx : fminf(*block_x0, minx);
    int rc = ET_OK;
    char pad[64];
    memset(pad, ' ', sizeof(pad));
    for (size_t k = 0; k < n && !rc;) {
        size_t e = k + 1;
        if (geo)
            while (e < n && fabsf(run[e]->y1 - run[k]->y1) < 0.4f * (run[k]->y1 - run[k]->y0)) e++;
        /* sort the row's cells by x (the run is sorted by y1, then x0) */
        for (size_t a = k + 1; a < e; a++)
            for (size_t b2 = a; b2 > k && run[b2 - 1]->x0 > run[b2]->x0; b2--) {
                const et_line *t = run[b2];
                run[b2] = run[b2 - 1];
                run[b2 - 1] = t;
            }
        tmp->len = 0;
        float at = *block_x0;
        for (size_t c = k; c < e && !rc; c++) {
            const et_line *L = run[c];
            size_t b = 0;
            while (b < L->n && (L->s[b] == ' ' || L->s[b] == '\t')) b++;
            size_t sp = 0;
            if (geo && cw > 0 && L->x0 > at) {
                float q = (L->x0 - at) / cw + 0.5f;
                sp = q > 60 ? 60 : (size_t)q;
            }
            if (c > k && sp == 0) sp = 1;
            rc = et_buf_append(tmp, pad, sp, err);
            if (!rc) rc = et_buf_append(tmp, L->s + b, L->n - b, err);
            at = L->x1;
        }
        if (!rc) rc = et_doc_line(doc, tmp->data, tmp->len, err);
        k = e;
    }
    return rc;
}

static int build_doc(et_doc *doc, page_out *pages, size_t n_pages, et_error *err) {
    /* body font size: the most common size by characters */
    float sizes[64], counts[64];
    size_t nsz = 0;
    for (size_t p = 0; p < n_pages; p++)
        for (size_t i = 0; i < pages[p].n; i++) {
            const et_line *L = &pages[p].lines[i];
            if (L->drop || L->size <= 0) continue;
            size_t k = 0;
            while (k < nsz && sizes[k] != L->size) k++;
            if (k == nsz && nsz < 64) sizes[nsz] = L->size, counts[nsz++] = 0;
            if (k < nsz) counts[k] += (float)L->n;
        }
    float body = 0, bc = -1;
    for (size_t k = 0; k < nsz; k++)
        if (counts[k] > bc) body = sizes[k], bc = counts[k];

    int rc = ET_OK;
    const et_line *prev = NULL;
    float prev_right = 0, prev_left = 0, code_x0 = 0, item_x0 = 0;
    const et_line *run[512];
    et_buf tmp = {0};
    for (size_t p = 0; p < n_pages && !rc; p++) {
        page_out *po = &pages[p];
        if (po->n) rc = et_doc_page(doc, p + 1, err);
        for (size_t i = 0; i < po->n && !rc; i++) {
            const et_line *L = &po->lines[i];
            if (L->drop) continue;
            size_t b = 0;
            while (b < L->n && (L->s[b] == ' ' || L->s[b] == '\t')) b++;
            if (b == L->n) {
                rc = et_doc_end(doc, err);
                prev = NULL;
                continue;
            }
            int geo = L->x1 > L->x0;
            float fs = L->size > 0 ? L->size : (body > 0 ? body : 10);
            int kind = L->mono >= 0.8f ? ET_BLK_CODE
                       : (body > 0 && L->size >= 1.15f * body && L->n <= 300) ? ET_BLK_HEADING
                                                                              : ET_BLK_PARA;
            int same_page = prev && prev->page == L->page;
            float gap = (same_page && geo && prev->x1 > prev->x0) ? L->y0 - prev->y1 : 0;
            float left = L->x0, right = L->x1;
            if (geo) column_edges(po->lines, po->n, L, po->w, body, &left, &right);
            int open_kind = doc->open ? doc->kind : -1;
            if (kind == ET_BLK_HEADING) {
                int cont = open_kind == ET_BLK_HEADING && prev && same_page && fabsf(prev->size - L->size) < 0.5f &&
                           gap < 0.6f * fs;
                if (!cont) rc = et_doc_begin(doc, ET_BLK_HEADING, err);
                if (!rc) rc = et_doc_line(doc, L->s + b, L->n - b, err);
            } else if (kind == ET_BLK_CODE) {
                int cont = open_kind == ET_BLK_CODE && prev && (!same_page || gap < 1.5f * fs);
                if (!cont) rc = et_doc_begin(doc, ET_BLK_CODE, err);
                /* the run of code lines from here on this page, rebuilt as rows: poppler
                 * emits a monospace table column by column, the rows are what a reader sees */
                size_t j = i, nrun = 0;
                while (j < po->n && (po->lines[j].drop || po->lines[j].mono >= 0.8f)) {
                    if (!po->lines[j].drop) run[nrun++] = &po->lines[j];
                    j++;
                    if (nrun == ET_ARRAY_LEN(run)) break;
                }
                if (!rc) rc = code_rows(doc, run, nrun, &code_x0, !cont, &tmp, err);
                i = j - 1;
                L = run[nrun - 1];
                if (geo) column_edges(po->lines, po->n, L, po->w, body, &left, &right);
            } else {
                size_t mk = pdf_list_marker(L->s + b, L->n - b);
                int brk = open_kind != ET_BLK_PARA && open_kind != ET_BLK_LIST;
                if (!brk && prev) {
                    int prev_short = prev->x1 > prev->x0 && prev->x1 < prev_right - 1.5f * fs;
                    /* a short line that stops mid-sentence (an unbreakable URL pushed the
                     * rest down) continues when the next line starts in lower case */
                    if (prev_short && !ends_sentence(prev->s, prev->n) && L->s[b] >= 'a' && L->s[b] <= 'z')
                        prev_short = 0;
                    if (mk || prev_short) brk = 1;
                    else if (same_page && gap > 0.8f * fs) brk = 1;
                    else if (prev->size > 0 && L->size > 0 && fabsf(prev->size - L->size) > 1.0f) brk = 1;
                    else if (geo && open_kind == ET_BLK_PARA && (L->x0 - left) - (prev->x0 - prev_left) > 0.8f * fs)
                        brk = 1; /* first-line indent, relative to each page's column */
                    else if (geo && open_kind == ET_BLK_LIST && L->x0 < item_x0 - 0.5f * fs) brk = 1;
                } else if (!prev) {
                    brk = 1;
                }
                if (mk && brk) {
                    rc = et_doc_begin(doc, ET_BLK_LIST, err);
                    item_x0 = L->x0 + 0.5f * fs;
                } else if (brk) {
                    rc = et_doc_begin(doc, ET_BLK_PARA, err);
                }
                if (!rc) rc = et_doc_line(doc, L->s + b, L->n - b, err);
            }
            prev = L;
            prev_right = right;
            prev_left = left;
        }
    }
    if (!rc) rc = et_doc_end(doc, err);
    et_buf_free(&tmp);
    return rc;
}

int et_extract_pdf(et_doc *doc, const char *data, size_t n, const char *name, et_page_cb cb, void *cb_ctx,
                   int *skip, et_error *err) {
    *skip = ET_SKIP_NONE;
    if (n == 0) {
        *skip = ET_SKIP_EMPTY;
        return et_err_set(err, ET_EFORMAT, "%s: empty file", name);
    }
    GBytes *bytes = g_bytes_new_static(data, n);
    GError *ge = NULL;
    PopplerDocument *pd = poppler_document_new_from_bytes(bytes, NULL, &ge);
    if (!pd) {
        int enc = ge && ge->domain == POPPLER_ERROR && ge->code == POPPLER_ERROR_ENCRYPTED;
        *skip = enc ? ET_SKIP_ENCRYPTED : ET_SKIP_CORRUPT;
        int rc = enc ? et_err_set(err, ET_EFORMAT, "%s: encrypted PDF (needs a password)", name)
                     : et_err_set(err, ET_EFORMAT, "%s: not a readable PDF (%s)", name,
                                  ge && ge->message ? ge->message : "parse error");
        if (ge) g_error_free(ge);
        g_bytes_unref(bytes);
        return rc;
    }
    int np = poppler_document_get_n_pages(pd);
    g_object_unref(pd);
    if (np <= 0) {
        g_bytes_unref(bytes);
        *skip = ET_SKIP_CORRUPT;
        return et_err_set(err, ET_EFORMAT, "%s: PDF has no pages", name);
    }
    page_out *pages = et_calloc((size_t)np, sizeof(*pages), err);
    if (!pages) {
        g_bytes_unref(bytes);
        return ET_ENOMEM;
    }
    pdf_job job = {.bytes = bytes, .pages = pages, .n_pages = np, .cb = cb, .cb_ctx = cb_ctx};
    int threads = np >= 8 ? 2 : 1;
    et_parallel_n(pdf_worker, &job, threads);
    int rc = ET_OK;
    for (int t = 0; t < 2 && !rc; t++)
        if (job.rc[t]) {
            rc = job.rc[t];
            if (err) *err = job.errs[t];
            et_err_prefix(err, "%s", name);
        }
    size_t chars = 0, n_lines = 0;
    float page_h = 0;
    for (int p = 0; p < np; p++) {
        chars += pages[p].chars;
        n_lines += pages[p].n;
        if (pages[p].h > page_h) page_h = pages[p].h;
        for (size_t i = 0; i < pages[p].n; i++) /* offsets -> pointers */
            pages[p].lines[i].s = (pages[p].text.data ? pages[p].text.data : "") + (uintptr_t)pages[p].lines[i].s;
    }
    if (!rc && chars == 0) {
        *skip = ET_SKIP_NO_TEXT;
        rc = et_err_set(err, ET_EFORMAT, "%s: no extractable text in %d page%s (image-only or scanned PDF? OCR it first)",
                        name, np, np == 1 ? "" : "s");
    }
    /* furniture over all lines at once (contiguous copy, grouped by page) */
    et_line *all = NULL;
    et_strmap ws;
    et_strmap_init(&ws);
    if (!rc && n_lines) {
        all = et_malloc_n(n_lines, sizeof(*all), err);
        if (!all) rc = ET_ENOMEM;
    }
    if (!rc) {
        size_t k = 0;
        for (int p = 0; p < np; p++)
            for (size_t i = 0; i < pages[p].n; i++) all[k++] = pages[p].lines[i];
        et_clean_furniture(all, n_lines, (size_t)np, page_h);
        k = 0;
        for (int p = 0; p < np; p++)
            for (size_t i = 0; i < pages[p].n; i++) pages[p].lines[i].drop = all[k++].drop;
        for (size_t i = 0; i < n_lines && !rc; i++)
            if (!all[i].drop) rc = et_wordset_add_text(&ws, all[i].s, all[i].n, err);
    }
    if (!rc) {
        doc->n_pages = (size_t)np;
        doc->words = &ws;
        rc = build_doc(doc, pages, (size_t)np, err);
        doc->words = NULL;
        if (rc) et_err_prefix(err, "%s", name);
    }
    if (!rc && doc->n_blocks == 0) {
        *skip = ET_SKIP_NO_TEXT;
        rc = et_err_set(err, ET_EFORMAT, "%s: no text left after removing page headers and footers", name);
    }
    free(all);
    et_strmap_free(&ws);
    for (int p = 0; p < np; p++) {
        et_buf_free(&pages[p].text);
        free(pages[p].lines);
    }
    free(pages);
    g_bytes_unref(bytes);
    return rc;
}
