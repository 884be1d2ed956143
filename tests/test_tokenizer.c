/* test_tokenizer.c - tokenizer tests.
 *
 *   test_tokenizer                      unit tests (error paths, API, invalid UTF-8, ...)
 *   test_tokenizer --golden TOK TEXTS GOLDEN [--modes s,n,t] [--no-offsets]
 *       compares our encodings of TEXTS with GOLDEN (tests/ref/golden_tokens.js output):
 *       ids, type ids, special-tokens mask and offsets (ours converted from bytes to chars
 *       the way HF's BytesToCharOffsetConverter does). TOK is a tokenizer.json or a model
 *       directory. Prints the number of mismatches per field and the first differing text.
 *   test_tokenizer --unicode PROPS.json  checks our Unicode predicates for every code point
 *       against the reference's (tests/ref/unicode_props.js).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "test_util.h"
#include "tokenizer.h"
#include "util.h"

/* ---- golden comparison ------------------------------------------------------------------ */

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static char *unhex(const char *h, size_t *len) {
    size_t n = strlen(h) / 2;
    char *o = malloc(n + 1);
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++) o[i] = (char)(hexval(h[2 * i]) * 16 + hexval(h[2 * i + 1]));
    o[n] = 0;
    *len = n;
    return o;
}

/* Byte offsets -> char offsets (cidx has len + 1 entries: cidx[len] = number of chars). HF
 * converts before post-processing, so RoBERTa-trimmed offsets may point at the end. */
static int byte_to_char(const char *s, size_t len, size_t *cidx /* [len + 1] */, size_t bs, size_t be,
                        size_t *cs, size_t *ce) {
    (void)s;
    if (bs > len || be > len) return 0;
    *cs = cidx[bs];
    *ce = cidx[be];
    return 1;
}

static void print_text(const char *s, size_t len) {
    fprintf(stderr, "    text (%zu bytes): \"", len);
    for (size_t i = 0; i < len && i < 300; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') fprintf(stderr, "\\%c", c);
        else if (c < 0x20 || c == 0x7F) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
    fprintf(stderr, len > 300 ? "\"...\n" : "\"\n");
}

static void print_seq(const char *what, const long *a, size_t n, size_t at) {
    size_t lo = at > 6 ? at - 6 : 0, hi = at + 6 < n ? at + 6 : n;
    fprintf(stderr, "    %s (n=%zu) [%zu..%zu): ", what, n, lo, hi);
    for (size_t i = lo; i < hi; i++) fprintf(stderr, i == at ? "*%ld* " : "%ld ", a[i]);
    fputc('\n', stderr);
}

typedef struct golden_stats {
    size_t texts, ids, types, mask, offs, errs, tokens, known;
    int shown;
} golden_stats;

/* Code points whose \\w \\s \\d class differs between Debian's libonig and the Oniguruma
 * built into the reference (different Unicode versions); NULL if not loaded. */
static uint8_t *g_onig_known;

static int onig_class(OnigRegex re, uint32_t c) {
    char buf[4];
    size_t n = tok_utf8_put(buf, c);
    int r = onig_match(re, (const OnigUChar *)buf, (const OnigUChar *)buf + n, (const OnigUChar *)buf, NULL,
                       ONIG_OPTION_NONE);
    return r == (int)n;
}

/* Fills g_onig_known from the reference's onig_w/onig_s/onig_d sets; returns the count. */
static size_t load_onig_known(const cJSON *j) {
    static const char *names[3] = {"onig_w", "onig_s", "onig_d"};
    static const char *pats[3] = {"\\w", "\\s", "\\d"};
    g_onig_known = calloc(0x110000, 1);
    uint8_t *ref = calloc(0x110000, 1);
    size_t total = 0;
    OnigEncoding use[1] = {ONIG_ENCODING_UTF8};
    onig_initialize(use, 1);
    for (int k = 0; k < 3; k++) {
        memset(ref, 0, 0x110000);
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItem(j, names[k])) {
            long lo = (long)cJSON_GetArrayItem(r, 0)->valuedouble, hi = (long)cJSON_GetArrayItem(r, 1)->valuedouble;
            for (long c = lo; c <= hi && c < 0x110000; c++) ref[c] = 1;
        }
        if (k == 0) ref['!'] = 0;
        OnigRegex re;
        OnigErrorInfo ei;
        onig_new(&re, (const OnigUChar *)pats[k], (const OnigUChar *)pats[k] + 2, ONIG_OPTION_NONE,
                 ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &ei);
        size_t n = 0;
        for (uint32_t c = 0; c < 0x110000; c++) {
            if ((c >= 0xD800 && c <= 0xDFFF) || c == '!') continue;
            if (onig_class(re, c) != ref[c]) { g_onig_known[c] = 1; n++; }
        }
        onig_free(re);
        printf("regex %s: %zu code points differ between libonig %s and the reference's Oniguruma\n",
               pats[k], n, onig_version());
        total += n;
    }
    free(ref);
    return total;
}

static int has_onig_known(const char *s, size_t len) {
    if (!g_onig_known) return 0;
    for (size_t i = 0; i < len;) {
        size_t n;
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        if (c < 0x110000 && g_onig_known[c]) return 1;
        i += n;
    }
    return 0;
}

/* Compares one mode; g is [ids, type_ids, mask, offsets] or {"err": ...}. */
static void compare_one(const et_tokenizer *tok, const char *text, size_t len, int raw, int add_special,
                        size_t max_len, const cJSON *g, int check_offsets, golden_stats *st,
                        size_t idx, const char *mode, et_encoding *enc, size_t *cidx) {
    et_error err = {0};
    int rc = et_tokenizer_encode(tok, text, len, add_special, max_len, enc, &err);
    const cJSON *gerr = cJSON_GetObjectItemCaseSensitive(g, "err");
    if (gerr || rc) {
        if (!(gerr && rc)) {
            st->errs++;
            if (!st->shown++) {
                fprintf(stderr, "FIRST MISMATCH text %zu mode %s: reference %s, ours %s\n", idx, mode,
                        gerr ? gerr->valuestring : "ok", rc ? err.msg : "ok");
                print_text(text, len);
            }
        }
        return;
    }
    const cJSON *f[4];
    for (int k = 0; k < 4; k++) f[k] = cJSON_GetArrayItem(g, k);
    size_t gn = (size_t)cJSON_GetArraySize(f[0]);
    st->tokens += gn;
    long *ga = malloc((gn + 1) * 2 * sizeof(long)), *oa = malloc((enc->n + 1) * 2 * sizeof(long));
    const char *names[4] = {"ids", "type_ids", "special_mask", "offsets"};
    size_t *cnt[4] = {&st->ids, &st->types, &st->mask, &st->offs};
    for (int k = 0; k < 4; k++) {
        if (k == 3 && (!check_offsets || raw)) break;
        size_t m = k == 3 ? 2 : 1;
        size_t i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, f[k]) if (i < (gn + 1) * 2) ga[i++] = (long)e->valuedouble;
        size_t gl = i;
        for (size_t q = 0; q < enc->n; q++) {
            if (k == 0) oa[q] = enc->ids[q];
            else if (k == 1) oa[q] = enc->type_ids[q];
            else if (k == 2) oa[q] = enc->special_mask[q];
            else {
                size_t cs, ce;
                size_t bs = enc->offsets[2 * q], be = enc->offsets[2 * q + 1];
                if (byte_to_char(text, len, cidx, bs, be, &cs, &ce)) { oa[2 * q] = (long)cs; oa[2 * q + 1] = (long)ce; }
                else { oa[2 * q] = (long)bs; oa[2 * q + 1] = (long)be; }
            }
        }
        size_t ol = enc->n * m;
        size_t at = 0;
        while (at < gl && at < ol && ga[at] == oa[at]) at++;
        if ((at < gl || at < ol || gl != ol) && has_onig_known(text, len)) {
            st->known++;
            break;
        }
        if (at < gl || at < ol || gl != ol) {
            (*cnt[k])++;
            if (!st->shown++) {
                fprintf(stderr, "FIRST MISMATCH text %zu mode %s field %s at %zu:\n", idx, mode, names[k], at / m);
                print_text(text, len);
                print_seq("reference", ga, gl, at);
                print_seq("ours     ", oa, ol, at);
                if (k) {
                    /* show ids too */
                    fprintf(stderr, "    our ids:");
                    for (size_t q = 0; q < enc->n && q < 40; q++) fprintf(stderr, " %d", enc->ids[q]);
                    fputc('\n', stderr);
                }
            }
            break; /* count a text once per mode */
        }
    }
    free(ga);
    free(oa);
}

static int golden(int argc, char **argv) {
    const char *tokp = argv[2], *textsp = argv[3], *goldp = argv[4];
    const char *modes = "snt";
    int check_offsets = 1;
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--modes") && i + 1 < argc) modes = argv[++i];
        else if (!strcmp(argv[i], "--no-offsets")) check_offsets = 0;
        else if (!strcmp(argv[i], "--props") && i + 1 < argc) {
            cJSON *j;
            et_error e2 = {0};
            if (et_json_load(&j, argv[++i], &e2)) { fprintf(stderr, "FAIL %s\n", e2.msg); return 1; }
            load_onig_known(j);
            cJSON_Delete(j);
        }
    }
    et_error err = {0};
    et_tokenizer *tok = NULL;
    int rc = et_is_dir(tokp) ? et_tokenizer_load_dir(&tok, tokp, &err) : et_tokenizer_load(&tok, tokp, &err);
    if (rc) { fprintf(stderr, "FAIL loading %s: %s\n", tokp, err.msg); return 1; }
    FILE *ft = fopen(textsp, "r"), *fg = fopen(goldp, "r");
    if (!ft || !fg) { fprintf(stderr, "FAIL cannot open %s or %s\n", textsp, goldp); return 1; }
    char *lt = NULL, *lg = NULL;
    size_t ct = 0, cg = 0;
    golden_stats st;
    memset(&st, 0, sizeof(st));
    et_encoding enc = {0};
    size_t idx = 0;
    double t0 = et_now();
    size_t bytes = 0;
    while (getline(&lt, &ct, ft) > 0 && getline(&lg, &cg, fg) > 0) {
        cJSON *jt = cJSON_Parse(lt), *jg = cJSON_Parse(lg);
        if (!jt || !jg) { fprintf(stderr, "FAIL bad JSON at line %zu\n", idx + 1); return 1; }
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(jt, "t");
        int raw = 0;
        if (!h) { h = cJSON_GetObjectItemCaseSensitive(jt, "b"); raw = 1; }
        size_t len = 0;
        char *text = unhex(h->valuestring, &len);
        bytes += len;
        size_t *cidx = malloc((len + 1) * sizeof(size_t));
        size_t nch = 0;
        for (size_t i = 0; i < len; nch++) {
            size_t n = tok_utf8_len((uint8_t)text[i]);
            for (size_t k = 0; k < n && i + k < len; k++) cidx[i + k] = nch;
            i += n;
        }
        cidx[len] = nch;
        if (strchr(modes, 's'))
            compare_one(tok, text, len, raw, 1, 0, cJSON_GetObjectItemCaseSensitive(jg, "s"), check_offsets, &st, idx, "special", &enc, cidx);
        if (strchr(modes, 'n'))
            compare_one(tok, text, len, raw, 0, 0, cJSON_GetObjectItemCaseSensitive(jg, "n"), check_offsets, &st, idx, "no-special", &enc, cidx);
        if (strchr(modes, 't')) {
            const cJSON *tt = cJSON_GetObjectItemCaseSensitive(jg, "t"), *e;
            cJSON_ArrayForEach(e, tt) {
                char mode[64];
                snprintf(mode, sizeof(mode), "truncate-%s", e->string);
                compare_one(tok, text, len, raw, 1, (size_t)atol(e->string), e, check_offsets, &st, idx, mode, &enc, cidx);
            }
        }
        free(cidx);
        free(text);
        cJSON_Delete(jt);
        cJSON_Delete(jg);
        idx++;
    }
    double dt = et_now() - t0;
    free(lt);
    free(lg);
    fclose(ft);
    fclose(fg);
    et_encoding_free(&enc);
    et_tokenizer_free(tok);
    size_t bad = st.ids + st.types + st.mask + st.offs + st.errs;
    printf("golden %s: %zu texts (%zu bytes), %zu reference tokens; mismatching encodings: ids %zu, "
           "type_ids %zu, special_mask %zu, offsets %zu, errors %zu (%.2f s)\n",
           tokp, idx, bytes, st.tokens, st.ids, st.types, st.mask, st.offs, st.errs, dt);
    if (st.known)
        printf("  %zu encodings differ only on texts with code points whose regex class differs between "
               "libonig and the reference's Oniguruma (known, docs/TOKENIZER.md)\n", st.known);
    if (idx == 0) { fprintf(stderr, "FAIL no texts compared\n"); return 1; }
    return bad ? 1 : 0;
}

/* ---- Unicode properties against the reference ------------------------------------------- */

static int bert_control(uint32_t c) { return c == 0 || c == 0xFFFD || tok_is_control(c); }
static int bert_ws(uint32_t c) {
    return !bert_control(c) && (c == '\t' || c == '\n' || c == '\r' || tok_is_whitespace(c));
}

/* Prints the mismatching code points of one predicate as C ranges (for the exception
 * tables) and returns their count. */
static et_buf g_emit;
static tok_ws g_ws;

/* Normalizes one code point with a normalizer of the given type, reusing one workspace. */
static int norm_cp(int type, uint32_t c, const char **out, size_t *out_len) {
    char buf[4];
    size_t n = tok_utf8_put(buf, c);
    tok_normalizer nz;
    memset(&nz, 0, sizeof(nz));
    nz.type = type;
    if (tok_ws_init_text(&g_ws, buf, n, NULL) || tok_normalize(&nz, &g_ws, 0, NULL)) return -1;
    *out = g_ws.text + g_ws.sp[0].off;
    *out_len = g_ws.sp[0].len;
    return 0;
}

static size_t diff_pred(const char *name, int (*pred)(uint32_t), const cJSON *ranges, int only_nfd_stable) {
    uint8_t *ref = calloc(0x110000, 1);
    const cJSON *r;
    cJSON_ArrayForEach(r, ranges) {
        long lo = (long)cJSON_GetArrayItem(r, 0)->valuedouble, hi = (long)cJSON_GetArrayItem(r, 1)->valuedouble;
        for (long c = lo; c <= hi && c < 0x110000; c++) ref[c] = 1;
    }
    size_t bad = 0;
    long run = -1;
    printf("%s:", name);
    et_buf_printf(&g_emit, NULL, "static const uint32_t tok_exc_%s[][2] = {", name);
    for (long c = 0; c <= 0x110000; c++) {
        int mism = 0;
        if (c < 0x110000 && !(c >= 0xD800 && c <= 0xDFFF)) {
            int skip = 0;
            if (only_nfd_stable) {
                /* the Mn table is only observable on NFD-stable characters */
                char buf[4];
                const char *o;
                size_t n = tok_utf8_put(buf, (uint32_t)c), ol;
                if (!norm_cp(TOK_N_NFD, (uint32_t)c, &o, &ol)) skip = ol != n || memcmp(o, buf, n);
            }
            mism = !skip && (!!pred((uint32_t)c) != ref[c]);
        }
        if (mism) { bad++; if (run < 0) run = c; }
        else if (run >= 0) {
            printf(" {0x%lX, 0x%lX},", run, c - 1);
            et_buf_printf(&g_emit, NULL, "{0x%lX, 0x%lX}, ", run, c - 1);
            run = -1;
        }
    }
    printf("  (%zu mismatches)\n", bad);
    et_buf_printf(&g_emit, NULL, "{0xFFFFFFFF, 0xFFFFFFFF}};\n");
    free(ref);
    return bad;
}

static size_t diff_map(const char *name, int type, const cJSON *list) {
    /* reference: [cp, result] for every cp whose result differs from itself */
    char **ref = calloc(0x110000, sizeof(char *));
    const cJSON *e;
    cJSON_ArrayForEach(e, list) {
        long c = (long)cJSON_GetArrayItem(e, 0)->valuedouble;
        if (c >= 0 && c < 0x110000) ref[c] = cJSON_GetArrayItem(e, 1)->valuestring;
    }
    size_t bad = 0, shown = 0;
    printf("%s:", name);
    int emit = type == TOK_N_LOWERCASE || type == TOK_N_NFD || type == TOK_N_NFKD;
    long run = -1;
    if (emit) et_buf_printf(&g_emit, NULL, "static const uint32_t tok_exc_%s[][2] = {", name);
    for (uint32_t c = 0; c < 0x110000; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        char buf[4];
        const char *o = NULL;
        size_t n = tok_utf8_put(buf, c), ol = 0;
        if (norm_cp(type, c, &o, &ol)) { bad++; continue; }
        const char *want = ref[c] ? ref[c] : NULL;
        int ok = want ? (strlen(want) == ol && !memcmp(want, o, ol)) : (ol == n && !memcmp(o, buf, n));
        if (emit && type != TOK_N_LOWERCASE) {
            /* decompositions the reference does not know: ranges of code points */
            if (!ok && !want) { if (run < 0) run = c; }
            else if (run >= 0) { et_buf_printf(&g_emit, NULL, "{0x%lX, 0x%lX}, ", run, (long)c - 1); run = -1; }
        }
        if (!ok && type == TOK_N_LOWERCASE && want) {
            size_t k;
            et_buf_printf(&g_emit, NULL, "{0x%X, 0x%X}, ", c, tok_utf8_next(want, strlen(want), &k));
        }
        if (!ok) {
            bad++;
            if (shown++ < 40) {
                uint32_t lo[3];
                printf(" {0x%X, ", c);
                if (type == TOK_N_LOWERCASE && want && tok_to_lower(c, lo)) {
                    size_t k;
                    printf("0x%X},", tok_utf8_next(want, strlen(want), &k));
                } else printf("\"%s\" vs ours \"%.*s\"},", want ? want : "(self)", (int)ol, o);
            }
        }
    }
    if (run >= 0) et_buf_printf(&g_emit, NULL, "{0x%lX, 0x10FFFF}, ", run);
    if (emit) et_buf_printf(&g_emit, NULL, "{0xFFFFFFFF, 0xFFFFFFFF}};\n");
    printf("  (%zu mismatches)\n", bad);
    free(ref);
    return bad;
}

static int unicode_check(const char *path) {
    cJSON *j;
    et_error err = {0};
    if (et_json_load(&j, path, &err)) { fprintf(stderr, "FAIL %s\n", err.msg); return 1; }
    size_t bad = 0;
    bad += diff_pred("punct", tok_is_punct, cJSON_GetObjectItem(j, "punct"), 0);
    bad += diff_pred("control", bert_control, cJSON_GetObjectItem(j, "control"), 0);
    bad += diff_pred("bert_ws", bert_ws, cJSON_GetObjectItem(j, "bert_ws"), 0);
    bad += diff_pred("mn", tok_is_mark_nonspacing, cJSON_GetObjectItem(j, "mn"), 1);
    bad += diff_pred("combining", tok_is_combining_mark, cJSON_GetObjectItem(j, "combining"), 0);
    bad += diff_pred("word", tok_is_word, cJSON_GetObjectItem(j, "word"), 0);
    bad += diff_pred("space", tok_is_whitespace, cJSON_GetObjectItem(j, "space"), 0);
    bad += diff_pred("numeric", tok_is_numeric, cJSON_GetObjectItem(j, "numeric"), 0);
    bad += diff_pred("whitespace", tok_is_whitespace, cJSON_GetObjectItem(j, "whitespace"), 0);
    bad += diff_map("lower", TOK_N_LOWERCASE, cJSON_GetObjectItem(j, "lower"));
    bad += diff_map("nfd", TOK_N_NFD, cJSON_GetObjectItem(j, "nfd"));
    bad += diff_map("nfkd", TOK_N_NFKD, cJSON_GetObjectItem(j, "nfkd"));
    bad += diff_map("nfc", TOK_N_NFC, cJSON_GetObjectItem(j, "nfc"));
    bad += diff_map("nfkc", TOK_N_NFKC, cJSON_GetObjectItem(j, "nfkc"));
    tok_ws_free(&g_ws);
    load_onig_known(j); /* reported, not a failure: the regex engine's tables are libonig's */
    free(g_onig_known);
    g_onig_known = NULL;
    cJSON_Delete(j);
    if (getenv("TOK_EMIT") && g_emit.len) {
        FILE *f = fopen(getenv("TOK_EMIT"), "w");
        if (f) { fwrite(g_emit.data, 1, g_emit.len, f); fclose(f); }
    }
    et_buf_free(&g_emit);
    printf("unicode: %zu code points differ from the reference over all %d scalar values x 14 properties\n",
           bad, 0x110000 - 0x800);
    return bad ? 1 : 0;
}

/* ---- unit tests ------------------------------------------------------------------------ */

static const char *shared_dir(void) {
    const char *s = getenv("SHARED");
    return s ? s : "../shared";
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) { fputs(s, f); fclose(f); }
}

static int load_str(const char *json, et_tokenizer **t, et_error *err) {
    return et_tokenizer_load_buffer(t, json, strlen(json), "test.json", err);
}

#define WP_MODEL "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\"," \
                 "\"max_input_chars_per_word\":100,\"vocab\":{\"[UNK]\":0,\"a\":1,\"##b\":2,\"hello\":3}}"

static void expect_err(const char *json, int code, const char *needle) {
    et_tokenizer *t = NULL;
    et_error err = {0};
    int rc = load_str(json, &t, &err);
    TEST_CHECK(rc == code, "expected code %d, got %d (%s) for %.80s", code, rc, err.msg, json);
    TEST_CHECK(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
    TEST_CHECK(t == NULL, "tokenizer returned on error");
    et_tokenizer_free(t);
}

static void test_errors(void) {
    et_tokenizer *t = NULL;
    et_error err = {0};
    int rc = et_tokenizer_load(&t, "/nonexistent/tokenizer.json", &err);
    TEST_CHECK(rc == ET_EIO || rc == ET_ENOTFOUND, "missing file: rc %d", rc);
    TEST_CHECK(strstr(err.msg, "/nonexistent/tokenizer.json") != NULL, "missing file message: %s", err.msg);
    expect_err("{\"model\": ", ET_EFORMAT, "invalid JSON");
    expect_err("[1,2]", ET_EFORMAT, "top level");
    expect_err("{}", ET_ENOTFOUND, "missing field 'model'");
    expect_err("{\"model\": 3}", ET_EFORMAT, "model: expected an object");
    expect_err("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", ET_EUNSUPPORTED, "model.type: unsupported 'BPE'");
    expect_err("{\"version\":\"2.0\"," WP_MODEL "}", ET_EUNSUPPORTED, "version");
    expect_err("{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Lowercase\"},"
               "{\"type\":\"Nmt\"}]}," WP_MODEL "}",
               ET_EUNSUPPORTED, "test.json: normalizer.normalizers[2].type: unsupported 'Nmt'");
    expect_err("{\"pre_tokenizer\":{\"type\":\"ByteLevel\"}," WP_MODEL "}", ET_EUNSUPPORTED,
               "pre_tokenizer.type: unsupported 'ByteLevel'");
    expect_err("{\"post_processor\":{\"type\":\"ByteLevel\"}," WP_MODEL "}", ET_EUNSUPPORTED,
               "post_processor.type: unsupported 'ByteLevel'");
    expect_err("{\"normalizer\":{\"type\":\"BertNormalizer\",\"lowercase\":\"yes\"}," WP_MODEL "}", ET_EFORMAT,
               "normalizer.lowercase: expected a boolean, got string");
    expect_err("{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"(\"},\"content\":\"\"}," WP_MODEL "}",
               ET_EFORMAT, "normalizer.pattern: invalid regex");
    expect_err("{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"!!\"}," WP_MODEL "}",
               ET_EFORMAT, "precompiled_charsmap: invalid base64");
    expect_err("{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":\"/////w==\"}," WP_MODEL "}",
               ET_EFORMAT, "exceeds");
    expect_err("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":\"x\"}}}", ET_EFORMAT, "model.vocab['a']");
    expect_err("{\"model\":{\"type\":\"WordPiece\",\"vocab\":[]}}", ET_EFORMAT, "model.vocab: expected an object");
    expect_err("{\"model\":{\"type\":\"Unigram\",\"unk_id\":5,\"vocab\":[[\"a\",-1.0]]}}", ET_EFORMAT, "model.unk_id");
    expect_err("{\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[[\"a\",\"x\"]]}}", ET_EFORMAT, "model.vocab[0]");
    expect_err("{\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[]}}", ET_EFORMAT, "empty");
    expect_err("{\"added_tokens\":[{\"id\":0,\"content\":5}]," WP_MODEL "}", ET_EFORMAT, "added_tokens[0].content");
    expect_err("{\"added_tokens\":[{\"id\":0,\"content\":\"x\",\"lstrip\":1}]," WP_MODEL "}", ET_EFORMAT,
               "added_tokens[0].lstrip: expected a boolean");
    expect_err("{\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"[X]\","
               "\"type_id\":0}}],\"special_tokens\":{}}," WP_MODEL "}",
               ET_EFORMAT, "special token '[X]' is not in post_processor.special_tokens");
    expect_err("{\"post_processor\":{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\"],\"cls\":[\"[CLS]\",1]}," WP_MODEL "}",
               ET_EFORMAT, "post_processor.sep: expected [token, id]");
    expect_err("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Bogus\","
               "\"invert\":false}," WP_MODEL "}", ET_EFORMAT, "pre_tokenizer.behavior");
    expect_err("{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"ab\"}," WP_MODEL "}", ET_EFORMAT,
               "one-character");
    expect_err("{\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"_\",\"add_prefix_space\":false},"
               WP_MODEL "}", ET_EFORMAT, "add_prefix_space does not match declared prepend_scheme");
    expect_err("{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":{}}," WP_MODEL "}", ET_EFORMAT,
               "pre_tokenizer.pretokenizers: expected an array");

    /* directory without tokenizer files */
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/test-out/tok_empty_dir", getenv("BUILD") ? getenv("BUILD") : "build");
    et_mkdir_p(dir, NULL);
    rc = et_tokenizer_load_dir(&t, dir, &err);
    TEST_CHECK(rc == ET_ENOTFOUND && strstr(err.msg, "no tokenizer.json and no vocab.txt"), "empty dir: %d %s", rc, err.msg);
}

static void test_api(void) {
    char path[512];
    snprintf(path, sizeof(path), "%s/fixtures/bge-wordpiece/tokenizer.json", shared_dir());
    et_tokenizer *t = NULL;
    et_error err = {0};
    int rc = et_tokenizer_load(&t, path, &err);
    TEST_CHECK(rc == 0, "load bge: %s", err.msg);
    if (rc) return;
    TEST_CHECK(!strcmp(et_tokenizer_type(t), "WordPiece"), "type %s", et_tokenizer_type(t));
    TEST_CHECK(et_tokenizer_vocab_size(t) == 29528, "vocab size %zu", et_tokenizer_vocab_size(t));
    TEST_CHECK(et_tokenizer_num_special(t) == 2, "num special %zu", et_tokenizer_num_special(t));
    TEST_CHECK(et_tokenizer_token_to_id(t, "hello") == 6598, "hello id %d", et_tokenizer_token_to_id(t, "hello"));
    TEST_CHECK(et_tokenizer_token_to_id(t, "[CLS]") == 2, "[CLS] id %d", et_tokenizer_token_to_id(t, "[CLS]"));
    TEST_CHECK(et_tokenizer_token_to_id(t, "no-such-token-xyz") == -1, "absent token");
    TEST_CHECK(!strcmp(et_tokenizer_id_to_token(t, 6598), "hello"), "id 6598");
    TEST_CHECK(et_tokenizer_id_to_token(t, 1 << 30) == NULL && et_tokenizer_id_to_token(t, -1) == NULL, "bad ids");
    et_encoding enc = {0};
    const char *s = "Hello, world!";
    rc = et_tokenizer_encode(t, s, strlen(s), 1, 0, &enc, &err);
    int32_t want[] = {101, 6598, 16, 1094, 5, 102};
    TEST_CHECK(rc == 0 && enc.n == 6, "encode n=%zu", enc.n);
    for (size_t i = 0; i < 6 && i < enc.n; i++) TEST_CHECK(enc.ids[i] == want[i], "id[%zu] %d", i, enc.ids[i]);
    TEST_CHECK(enc.offsets[2] == 0 && enc.offsets[3] == 5 && enc.offsets[6] == 7 && enc.offsets[7] == 12, "offsets");
    size_t n = 0;
    rc = et_tokenizer_count(t, s, strlen(s), &n, &err);
    TEST_CHECK(rc == 0 && n == 4, "count %zu", n);
    /* truncation counts the special tokens; max_len below them is an error */
    rc = et_tokenizer_encode(t, s, strlen(s), 1, 3, &enc, &err);
    TEST_CHECK(rc == 0 && enc.n == 3 && enc.ids[0] == 101 && enc.ids[1] == 6598 && enc.ids[2] == 102, "truncate 3");
    rc = et_tokenizer_encode(t, s, strlen(s), 1, 1, &enc, &err);
    TEST_CHECK(rc == ET_EINVAL && strstr(err.msg, "special"), "max_len 1: %d %s", rc, err.msg);
    rc = et_tokenizer_encode(t, s, strlen(s), 0, 2, &enc, &err);
    TEST_CHECK(rc == 0 && enc.n == 2, "truncate no special");
    /* empty text */
    rc = et_tokenizer_encode(t, "", 0, 1, 0, &enc, &err);
    TEST_CHECK(rc == 0 && enc.n == 2, "empty text n=%zu", enc.n);
    /* invalid UTF-8 is replaced by U+FFFD (removed by BERT's clean_text); offsets index the input */
    const char bad[] = "ab\xff\xfe cd\xe2\x82";
    rc = et_tokenizer_encode(t, bad, sizeof(bad) - 1, 0, 0, &enc, &err);
    TEST_CHECK(rc == 0, "invalid utf8: %s", err.msg);
    et_encoding enc2 = {0};
    const char fixed[] = "ab\xef\xbf\xbd\xef\xbf\xbd cd\xef\xbf\xbd";
    rc = et_tokenizer_encode(t, fixed, sizeof(fixed) - 1, 0, 0, &enc2, &err);
    TEST_CHECK(rc == 0 && enc.n == enc2.n, "lossy equivalence n %zu vs %zu", enc.n, enc2.n);
    for (size_t i = 0; i < enc.n && i < enc2.n; i++) TEST_CHECK(enc.ids[i] == enc2.ids[i], "lossy id %zu", i);
    for (size_t i = 0; i < 2 * enc.n; i++) TEST_CHECK(enc.offsets[i] <= sizeof(bad) - 1, "offset in range");
    int found = 0; /* "cd" starts at byte 5 of the raw input */
    for (size_t i = 0; i < enc.n; i++) found |= enc.offsets[2 * i] == 5;
    TEST_CHECK(found, "no token starts at raw byte 5");
    et_encoding_free(&enc2);
    /* reuse of one encoding for a large text, then a small one */
    size_t big = 1 << 20;
    char *txt = malloc(big + 1);
    for (size_t i = 0; i < big; i++) txt[i] = "hello world R data "[i % 19];
    rc = et_tokenizer_encode(t, txt, big, 1, 0, &enc, &err);
    TEST_CHECK(rc == 0 && enc.n > 200000, "big text n=%zu", enc.n);
    rc = et_tokenizer_encode(t, txt, 11, 1, 0, &enc, &err);
    TEST_CHECK(rc == 0 && enc.n == 4, "small after big n=%zu", enc.n);
    free(txt);
    et_encoding_free(&enc);
    et_tokenizer_free(t);
}

static void test_lossy(void) {
    /* Rust from_utf8_lossy: one U+FFFD per maximal invalid subpart */
    struct { const char *in; size_t len; const char *out; } cases[] = {
        {"\xff", 1, "\xef\xbf\xbd"},
        {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe0\x80\xaf", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf0\x9f\x98", 3, "\xef\xbf\xbd"},
        {"\xe2\x82x", 3, "\xef\xbf\xbdx"},
        {"\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"a\xf0\x9f\x98\x80" "b", 6, "a\xf0\x9f\x98\x80" "b"},
    };
    for (size_t i = 0; i < ET_ARRAY_LEN(cases); i++) {
        char *o;
        size_t n, *map;
        int rc = tok_utf8_lossy(cases[i].in, cases[i].len, &o, &n, &map, NULL);
        TEST_CHECK(rc == 0 && n == strlen(cases[i].out) && !memcmp(o, cases[i].out, n), "lossy case %zu", i);
        if (!rc) { TEST_CHECK(map[n] == cases[i].len, "map end"); free(o); free(map); }
    }
}

/* vocab.txt + tokenizer_config.json fallback (details in the golden test) */
static void test_vocab_txt(void) {
    const char *b = getenv("BUILD") ? getenv("BUILD") : "build";
    char dir[512], p[600];
    snprintf(dir, sizeof(dir), "%s/test-out/tok_vocab_unit", b);
    et_mkdir_p(dir, NULL);
    snprintf(p, sizeof(p), "%s/vocab.txt", dir);
    write_file(p, "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n##lo\nhel\r\nworld\n,\n");
    snprintf(p, sizeof(p), "%s/tokenizer_config.json", dir);
    write_file(p, "{\"do_lower_case\": true, \"cls_token\": {\"content\": \"[CLS]\"}}");
    et_tokenizer *t = NULL;
    et_error err = {0};
    int rc = et_tokenizer_load_dir(&t, dir, &err);
    TEST_CHECK(rc == 0, "vocab.txt load: %s", err.msg);
    if (rc) return;
    et_encoding enc = {0};
    rc = et_tokenizer_encode(t, "Hello, WORLD hello [MASK]", 25, 1, 0, &enc, &err);
    int32_t want[] = {2, 5, 9, 8, 5, 4, 3};
    TEST_CHECK(rc == 0 && enc.n == 7, "vocab.txt encode n=%zu", enc.n);
    for (size_t i = 0; i < 7 && i < enc.n; i++) TEST_CHECK(enc.ids[i] == want[i], "vocab id[%zu]=%d", i, enc.ids[i]);
    TEST_CHECK(et_tokenizer_token_to_id(t, "hel") == 7, "\\r\\n line ending");
    et_encoding_free(&enc);
    et_tokenizer_free(t);
    snprintf(p, sizeof(p), "%s/tokenizer_config.json", dir);
    write_file(p, "{\"do_lower_case\": \"yes\"}");
    rc = et_tokenizer_load_dir(&t, dir, &err);
    TEST_CHECK(rc == ET_EFORMAT && strstr(err.msg, "do_lower_case"), "bad config: %s", err.msg);
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "--golden")) return golden(argc, argv);
    if (argc >= 3 && !strcmp(argv[1], "--unicode")) return unicode_check(argv[2]);
    test_errors();
    test_lossy();
    test_api();
    test_vocab_txt();
    return test_summary("test_tokenizer");
}
