/* tok_pattern.c - HF's Pattern::find_matches for String/Regex patterns (Oniguruma, as HF's
 * SysRegex) and for code point predicates. Matches cover the whole text in order. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;
static void onig_init_once(void) {
    OnigEncoding use[1] = {ONIG_ENCODING_UTF8};
    onig_initialize(use, 1);
}

static int compile(OnigRegex *re, const char *pat, size_t len, const char *file, const char *what,
                   et_error *err) {
    pthread_once(&onig_once, onig_init_once);
    OnigErrorInfo einfo;
    int r = onig_new(re, (const OnigUChar *)pat, (const OnigUChar *)pat + len, ONIG_OPTION_NONE,
                     ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &einfo);
    if (r != ONIG_NORMAL) {
        OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, r, &einfo);
        *re = NULL;
        return et_err_set(err, ET_EFORMAT, "%s: %s: invalid regex '%.*s': %s", file, what,
                          (int)ET_MIN(len, 200), pat, (const char *)msg);
    }
    return ET_OK;
}

int tok_pattern_parse(tok_pattern *p, const cJSON *j, const char *file, const char *what,
                      et_error *err) {
    memset(p, 0, sizeof(*p));
    if (!cJSON_IsObject(j))
        return et_err_set(err, ET_EFORMAT, "%s: %s: expected an object {\"String\": ...} or "
                          "{\"Regex\": ...}, got %s", file, what, et_json_type_name(j));
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "String");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "Regex");
    if (s && !r) {
        if (!cJSON_IsString(s))
            return et_err_set(err, ET_EFORMAT, "%s: %s.String: expected a string, got %s", file,
                              what, et_json_type_name(s));
        size_t n = strlen(s->valuestring);
        if (tok_utf8_valid_prefix(s->valuestring, n) != n)
            return et_err_set(err, ET_EFORMAT, "%s: %s.String: invalid UTF-8", file, what);
        if (n == 0) return compile(&p->re, "", 0, file, what, err);
        p->lit = et_strndup(s->valuestring, n, err);
        if (!p->lit) return ET_ENOMEM;
        p->lit_len = n;
        return ET_OK;
    }
    if (r && !s) {
        if (!cJSON_IsString(r))
            return et_err_set(err, ET_EFORMAT, "%s: %s.Regex: expected a string, got %s", file,
                              what, et_json_type_name(r));
        size_t n = strlen(r->valuestring);
        if (tok_utf8_valid_prefix(r->valuestring, n) != n)
            return et_err_set(err, ET_EFORMAT, "%s: %s.Regex: invalid UTF-8", file, what);
        return compile(&p->re, r->valuestring, n, file, what, err);
    }
    return et_err_set(err, ET_EFORMAT, "%s: %s: expected exactly one of \"String\" or \"Regex\"",
                      file, what);
}

void tok_pattern_free(tok_pattern *p) {
    free(p->lit);
    if (p->re) onig_free(p->re);
    memset(p, 0, sizeof(*p));
}

int tok_pattern_find(const tok_pattern *p, tok_ws *w, const char *s, size_t len, et_error *err) {
    w->nm = 0;
    int rc;
    if (len == 0) return tok_ws_push_match(w, 0, 0, 0, err);
    size_t prev = 0;
    if (!p->re) {
        const char *base = s;
        while (prev + p->lit_len <= len) {
            const char *hit = p->lit_len == 1 ? memchr(base + prev, p->lit[0], len - prev)
                                              : memmem(base + prev, len - prev, p->lit, p->lit_len);
            if (!hit) break;
            size_t st = (size_t)(hit - base);
            if (st != prev && (rc = tok_ws_push_match(w, prev, st, 0, err))) return rc;
            if ((rc = tok_ws_push_match(w, st, st + p->lit_len, 1, err))) return rc;
            prev = st + p->lit_len;
        }
    } else {
        if (!w->region && !(w->region = onig_region_new()))
            return et_err_set(err, ET_ENOMEM, "tokenizer: out of memory (regex region)");
        const OnigUChar *str = (const OnigUChar *)s, *end = str + len;
        size_t last_end = 0;
        int have_last = 0;
        size_t last_match_end = 0;
        while (last_end <= len) {
            onig_region_clear(w->region);
            int r = onig_search(p->re, str, end, str + last_end, end, w->region, ONIG_OPTION_NONE);
            if (r == ONIG_MISMATCH) break;
            if (r < 0) {
                OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
                onig_error_code_to_str(msg, r);
                return et_err_set(err, ET_EINVAL, "tokenizer: regex search failed: %s",
                                  (const char *)msg);
            }
            size_t ms = (size_t)w->region->beg[0], me = (size_t)w->region->end[0];
            if (me == ms && have_last && last_match_end == me) {
                /* no empty match right after the previous match: step one char */
                last_end += last_end < len ? tok_utf8_len((uint8_t)s[last_end]) : 1;
                continue;
            }
            last_end = me;
            have_last = 1;
            last_match_end = me;
            if (prev != ms && (rc = tok_ws_push_match(w, prev, ms, 0, err))) return rc;
            if ((rc = tok_ws_push_match(w, ms, me, 1, err))) return rc;
            prev = me;
        }
    }
    if (prev != len && (rc = tok_ws_push_match(w, prev, len, 0, err))) return rc;
    return ET_OK;
}

int tok_pred_find(int (*pred)(uint32_t), tok_ws *w, const char *s, size_t len, et_error *err) {
    w->nm = 0;
    int rc;
    if (len == 0) return tok_ws_push_match(w, 0, 0, 0, err);
    size_t last = 0, i = 0;
    while (i < len) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        if (pred(c)) {
            if (last < i && (rc = tok_ws_push_match(w, last, i, 0, err))) return rc;
            if ((rc = tok_ws_push_match(w, i, i + n, 1, err))) return rc;
            last = i + n;
        }
        i += n;
    }
    if (len > last && (rc = tok_ws_push_match(w, last, len, 0, err))) return rc;
    return ET_OK;
}
