/* tok_unicode.c - the Unicode predicates the HF tokenizers pipeline uses, on utf8proc data.
 *
 * HF tokenizers mixes several Unicode tables: Rust's std (is_whitespace, is_numeric,
 * to_lowercase), the `regex` crate (\w, \s), the old `unicode_categories` crate
 * (is_punctuation, is_other, is_mark_nonspacing: Unicode 9-era tables) and
 * `unicode-normalization-alignments`. We take categories and case mappings from utf8proc
 * (Unicode 15 on Debian 12) and list, per predicate, the code points where the reference
 * disagrees (tok_unicode_exceptions.h, produced by tests/ref/unicode_props.js and checked
 * for every code point by tests/test_tokenizer_golden.sh). docs/TOKENIZER.md lists them.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer.h"
#include "tok_unicode_exceptions.h"

size_t tok_utf8_put(char *out, uint32_t c) {
    uint8_t *o = (uint8_t *)out;
    if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
    if (c < 0x800) { o[0] = (uint8_t)(0xC0 | (c >> 6)); o[1] = (uint8_t)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (c >> 12));
        o[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (c >> 18));
    o[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (c & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at p (n bytes available), or 0 if invalid; *bad gets
 * the length of the maximal invalid subpart (>= 1) when invalid. */
static size_t utf8_seq(const uint8_t *p, size_t n, size_t *bad) {
    uint8_t b = p[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) need = 1;
    else if (b == 0xE0) { need = 2; lo = 0xA0; }
    else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) need = 2;
    else if (b == 0xED) { need = 2; hi = 0x9F; }
    else if (b == 0xF0) { need = 3; lo = 0x90; }
    else if (b >= 0xF1 && b <= 0xF3) need = 3;
    else if (b == 0xF4) { need = 3; hi = 0x8F; }
    else { *bad = 1; return 0; }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n) { *bad = i; return 0; }
        uint8_t c = p[i];
        uint8_t l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (c < l || c > h) { *bad = i; return 0; }
    }
    return need + 1;
}

size_t tok_utf8_valid_prefix(const char *s, size_t len) {
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0, bad;
    while (i < len) {
        /* fast path for ASCII runs */
        while (i + 8 <= len) {
            uint64_t v;
            memcpy(&v, p + i, 8);
            if (v & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= len) break;
        if (p[i] < 0x80) { i++; continue; }
        size_t k = utf8_seq(p + i, len - i, &bad);
        if (!k) return i;
        i += k;
    }
    return len;
}

int tok_utf8_lossy(const char *s, size_t len, char **out, size_t *out_len, size_t **map,
                   et_error *err) {
    const uint8_t *p = (const uint8_t *)s;
    size_t cap;
    /* worst case: every byte becomes U+FFFD (3 bytes) */
    if (!et_size_mul(len, 3, &cap) || !et_size_add(cap, 1, &cap))
        return et_err_set(err, ET_EINVAL, "tokenizer: input too large (%zu bytes)", len);
    char *o = et_malloc(cap, err);
    size_t *m = map ? et_malloc_n(cap, sizeof(size_t), err) : NULL;
    if (!o || (map && !m)) { free(o); free(m); return ET_ENOMEM; }
    size_t i = 0, j = 0, bad;
    while (i < len) {
        size_t k = utf8_seq(p + i, len - i, &bad);
        if (k) {
            for (size_t t = 0; t < k; t++) {
                if (m) m[j] = i + t;
                o[j++] = (char)p[i + t];
            }
            i += k;
        } else {
            for (size_t t = 0; t < 3; t++) if (m) m[j + t] = i;
            j += tok_utf8_put(o + j, 0xFFFD);
            i += bad;
        }
    }
    if (m) m[j] = len;
    o[j] = 0;
    *out = o;
    *out_len = j;
    if (map) *map = m;
    return ET_OK;
}

/* ---- predicates ---------------------------------------------------------------------- */

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid][0]) hi = mid;
        else if (c > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}
#define IN_EXC(tab, c) in_ranges(tab, ET_ARRAY_LEN(tab), c)

static inline int cat(uint32_t c) { return utf8proc_category((utf8proc_int32_t)c); }

int tok_is_whitespace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int tok_is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    if (c < 0x80) return c < 0x20 || c == 0x7F;
    int k = cat(c);
    int r = k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO ||
            k == UTF8PROC_CATEGORY_CS;
    return IN_EXC(tok_exc_control, c) ? !r : r;
}

int tok_is_punct(uint32_t c) {
    if (c < 0x80)
        return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
               (c >= 0x7B && c <= 0x7E);
    int k = cat(c);
    int r = k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
    return IN_EXC(tok_exc_punct, c) ? !r : r;
}

int tok_is_mark_nonspacing(uint32_t c) {
    if (c < 0x300) return 0;
    int r = cat(c) == UTF8PROC_CATEGORY_MN;
    return IN_EXC(tok_exc_mn, c) ? !r : r;
}

int tok_is_combining_mark(uint32_t c) {
    if (c < 0x300) return 0;
    int k = cat(c);
    int r = k >= UTF8PROC_CATEGORY_MN && k <= UTF8PROC_CATEGORY_ME;
    return IN_EXC(tok_exc_combining, c) ? !r : r;
}

int tok_is_word(uint32_t c) {
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    int k = cat(c);
    int r = (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_ND) || k == UTF8PROC_CATEGORY_NL ||
            k == UTF8PROC_CATEGORY_PC || c == 0x200C || c == 0x200D ||
            (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
            (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
    return IN_EXC(tok_exc_word, c) ? !r : r;
}

int tok_is_numeric(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    int k = cat(c);
    int r = k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO;
    return IN_EXC(tok_exc_numeric, c) ? !r : r;
}

int tok_is_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

size_t tok_to_lower(uint32_t c, uint32_t out[3]) {
    if (c < 0x80) {
        out[0] = (c >= 'A' && c <= 'Z') ? c + 32 : c;
        return 1;
    }
    if (c == 0x130) { /* the one unconditional multi-char lowercase (SpecialCasing.txt) */
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    if (c >= tok_exc_lower[0][0]) {
        size_t lo = 0, hi = ET_ARRAY_LEN(tok_exc_lower);
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (tok_exc_lower[mid][0] == c) { out[0] = tok_exc_lower[mid][1]; return 1; }
            if (tok_exc_lower[mid][0] < c) lo = mid + 1;
            else hi = mid;
        }
    }
    out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
    return 1;
}

uint8_t tok_ccc(uint32_t c) {
    if (c < 0x300) return 0;
    if (IN_EXC(tok_exc_combining, c)) return 0; /* a mark the reference does not know */
    return (uint8_t)utf8proc_get_property((utf8proc_int32_t)c)->combining_class;
}

int tok_no_decomp(uint32_t c, int compat) {
    return compat ? IN_EXC(tok_exc_nfkd, c) : IN_EXC(tok_exc_nfd, c);
}

/* ---- Python str.lower() ---------------------------------------------------------- */

/* Unicode Cased (Lu, Ll, Lt; Other_Lowercase/Other_Uppercase approximated by the
 * characters that have a case mapping) and Case_Ignorable (Mn, Me, Cf, Lm, Sk and
 * the Word_Break MidLetter / MidNumLet / Single_Quote characters). */
static int py_cased(uint32_t c) {
    int k = cat(c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT) return 1;
    return utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

static int py_case_ignorable(uint32_t c) {
    switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0x5E: case 0x60: case 0xA8: case 0xAD: case 0xAF:
    case 0xB4: case 0xB7: case 0xB8: case 0x387: case 0x5F4: case 0x2018: case 0x2019:
    case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E:
    case 0xFF1A:
        return 1;
    }
    int k = cat(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

int tok_py_lower(const char *s, size_t len, char **out, size_t *out_len, et_error *err) {
    *out = NULL;
    *out_len = 0;
    size_t n = 0;
    char *fixed = NULL;
    if (tok_utf8_valid_prefix(s, len) != len) { /* decode lossily first, as the tokenizer does */
        int rc = tok_utf8_lossy(s, len, &fixed, &len, NULL, err);
        if (rc) return rc;
        s = fixed;
    }
    utf8proc_int32_t *cps = et_malloc_n(len + 1, sizeof(*cps), err);
    /* a code point lowers to at most 3 (4 bytes each) */
    char *o = cps ? et_malloc_n(len + 1, 12, err) : NULL;
    if (!cps || !o) {
        free(cps);
        free(o);
        free(fixed);
        return ET_ENOMEM;
    }
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &c);
        if (k <= 0) { /* cannot happen after the lossy decode; keep going safely */
            c = 0xFFFD;
            k = 1;
        }
        cps[n++] = c;
        i += (size_t)k;
    }
    size_t ol = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)cps[i], lo[3];
        size_t k;
        if (c == 0x3A3) { /* Final_Sigma, as CPython's handle_capital_sigma */
            size_t j = i;
            while (j > 0 && py_case_ignorable((uint32_t)cps[j - 1])) j--;
            int fin = j > 0 && py_cased((uint32_t)cps[j - 1]);
            if (fin) {
                j = i + 1;
                while (j < n && py_case_ignorable((uint32_t)cps[j])) j++;
                fin = j == n || !py_cased((uint32_t)cps[j]);
            }
            lo[0] = fin ? 0x3C2 : 0x3C3;
            k = 1;
        } else {
            k = tok_to_lower(c, lo);
        }
        for (size_t q = 0; q < k; q++)
            ol += (size_t)utf8proc_encode_char((utf8proc_int32_t)lo[q], (utf8proc_uint8_t *)o + ol);
    }
    free(cps);
    free(fixed);
    o[ol] = 0;
    *out = o;
    *out_len = ol;
    return ET_OK;
}
