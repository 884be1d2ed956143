/* ingest_clean.c - text cleanup shared by every extractor, and the et_doc
 * builder: UTF-8 repair (Windows-1252 fallback), ligatures, odd spaces and
 * controls, NFC; hyphenated line-break joins; page furniture removal. */
#include "ingest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- UTF-8 ------------------------------------------------------------------- */

/* Decodes one strict UTF-8 sequence at s[0..n); returns its length (1-4) and
 * *cp, or 0 if the bytes do not start a valid sequence (overlong forms,
 * surrogates and values above U+10FFFF are invalid). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

static size_t utf8_encode(char *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Windows-1252 bytes 0x80-0x9F (0 = undefined, dropped). */
static const uint16_t cp1252[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

static const char *ligature(uint32_t cp) {
    switch (cp) {
    case 0xFB00: return "ff";
    case 0xFB01: return "fi";
    case 0xFB02: return "fl";
    case 0xFB03: return "ffi";
    case 0xFB04: return "ffl";
    case 0xFB05: return "st"; /* long s + t */
    case 0xFB06: return "st";
    default: return NULL;
    }
}

static int is_unicode_space(uint32_t cp) {
    return cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

static int is_dropped(uint32_t cp) {
    return (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\f') || (cp >= 0x7F && cp <= 0x9F) ||
           (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF || cp == 0xFFFE ||
           cp == 0xFFFF || (cp >= 0xE000 && cp <= 0xF8FF) /* private use: unmapped PDF glyphs */;
}

int et_clean_utf8(const char *in, size_t n, et_buf *out, size_t *fallback, et_error *err) {
    const unsigned char *s = (const unsigned char *)in;
    size_t start = out->len, nfb = 0;
    int ascii = 1, rc;
    size_t cap;
    if (!et_size_add(n, n / 2 + 16, &cap)) return et_err_set(err, ET_ENOMEM, "text too large");
    if ((rc = et_buf_reserve(out, cap, err))) return rc;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (!len) {
            nfb++;
            cp = s[i] >= 0x80 && s[i] <= 0x9F ? cp1252[s[i] - 0x80] : s[i];
            len = 1;
            if (!cp) {
                i++;
                continue;
            }
        }
        i += len;
        char tmp[4];
        const char *rep = NULL;
        size_t rep_len = 0;
        if (cp == '\r') {
            if (i < n && s[i] == '\n') continue;
            cp = '\n';
        } else if (cp == 0x2028 || cp == 0x2029) {
            cp = '\n';
        } else if (cp == 0xAD) { /* soft hyphen: at a line end it joins the lines */
            size_t j = i;
            while (j < n && (s[j] == ' ' || s[j] == '\t')) j++;
            if (j < n && (s[j] == '\n' || s[j] == '\r')) {
                j += (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n') ? 2 : 1;
                while (j < n && (s[j] == ' ' || s[j] == '\t')) j++;
                i = j;
            }
            continue;
        } else if (is_dropped(cp)) {
            continue;
        } else if (is_unicode_space(cp)) {
            cp = ' ';
        } else if (cp == 0x2011) {
            cp = '-';
        } else if ((rep = ligature(cp))) {
            rep_len = strlen(rep);
        }
        if (!rep) {
            rep_len = utf8_encode(tmp, cp);
            rep = tmp;
        }
        if (cp >= 0x80 && !ligature(cp)) ascii = 0;
        if ((rc = et_buf_append(out, rep, rep_len, err))) return rc;
    }
    if (fallback) *fallback = nfb;
    if (ascii || out->len == start) return ET_OK;
    /* NFC (composed accents: what tokenizers and readers expect) */
    utf8proc_uint8_t *nfc = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)out->data + start,
                                      (utf8proc_ssize_t)(out->len - start), &nfc,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) return ET_OK; /* cannot happen on valid UTF-8; keep the unnormalized text */
    out->len = start;
    rc = et_buf_append(out, nfc, (size_t)m, err);
    free(nfc);
    return rc;
}

int et_clean_is_binary(const char *data, size_t n) {
    size_t m = n < 65536 ? n : 65536, ctl = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == 0) return 1;
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' && c != 0x1B) ctl++;
    }
    return m && ctl * 10 > m;
}

/* ---- words and hyphenation ------------------------------------------------------ */

/* Letters for word purposes: ASCII letters and any byte of a multi-byte
 * UTF-8 sequence (accented letters; good enough for hyphenation). */
static int is_letter(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_lower_start(unsigned char c) { return (c >= 'a' && c <= 'z') || c >= 0xC3; }

static size_t lower_copy(char *dst, const char *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    return n;
}

int et_wordset_add_text(et_strmap *ws, const char *s, size_t n, et_error *err) {
    const unsigned char *u = (const unsigned char *)s;
    char tmp[128];
    for (size_t i = 0; i < n;) {
        if (!is_letter(u[i])) {
            i++;
            continue;
        }
        size_t b = i;
        while (i < n && (is_letter(u[i]) || (u[i] == '-' && i + 1 < n && is_letter(u[i + 1])))) i++;
        size_t len = i - b;
        if (len > sizeof(tmp)) continue;
        /* a word hyphenated at a line end ("docu-\n") is not evidence */
        if (i < n && u[i] == '-') continue;
        lower_copy(tmp, s + b, len);
        int r = et_strmap_put_new(ws, tmp, len, 1, NULL, err);
        if (r < 0) return err ? err->code : ET_ENOMEM;
    }
    return ET_OK;
}

int et_hyphen_join(const et_strmap *ws, const char *left, size_t ln, const char *right, size_t rn) {
    const unsigned char *l = (const unsigned char *)left, *r = (const unsigned char *)right;
    size_t hy; /* bytes of the hyphen */
    if (ln >= 1 && l[ln - 1] == '-') hy = 1;
    else if (ln >= 3 && l[ln - 3] == 0xE2 && l[ln - 2] == 0x80 && l[ln - 1] == 0x90) hy = 3; /* U+2010 */
    else return 0;
    if (ln < hy + 1 || rn == 0) return 0;
    unsigned char before = l[ln - hy - 1];
    if (is_digit(before)) return (is_digit(r[0]) || is_letter(r[0])) ? 2 : 0; /* "10-20", "3-dimensional" */
    if (!is_letter(before)) return 0;
    if (!is_lower_start(r[0])) return (is_letter(r[0]) || is_digit(r[0])) ? 2 : 0;
    if (!ws) return 1;
    /* the two halves: letters (and inner hyphens) around the break */
    size_t lb = ln - hy;
    while (lb > 0 && (is_letter(l[lb - 1]) || (l[lb - 1] == '-' && lb >= 2 && is_letter(l[lb - 2])))) lb--;
    size_t re = 0;
    while (re < rn && (is_letter(r[re]) || (r[re] == '-' && re + 1 < rn && is_letter(r[re + 1])))) re++;
    size_t lw = ln - hy - lb;
    char joined[160], hyph[161];
    if (lw + re > sizeof(joined) || lw == 0 || re == 0) return 1;
    lower_copy(joined, left + lb, lw);
    lower_copy(joined + lw, right, re);
    lower_copy(hyph, left + lb, lw);
    hyph[lw] = '-';
    lower_copy(hyph + lw + 1, right, re);
    int64_t v;
    int has_h = et_strmap_get(ws, hyph, lw + re + 1, &v);
    int has_j = et_strmap_get(ws, joined, lw + re, &v);
    return (has_h && !has_j) ? 2 : 1;
}

/* ---- page furniture ------------------------------------------------------------- */

/* A roman numeral up to 100 in canonical form, all lower or all upper case
 * ("xiv", "XLII"; not "mix", "civic", "iiii"). */
static int is_roman(const char *s, size_t n) {
    static const char *const canon[] = {"", "i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix"};
    static const char *const tens[] = {"", "x", "xx", "xxx", "xl", "l", "lx", "lxx", "lxxx", "xc"};
    if (n == 0 || n > 9) return 0;
    char low[10];
    int up = 0, lo = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z') up = 1, c = (char)(c + 32);
        else if (c >= 'a' && c <= 'z') lo = 1;
        low[i] = c;
    }
    if (up && lo) return 0;
    char buf[16];
    for (int v = 1; v <= 100; v++) {
        snprintf(buf, sizeof(buf), "%s%s%s", v == 100 ? "c" : "", tens[(v / 10) % 10], canon[v % 10]);
        if (strlen(buf) == n && !memcmp(buf, low, n)) return 1;
    }
    return 0;
}

/* Skips one number (digits or roman numerals) at s[*i]; 1 if found. */
static int skip_number(const char *s, size_t n, size_t *i) {
    size_t b = *i, e = b;
    while (e < n && is_digit((unsigned char)s[e])) e++;
    if (e == b) {
        while (e < n && strchr("ivxlcdmIVXLCDM", s[e]) && s[e]) e++;
        if (!is_roman(s + b, e - b)) return 0;
        if (e < n && is_letter((unsigned char)s[e])) return 0;
    }
    *i = e;
    return 1;
}

static void skip_blank(const char *s, size_t n, size_t *i) {
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t')) (*i)++;
}

static int word_at(const char *s, size_t n, size_t *i, const char *w) {
    size_t k = strlen(w);
    if (*i + k > n || strncasecmp(s + *i, w, k) != 0) return 0;
    *i += k;
    return 1;
}

int et_clean_is_page_number(const char *s, size_t n) {
    size_t b = 0, e = n;
    /* strip decorations: blanks - – — [ ] ( ) | */
    for (;;) {
        while (b < e && strchr(" \t-[(|", s[b]) && s[b]) b++;
        while (e > b && strchr(" \t-])|", s[e - 1]) && s[e - 1]) e--;
        if (e - b >= 3 && (unsigned char)s[b] == 0xE2 && (unsigned char)s[b + 1] == 0x80 &&
            ((unsigned char)s[b + 2] == 0x93 || (unsigned char)s[b + 2] == 0x94)) {
            b += 3;
            continue;
        }
        if (e - b >= 3 && (unsigned char)s[e - 3] == 0xE2 && (unsigned char)s[e - 2] == 0x80 &&
            ((unsigned char)s[e - 1] == 0x93 || (unsigned char)s[e - 1] == 0x94)) {
            e -= 3;
            continue;
        }
        break;
    }
    if (b >= e) return 0;
    size_t i = b;
    if (word_at(s, e, &i, "page") || word_at(s, e, &i, "pg.") || word_at(s, e, &i, "p.")) skip_blank(s, e, &i);
    if (!skip_number(s, e, &i)) return 0;
    skip_blank(s, e, &i);
    if (i < e) {
        if (s[i] == '/') i++;
        else if (!word_at(s, e, &i, "of")) return 0;
        skip_blank(s, e, &i);
        if (!skip_number(s, e, &i)) return 0;
        skip_blank(s, e, &i);
    }
    return i == e;
}

/* Key of a line for repetition counting: zone tag, lower-cased, digit runs
 * as '#', blanks collapsed. Returns its length (0 = blank line). */
static size_t furniture_key(char *key, size_t cap, char zone, const char *s, size_t n) {
    size_t k = 0;
    key[k++] = zone;
    int blank = 1;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t') {
            if (!blank) key[k++] = ' ';
            blank = 1;
            continue;
        }
        blank = 0;
        if (is_digit(c)) {
            key[k++] = '#';
            while (i + 1 < n && is_digit((unsigned char)s[i + 1])) i++;
        } else {
            key[k++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c;
        }
    }
    while (k > 1 && key[k - 1] == ' ') k--;
    return k > 1 ? k : 0;
}

static int line_blank(const et_line *l) {
    for (size_t i = 0; i < l->n; i++)
        if (l->s[i] != ' ' && l->s[i] != '\t') return 0;
    return 1;
}

/* Whether the non-blank line of rank `rank` among m on its page is in the
 * top (or bottom) zone: the first/last 3 lines (fewer on short pages: a
 * quarter of them, at least 1, when the layout is unknown), within 12% of
 * the page edge when it is known. */
static int in_zone(const et_line *l, size_t rank, size_t m, int top, float page_h) {
    int geo = page_h > 0 && l->y1 > 0;
    size_t z = geo ? 3 : m / 4 < 1 ? 1 : m / 4 > 3 ? 3 : m / 4;
    if (top ? rank >= z : rank + z < m) return 0;
    if (geo) return top ? l->y0 < 0.12f * page_h : l->y1 > 0.88f * page_h;
    return 1;
}

/* Gap between l and the nearest line on its page toward the body (below a top
 * line, above a bottom one), ignoring lines on the same baseline; INFINITY if
 * there is none. */
static float body_gap(const et_line *page, size_t n, const et_line *l, int top) {
    float gap = INFINITY, h = l->y1 - l->y0;
    for (size_t k = 0; k < n; k++) {
        const et_line *o = &page[k];
        if (o == l || o->y1 <= o->y0 || fabsf(o->y1 - l->y1) < 0.5f * h || line_blank(o)) continue;
        float g = top ? o->y0 - l->y1 : l->y0 - o->y1;
        if (g > -0.5f * h && g < gap) gap = g < 0 ? 0 : g;
    }
    return gap;
}

size_t et_clean_furniture(et_line *lines, size_t n, size_t n_pages, float page_h) {
    et_strmap counts;
    et_strmap_init(&counts);
    size_t dropped = 0;
    char key[256];
    /* body font size: the most common size, by characters */
    float sizes[32], weight[32], body = 0, bw = -1;
    size_t nsz = 0;
    for (size_t i = 0; i < n; i++) {
        if (lines[i].size <= 0 || lines[i].drop) continue;
        size_t k = 0;
        while (k < nsz && sizes[k] != lines[i].size) k++;
        if (k == nsz && nsz < 32) sizes[nsz] = lines[i].size, weight[nsz++] = 0;
        if (k < nsz) weight[k] += (float)lines[i].n;
    }
    for (size_t k = 0; k < nsz; k++)
        if (weight[k] > bw) body = sizes[k], bw = weight[k];
    /* pass 1: count keys per zone, once per page; pass 2: mark */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t a = 0; a < n;) {
            size_t b = a;
            while (b < n && lines[b].page == lines[a].page) b++;
            size_t m = 0; /* non-blank lines on this page */
            float left = INFINITY, right = -INFINITY;
            for (size_t i = a; i < b; i++) {
                m += !line_blank(&lines[i]);
                if (lines[i].x1 > lines[i].x0) {
                    left = lines[i].x0 < left ? lines[i].x0 : left;
                    right = lines[i].x1 > right ? lines[i].x1 : right;
                }
            }
            size_t rank = 0;
            char seen[12][256];
            size_t seen_len[12] = {0}, n_seen = 0;
            for (size_t i = a; i < b; i++) {
                et_line *l = &lines[i];
                if (line_blank(l)) continue;
                size_t r = rank++;
                for (int top = 1; top >= 0; top--) {
                    if (!in_zone(l, r, m, top, page_h)) continue;
                    if (pass == 1 && et_clean_is_page_number(l->s, l->n)) {
                        if (!l->drop) dropped++;
                        l->drop = 1;
                        continue;
                    }
                    /* a line spanning most of the text width is body text */
                    if (right > left && l->x1 - l->x0 > 0.7f * (right - left)) continue;
                    int64_t c = 0;
                    /* running-header slot: a short top line at the same height on many
                     * pages (a quarter, at least 3), set apart from the body by a gap of
                     * 1.5 line heights, not in a large font (slide titles are content).
                     * Top only: at the bottom such lines are often footnotes. */
                    if (top && page_h > 0 && l->y1 > l->y0 && (l->size <= 0 || l->size <= body + 0.5f) &&
                        body_gap(lines + a, b - a, l, top) >= 1.5f * (l->y1 - l->y0)) {
                        size_t kl = (size_t)snprintf(key, sizeof(key), "S%c%ld", top ? 'T' : 'B', lroundf(l->y0));
                        if (pass == 0) {
                            int dup = 0;
                            for (size_t q = 0; q < n_seen; q++)
                                if (seen_len[q] == kl && !memcmp(seen[q], key, kl)) dup = 1;
                            if (!dup && n_seen < 6) {
                                memcpy(seen[n_seen], key, kl);
                                seen_len[n_seen++] = kl;
                                et_strmap_get(&counts, key, kl, &c);
                                if (et_strmap_put(&counts, key, kl, c + 1, NULL)) goto out;
                            }
                        } else if (et_strmap_get(&counts, key, kl, &c) && c >= 3 && (size_t)c * 4 >= n_pages) {
                            if (!l->drop) dropped++;
                            l->drop = 1;
                            continue;
                        }
                    }
                    size_t kl = furniture_key(key, sizeof(key), top ? 'T' : 'B', l->s, l->n);
                    if (!kl) continue;
                    c = 0;
                    if (pass == 0) {
                        int dup = 0;
                        for (size_t q = 0; q < n_seen; q++)
                            if (seen_len[q] == kl && !memcmp(seen[q], key, kl)) dup = 1;
                        if (dup) continue;
                        if (n_seen < 12) {
                            memcpy(seen[n_seen], key, kl);
                            seen_len[n_seen++] = kl;
                        }
                        et_strmap_get(&counts, key, kl, &c);
                        if (et_strmap_put(&counts, key, kl, c + 1, NULL)) goto out; /* OOM: keep all */
                    } else {
                        et_strmap_get(&counts, key, kl, &c);
                        int rep = c >= 3 || (n_pages < 6 && c >= 2 && (size_t)c * 2 >= n_pages);
                        if (rep && !l->drop) {
                            l->drop = 1;
                            dropped++;
                        }
                    }
                }
            }
            a = b;
        }
    }
out:
    et_strmap_free(&counts);
    return dropped;
}

/* ---- the document builder ------------------------------------------------------- */

void et_doc_init(et_doc *d) { memset(d, 0, sizeof(*d)); }

void et_doc_free(et_doc *d) {
    et_buf_free(&d->text);
    free(d->blocks);
    free(d->marks);
    memset(d, 0, sizeof(*d));
}

int et_doc_begin(et_doc *d, int kind, et_error *err) {
    int rc = d->open ? et_doc_end(d, err) : ET_OK;
    if (rc) return rc;
    d->open = 1;
    d->kind = kind;
    d->start = SIZE_MAX; /* set when the first byte of content arrives */
    return ET_OK;
}

int et_doc_page(et_doc *d, size_t page, et_error *err) {
    (void)err;
    d->pending_page = page;
    return ET_OK;
}

/* Called right before content bytes are appended at d->text.len. */
static int doc_content(et_doc *d, et_error *err) {
    int rc;
    if (d->start == SIZE_MAX) {
        if (d->text.len && (rc = et_buf_append(&d->text, "\n\n", 2, err))) return rc;
        d->start = d->text.len;
    }
    if (d->pending_page) {
        size_t page = d->pending_page;
        d->pending_page = 0;
        if (d->n_marks && d->marks[d->n_marks - 1].page == page) return ET_OK;
        if (d->n_marks && d->marks[d->n_marks - 1].off == d->text.len) {
            d->marks[d->n_marks - 1].page = page;
            return ET_OK;
        }
        if (d->n_marks == d->cap_marks) {
            size_t cap = d->cap_marks ? 2 * d->cap_marks : 64;
            et_page_mark *p = et_realloc_n(d->marks, cap, sizeof(*p), err);
            if (!p) return ET_ENOMEM;
            d->marks = p;
            d->cap_marks = cap;
        }
        d->marks[d->n_marks].off = d->text.len;
        d->marks[d->n_marks].page = page;
        d->n_marks++;
    }
    return ET_OK;
}

/* Appends s with blank runs collapsed to one space and dot leaders
 * (". . . ." or "....") shortened to " ... ". */
static int append_prose(et_doc *d, const char *s, size_t n, et_error *err) {
    /* output <= n + n/4 + 1: a leader of >= 4 input bytes becomes " ... " (5) */
    size_t cap;
    if (!et_size_add(n, n / 4 + 8, &cap)) return et_err_set(err, ET_ENOMEM, "line too long");
    int rc = et_buf_reserve(&d->text, cap, err);
    if (rc) return rc;
    char *o = d->text.data + d->text.len;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\v') {
            if (k && o[k - 1] != ' ') o[k++] = ' ';
            continue;
        }
        if (c == '.') { /* dot leader: >= 4 dots, optionally spaced */
            size_t j = i, dots = 0;
            while (j < n && (s[j] == '.' || s[j] == ' ')) dots += s[j++] == '.';
            if (dots >= 4) {
                if (k && o[k - 1] != ' ') o[k++] = ' ';
                memcpy(o + k, "... ", 4);
                k += 4;
                i = j - 1;
                continue;
            }
        }
        o[k++] = c;
    }
    while (k && o[k - 1] == ' ') k--;
    d->text.len += k;
    d->text.data[d->text.len] = '\0';
    return ET_OK;
}

/* 1 if the block text ends with a URL cut at a line end ("https://x.org/a." + "b"). */
static int url_continues(const char *l, size_t ln) {
    size_t b = ln;
    while (b > 0 && l[b - 1] != ' ') b--;
    const char *w = l + b;
    size_t wn = ln - b;
    if (wn < 5 || !strchr("./-_~?=&#%", l[ln - 1])) return 0;
    return memmem(w, wn, "://", 3) != NULL || (wn > 4 && !strncmp(w, "www.", 4));
}

int et_doc_line(et_doc *d, const char *s, size_t n, et_error *err) {
    int rc;
    if (!d->open && (rc = et_doc_begin(d, ET_BLK_PARA, err))) return rc;
    if (d->kind == ET_BLK_CODE) {
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) n--;
        if (d->start == SIZE_MAX && n == 0) return ET_OK; /* leading blank lines */
        int has = d->start != SIZE_MAX;
        if ((rc = doc_content(d, err))) return rc;
        if (has) {
            /* at most one blank line in a row */
            if (n == 0 && d->text.len >= 1 && d->text.data[d->text.len - 1] == '\n') return ET_OK;
            if ((rc = et_buf_append(&d->text, "\n", 1, err))) return rc;
        }
        return n ? et_buf_append(&d->text, s, n, err) : ET_OK;
    }
    while (n && (*s == ' ' || *s == '\t' || *s == '\f' || *s == '\v' || *s == '\n')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\f' || s[n - 1] == '\v' || s[n - 1] == '\n')) n--;
    if (!n) return ET_OK;
    if (d->start != SIZE_MAX && d->text.len > d->start) {
        const char *l = d->text.data + d->start;
        size_t ln = d->text.len - d->start;
        int j = et_hyphen_join(d->words, l, ln, s, n);
        if (j == 1) d->text.len -= (l[ln - 1] == '-') ? 1 : 3;
        else if (j == 0 && !url_continues(l, ln) && (rc = et_buf_append(&d->text, " ", 1, err)))
            return rc;
    }
    if ((rc = doc_content(d, err))) return rc;
    return append_prose(d, s, n, err);
}

/* Removes `cut` bytes at `at` from the open block, shifting page marks. */
static void doc_cut(et_doc *d, size_t at, size_t cut) {
    memmove(d->text.data + at, d->text.data + at + cut, d->text.len - at - cut);
    d->text.len -= cut;
    for (size_t m = d->n_marks; m-- > 0 && d->marks[m].off > at;)
        d->marks[m].off = d->marks[m].off >= at + cut ? d->marks[m].off - cut : at;
}

/* Code blocks: remove the indentation common to all non-empty lines, then
 * any left on the first line, so that a block never starts with a blank. */
static void code_dedent(et_doc *d) {
    size_t common = SIZE_MAX;
    const char *s = d->text.data;
    for (size_t i = d->start; i < d->text.len;) {
        size_t k = i;
        while (k < d->text.len && (s[k] == ' ' || s[k] == '\t')) k++;
        if (k < d->text.len && s[k] != '\n' && k - i < common) common = k - i;
        const char *nl = memchr(s + i, '\n', d->text.len - i);
        i = nl ? (size_t)(nl - s) + 1 : d->text.len;
    }
    if (common && common != SIZE_MAX)
        for (size_t i = d->start; i < d->text.len;) {
            size_t k = 0;
            while (k < common && i + k < d->text.len && (d->text.data[i + k] == ' ' || d->text.data[i + k] == '\t')) k++;
            if (k) doc_cut(d, i, k);
            const char *nl = memchr(d->text.data + i, '\n', d->text.len - i);
            i = nl ? (size_t)(nl - d->text.data) + 1 : d->text.len;
        }
    size_t k = d->start;
    while (k < d->text.len && strchr(" \t\n", d->text.data[k])) k++;
    if (k > d->start) doc_cut(d, d->start, k - d->start);
}

int et_doc_end(et_doc *d, et_error *err) {
    if (!d->open) return ET_OK;
    d->open = 0;
    if (d->start == SIZE_MAX) return ET_OK;
    if (d->kind == ET_BLK_CODE) code_dedent(d);
    while (d->text.len > d->start && strchr(" \t\n\f\v", d->text.data[d->text.len - 1])) d->text.len--;
    if (d->text.len == d->start) /* nothing visible: take back the separator too */
        d->text.len = d->start >= 2 ? d->start - 2 : d->start;
    /* page marks past the end point at text that is gone: the page is pending again */
    while (d->n_marks && d->marks[d->n_marks - 1].off > d->text.len) {
        if (!d->pending_page) d->pending_page = d->marks[d->n_marks - 1].page;
        d->n_marks--;
    }
    if (d->text.data) d->text.data[d->text.len] = '\0';
    if (d->text.len <= d->start) return ET_OK;
    if (d->n_blocks == d->cap_blocks) {
        size_t cap = d->cap_blocks ? 2 * d->cap_blocks : 64;
        et_block *p = et_realloc_n(d->blocks, cap, sizeof(*p), err);
        if (!p) return ET_ENOMEM;
        d->blocks = p;
        d->cap_blocks = cap;
    }
    d->blocks[d->n_blocks].off = d->start;
    d->blocks[d->n_blocks].len = d->text.len - d->start;
    d->blocks[d->n_blocks].kind = d->kind;
    d->n_blocks++;
    return ET_OK;
}

size_t et_doc_page_at(const et_doc *d, size_t off) {
    if (!d->n_marks) return 0;
    size_t lo = 0, hi = d->n_marks; /* first mark with off > `off` */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->marks[mid].off <= off) lo = mid + 1;
        else hi = mid;
    }
    return lo ? d->marks[lo - 1].page : d->marks[0].page;
}

const char *et_skip_reason_str(int reason) {
    switch (reason) {
    case ET_SKIP_EMPTY: return "empty";
    case ET_SKIP_BINARY: return "binary";
    case ET_SKIP_ENCRYPTED: return "encrypted";
    case ET_SKIP_CORRUPT: return "corrupt";
    case ET_SKIP_NO_TEXT: return "no text";
    case ET_SKIP_UNREADABLE: return "unreadable";
    default: return "none";
    }
}
