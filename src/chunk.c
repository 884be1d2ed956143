/* chunk.c - the splitter: sentences, clauses, words; greedy merge with
 * overlap; the word-based token estimate (see chunk.h). */
#include "chunk.h"

#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 helpers (input may be arbitrary bytes: invalid bytes are units) --- */

static size_t cp_at(const char *str, size_t n, size_t i, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str + i;
    size_t left = n - i;
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (len == 0 || len > left) {
        *cp = c;
        return 1;
    }
    uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            *cp = c;
            return 1;
        }
        v = (v << 6) | (s[k] & 0x3F);
    }
    *cp = v;
    return len;
}

static int is_blank(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
static int is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }
static int is_alpha(unsigned char c) { return is_upper(c) || is_lower(c); }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* ---- the estimate ---------------------------------------------------------------- */

static int latin_letter(uint32_t cp) { return cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7; }

size_t et_estimate_tokens(const char *s, size_t n) {
    uint64_t units = 0; /* sixtieths of a token */
    int prev = 0;       /* 0 none/blank, 1 lower letter, 2 upper letter, 3 digit, 4 other */
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = cp_at(s, n, i, &cp);
        int cls;
        if (cp < 0x80 && is_blank((unsigned char)cp)) cls = 0;
        else if (cp < 0x80 && is_lower((unsigned char)cp)) cls = 1;
        else if (cp < 0x80 && is_upper((unsigned char)cp)) cls = 2;
        else if (cp < 0x80 && is_digit((unsigned char)cp)) cls = 3;
        else if (latin_letter(cp)) cls = 1;
        else cls = 4;
        if (cls == 1 || cls == 2) {
            int new_run = !(prev == 1 || prev == 2);
            if (cls == 2 && prev == 1) new_run = 1; /* camelCase */
            if (cls == 2 && prev == 2 && i + len < n && is_lower((unsigned char)s[i + len]))
                new_run = 1; /* "SQLite": S Q | Lite */
            units += new_run ? 60 : 10;
        } else if (cls == 3) {
            units += prev == 3 ? 45 : 60; /* >= 1 token per run, 3/4 per further digit */
        } else if (cls == 4) {
            units += 60;
        }
        prev = cls;
        i += len;
    }
    return (size_t)((units * 11 + 599) / 600);
}

int et_estimate_count(void *ctx, const char *text, size_t n, size_t *out, et_error *err) {
    (void)ctx;
    (void)err;
    *out = et_estimate_tokens(text, n);
    return ET_OK;
}

/* ---- spans ------------------------------------------------------------------------ */

int et_spans_push(et_spans *s, size_t off, size_t len, et_error *err) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 32;
        et_span *p = et_realloc_n(s->v, cap, sizeof(*p), err);
        if (!p) return ET_ENOMEM;
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n].off = off;
    s->v[s->n].len = len;
    s->n++;
    return ET_OK;
}

void et_spans_free(et_spans *s) {
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* Pushes s[b..e) trimmed of blanks, if not empty. */
static int push_trimmed(et_spans *out, const char *s, size_t b, size_t e, size_t base, et_error *err) {
    while (b < e && is_blank((unsigned char)s[b])) b++;
    while (e > b && is_blank((unsigned char)s[e - 1])) e--;
    return e > b ? et_spans_push(out, base + b, e - b, err) : ET_OK;
}

/* ---- sentences ------------------------------------------------------------------------ */

static int is_cjk_stop(uint32_t cp) { return cp == 0x3002 || cp == 0xFF01 || cp == 0xFF1F || cp == 0xFF61; }
static int is_stop(uint32_t cp) { return cp == '.' || cp == '!' || cp == '?' || cp == 0x2026; }
static int is_closer(uint32_t cp) {
    return cp == '"' || cp == '\'' || cp == ')' || cp == ']' || cp == '}' || cp == 0x2019 ||
           cp == 0x201D || cp == 0xBB || cp == 0x300D || cp == 0x300F || cp == 0xFF09 ||
           cp == 0x3011 || cp == 0x300B;
}
static int is_opener(unsigned char c) { return c == '(' || c == '[' || c == '"' || c == '\'' || c == '{'; }

/* Always abbreviations (lower case, without the final period). */
static const char *const abbrev_always[] = {
    "mr",   "mrs",  "ms",   "dr",   "prof", "sr",    "jr",   "st",   "mt",   "ft",   "vs",   "etc",
    "cf",   "al",   "fig",  "figs", "eq",   "eqs",   "eqn",  "vol",  "vols", "ch",   "chap", "sect",
    "pp",   "ed",   "eds",  "approx", "dept", "inc", "ltd",  "corp", "jan",  "feb",  "mar",  "apr",
    "jun",  "jul",  "aug",  "sep",  "sept", "oct",   "nov",  "dec",  "viz",  "resp", "esp",  "incl",
    "capt", "sgt",  "hon",  "messrs", "mme", "mlle", "ibid", "seq",  "vz",   "bzw",  "usw",  "ca",
    "nr",   "tel",  "e.g",  "i.e",  "ex",   "eg",    "ie",   "gov",  "univ", "assn", "bros", "co"};
/* Abbreviations only before a number ("No. 5", "sec. 3", "p. 12"). */
static const char *const abbrev_num[] = {"no", "nos", "art", "op", "ref", "refs", "para", "sec", "col",
                                         "min", "max", "p", "n", "v", "pt", "pts", "ser", "rev"};

static int in_list(const char *w, size_t n, const char *const *list, size_t count) {
    char low[16];
    if (n == 0 || n >= sizeof(low)) return 0;
    for (size_t i = 0; i < n; i++) low[i] = is_upper((unsigned char)w[i]) ? (char)(w[i] + 32) : w[i];
    for (size_t i = 0; i < count; i++)
        if (strlen(list[i]) == n && !memcmp(list[i], low, n)) return 1;
    return 0;
}

/* "e.g", "U.S", "Ph.D", "J.R.R": letter groups of 1-2 joined by periods. */
static int dotted_abbrev(const char *w, size_t n) {
    size_t seg = 0, dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] == '.') {
            if (seg == 0) return 0;
            dots++;
            seg = 0;
        } else if (is_alpha((unsigned char)w[i])) {
            if (++seg > 2) return 0;
        } else {
            return 0;
        }
    }
    return dots > 0 && seg > 0;
}

/* Decides whether the period at s[i] (followed by blanks, next visible
 * character at s[k]) ends a sentence that started at `sent`. */
static int period_ends(const char *s, size_t n, size_t sent, size_t i, size_t k) {
    size_t b = i;
    while (b > sent && !is_blank((unsigned char)s[b - 1])) b--;
    while (b < i && is_opener((unsigned char)s[b])) b++;
    const char *w = s + b;
    size_t wn = i - b;
    unsigned char next = k < n ? (unsigned char)s[k] : 0;
    if (k >= n) return 1;
    if (is_lower(next)) return 0; /* "approx. three", "etc. and" */
    if (wn == 0) return 1;
    if (wn == 1 && is_upper((unsigned char)w[0])) return 0; /* initial: "J. R. R. Tolkien" */
    if (in_list(w, wn, abbrev_always, ET_ARRAY_LEN(abbrev_always))) return 0;
    if (dotted_abbrev(w, wn)) return 0;
    if (is_digit(next) && in_list(w, wn, abbrev_num, ET_ARRAY_LEN(abbrev_num))) return 0;
    /* enumerator at the start of a sentence: "1. Create", "iv. Then", "a. Next" */
    if (b == sent) {
        size_t d = 0;
        while (d < wn && is_digit((unsigned char)w[d])) d++;
        if (d == wn && wn <= 3) return 0;
        if (wn == 1 && is_lower((unsigned char)w[0])) return 0;
    }
    return 1;
}

int et_split_sentences(const char *s, size_t n, size_t base, et_spans *out, et_error *err) {
    size_t sent = 0, i = 0;
    int rc;
    while (sent < n && is_blank((unsigned char)s[sent])) sent++;
    i = sent;
    while (i < n) {
        uint32_t cp;
        size_t len = cp_at(s, n, i, &cp);
        if (!is_stop(cp) && !is_cjk_stop(cp)) {
            i += len;
            continue;
        }
        size_t j = i + len, nstops = 1;
        int cjk = is_cjk_stop(cp);
        for (;;) { /* "?!", "...", then closing quotes and brackets */
            if (j >= n) break;
            uint32_t c2;
            size_t l2 = cp_at(s, n, j, &c2);
            if (is_stop(c2) || is_cjk_stop(c2)) {
                nstops++;
                cjk |= is_cjk_stop(c2);
                j += l2;
            } else if (is_closer(c2)) {
                j += l2;
            } else {
                break;
            }
        }
        int end;
        size_t k = j;
        while (k < n && is_blank((unsigned char)s[k])) k++;
        if (cjk) {
            end = 1;
        } else if (j < n && !is_blank((unsigned char)s[j])) {
            end = 0; /* 3.14, e.g., foo.png, https://a.b/c, v1.2.3 */
        } else if (cp == '.' && nstops == 1) {
            end = period_ends(s, n, sent, i, k);
        } else {
            end = k >= n || !is_lower((unsigned char)s[k]); /* "Yahoo! is", "wait... what" */
        }
        if (end) {
            if ((rc = push_trimmed(out, s, sent, j, base, err))) return rc;
            sent = k;
        }
        i = j > i ? j : i + 1;
    }
    return push_trimmed(out, s, sent, n, base, err);
}

int et_split_clauses(const char *s, size_t n, size_t base, et_spans *out, et_error *err) {
    size_t start = 0;
    int rc;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = cp_at(s, n, i, &cp);
        size_t j = i + len;
        int cut = 0;
        if (cp == 0xFF0C || cp == 0x3001 || cp == 0xFF1B || cp == 0xFF1A) cut = 1;
        else if ((cp == ',' || cp == ';' || cp == ':') && (j >= n || is_blank((unsigned char)s[j]))) cut = 1;
        if (cut) {
            if ((rc = push_trimmed(out, s, start, j, base, err))) return rc;
            start = j;
        }
        i = j;
    }
    return push_trimmed(out, s, start, n, base, err);
}

int et_split_words(const char *s, size_t n, size_t base, et_spans *out, et_error *err) {
    int rc;
    for (size_t i = 0; i < n;) {
        while (i < n && is_blank((unsigned char)s[i])) i++;
        size_t b = i;
        while (i < n && !is_blank((unsigned char)s[i])) i++;
        if (i > b && (rc = et_spans_push(out, base + b, i - b, err))) return rc;
    }
    return ET_OK;
}

int et_split_lines(const char *s, size_t n, size_t base, et_spans *out, et_error *err) {
    int rc;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(s + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - s) : n;
        if ((rc = push_trimmed(out, s, i, e, base, err))) return rc;
        i = e + 1;
    }
    return ET_OK;
}

/* ---- the chunker ---------------------------------------------------------------------- */

enum { L_BLOCK, L_SENT, L_CLAUSE, L_WORD, L_CHAR };

typedef struct piece {
    size_t off, len, ntok;
    size_t block; /* index of its block */
} piece;

typedef struct chunker {
    const et_doc *doc;
    const et_chunk_opts *o;
    piece *p;
    size_t np, cap;
    et_chunk_span *out;
    size_t nout, capout;
    size_t block; /* block being split */
    et_error *err;
} chunker;

static int count(chunker *c, size_t off, size_t len, size_t *out) {
    return c->o->count(c->o->count_ctx, c->doc->text.data + off, len, out, c->err);
}

static int push_piece(chunker *c, size_t off, size_t len, size_t ntok) {
    if (c->np == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 256;
        piece *p = et_realloc_n(c->p, cap, sizeof(*p), c->err);
        if (!p) return ET_ENOMEM;
        c->p = p;
        c->cap = cap;
    }
    c->p[c->np++] = (piece){off, len, ntok, c->block};
    return ET_OK;
}

/* Characters: the longest prefixes (on code point boundaries) within budget. */
static int split_chars(chunker *c, size_t off, size_t len) {
    const char *s = c->doc->text.data;
    size_t end = off + len;
    while (off < end) {
        /* code point boundaries are found by stepping; binary search over bytes
         * then snapping back to a boundary keeps it O(log n) counts per piece */
        size_t lo = off, hi = end, best = 0, best_tok = 0;
        uint32_t cp;
        size_t first = off + cp_at(s, end, off, &cp);
        while (lo < hi) {
            size_t mid = lo + (hi - lo + 1) / 2;
            while (mid > off && mid < end && ((unsigned char)s[mid] & 0xC0) == 0x80) mid--;
            if (mid <= off) mid = first;
            size_t t;
            int rc = count(c, off, mid - off, &t);
            if (rc) return rc;
            if (t <= c->o->budget) {
                if (mid > best) best = mid, best_tok = t;
                if (mid <= lo) break;
                lo = mid;
            } else {
                if (mid == first) break;
                hi = mid - 1;
            }
        }
        if (best <= off) { /* one code point over budget: emit it alone */
            best = first;
            int rc = count(c, off, best - off, &best_tok);
            if (rc) return rc;
        }
        int rc = push_piece(c, off, best - off, best_tok);
        if (rc) return rc;
        off = best;
    }
    return ET_OK;
}

static int split_rec(chunker *c, size_t off, size_t len, int level, int code, size_t known) {
    size_t ntok = known;
    int rc;
    if (ntok == SIZE_MAX && (rc = count(c, off, len, &ntok))) return rc;
    if (ntok <= c->o->budget) return push_piece(c, off, len, ntok);
    if (level >= L_CHAR) return split_chars(c, off, len);
    et_spans sub = {0};
    const char *s = c->doc->text.data + off;
    switch (level) {
    case L_BLOCK:
        rc = code ? et_split_lines(s, len, off, &sub, c->err) : et_split_sentences(s, len, off, &sub, c->err);
        break;
    case L_SENT: rc = code ? ET_OK : et_split_clauses(s, len, off, &sub, c->err); break;
    default: rc = et_split_words(s, len, off, &sub, c->err); break;
    }
    if (!rc && sub.n <= 1) {
        /* no boundary at this level: next level, same range, count known */
        et_spans_free(&sub);
        return split_rec(c, off, len, level + 1, code, ntok);
    }
    for (size_t i = 0; i < sub.n && !rc; i++) rc = split_rec(c, sub.v[i].off, sub.v[i].len, level + 1, code, SIZE_MAX);
    et_spans_free(&sub);
    return rc;
}

static size_t block_of(const et_doc *d, size_t off) {
    size_t lo = 0, hi = d->n_blocks; /* first block with off > `off` */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->blocks[mid].off <= off) lo = mid + 1;
        else hi = mid;
    }
    return lo ? lo - 1 : 0;
}

/* Overlap for a chunk [cs, ce): the start of the longest run of whole
 * trailing sentences (code: lines) within `limit` tokens, else of trailing
 * whole words; never the whole chunk. *ov = ce when there is none. The
 * choice made from summed counts is verified with an exact count (and moved
 * to a later candidate start if the sum was optimistic). */
static int overlap_start(chunker *c, size_t cs, size_t ce, size_t limit, size_t *ov, size_t *ov_tok) {
    *ov = ce;
    *ov_tok = 0;
    if (limit == 0 || ce <= cs) return ET_OK;
    const et_doc *d = c->doc;
    const char *s = d->text.data;
    size_t tok = 0, wb = 0, we = 0, t;
    int rc = ET_OK, done = 0;
    et_spans sp = {0}, cand = {0}; /* cand: chosen starts, latest (earliest in text) last */
    for (size_t bi = block_of(d, ce - 1) + 1; bi-- > 0 && !done;) {
        const et_block *b = &d->blocks[bi];
        size_t b0 = b->off > cs ? b->off : cs, b1 = b->off + b->len < ce ? b->off + b->len : ce;
        if (b1 <= b0) break;
        sp.n = 0;
        rc = b->kind == ET_BLK_CODE ? et_split_lines(s + b0, b1 - b0, b0, &sp, c->err)
                                     : et_split_sentences(s + b0, b1 - b0, b0, &sp, c->err);
        if (rc) goto out;
        for (size_t k = sp.n; k-- > 0;) {
            if (sp.v[k].off > cs) {
                if ((rc = count(c, sp.v[k].off, sp.v[k].len, &t))) goto out;
                if (tok + t <= limit) {
                    tok += t;
                    if ((rc = et_spans_push(&cand, sp.v[k].off, tok, c->err))) goto out;
                    continue;
                }
            }
            if (cand.n == 0) { /* not even the last sentence fits: its trailing words */
                wb = sp.v[k].off;
                we = sp.v[k].off + sp.v[k].len;
            }
            done = 1;
            break;
        }
        if (b->off <= cs) break;
    }
    if (cand.n == 0 && we > wb) {
        sp.n = 0;
        if ((rc = et_split_words(s + wb, we - wb, wb, &sp, c->err))) goto out;
        for (size_t k = sp.n; k-- > 0 && sp.v[k].off > cs;) {
            if ((rc = count(c, sp.v[k].off, sp.v[k].len, &t))) goto out;
            if (tok + t > limit) break;
            tok += t;
            if ((rc = et_spans_push(&cand, sp.v[k].off, tok, c->err))) goto out;
        }
    }
    for (size_t k = cand.n; k-- > 0;) { /* earliest candidate first */
        if ((rc = count(c, cand.v[k].off, ce - cand.v[k].off, &t))) goto out;
        if (t <= limit) {
            *ov = cand.v[k].off;
            *ov_tok = t;
            break;
        }
    }
out:
    et_spans_free(&sp);
    et_spans_free(&cand);
    return rc;
}

static int emit(chunker *c, size_t off, size_t end, size_t ntok) {
    if (c->nout == c->capout) {
        size_t cap = c->capout ? 2 * c->capout : 64;
        et_chunk_span *p = et_realloc_n(c->out, cap, sizeof(*p), c->err);
        if (!p) return ET_ENOMEM;
        c->out = p;
        c->capout = cap;
    }
    et_chunk_span *o = &c->out[c->nout++];
    o->off = off;
    o->len = end - off;
    o->n_tokens = ntok;
    o->page_start = et_doc_page_at(c->doc, off);
    o->page_end = et_doc_page_at(c->doc, end - 1);
    return ET_OK;
}

static int is_heading_piece(const chunker *c, size_t i) {
    return c->doc->blocks[c->p[i].block].kind == ET_BLK_HEADING;
}

/* Greedy merge of pieces into chunks. */
static int merge(chunker *c) {
    const size_t budget = c->o->budget;
    size_t i = 0, prev_s = 0, prev_e = 0;
    int rc;
    while (i < c->np) {
        const size_t first = i;
        size_t start = c->p[i].off, tok = 0;
        /* overlap from the previous chunk's tail, unless a new section starts */
        if (c->nout && c->o->overlap && !is_heading_piece(c, i) && c->p[i].ntok < budget) {
            size_t limit = budget - c->p[i].ntok, ov, ovt;
            if (limit > c->o->overlap) limit = c->o->overlap;
            if ((rc = overlap_start(c, prev_s, prev_e, limit, &ov, &ovt))) return rc;
            if (ov < prev_e) start = ov, tok = ovt;
        }
        tok += c->p[i++].ntok; /* the first piece always goes in (it fits alone) */
        while (i < c->np && tok + c->p[i].ntok <= budget) tok += c->p[i++].ntok;
        /* a heading belongs with what follows it */
        if (i < c->np)
            while (i - first > 1 && is_heading_piece(c, i - 1)) i--;
        size_t end = c->p[i - 1].off + c->p[i - 1].len, exact;
        for (;;) { /* one exact count; shrink if the sum of pieces was optimistic */
            if ((rc = count(c, start, end - start, &exact))) return rc;
            if (exact <= budget) break;
            if (i - first > 1) {
                i--;
                end = c->p[i - 1].off + c->p[i - 1].len;
            } else if (start < c->p[first].off) {
                start = c->p[first].off; /* drop the overlap */
            } else {
                break; /* a single piece, already counted alone */
            }
        }
        if ((rc = emit(c, start, end, exact))) return rc;
        prev_s = start;
        prev_e = end;
    }
    return ET_OK;
}

int et_chunk_doc(const et_doc *doc, const et_chunk_opts *o, et_chunk_span **out, size_t *n_out,
                 et_error *err) {
    *out = NULL;
    *n_out = 0;
    if (o->budget == 0 || o->overlap >= o->budget || !o->count)
        return et_err_set(err, ET_EINVAL, "chunking: need budget > overlap and a counter (budget %zu, overlap %zu)",
                          o->budget, o->overlap);
    chunker c = {.doc = doc, .o = o, .err = err};
    int rc = ET_OK;
    for (size_t b = 0; b < doc->n_blocks && !rc; b++) {
        c.block = b;
        rc = split_rec(&c, doc->blocks[b].off, doc->blocks[b].len, L_BLOCK, doc->blocks[b].kind == ET_BLK_CODE,
                       SIZE_MAX);
    }
    if (!rc) rc = merge(&c);
    free(c.p);
    if (rc) {
        free(c.out);
        return rc;
    }
    *out = c.out;
    *n_out = c.nout;
    return ET_OK;
}
