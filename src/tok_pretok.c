/* tok_pretok.c - HF pre-tokenizers: BertPreTokenizer, Whitespace, WhitespaceSplit,
 * Metaspace, Punctuation, Split, Digits, Sequence. Each turns every split without an added
 * token into slices of itself (Metaspace also rewrites the text first). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static int parse_behavior(const cJSON *j, int dflt, const char *file, const char *path, int *out,
                          et_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "behavior");
    if (!v) { *out = dflt; return ET_OK; }
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    if (cJSON_IsString(v))
        for (int i = 0; i < 5; i++)
            if (!strcmp(v->valuestring, names[i])) { *out = i; return ET_OK; }
    return et_err_set(err, ET_EFORMAT, "%s: %s.behavior: expected one of Removed, Isolated, "
                      "MergedWithPrevious, MergedWithNext, Contiguous", file, path);
}

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

int tok_pretok_parse(tok_pretok *p, const cJSON *j, const char *file, const char *path,
                     et_error *err) {
    memset(p, 0, sizeof(*p));
    const char *ty = NULL;
    int rc = tok_json_type(j, file, path, &ty, err);
    if (rc) return rc;
    if (!strcmp(ty, "BertPreTokenizer")) p->type = TOK_P_BERT;
    else if (!strcmp(ty, "Whitespace")) p->type = TOK_P_WHITESPACE;
    else if (!strcmp(ty, "WhitespaceSplit")) p->type = TOK_P_WHITESPACE_SPLIT;
    else if (!strcmp(ty, "Punctuation")) {
        p->type = TOK_P_PUNCTUATION;
        if ((rc = parse_behavior(j, TOK_BEH_ISOLATED, file, path, &p->behavior, err))) return rc;
    } else if (!strcmp(ty, "Digits")) {
        p->type = TOK_P_DIGITS;
        if ((rc = get_bool(j, "individual_digits", 0, file, path, &p->individual_digits, err))) return rc;
    } else if (!strcmp(ty, "Split")) {
        p->type = TOK_P_SPLIT;
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
        if (!pat) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field 'pattern'", file, path);
        if (!cJSON_GetObjectItemCaseSensitive(j, "behavior"))
            return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field 'behavior'", file, path);
        char what[512];
        snprintf(what, sizeof(what), "%s.pattern", path);
        if ((rc = parse_behavior(j, TOK_BEH_REMOVED, file, path, &p->behavior, err)) ||
            (rc = get_bool(j, "invert", 0, file, path, &p->invert, err)) ||
            (rc = tok_pattern_parse(&p->pat, pat, file, what, err)))
            return rc;
    } else if (!strcmp(ty, "Metaspace")) {
        p->type = TOK_P_METASPACE;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "replacement");
        if (!r) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field 'replacement'", file, path);
        size_t n;
        if (!cJSON_IsString(r) || !r->valuestring[0] ||
            tok_utf8_valid_prefix(r->valuestring, strlen(r->valuestring)) != strlen(r->valuestring) ||
            (tok_utf8_next(r->valuestring, strlen(r->valuestring), &n), n != strlen(r->valuestring)))
            return et_err_set(err, ET_EFORMAT, "%s: %s.replacement: expected a one-character string",
                              file, path);
        p->replacement = tok_utf8_next(r->valuestring, n, &n);
        p->prepend_scheme = TOK_PREPEND_ALWAYS;
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(j, "prepend_scheme");
        if (ps) {
            if (!cJSON_IsString(ps))
                return et_err_set(err, ET_EFORMAT, "%s: %s.prepend_scheme: expected \"first\", "
                                  "\"never\" or \"always\", got %s", file, path, et_json_type_name(ps));
            if (!strcmp(ps->valuestring, "always")) p->prepend_scheme = TOK_PREPEND_ALWAYS;
            else if (!strcmp(ps->valuestring, "first")) p->prepend_scheme = TOK_PREPEND_FIRST;
            else if (!strcmp(ps->valuestring, "never")) p->prepend_scheme = TOK_PREPEND_NEVER;
            else
                return et_err_set(err, ET_EFORMAT, "%s: %s.prepend_scheme: expected \"first\", "
                                  "\"never\" or \"always\", got '%.30s'", file, path, ps->valuestring);
        }
        int aps;
        if ((rc = get_bool(j, "add_prefix_space", -1, file, path, &aps, err)) ||
            (rc = get_bool(j, "split", 1, file, path, &p->split, err)))
            return rc;
        /* legacy spelling: HF 0.22 accepts add_prefix_space=false only with prepend_scheme
         * "never" (an absent prepend_scheme defaults to "always" and is rejected too) */
        if (aps == 0 && p->prepend_scheme != TOK_PREPEND_NEVER)
            return et_err_set(err, ET_EFORMAT, "%s: %s: add_prefix_space does not match declared "
                              "prepend_scheme", file, path);
    } else if (!strcmp(ty, "Sequence")) {
        p->type = TOK_P_SEQUENCE;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
        if (!a) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field 'pretokenizers'", file, path);
        if (!cJSON_IsArray(a))
            return et_err_set(err, ET_EFORMAT, "%s: %s.pretokenizers: expected an array, got %s", file,
                              path, et_json_type_name(a));
        size_t n = (size_t)cJSON_GetArraySize(a), i = 0;
        p->kids = et_calloc(n ? n : 1, sizeof(tok_pretok), err);
        if (!p->kids) return ET_ENOMEM;
        const cJSON *e;
        cJSON_ArrayForEach(e, a) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s.pretokenizers[%zu]", path, i);
            rc = tok_pretok_parse(&p->kids[i], e, file, sub, err);
            p->n_kids = ++i;
            if (rc) return rc;
        }
    } else {
        return et_err_set(err, ET_EUNSUPPORTED, "%s: %s.type: unsupported '%s'", file, path, ty);
    }
    return ET_OK;
}

void tok_pretok_free(tok_pretok *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_kids; i++) tok_pretok_free(&p->kids[i]);
    free(p->kids);
    tok_pattern_free(&p->pat);
    memset(p, 0, sizeof(*p));
}

/* ---- application --------------------------------------------------------------------- */

/* BertPreTokenizer = split(whitespace, Removed) then split(punctuation, Isolated); fused. */
static int bert_split(tok_ws *w, const tok_split *src, et_error *err) {
    const char *s = w->text + src->off;
    size_t len = src->len, i = 0, start = 0;
    int rc;
    tok_split piece;
    piece.added_id = -1;
#define EMIT(a, b)                                                          \
    do {                                                                    \
        if ((b) > (a)) {                                                    \
            piece.off = src->off + (a);                                     \
            piece.len = (b) - (a);                                          \
            piece.orig_s = w->al[piece.off].s;                              \
            piece.orig_e = w->al[piece.off + piece.len - 1].e;              \
            if ((rc = tok_ws_push_split(w, &piece, err))) return rc;        \
        }                                                                   \
    } while (0)
    while (i < len) {
        uint8_t b = (uint8_t)s[i];
        size_t n = 1;
        uint32_t c = b;
        if (b >= 0x80) c = tok_utf8_next(s + i, len - i, &n);
        int ws = b < 0x80 ? (b == ' ' || (b >= 9 && b <= 13)) : tok_is_whitespace(c);
        if (ws) {
            EMIT(start, i);
            start = i + n;
        } else if (tok_is_punct(c)) {
            EMIT(start, i);
            EMIT(i, i + n);
            start = i + n;
        }
        i += n;
    }
    EMIT(start, len);
#undef EMIT
    return ET_OK;
}

/* Whitespace: \w+|[^\w\s]+ runs are kept, whitespace removed. */
static int whitespace_split_words(tok_ws *w, const tok_split *src, et_error *err) {
    const char *s = w->text + src->off;
    size_t len = src->len, i = 0;
    w->nm = 0;
    int rc;
    if (!len) return ET_OK;
    int cur = -1; /* 0 word run, 1 other run, 2 whitespace run */
    size_t run = 0;
    while (i < len) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        int k = tok_is_word(c) ? 0 : tok_is_whitespace(c) ? 2 : 1;
        if (k != cur) {
            if (cur >= 0 && (rc = tok_ws_push_match(w, run, i, cur == 2, err))) return rc;
            cur = k;
            run = i;
        }
        i += n;
    }
    if ((rc = tok_ws_push_match(w, run, len, cur == 2, err))) return rc;
    return tok_split_by_matches(w, src, TOK_BEH_REMOVED, err);
}

static int is_space_char(uint32_t c) { return c == ' '; }

static int metaspace(const tok_pretok *p, tok_ws *w, size_t si, et_error *err) {
    char rep[4];
    size_t rlen = tok_utf8_put(rep, p->replacement);
    int rc = tok_pred_find(is_space_char, w, w->text + w->sp[si].off, w->sp[si].len, err);
    if (rc || (rc = tok_replace_all(w, si, rep, rlen, err))) return rc;
    tok_split *sp = &w->sp[si];
    int starts = sp->len >= rlen && !memcmp(w->text + sp->off, rep, rlen);
    int prepend = p->prepend_scheme == TOK_PREPEND_ALWAYS ? !starts
                  : p->prepend_scheme == TOK_PREPEND_FIRST ? (!starts && sp->orig_s == 0)
                  : 0;
    if (prepend && sp->len) {
        size_t n0;
        uint32_t first = tok_utf8_next(w->text + sp->off, sp->len, &n0);
        w->nchg = 0;
        if ((rc = tok_ws_push_chg(w, p->replacement, 0, err)) ||
            (rc = tok_ws_push_chg(w, first, 1, err)) ||
            (rc = tok_transform_range(w, si, 0, n0, 0, err)))
            return rc;
    }
    tok_split cur = w->sp[si];
    if (!p->split) {
        if (cur.len) return tok_ws_push_split(w, &cur, err);
        return ET_OK;
    }
    uint32_t r = p->replacement;
    /* split on the replacement char, MergedWithNext */
    const char *s = w->text + cur.off;
    size_t len = cur.len, i = 0, last = 0;
    w->nm = 0;
    if (!len) return ET_OK;
    while (i < len) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        if (c == r) {
            if (last < i && (rc = tok_ws_push_match(w, last, i, 0, err))) return rc;
            if ((rc = tok_ws_push_match(w, i, i + n, 1, err))) return rc;
            last = i + n;
        }
        i += n;
    }
    if (len > last && (rc = tok_ws_push_match(w, last, len, 0, err))) return rc;
    return tok_split_by_matches(w, &cur, TOK_BEH_MERGED_NEXT, err);
}

static int apply_one(const tok_pretok *p, tok_ws *w, et_error *err) {
    int rc;
    if (p->type == TOK_P_SEQUENCE) {
        for (size_t i = 0; i < p->n_kids; i++)
            if ((rc = apply_one(&p->kids[i], w, err))) return rc;
        return ET_OK;
    }
    w->nsp2 = 0;
    for (size_t si = 0; si < w->nsp; si++) {
        if (w->sp[si].added_id >= 0) {
            tok_split keep = w->sp[si];
            if ((rc = tok_ws_push_split(w, &keep, err))) return rc;
            continue;
        }
        tok_split src = w->sp[si];
        const char *s = w->text + src.off;
        switch (p->type) {
        case TOK_P_BERT: rc = bert_split(w, &src, err); break;
        case TOK_P_WHITESPACE: rc = whitespace_split_words(w, &src, err); break;
        case TOK_P_WHITESPACE_SPLIT:
            rc = tok_pred_find(tok_is_whitespace, w, s, src.len, err);
            if (!rc) rc = tok_split_by_matches(w, &src, TOK_BEH_REMOVED, err);
            break;
        case TOK_P_PUNCTUATION:
            rc = tok_pred_find(tok_is_punct, w, s, src.len, err);
            if (!rc) rc = tok_split_by_matches(w, &src, p->behavior, err);
            break;
        case TOK_P_DIGITS:
            rc = tok_pred_find(tok_is_numeric, w, s, src.len, err);
            if (!rc) rc = tok_split_by_matches(w, &src, p->individual_digits ? TOK_BEH_ISOLATED
                                                                             : TOK_BEH_CONTIGUOUS, err);
            break;
        case TOK_P_SPLIT:
            rc = tok_pattern_find(&p->pat, w, s, src.len, err);
            if (!rc && p->invert)
                for (size_t k = 0; k < w->nm; k++) w->m[k].m = !w->m[k].m;
            if (!rc) rc = tok_split_by_matches(w, &src, p->behavior, err);
            break;
        case TOK_P_METASPACE: rc = metaspace(p, w, si, err); break;
        default: rc = et_err_set(err, ET_EINVAL, "tokenizer: bad pre-tokenizer type %d", p->type);
        }
        if (rc) return rc;
    }
    tok_ws_swap_splits(w);
    return ET_OK;
}

int tok_pretokenize(const tok_pretok *p, tok_ws *w, et_error *err) {
    return apply_one(p, w, err);
}
