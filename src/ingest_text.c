/* ingest_text.c - plain text and Markdown -> et_doc.
 *
 * Plain text: paragraphs are separated by blank lines; hard-wrapped lines are
 * joined (hyphenated words rejoined); bullet and numbered lines start list
 * items. Form feeds separate pages: a text file with form feeds is paged, and
 * its repeated page headers/footers and page numbers are removed.
 *
 * Markdown (CommonMark subset): ATX and setext headings become heading
 * blocks; fenced (``` ~~~) and indented code blocks are kept verbatim as code
 * blocks; list items, block quotes and table rows become blocks with their
 * markers removed; inline markup is stripped: emphasis, code spans (content
 * kept), links and images (text / alt kept), autolinks, inline HTML tags,
 * entities, backslash escapes. Front matter, HTML comments, thematic breaks,
 * link reference definitions and table separator rows are dropped.
 */
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

typedef struct lines {
    et_line *v;
    size_t n, cap;
} lines;

static int lines_push(lines *L, const char *s, size_t n, size_t page, et_error *err) {
    if (L->n == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 256;
        et_line *p = et_realloc_n(L->v, cap, sizeof(*p), err);
        if (!p) return ET_ENOMEM;
        L->v = p;
        L->cap = cap;
    }
    memset(&L->v[L->n], 0, sizeof(et_line));
    L->v[L->n].s = s;
    L->v[L->n].n = n;
    L->v[L->n].page = page;
    L->n++;
    return ET_OK;
}

/* Splits clean text into lines; '\f' starts a new page. */
static int split_lines(lines *L, const char *t, size_t n, size_t *n_pages, et_error *err) {
    size_t page = 1;
    int rc;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && t[e] != '\n' && t[e] != '\f') e++;
        if ((rc = lines_push(L, t + i, e - i, page, err))) return rc;
        if (e < n && t[e] == '\f') page++;
        i = e + 1;
    }
    *n_pages = page;
    return ET_OK;
}

static int blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

static size_t indent_of(const char *s, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') w++;
        else if (s[i] == '\t') w = (w / 4 + 1) * 4;
        else break;
    }
    return w;
}

/* Bytes of leading blanks. */
static size_t lead(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    return i;
}

/* List marker at s (after blanks): "- ", "* ", "+ ", "• ", "1. ", "1) ".
 * Returns the bytes of marker + following blanks, 0 if none. */
static size_t list_marker(const char *s, size_t n, int markdown) {
    size_t i = 0;
    if (n >= 2 && (s[0] == '-' || s[0] == '*' || s[0] == '+') && (s[1] == ' ' || s[1] == '\t')) i = 1;
    else if (n >= 4 && !memcmp(s, "\xe2\x80\xa2", 3) && (s[3] == ' ' || s[3] == '\t')) i = 3; /* • */
    else if (!markdown && n >= 3 && !memcmp(s, "\xc2\xb7", 2) && s[2] == ' ') i = 2;          /* · */
    else {
        while (i < n && i < 9 && s[i] >= '0' && s[i] <= '9') i++;
        if (i == 0 || i >= n || (s[i] != '.' && s[i] != ')') || i + 1 >= n || (s[i + 1] != ' ' && s[i + 1] != '\t'))
            return 0;
        i++;
    }
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    return i < n ? i : 0;
}

static int build_wordset(et_strmap *ws, const lines *L, et_error *err) {
    for (size_t i = 0; i < L->n; i++) {
        if (L->v[i].drop) continue;
        int rc = et_wordset_add_text(ws, L->v[i].s, L->v[i].n, err);
        if (rc) return rc;
    }
    return ET_OK;
}

/* ---- plain text -------------------------------------------------------------- */

static int plain_to_doc(et_doc *doc, lines *L, size_t n_pages, et_error *err) {
    int rc = ET_OK;
    size_t page = 0;
    for (size_t i = 0; i < L->n && !rc; i++) {
        const et_line *l = &L->v[i];
        if (n_pages > 1 && l->page != page) {
            page = l->page;
            rc = et_doc_page(doc, page, err);
        }
        if (l->drop) continue;
        if (!rc && blank(l->s, l->n)) {
            rc = et_doc_end(doc, err);
            continue;
        }
        size_t b = lead(l->s, l->n);
        size_t m = list_marker(l->s + b, l->n - b, 0);
        if (!rc && m) {
            rc = et_doc_begin(doc, ET_BLK_LIST, err);
            if (!rc) rc = et_doc_line(doc, l->s + b, l->n - b, err);
            continue;
        }
        if (!rc) rc = et_doc_line(doc, l->s, l->n, err);
    }
    if (!rc) rc = et_doc_end(doc, err);
    return rc;
}

/* ---- Markdown inline markup ------------------------------------------------------ */

static int is_punct(unsigned char c) { return c < 0x80 && c > ' ' && !((c | 32) >= 'a' && (c | 32) <= 'z') && !(c >= '0' && c <= '9'); }
static int is_space_or_edge(const char *s, size_t n, size_t i) { return i >= n || s[i] == ' ' || s[i] == '\t'; }

static const struct {
    const char *name;
    const char *utf8;
} entities[] = {{"amp", "&"},       {"lt", "<"},        {"gt", ">"},        {"quot", "\""},
                {"apos", "'"},      {"nbsp", " "},      {"ndash", "\xe2\x80\x93"}, {"mdash", "\xe2\x80\x94"},
                {"hellip", "\xe2\x80\xa6"}, {"copy", "\xc2\xa9"}, {"reg", "\xc2\xae"}, {"rsquo", "\xe2\x80\x99"},
                {"lsquo", "\xe2\x80\x98"}, {"rdquo", "\xe2\x80\x9d"}, {"ldquo", "\xe2\x80\x9c"}};

/* Decodes an entity at s[i] ('&'); returns bytes consumed (0 = not one). */
static size_t entity(const char *s, size_t n, size_t i, et_buf *o, et_error *err) {
    size_t j = i + 1;
    while (j < n && j - i < 12 && s[j] != ';' && s[j] != ' ') j++;
    if (j >= n || s[j] != ';') return 0;
    const char *name = s + i + 1;
    size_t nl = j - i - 1;
    if (nl >= 2 && name[0] == '#') {
        unsigned long v = 0;
        int hex = name[1] == 'x' || name[1] == 'X';
        size_t k = hex ? 2 : 1;
        if (k >= nl) return 0;
        for (; k < nl; k++) {
            char c = name[k];
            int d = (c >= '0' && c <= '9') ? c - '0' : (hex && (c | 32) >= 'a' && (c | 32) <= 'f') ? (c | 32) - 'a' + 10 : -1;
            if (d < 0 || v > 0x10FFFF) return 0;
            v = v * (hex ? 16 : 10) + (unsigned long)d;
        }
        if (v == 0 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) v = 0xFFFD;
        char u[4];
        size_t ul;
        if (v < 0x80) u[0] = (char)v, ul = 1;
        else if (v < 0x800) u[0] = (char)(0xC0 | (v >> 6)), u[1] = (char)(0x80 | (v & 0x3F)), ul = 2;
        else if (v < 0x10000)
            u[0] = (char)(0xE0 | (v >> 12)), u[1] = (char)(0x80 | ((v >> 6) & 0x3F)), u[2] = (char)(0x80 | (v & 0x3F)), ul = 3;
        else
            u[0] = (char)(0xF0 | (v >> 18)), u[1] = (char)(0x80 | ((v >> 12) & 0x3F)),
            u[2] = (char)(0x80 | ((v >> 6) & 0x3F)), u[3] = (char)(0x80 | (v & 0x3F)), ul = 4;
        if (et_buf_append(o, u, ul, err)) return 0;
        return j + 1 - i;
    }
    for (size_t e = 0; e < ET_ARRAY_LEN(entities); e++)
        if (strlen(entities[e].name) == nl && !memcmp(entities[e].name, name, nl)) {
            if (et_buf_puts(o, entities[e].utf8, err)) return 0;
            return j + 1 - i;
        }
    return 0;
}

/* Index of the ']' matching the '[' at s[i], or n. */
static size_t match_bracket(const char *s, size_t n, size_t i) {
    int depth = 0;
    for (size_t j = i; j < n; j++) {
        if (s[j] == '\\') {
            j++;
            continue;
        }
        if (s[j] == '[') depth++;
        else if (s[j] == ']' && --depth == 0) return j;
    }
    return n;
}

static int md_inline(const char *s, size_t n, et_buf *o, int depth, et_error *err);

/* Strips Markdown inline markup from s[0..n), appending to o. */
static int md_inline(const char *s, size_t n, et_buf *o, int depth, et_error *err) {
    int rc = ET_OK;
    for (size_t i = 0; i < n && !rc;) {
        char c = s[i];
        if (c == '\\' && i + 1 < n && is_punct((unsigned char)s[i + 1])) {
            rc = et_buf_append(o, s + i + 1, 1, err);
            i += 2;
        } else if (c == '`') { /* code span: same-length backtick run closes it */
            size_t k = i;
            while (k < n && s[k] == '`') k++;
            size_t run = k - i, j = k, close = n;
            while (j < n) {
                if (s[j] == '`') {
                    size_t e = j;
                    while (e < n && s[e] == '`') e++;
                    if (e - j == run) {
                        close = j;
                        break;
                    }
                    j = e;
                } else {
                    j++;
                }
            }
            if (close == n) {
                rc = et_buf_append(o, s + i, run, err);
                i = k;
            } else {
                size_t b = k, e = close;
                if (e - b >= 2 && s[b] == ' ' && s[e - 1] == ' ') b++, e--;
                rc = et_buf_append(o, s + b, e - b, err);
                i = close + run;
            }
        } else if ((c == '[' || (c == '!' && i + 1 < n && s[i + 1] == '[')) && depth < 8) {
            size_t ob = c == '!' ? i + 1 : i;
            size_t cb = match_bracket(s, n, ob);
            if (cb < n && cb + 1 < n && (s[cb + 1] == '(' || s[cb + 1] == '[')) {
                char closer = s[cb + 1] == '(' ? ')' : ']';
                size_t j = cb + 2;
                int d = 1;
                while (j < n && d) {
                    if (s[j] == '\\') j++;
                    else if (s[j] == s[cb + 1]) d++;
                    else if (s[j] == closer) d--;
                    j++;
                }
                if (!d) {
                    rc = md_inline(s + ob + 1, cb - ob - 1, o, depth + 1, err);
                    i = j;
                    continue;
                }
            }
            if (cb < n && c == '[') { /* [text] alone: keep the text */
                rc = md_inline(s + ob + 1, cb - ob - 1, o, depth + 1, err);
                i = cb + 1;
                continue;
            }
            rc = et_buf_append(o, s + i, 1, err);
            i++;
        } else if (c == '<') { /* autolink or inline HTML tag */
            size_t j = i + 1;
            while (j < n && s[j] != '>' && s[j] != '<') j++;
            if (j < n && s[j] == '>' && j > i + 1) {
                const char *in = s + i + 1;
                size_t il = j - i - 1;
                if (memmem(in, il, "://", 3) || (memchr(in, '@', il) && !memchr(in, ' ', il))) {
                    if (!memchr(in, ' ', il)) rc = et_buf_append(o, in, il, err);
                    else rc = et_buf_append(o, s + i, j + 1 - i, err);
                    i = j + 1;
                    continue;
                }
                unsigned char f = (unsigned char)in[0];
                if (((f | 32) >= 'a' && (f | 32) <= 'z') || f == '/' || f == '!') {
                    i = j + 1; /* tag dropped */
                    continue;
                }
            }
            rc = et_buf_append(o, s + i, 1, err);
            i++;
        } else if (c == '&') {
            size_t used = entity(s, n, i, o, err);
            if (!used) rc = et_buf_append(o, "&", 1, err);
            i += used ? used : 1;
        } else if (c == '*' || c == '_' || c == '~') { /* emphasis / strike delimiters */
            size_t k = i;
            while (k < n && s[k] == c) k++;
            int before_ok = i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t' || is_punct((unsigned char)s[i - 1]);
            int after_ok = is_space_or_edge(s, n, k) || is_punct((unsigned char)s[k]);
            int left = !is_space_or_edge(s, n, k) && before_ok;    /* opens */
            int right = i > 0 && s[i - 1] != ' ' && s[i - 1] != '\t' && after_ok; /* closes */
            if ((c == '~' && k - i < 2) || (!left && !right)) rc = et_buf_append(o, s + i, k - i, err);
            i = k;
        } else {
            rc = et_buf_append(o, s + i, 1, err);
            i++;
        }
    }
    return rc;
}

/* ---- Markdown blocks ------------------------------------------------------------------ */

static int is_fence(const char *s, size_t n, char *ch, size_t *len) {
    if (n < 3 || (s[0] != '`' && s[0] != '~')) return 0;
    size_t k = 0;
    while (k < n && s[k] == s[0]) k++;
    if (k < 3) return 0;
    if (s[0] == '`' && memchr(s + k, '`', n - k)) return 0; /* info string may not hold backticks */
    *ch = s[0];
    *len = k;
    return 1;
}

/* "***", "- - -", "___" */
static int is_thematic(const char *s, size_t n) {
    char c = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' || s[i] == '\t') continue;
        if (s[i] != '*' && s[i] != '-' && s[i] != '_') return 0;
        if (c && s[i] != c) return 0;
        c = s[i];
        cnt++;
    }
    return cnt >= 3;
}

static int is_setext(const char *s, size_t n, int *level) {
    size_t i = 0;
    if (n == 0 || (s[0] != '=' && s[0] != '-')) return 0;
    while (i < n && s[i] == s[0]) i++;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i != n) return 0;
    *level = s[0] == '=' ? 1 : 2;
    return 1;
}

/* Table separator row: |---|:--:| */
static int is_table_sep(const char *s, size_t n) {
    int dash = 0, pipe = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-') dash = 1;
        else if (c == '|') pipe = 1;
        else if (c != ':' && c != ' ' && c != '\t') return 0;
    }
    return dash && pipe;
}

/* Appends a Markdown line, inline markup stripped, to the open block. */
static int md_line(et_doc *doc, et_buf *tmp, const char *s, size_t n, et_error *err) {
    tmp->len = 0;
    int rc = md_inline(s, n, tmp, 0, err);
    if (!rc && tmp->len) rc = et_doc_line(doc, tmp->data, tmp->len, err);
    return rc;
}

/* Table row "| a | b |" as "a | b". */
static int md_table_row(et_doc *doc, et_buf *tmp, const char *s, size_t n, et_error *err) {
    while (n && (*s == ' ' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n && *s == '|') s++, n--;
    if (n && s[n - 1] == '|' && !(n >= 2 && s[n - 2] == '\\')) n--;
    int rc = et_doc_begin(doc, ET_BLK_PARA, err);
    if (!rc) rc = md_line(doc, tmp, s, n, err);
    if (!rc) rc = et_doc_end(doc, err);
    return rc;
}

static int markdown_to_doc(et_doc *doc, lines *L, et_error *err) {
    et_buf tmp = {0};
    int rc = ET_OK;
    size_t i = 0;
    /* front matter */
    if (L->n && L->v[0].n == 3 && !memcmp(L->v[0].s, "---", 3)) {
        for (size_t k = 1; k < L->n && k < 200; k++)
            if ((L->v[k].n == 3 && (!memcmp(L->v[k].s, "---", 3) || !memcmp(L->v[k].s, "...", 3)))) {
                i = k + 1;
                break;
            }
    }
    int prev_blank = 1, in_list = 0, in_table = 0, in_comment = 0;
    for (; i < L->n && !rc; i++) {
        const char *s = L->v[i].s;
        size_t n = L->v[i].n;
        if (in_comment) {
            const char *e = memmem(s, n, "-->", 3);
            if (e) in_comment = 0;
            prev_blank = 1;
            continue;
        }
        if (blank(s, n)) {
            rc = et_doc_end(doc, err);
            prev_blank = 1;
            in_table = 0;
            continue;
        }
        size_t ind = indent_of(s, n), b = lead(s, n);
        /* indented code: after a blank line, outside lists */
        if (ind >= 4 && prev_blank && !in_list && (!doc->open || doc->kind == ET_BLK_CODE)) {
            if (!doc->open || doc->kind != ET_BLK_CODE) rc = et_doc_begin(doc, ET_BLK_CODE, err);
            size_t cut = 0, w = 0;
            while (cut < n && w < 4) w = (s[cut] == '\t') ? 4 : w + 1, cut++;
            if (!rc) rc = et_doc_line(doc, s + cut, n - cut, err);
            continue; /* stays "after blank" for the next indented line */
        }
        if (doc->open && doc->kind == ET_BLK_CODE && !(ind >= 4 && prev_blank)) rc = et_doc_end(doc, err);
        prev_blank = 0;
        const char *t = s + b;
        size_t tn = n - b;
        /* block quotes: strip the markers, then treat as a normal line */
        while (ind < 4 && tn && *t == '>') {
            t++, tn--;
            if (tn && (*t == ' ' || *t == '\t')) t++, tn--;
            size_t bb = lead(t, tn);
            t += bb, tn -= bb;
        }
        if (!tn) {
            rc = et_doc_end(doc, err);
            continue;
        }
        char fch;
        size_t flen;
        if (ind < 4 && is_fence(t, tn, &fch, &flen)) {
            rc = et_doc_begin(doc, ET_BLK_CODE, err);
            size_t k = i + 1;
            for (; k < L->n && !rc; k++) {
                const char *u = L->v[k].s;
                size_t un = L->v[k].n, ub = lead(u, un);
                char c2;
                size_t l2;
                if (indent_of(u, un) < 4 && is_fence(u + ub, un - ub, &c2, &l2) && c2 == fch && l2 >= flen &&
                    blank(u + ub + l2, un - ub - l2))
                    break;
                size_t cut = 0; /* remove the fence's own indentation */
                while (cut < b && cut < un && (u[cut] == ' ' || u[cut] == '\t')) cut++;
                rc = et_doc_line(doc, u + cut, un - cut, err);
            }
            if (!rc) rc = et_doc_end(doc, err);
            i = k; /* the closing fence (or EOF) */
            prev_blank = 1;
            continue;
        }
        if (tn >= 4 && !memcmp(t, "<!--", 4)) {
            if (!memmem(t + 4, tn - 4, "-->", 3)) in_comment = 1;
            rc = et_doc_end(doc, err);
            continue;
        }
        /* ATX heading */
        if (ind < 4 && *t == '#') {
            size_t h = 0;
            while (h < tn && t[h] == '#') h++;
            if (h <= 6 && (h == tn || t[h] == ' ' || t[h] == '\t')) {
                size_t e = tn;
                while (e > h && (t[e - 1] == ' ' || t[e - 1] == '\t')) e--;
                size_t e2 = e;
                while (e2 > h && t[e2 - 1] == '#') e2--;
                if (e2 == h || t[e2 - 1] == ' ' || t[e2 - 1] == '\t') e = e2;
                rc = et_doc_begin(doc, ET_BLK_HEADING, err);
                if (!rc) rc = md_line(doc, &tmp, t + h, e - h, err);
                if (!rc) rc = et_doc_end(doc, err);
                in_list = 0;
                continue;
            }
        }
        int level;
        if (ind < 4 && doc->open && doc->kind == ET_BLK_PARA && !in_table && is_setext(t, tn, &level)) {
            doc->kind = ET_BLK_HEADING;
            rc = et_doc_end(doc, err);
            continue;
        }
        if (ind < 4 && is_thematic(t, tn)) {
            rc = et_doc_end(doc, err);
            continue;
        }
        /* link reference definition: [id]: url */
        if (ind < 4 && *t == '[') {
            size_t cb = match_bracket(t, tn, 0);
            if (cb + 1 < tn && t[cb + 1] == ':') continue;
        }
        /* tables: a row followed by a separator row, then rows until a blank */
        if (memchr(t, '|', tn)) {
            if (in_table) {
                rc = md_table_row(doc, &tmp, t, tn, err);
                continue;
            }
            if (i + 1 < L->n && is_table_sep(L->v[i + 1].s, L->v[i + 1].n)) {
                rc = md_table_row(doc, &tmp, t, tn, err);
                in_table = 1;
                i++; /* skip the separator row */
                continue;
            }
        }
        size_t m = list_marker(t, tn, 1);
        if (m) {
            rc = et_doc_begin(doc, ET_BLK_LIST, err);
            t += m, tn -= m;
            if (tn >= 4 && t[0] == '[' && (t[1] == ' ' || t[1] == 'x' || t[1] == 'X') && t[2] == ']' && t[3] == ' ')
                t += 4, tn -= 4; /* task list box */
            in_list = 1;
        } else if (ind == 0 && !doc->open) {
            in_list = 0;
        }
        if (!rc) rc = md_line(doc, &tmp, t, tn, err);
    }
    if (!rc) rc = et_doc_end(doc, err);
    et_buf_free(&tmp);
    return rc;
}

int et_extract_text(et_doc *doc, const char *data, size_t n, int markdown, const char *name, int *skip,
                    et_error *err) {
    *skip = ET_SKIP_NONE;
    if (n == 0) {
        *skip = ET_SKIP_EMPTY;
        return et_err_set(err, ET_EFORMAT, "%s: empty file", name);
    }
    if (et_clean_is_binary(data, n)) {
        *skip = ET_SKIP_BINARY;
        return et_err_set(err, ET_EFORMAT, "%s: binary file (not text, PDF or HTML)", name);
    }
    et_buf clean = {0};
    lines L = {0};
    et_strmap ws;
    et_strmap_init(&ws);
    size_t n_pages = 1;
    int rc = et_clean_utf8(data, n, &clean, NULL, err);
    if (!rc) rc = split_lines(&L, clean.data ? clean.data : "", clean.len, &n_pages, err);
    if (!rc && !markdown && n_pages > 1) et_clean_furniture(L.v, L.n, n_pages, 0);
    if (!rc) rc = build_wordset(&ws, &L, err);
    if (!rc) {
        doc->words = &ws;
        doc->n_pages = n_pages > 1 ? n_pages : 0;
        rc = markdown ? markdown_to_doc(doc, &L, err) : plain_to_doc(doc, &L, n_pages, err);
        doc->words = NULL;
    }
    if (rc) et_err_prefix(err, "%s", name);
    if (!rc && doc->n_blocks == 0) {
        *skip = ET_SKIP_EMPTY;
        rc = et_err_set(err, ET_EFORMAT, "%s: no text (only blanks or markup)", name);
    }
    free(L.v);
    et_buf_free(&clean);
    et_strmap_free(&ws);
    return rc;
}
