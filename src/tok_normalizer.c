/* tok_normalizer.c - HF normalizers: BertNormalizer, NFC/NFD/NFKC/NFKD, Lowercase,
 * StripAccents, Replace, Prepend, Strip, Sequence, Precompiled (SentencePiece charsmap).
 *
 * Each normalizer builds the (char, change) list HF's NormalizedString would build and
 * applies it with tok_transform, so offsets follow HF's alignment rules. When a pass would
 * change nothing it is skipped (an identity transform leaves alignments unchanged). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer.h"

/* ---- parsing ------------------------------------------------------------------------- */

static int get_bool(const cJSON *j, const char *k, int dflt, const char *file, const char *path,
                    int *out, et_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!v || cJSON_IsNull(v)) { *out = dflt; return ET_OK; }
    if (!cJSON_IsBool(v))
        return et_err_set(err, ET_EFORMAT, "%s: %s.%s: expected a boolean, got %s", file, path, k,
                          et_json_type_name(v));
    *out = cJSON_IsTrue(v);
    return ET_OK;
}

static int get_str(const cJSON *j, const char *k, const char *file, const char *path, char **out,
                   size_t *len, et_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!v) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field '%s'", file, path, k);
    if (!cJSON_IsString(v))
        return et_err_set(err, ET_EFORMAT, "%s: %s.%s: expected a string, got %s", file, path, k,
                          et_json_type_name(v));
    size_t n = strlen(v->valuestring);
    if (tok_utf8_valid_prefix(v->valuestring, n) != n)
        return et_err_set(err, ET_EFORMAT, "%s: %s.%s: invalid UTF-8", file, path, k);
    *out = et_strndup(v->valuestring, n, err);
    if (!*out) return ET_ENOMEM;
    *len = n;
    return ET_OK;
}

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 with padding, as the Rust base64 crate decodes it. */
static int b64_decode(const char *s, uint8_t **out, size_t *out_len) {
    size_t n = strlen(s);
    if (n % 4) return -1;
    uint8_t *o = malloc(n / 4 * 3 + 1);
    if (!o) return -2;
    size_t j = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) { v[k] = 0; pad++; continue; }
            if (pad) { free(o); return -1; }
            v[k] = b64val((unsigned char)s[i + k]);
            if (v[k] < 0) { free(o); return -1; }
        }
        uint32_t x = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) | (uint32_t)v[3];
        o[j++] = (uint8_t)(x >> 16);
        if (pad < 2) o[j++] = (uint8_t)(x >> 8);
        if (pad < 1) o[j++] = (uint8_t)x;
    }
    *out = o;
    *out_len = j;
    return 0;
}

static int parse_precompiled(tok_normalizer *n, const cJSON *j, const char *file, const char *path,
                             et_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "precompiled_charsmap");
    if (!v) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field 'precompiled_charsmap'", file, path);
    if (!cJSON_IsString(v))
        return et_err_set(err, ET_EFORMAT, "%s: %s.precompiled_charsmap: expected a base64 string, got %s",
                          file, path, et_json_type_name(v));
    uint8_t *b;
    size_t len;
    int r = b64_decode(v->valuestring, &b, &len);
    if (r == -2) return et_err_set(err, ET_ENOMEM, "out of memory");
    if (r) return et_err_set(err, ET_EFORMAT, "%s: %s.precompiled_charsmap: invalid base64", file, path);
    if (len < 4) {
        free(b);
        return et_err_set(err, ET_EFORMAT, "%s: %s.precompiled_charsmap: %zu bytes, too short for "
                          "the trie size", file, path, len);
    }
    uint32_t tsize = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    size_t nunits = tsize / 4;
    if (nunits > (len - 4) / 4) {
        free(b);
        return et_err_set(err, ET_EFORMAT, "%s: %s.precompiled_charsmap: trie of %u bytes exceeds the "
                          "%zu bytes of data", file, path, tsize, len - 4);
    }
    n->pc_units = et_malloc_n(nunits ? nunits : 1, sizeof(uint32_t), err);
    if (!n->pc_units) { free(b); return ET_ENOMEM; }
    for (size_t i = 0; i < nunits; i++) {
        const uint8_t *p = b + 4 + 4 * i;
        n->pc_units[i] = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    }
    n->pc_n_units = nunits;
    size_t off = 4 + 4 * nunits;
    n->pc_norm_len = len - off;
    n->pc_norm = et_malloc(n->pc_norm_len + 1, err);
    if (!n->pc_norm) { free(b); return ET_ENOMEM; }
    memcpy(n->pc_norm, b + off, n->pc_norm_len);
    n->pc_norm[n->pc_norm_len] = 0;
    free(b);
    if (tok_utf8_valid_prefix(n->pc_norm, n->pc_norm_len) != n->pc_norm_len)
        return et_err_set(err, ET_EFORMAT, "%s: %s.precompiled_charsmap: replacement strings are not "
                          "valid UTF-8", file, path);
    return ET_OK;
}

int tok_normalizer_parse(tok_normalizer *n, const cJSON *j, const char *file, const char *path,
                         et_error *err) {
    memset(n, 0, sizeof(*n));
    const char *ty = NULL;
    int rc = tok_json_type(j, file, path, &ty, err);
    if (rc) return rc;
    if (!strcmp(ty, "BertNormalizer")) {
        n->type = TOK_N_BERT;
        int sa;
        if ((rc = get_bool(j, "clean_text", 1, file, path, &n->clean_text, err)) ||
            (rc = get_bool(j, "handle_chinese_chars", 1, file, path, &n->chinese, err)) ||
            (rc = get_bool(j, "lowercase", 1, file, path, &n->lowercase, err)) ||
            (rc = get_bool(j, "strip_accents", -1, file, path, &sa, err)))
            return rc;
        /* strip_accents: null follows lowercase */
        n->strip_accents = sa < 0 ? n->lowercase : sa;
    } else if (!strcmp(ty, "NFC")) n->type = TOK_N_NFC;
    else if (!strcmp(ty, "NFD")) n->type = TOK_N_NFD;
    else if (!strcmp(ty, "NFKC")) n->type = TOK_N_NFKC;
    else if (!strcmp(ty, "NFKD")) n->type = TOK_N_NFKD;
    else if (!strcmp(ty, "Lowercase")) n->type = TOK_N_LOWERCASE;
    else if (!strcmp(ty, "StripAccents")) n->type = TOK_N_STRIP_ACCENTS;
    else if (!strcmp(ty, "Strip")) {
        n->type = TOK_N_STRIP;
        if ((rc = get_bool(j, "strip_left", 1, file, path, &n->left, err)) ||
            (rc = get_bool(j, "strip_right", 1, file, path, &n->right, err)))
            return rc;
    } else if (!strcmp(ty, "Prepend")) {
        n->type = TOK_N_PREPEND;
        if ((rc = get_str(j, "prepend", file, path, &n->content, &n->content_len, err))) return rc;
    } else if (!strcmp(ty, "Replace")) {
        n->type = TOK_N_REPLACE;
        if ((rc = get_str(j, "content", file, path, &n->content, &n->content_len, err))) return rc;
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pattern");
        char what[512];
        snprintf(what, sizeof(what), "%s.pattern", path);
        if (!p) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field 'pattern'", file, path);
        if ((rc = tok_pattern_parse(&n->pat, p, file, what, err))) return rc;
    } else if (!strcmp(ty, "Sequence")) {
        n->type = TOK_N_SEQUENCE;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
        if (!a) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field 'normalizers'", file, path);
        if (!cJSON_IsArray(a))
            return et_err_set(err, ET_EFORMAT, "%s: %s.normalizers: expected an array, got %s", file,
                              path, et_json_type_name(a));
        size_t cnt = (size_t)cJSON_GetArraySize(a);
        n->kids = et_calloc(cnt ? cnt : 1, sizeof(tok_normalizer), err);
        if (!n->kids) return ET_ENOMEM;
        size_t i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, a) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s.normalizers[%zu]", path, i);
            rc = tok_normalizer_parse(&n->kids[i], e, file, sub, err);
            n->n_kids = ++i;
            if (rc) return rc;
        }
    } else if (!strcmp(ty, "Precompiled")) {
        n->type = TOK_N_PRECOMPILED;
        if ((rc = parse_precompiled(n, j, file, path, err))) return rc;
    } else {
        return et_err_set(err, ET_EUNSUPPORTED, "%s: %s.type: unsupported '%s'", file, path, ty);
    }
    return ET_OK;
}

void tok_normalizer_free(tok_normalizer *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n_kids; i++) tok_normalizer_free(&n->kids[i]);
    free(n->kids);
    free(n->content);
    tok_pattern_free(&n->pat);
    free(n->pc_units);
    free(n->pc_norm);
    memset(n, 0, sizeof(*n));
}

/* ---- passes ------------------------------------------------------------------------------ */

#define SPT(w, si) ((w)->text + (w)->sp[si].off)
#define SPL(w, si) ((w)->sp[si].len)

/* HF filter(keep) followed by map(f): kept chars get -(number of removed chars after them). */
static int filter_map(tok_ws *w, size_t si, int (*keep)(uint32_t), uint32_t (*map)(uint32_t),
                      et_error *err) {
    char *s = SPT(w, si);
    size_t len = SPL(w, si), i = 0;
    int removed = 0, resized = 0, changed = 0;
    /* quick scan: nothing to do, or only same-length replacements (done in place: an
     * identical-length (c, 0) transform keeps every byte's alignment) */
    while (i < len) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        if (keep && !keep(c)) { removed = 1; break; }
        if (map) {
            uint32_t m = map(c);
            if (m != c) { changed = 1; if (tok_cp_len(m) != n) resized = 1; }
        }
        i += n;
    }
    if (!removed && !changed) return ET_OK;
    if (!removed && !resized) {
        for (i = 0; i < len;) {
            size_t n;
            uint32_t c = tok_utf8_next(s + i, len - i, &n);
            uint32_t m = map(c);
            if (m != c) tok_utf8_put(s + i, m);
            i += n;
        }
        return ET_OK;
    }
    w->nchg = 0;
    size_t leading = 0, last = SIZE_MAX; /* index in chg of the last kept char */
    i = 0;
    int rc;
    while (i < len) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        i += n;
        if (keep && !keep(c)) {
            if (last == SIZE_MAX) leading++;
            else w->chg[last].chg--;
            continue;
        }
        if ((rc = tok_ws_push_chg(w, map ? map(c) : c, 0, err))) return rc;
        last = w->nchg - 1;
    }
    return tok_transform(w, si, leading, err);
}

static int keep_clean(uint32_t c) { return !(c == 0 || c == 0xFFFD || tok_is_control(c)); }
static uint32_t map_bert_ws(uint32_t c) {
    return (c == '\t' || c == '\n' || c == '\r' || tok_is_whitespace(c)) ? ' ' : c;
}
static int keep_not_mn(uint32_t c) { return !tok_is_mark_nonspacing(c); }
static int keep_not_combining(uint32_t c) { return !tok_is_combining_mark(c); }

static int chinese(tok_ws *w, size_t si, et_error *err) {
    const char *s = SPT(w, si);
    size_t len = SPL(w, si), i = 0;
    int any = 0;
    while (i < len) {
        size_t n;
        if ((uint8_t)s[i] >= 0xE3 && tok_is_chinese(tok_utf8_next(s + i, len - i, &n))) { any = 1; break; }
        i += tok_utf8_len((uint8_t)s[i]);
    }
    if (!any) return ET_OK;
    w->nchg = 0;
    i = 0;
    int rc;
    while (i < len) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        i += n;
        if (tok_is_chinese(c)) {
            /* HF: [(' ', 0), (c, 1), (' ', 1)]: all three align with c */
            if ((rc = tok_ws_push_chg(w, ' ', 0, err)) || (rc = tok_ws_push_chg(w, c, 1, err)) ||
                (rc = tok_ws_push_chg(w, ' ', 1, err)))
                return rc;
        } else if ((rc = tok_ws_push_chg(w, c, 0, err))) return rc;
    }
    return tok_transform(w, si, 0, err);
}

static int lowercase(tok_ws *w, size_t si, et_error *err) {
    char *s = SPT(w, si);
    size_t len = SPL(w, si), i = 0;
    int any = 0, resized = 0;
    uint32_t lo[3];
    while (i < len) {
        size_t n;
        uint8_t b = (uint8_t)s[i];
        if (b < 0x80) {
            if (b >= 'A' && b <= 'Z') any = 1;
            i++;
            continue;
        }
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        size_t k = tok_to_lower(c, lo);
        if (k != 1 || lo[0] != c) {
            any = 1;
            if (k != 1 || tok_cp_len(lo[0]) != n) { resized = 1; break; }
        }
        i += n;
    }
    if (!any) return ET_OK;
    if (!resized) { /* same-length mappings: in place, alignments unchanged */
        for (i = 0; i < len;) {
            uint8_t b = (uint8_t)s[i];
            if (b < 0x80) {
                if (b >= 'A' && b <= 'Z') s[i] = (char)(b + 32);
                i++;
                continue;
            }
            size_t n;
            uint32_t c = tok_utf8_next(s + i, len - i, &n);
            tok_to_lower(c, lo);
            if (lo[0] != c) tok_utf8_put(s + i, lo[0]);
            i += n;
        }
        return ET_OK;
    }
    w->nchg = 0;
    i = 0;
    int rc;
    while (i < len) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        i += n;
        size_t k = tok_to_lower(c, lo);
        for (size_t t = 0; t < k; t++)
            if ((rc = tok_ws_push_chg(w, lo[t], t ? 1 : 0, err))) return rc;
    }
    return tok_transform(w, si, 0, err);
}

/* -- Unicode normalization forms with HF's (unicode-normalization-alignments) changes -- */

static uint8_t ccc(uint32_t c) { return tok_ccc(c); }

static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (b < 0x300) return 0;
    utf8proc_int32_t buf[2] = {(utf8proc_int32_t)a, (utf8proc_int32_t)b};
    utf8proc_ssize_t r = utf8proc_normalize_utf32(buf, 2, UTF8PROC_COMPOSE | UTF8PROC_STABLE);
    return r == 1 ? (uint32_t)buf[0] : 0;
}

static int nf(tok_ws *w, size_t si, int compat, int compose, et_error *err) {
    const char *s = SPT(w, si);
    size_t len = SPL(w, si), i = 0;
    uint32_t lim = compat ? 0xA0 : 0xC0;
    int any = 0;
    while (i < len) {
        if ((uint8_t)s[i] >= 0x80) {
            size_t n;
            if (tok_utf8_next(s + i, len - i, &n) >= lim) { any = 1; break; }
        }
        i += tok_utf8_len((uint8_t)s[i]);
    }
    if (!any) return ET_OK;
    w->nchg = 0;
    w->ncp = 0;
    int rc;
    utf8proc_option_t opt = UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0);
    i = 0;
    while (i < len) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        i += n;
        utf8proc_int32_t d[32];
        utf8proc_ssize_t k = 1;
        if (c < lim || tok_no_decomp(c, compat)) d[0] = (utf8proc_int32_t)c;
        else {
            int bc = 0;
            k = utf8proc_decompose_char((utf8proc_int32_t)c, d, 32, opt, &bc);
            if (k < 1 || k > 32) { d[0] = (utf8proc_int32_t)c; k = 1; }
        }
        for (utf8proc_ssize_t t = 0; t < k; t++)
            if ((rc = tok_ws_push_chg(w, (uint32_t)d[t], t ? 1 : 0, err))) return rc;
    }
    /* canonical ordering: stable sort each run of non-starters by combining class */
    tok_chg *ch = w->chg;
    size_t nc = w->nchg;
    for (size_t a = 0; a < nc;) {
        if (!ccc(ch[a].c)) { a++; continue; }
        size_t b = a;
        while (b < nc && ccc(ch[b].c)) b++;
        for (size_t x = a + 1; x < b; x++) {
            tok_chg v = ch[x];
            uint8_t cv = ccc(v.c);
            size_t y = x;
            while (y > a && ccc(ch[y - 1].c) > cv) { ch[y] = ch[y - 1]; y--; }
            ch[y] = v;
        }
        a = b;
    }
    if (compose) {
        size_t o = 0;
        size_t starter = SIZE_MAX; /* index in the output of the last starter */
        int last_cc = -1;          /* class of the last char output after the starter */
        for (size_t x = 0; x < nc; x++) {
            tok_chg v = ch[x];
            int cc = ccc(v.c);
            if (starter != SIZE_MAX && (last_cc < 0 || last_cc < cc)) {
                uint32_t p = compose_pair(ch[starter].c, v.c);
                if (p) {
                    ch[starter].c = p;
                    ch[starter].chg += v.chg - 1;
                    continue;
                }
            }
            if (cc == 0) { starter = o; last_cc = -1; }
            else last_cc = cc;
            ch[o++] = v;
        }
        w->nchg = o;
    }
    return tok_transform(w, si, 0, err);
}

static int strip(tok_ws *w, size_t si, int left, int right, et_error *err) {
    const char *s = SPT(w, si);
    size_t len = SPL(w, si);
    size_t nchars = 0, leading = 0, trailing = 0, i = 0;
    int in_lead = left;
    while (i < len) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        if (in_lead && tok_is_whitespace(c)) leading++;
        else in_lead = 0;
        nchars++;
        i += n;
    }
    if (right) {
        size_t j = len;
        while (j > 0) {
            size_t b = j - 1;
            while (b > 0 && ((uint8_t)s[b] & 0xC0) == 0x80) b--;
            size_t n;
            if (!tok_is_whitespace(tok_utf8_next(s + b, len - b, &n))) break;
            trailing++;
            j = b;
        }
    }
    if (!leading && !trailing) return ET_OK;
    w->nchg = 0;
    i = 0;
    int rc;
    for (size_t ci = 0; ci < nchars; ci++) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        i += n;
        if (ci < leading || ci + trailing >= nchars) continue;
        int32_t chg = ci + trailing + 1 == nchars ? -(int32_t)trailing : 0;
        if ((rc = tok_ws_push_chg(w, c, chg, err))) return rc;
    }
    return tok_transform(w, si, leading, err);
}

static int prepend(tok_ws *w, size_t si, const char *p, size_t plen, et_error *err) {
    const char *s = SPT(w, si);
    size_t len = SPL(w, si);
    if (!len) return ET_OK;
    size_t n0;
    uint32_t first = tok_utf8_next(s, len, &n0);
    w->nchg = 0;
    size_t i = 0;
    int rc, k = 0;
    while (i < plen) {
        size_t n;
        uint32_t c = tok_utf8_next(p + i, plen - i, &n);
        i += n;
        if ((rc = tok_ws_push_chg(w, c, k++ ? 1 : 0, err))) return rc;
    }
    if ((rc = tok_ws_push_chg(w, first, 1, err))) return rc;
    return tok_transform_range(w, si, 0, n0, 0, err);
}

/* HF NormalizedString::replace: every match becomes `content`. */
static int replace(tok_ws *w, size_t si, const tok_pattern *pat, const char *content, size_t clen,
                   et_error *err) {
    int rc = tok_pattern_find(pat, w, SPT(w, si), SPL(w, si), err);
    if (rc) return rc;
    return tok_replace_all(w, si, content, clen, err);
}

/* -- Precompiled: SentencePiece's double-array charsmap ----------------------------- */

/* First (shortest) rule matching a prefix of key: its replacement, or NULL. */
static const char *pc_transform(const tok_normalizer *n, const char *key, size_t klen, size_t *rlen) {
    const uint32_t *a = n->pc_units;
    size_t na = n->pc_n_units;
    if (!na) return NULL;
    size_t pos = 0;
    uint32_t u = a[0];
#define PC_OFFSET(u) ((size_t)((u) >> 10) << (((u) & (1u << 9)) >> 6))
    pos ^= PC_OFFSET(u);
    for (size_t i = 0; i < klen; i++) {
        uint8_t c = (uint8_t)key[i];
        if (!c) break;
        pos ^= c;
        if (pos >= na) return NULL;
        u = a[pos];
        if ((u & ((1u << 31) | 0xFF)) != c) return NULL;
        pos ^= PC_OFFSET(u);
        if ((u >> 8) & 1) {
            if (pos >= na) return NULL;
            size_t idx = a[pos] & ((1u << 31) - 1);
            if (idx > n->pc_norm_len) return NULL;
            if (idx < n->pc_norm_len && ((uint8_t)n->pc_norm[idx] & 0xC0) == 0x80) return NULL;
            const char *r = n->pc_norm + idx;
            *rlen = strnlen(r, n->pc_norm_len - idx);
            return r;
        }
    }
#undef PC_OFFSET
    return NULL;
}

/* HF precompiled.rs replace(): the new chars replace (change 0); when the rule adds chars the
 * last `diff` entries become insertions, when it removes chars the last entry of the whole
 * list (possibly an earlier char) absorbs the removal. */
static int push_norm(tok_ws *w, const char *norm, size_t nlen, size_t old_count, et_error *err) {
    size_t new_count = 0, i = 0;
    int rc;
    while (i < nlen) {
        size_t n;
        uint32_t c = tok_utf8_next(norm + i, nlen - i, &n);
        i += n;
        new_count++;
        if ((rc = tok_ws_push_chg(w, c, 0, err))) return rc;
    }
    long diff = (long)new_count - (long)old_count;
    if (diff > 0)
        for (long k = 0; k < diff && (size_t)k < w->nchg; k++) w->chg[w->nchg - 1 - (size_t)k].chg = 1;
    else if (diff < 0 && w->nchg)
        w->chg[w->nchg - 1].chg += (int32_t)diff;
    return ET_OK;
}

static int precompiled(const tok_normalizer *nz, tok_ws *w, size_t si, et_error *err) {
    const char *s = SPT(w, si);
    size_t len = SPL(w, si);
    w->nchg = 0;
    int modified = 0, rc;
    size_t i = 0;
    utf8proc_int32_t state = 0;
    while (i < len) {
        /* one extended grapheme cluster [i, j) */
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        size_t j = i + n, nchars = 1;
        uint32_t prev = c;
        while (j < len) {
            size_t m;
            uint32_t d = tok_utf8_next(s + j, len - j, &m);
            if (utf8proc_grapheme_break_stateful((utf8proc_int32_t)prev, (utf8proc_int32_t)d, &state)) break;
            prev = d;
            j += m;
            nchars++;
        }
        size_t rlen;
        const char *r;
        if (j - i < 6 && (r = pc_transform(nz, s + i, j - i, &rlen))) {
            modified = 1;
            if ((rc = push_norm(w, r, rlen, nchars, err))) return rc;
        } else {
            size_t k = i;
            while (k < j) {
                size_t m;
                uint32_t d = tok_utf8_next(s + k, len - k, &m);
                if ((r = pc_transform(nz, s + k, m, &rlen))) {
                    modified = 1;
                    if ((rc = push_norm(w, r, rlen, 1, err))) return rc;
                } else if ((rc = tok_ws_push_chg(w, d, 0, err))) return rc;
                k += m;
            }
        }
        i = j;
    }
    if (!modified) { w->nchg = 0; return ET_OK; }
    return tok_transform(w, si, 0, err);
}

int tok_normalize(const tok_normalizer *n, tok_ws *w, size_t si, et_error *err) {
    int rc = ET_OK;
    switch (n->type) {
    case TOK_N_BERT:
        if (n->clean_text && (rc = filter_map(w, si, keep_clean, map_bert_ws, err))) return rc;
        if (n->chinese && (rc = chinese(w, si, err))) return rc;
        if (n->strip_accents) {
            if ((rc = nf(w, si, 0, 0, err))) return rc;
            if ((rc = filter_map(w, si, keep_not_mn, NULL, err))) return rc;
        }
        if (n->lowercase && (rc = lowercase(w, si, err))) return rc;
        return ET_OK;
    case TOK_N_NFC: return nf(w, si, 0, 1, err);
    case TOK_N_NFD: return nf(w, si, 0, 0, err);
    case TOK_N_NFKC: return nf(w, si, 1, 1, err);
    case TOK_N_NFKD: return nf(w, si, 1, 0, err);
    case TOK_N_LOWERCASE: return lowercase(w, si, err);
    case TOK_N_STRIP_ACCENTS: return filter_map(w, si, keep_not_combining, NULL, err);
    case TOK_N_STRIP: return strip(w, si, n->left, n->right, err);
    case TOK_N_PREPEND: return prepend(w, si, n->content, n->content_len, err);
    case TOK_N_REPLACE: return replace(w, si, &n->pat, n->content, n->content_len, err);
    case TOK_N_PRECOMPILED: return precompiled(n, w, si, err);
    case TOK_N_SEQUENCE:
        for (size_t i = 0; i < n->n_kids; i++)
            if ((rc = tok_normalize(&n->kids[i], w, si, err))) return rc;
        return ET_OK;
    }
    return et_err_set(err, ET_EINVAL, "tokenizer: bad normalizer type %d", n->type);
}

int tok_normalize_string(const tok_normalizer *n, const char *s, size_t len, char **out,
                         size_t *out_len, et_error *err) {
    tok_ws w;
    memset(&w, 0, sizeof(w));
    int rc = tok_ws_init_text(&w, s, len, err);
    if (!rc && n) rc = tok_normalize(n, &w, 0, err);
    if (!rc) {
        *out = et_strndup(w.text + w.sp[0].off, w.sp[0].len, err);
        if (!*out) rc = ET_ENOMEM;
        else *out_len = w.sp[0].len;
    }
    tok_ws_free(&w);
    return rc;
}
