/* generate_parse.c - LLM replies into clean questions (see generate_parse.h).
 *
 * The reply is split into lines, and a line into segments where one question
 * ends and another starts ("1. What ...? 2. How ...?"). Each segment is
 * cleaned (markers, labels, emphasis, quotes, preamble prefixes), then kept
 * only if it reads as a question, is not about the conversation ("Would you
 * like more?"), is not a duplicate and does not copy the context.
 */
#include "generate_parse.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- string list ----------------------------------------------------------------- */

int et_strlist_push(et_strlist *l, const char *s, size_t n, et_error *err) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = et_realloc_n(l->v, cap, sizeof(char *), err);
        if (!v) return ET_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *d = et_strndup(s, n, err);
    if (!d) return ET_ENOMEM;
    l->v[l->n++] = d;
    return ET_OK;
}

void et_strlist_free(et_strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- reply body ------------------------------------------------------------------- */

static void append_parts(et_buf *b, const cJSON *content, et_error *err, int *rc) {
    /* content parts: [{"type": "text", "text": "..."}, ...] */
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *t = cJSON_IsObject(part) ? cJSON_GetObjectItemCaseSensitive(part, "text") : part;
        if (cJSON_IsString(t) && !*rc) {
            if (b->len) *rc = et_buf_puts(b, "\n", err);
            if (!*rc) *rc = et_buf_puts(b, t->valuestring, err);
        }
    }
}

int et_gen_reply_text(const char *body, size_t len, char **text, int *truncated, et_error *err) {
    *text = NULL;
    *truncated = 0;
    if (!body || !len) return et_err_set(err, ET_EFORMAT, "empty reply body");
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) {
        /* an HTML error page or a cut-off body: name it, briefly */
        size_t i = 0;
        while (i < len && isspace((unsigned char)body[i])) i++;
        int html = i < len && body[i] == '<';
        return et_err_set(err, ET_EFORMAT, "reply is not valid JSON (%s, %zu bytes)",
                          html ? "looks like HTML" : "truncated or garbled", len);
    }
    int rc = ET_OK;
    et_buf b = {0};
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
    if (e && !cJSON_IsNull(e)) {
        const cJSON *m = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
        rc = et_err_set(err, ET_EFORMAT, "server reported an error: %.300s",
                        cJSON_IsString(m) ? m->valuestring : "(no message)");
        goto done;
    }
    if (!cJSON_IsArray(choices) || !cJSON_GetArraySize(choices)) {
        rc = et_err_set(err, ET_EFORMAT, "reply has no 'choices' array");
        goto done;
    }
    const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    if (!cJSON_IsObject(c0)) {
        rc = et_err_set(err, ET_EFORMAT, "reply: choices[0] is not an object");
        goto done;
    }
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    if (cJSON_IsString(fr) && !strcmp(fr->valuestring, "length")) *truncated = 1;
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    const cJSON *content = cJSON_IsObject(msg) ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
    if (!content) content = cJSON_GetObjectItemCaseSensitive(c0, "text"); /* completions style */
    if (cJSON_IsString(content)) rc = et_buf_puts(&b, content->valuestring, err);
    else if (cJSON_IsArray(content)) append_parts(&b, content, err, &rc);
    if (rc) goto done;
    if (!b.len) {
        int reasoning = cJSON_IsObject(msg) && (cJSON_GetObjectItemCaseSensitive(msg, "reasoning_content") ||
                                                cJSON_GetObjectItemCaseSensitive(msg, "reasoning"));
        const cJSON *refusal = cJSON_IsObject(msg) ? cJSON_GetObjectItemCaseSensitive(msg, "refusal") : NULL;
        if (cJSON_IsString(refusal))
            rc = et_err_set(err, ET_EFORMAT, "the model refused: %.200s", refusal->valuestring);
        else
            rc = et_err_set(err, ET_EFORMAT, "reply has no text in choices[0].message.content%s",
                            reasoning ? (*truncated ? " (only reasoning: raise --max-tokens)" : " (only reasoning)")
                                      : "");
        goto done;
    }
    *text = b.data;
    b.data = NULL;
done:
    et_buf_free(&b);
    cJSON_Delete(root);
    return rc;
}

/* ---- small byte helpers ------------------------------------------------------------ */

static int is_sp(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

/* Length of a UTF-8 space-like sequence at s (NBSP, narrow NBSP), else 0. */
static size_t u_space(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (n >= 1 && is_sp(u[0])) return 1;
    if (n >= 2 && u[0] == 0xC2 && u[1] == 0xA0) return 2;
    if (n >= 3 && u[0] == 0xE2 && u[1] == 0x80 && u[2] == 0xAF) return 3;
    return 0;
}

/* Length of a bullet glyph at s: - * + and UTF-8 bullets / dashes. */
static size_t u_bullet(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (n >= 1 && (u[0] == '-' || u[0] == '*' || u[0] == '+')) return 1;
    if (n >= 2 && u[0] == 0xC2 && u[1] == 0xB7) return 2; /* · */
    if (n >= 3 && u[0] == 0xE2) {
        if (u[1] == 0x80 && (u[2] == 0xA2 || u[2] == 0xA3 || u[2] == 0x93 || u[2] == 0x94)) return 3; /* • ‣ – — */
        if (u[1] == 0x97 && (u[2] == 0x8F || u[2] == 0xA6 || u[2] == 0x8B)) return 3;                 /* ● ◦ ○ */
        if (u[1] == 0x96 && (u[2] == 0xAA || u[2] == 0xB8)) return 3;                                 /* ▪ ▸ */
        if (u[1] == 0x9E && u[2] == 0xA2) return 3;                                                   /* ➢ */
    }
    return 0;
}

/* Length of a quote glyph at s: " ' ` and curly / angle quotes. */
static size_t u_quote(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (n >= 1 && (u[0] == '"' || u[0] == '\'' || u[0] == '`')) return 1;
    if (n >= 2 && u[0] == 0xC2 && (u[1] == 0xAB || u[1] == 0xBB)) return 2;
    if (n >= 3 && u[0] == 0xE2 && u[1] == 0x80 && (u[2] >= 0x98 && u[2] <= 0x9F)) return 3;
    return 0;
}

/* Length of a quote glyph ending at s[n-1], else 0. */
static size_t u_quote_end(const char *s, size_t n) {
    if (n >= 3 && u_quote(s + n - 3, 3) == 3) return 3;
    if (n >= 2 && u_quote(s + n - 2, 2) == 2) return 2;
    if (n >= 1 && u_quote(s + n - 1, 1) == 1) return 1;
    return 0;
}

/* 1 if s[0..n) ends with a question mark (ASCII or fullwidth). */
static int ends_q(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (n >= 1 && u[n - 1] == '?') return 1;
    return n >= 3 && u[n - 3] == 0xEF && u[n - 2] == 0xBC && u[n - 1] == 0x9F;
}

static int has_prefix_ci(const char *s, size_t n, const char *p) {
    size_t k = strlen(p);
    if (k > n) return 0;
    for (size_t i = 0; i < k; i++)
        if (tolower((unsigned char)s[i]) != p[i]) return 0;
    return 1;
}

/* Word prefix: p followed by a non-letter (or the end). */
static int has_word_ci(const char *s, size_t n, const char *p) {
    size_t k = strlen(p);
    return has_prefix_ci(s, n, p) && (k == n || !isalpha((unsigned char)s[k]));
}

static int contains_ci(const char *s, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (has_prefix_ci(s + i, n - i, needle)) return 1;
    return 0;
}

/* ---- normalization ------------------------------------------------------------------ */

size_t et_gen_normalize(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    int pend = 0;
    if (!cap) return 0;
    for (size_t i = 0; i < n && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || c >= 0x80) {
            if (pend && o) {
                if (o + 1 >= cap) break;
                out[o++] = ' ';
            }
            pend = 0;
            if (o + 1 >= cap) break;
            out[o++] = (char)tolower(c);
        } else {
            pend = 1;
        }
    }
    out[o] = 0;
    return o;
}

/* ---- verbatim overlap with the context ------------------------------------------------ */

typedef struct words {
    uint32_t *h; /* [n] hashes of lowercase alnum words */
    size_t n, cap;
} words;

static int words_of(words *w, const char *s, size_t n, size_t max_words, et_error *err) {
    w->n = 0;
    for (size_t i = 0; i < n && s[i] && w->n < max_words;) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c >= 0x80)) {
            i++;
            continue;
        }
        uint32_t h = 2166136261u;
        while (i < n && s[i] && (isalnum((unsigned char)s[i]) || (unsigned char)s[i] >= 0x80)) {
            h = (h ^ (uint32_t)tolower((unsigned char)s[i])) * 16777619u;
            i++;
        }
        if (w->n == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 64;
            uint32_t *p = et_realloc_n(w->h, cap, sizeof(uint32_t), err);
            if (!p) return ET_ENOMEM;
            w->h = p;
            w->cap = cap;
        }
        w->h[w->n++] = h;
    }
    return ET_OK;
}

/* Longest run of consecutive words of q that appears in c. */
static size_t longest_run(const words *q, const words *c, size_t *row /* [2, c->n + 1] */) {
    size_t best = 0, m = c->n;
    size_t *prev = row, *cur = row + m + 1;
    memset(prev, 0, (m + 1) * sizeof(size_t));
    for (size_t i = 0; i < q->n; i++) {
        cur[0] = 0;
        for (size_t j = 1; j <= m; j++) {
            cur[j] = q->h[i] == c->h[j - 1] ? prev[j - 1] + 1 : 0;
            if (cur[j] > best) best = cur[j];
        }
        size_t *t = prev;
        prev = cur;
        cur = t;
    }
    return best;
}

/* ---- cleaning one segment -------------------------------------------------------------- */

enum { SEG_TEXT = 0, SEG_SKIP = 1, SEG_ANSWER = 2 };

/* A label such as "Q1:", "Question 2 -", "**Question 3:**", "Query:" at s.
 * Returns its length (0 if none). *answer is set for "A:", "Answer 1:". */
static size_t label_len(const char *s, size_t n, int *answer) {
    static const char *qwords[] = {"questions", "question", "query", "q"};
    static const char *awords[] = {"answer", "ans", "a"};
    size_t k = 0;
    int is_answer = 0;
    for (size_t w = 0; w < ET_ARRAY_LEN(qwords) && !k; w++)
        if (has_prefix_ci(s, n, qwords[w])) k = strlen(qwords[w]);
    for (size_t w = 0; w < ET_ARRAY_LEN(awords) && !k; w++)
        if (has_prefix_ci(s, n, awords[w])) {
            k = strlen(awords[w]);
            is_answer = 1;
        }
    if (!k) return 0;
    size_t i = k;
    if (i < n && isalpha((unsigned char)s[i])) return 0; /* "Queries", "Also" */
    while (i < n && s[i] == ' ') i++;
    if (i < n && s[i] == '#') i++;
    size_t d = 0;
    while (i < n && isdigit((unsigned char)s[i]) && d < 4) i++, d++;
    while (i < n && (s[i] == ' ' || s[i] == '*' || s[i] == '_')) i++;
    if (i >= n || !(s[i] == ':' || s[i] == '.' || s[i] == ')' || s[i] == '-')) return 0;
    /* "a." or "a)" alone is list numbering, not an answer label */
    if (is_answer && k == 1 && d == 0 && s[i] != ':') return 0;
    if (!is_answer && k == 1 && d == 0 && s[i] != ':') return 0; /* "Q." is rare; "q)" too */
    i++;
    *answer = is_answer;
    return i;
}

/* Numbering at s: "1." "12)" "(3)" "[4]" "5:" "6 -" "a)" "b." "iv)". Returns its length. */
static size_t number_len(const char *s, size_t n) {
    size_t i = 0;
    int open = 0;
    if (i < n && (s[i] == '(' || s[i] == '[')) open = s[i++];
    size_t d = 0;
    while (i < n && isdigit((unsigned char)s[i]) && d < 4) i++, d++;
    if (!d) {
        /* a single letter or a short roman numeral */
        size_t r = 0;
        while (i + r < n && r < 4 && strchr("ivxIVX", s[i + r]) && s[i + r]) r++;
        if (r >= 1 && i + r < n && (s[i + r] == ')' || s[i + r] == '.')) {
            if (r == 1 && s[i + r] == '.' && !open) return 0; /* "I. " could start a sentence: be strict */
            d = r;
            i += r;
        } else if (i < n && isalpha((unsigned char)s[i]) && i + 1 < n && (s[i + 1] == ')' || s[i + 1] == '.')) {
            if (!(i + 2 >= n || s[i + 2] == ' ')) return 0;
            i++;
            d = 1;
        } else {
            return 0;
        }
    }
    if (open) {
        if (i < n && (s[i] == ')' || s[i] == ']')) return i + 1;
        return 0;
    }
    if (i < n && (s[i] == '.' || s[i] == ')' || s[i] == ':' || s[i] == ']')) {
        i++;
        /* "1.5 is ..." is a decimal, not numbering */
        if (i < n && isdigit((unsigned char)s[i])) return 0;
        return i;
    }
    if (i + 1 < n && s[i] == ' ' && (s[i + 1] == '-' || s[i + 1] == ':')) return i + 2;
    return 0;
}

static const char *preamble_words[] = {"sure", "certainly", "of course", "okay", "ok", "here are", "here is",
                                       "here're", "absolutely", "great", "alright", "all right", "below are",
                                       "the following", "got it", "no problem", "happy to"};

/* Cleans s[0..*n) in place (moving *s); returns SEG_TEXT, SEG_SKIP or SEG_ANSWER. */
static int clean_segment(char **sp, size_t *np) {
    char *s = *sp;
    size_t n = *np;
    for (int guard = 0; guard < 64; guard++) {
        size_t k, before = n;
        while ((k = u_space(s, n))) s += k, n -= k;
        while (n && (s[0] == ',' || s[0] == ';')) s++, n--;
        while ((k = u_space(s, n))) s += k, n -= k;
        if (n >= 3 && !memcmp(s, "```", 3)) return SEG_SKIP;
        while (n && (s[0] == '#' || s[0] == '>')) s++, n--;
        if (n >= 2 && ((s[0] == '*' && s[1] == '*') || (s[0] == '_' && s[1] == '_'))) {
            s += 2, n -= 2;
            continue;
        }
        if ((k = u_bullet(s, n)) && (k == n || u_space(s + k, n - k) || s[0] == '*')) {
            s += k, n -= k;
            continue;
        }
        if (n && s[0] == '_') {
            s++, n--;
            continue;
        }
        if ((k = number_len(s, n))) {
            s += k, n -= k;
            continue;
        }
        int answer = 0;
        if ((k = label_len(s, n, &answer))) {
            if (answer) return SEG_ANSWER;
            s += k, n -= k;
            continue;
        }
        if (n == before) break;
    }
    /* trailing spaces and emphasis */
    for (;;) {
        if (n && (is_sp((unsigned char)s[n - 1]) || s[n - 1] == '*' || s[n - 1] == '_')) n--;
        else if (n >= 2 && (unsigned char)s[n - 2] == 0xC2 && (unsigned char)s[n - 1] == 0xA0) n -= 2;
        else break;
    }
    /* surrounding quotes */
    size_t lq = u_quote(s, n);
    if (lq) {
        s += lq, n -= lq;
        size_t tq = u_quote_end(s, n);
        if (tq) n -= tq;
    } else {
        size_t tq = u_quote_end(s, n);
        if (tq && n > tq && ends_q(s, n - tq)) n -= tq;
    }
    while (n && is_sp((unsigned char)s[n - 1])) n--;
    /* a closing "**" etc. may sit before the quote we removed */
    while (n && (s[n - 1] == '*' || s[n - 1] == '_')) n--;
    *sp = s;
    *np = n;
    return n ? SEG_TEXT : SEG_SKIP;
}

/* Removes "**" / "__" emphasis markers and collapses runs of spaces; in place. */
static size_t squeeze(char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && ((s[i] == '*' && s[i + 1] == '*') || (s[i] == '_' && s[i + 1] == '_'))) {
            i++;
            continue;
        }
        char c = s[i];
        if (is_sp((unsigned char)c)) c = ' ';
        if (c == ' ' && (o == 0 || s[o - 1] == ' ')) continue;
        s[o++] = c;
    }
    while (o && s[o - 1] == ' ') o--;
    return o;
}

/* Cuts a preamble sentence before the question: "Sure! Here they are: What ...?" */
static void cut_preamble(char **sp, size_t *np) {
    char *s = *sp;
    size_t n = *np;
    int pre = 0;
    for (size_t w = 0; w < ET_ARRAY_LEN(preamble_words) && !pre; w++)
        pre = has_word_ci(s, n, preamble_words[w]);
    if (!pre) return;
    size_t q = 0;
    while (q < n && s[q] != '?') q++;
    size_t cut = 0;
    for (size_t i = 0; i + 1 < q; i++)
        if ((s[i] == '!' || s[i] == ':' || s[i] == '.') && s[i + 1] == ' ') cut = i + 2;
    if (cut) {
        *sp = s + cut;
        *np = n - cut;
    }
}

static const char *interrogatives[] = {"what",  "how",   "why",   "when",   "where", "which", "who",
                                       "whom",  "whose", "is",    "are",    "was",   "were",  "does",
                                       "do",    "did",   "can",   "could",  "should", "would", "will",
                                       "may",   "might", "in what", "to what", "according to", "under what"};

/* Chat about the conversation itself, not about the context. */
static const char *meta_phrases[] = {"would you like", "do you want", "do you need", "let me know",
                                     "more questions", "shall i ", "should i ", "can i help", "anything else",
                                     "i can generate", "i hope", "these questions", "this question tests",
                                     "feel free", "as an ai", "i cannot", "i can't", "i'm sorry", "i am sorry"};

static size_t count_words(const char *s, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < n; i++)
        if (!is_sp((unsigned char)s[i]) && (i == 0 || is_sp((unsigned char)s[i - 1]))) w++;
    return w;
}

typedef struct pstate {
    const char *context;
    words cw;       /* context words, computed on first use */
    int cw_ready;
    words qw;
    size_t *row;    /* [2, cw.n + 1] */
    const et_strlist *have;
    et_strlist *out;
    size_t want, added;
    et_strlist seen; /* normalized forms kept so far */
} pstate;

static int is_dup(const pstate *p, const char *norm) {
    for (size_t i = 0; i < p->seen.n; i++)
        if (!strcmp(p->seen.v[i], norm)) return 1;
    return 0;
}

/* Copies the verbatim-overlap test: drop if a run of >= 10 words of the
 * question, or >= 80% of a question of >= 6 words, appears in the context. */
static int copies_context(pstate *p, const char *q, size_t n, et_error *err, int *rc) {
    if (!p->context) return 0;
    if (!p->cw_ready) {
        if ((*rc = words_of(&p->cw, p->context, strlen(p->context), (size_t)1 << 20, err))) return 0;
        p->row = et_malloc_n(2 * (p->cw.n + 1), sizeof(size_t), err);
        if (!p->row) {
            *rc = ET_ENOMEM;
            return 0;
        }
        p->cw_ready = 1;
    }
    if ((*rc = words_of(&p->qw, q, n, 256, err))) return 0;
    size_t run = longest_run(&p->qw, &p->cw, p->row);
    size_t nq = p->qw.n;
    return run >= 10 || (nq >= 6 && run * 10 >= nq * 8);
}

/* Length of a valid UTF-8 sequence at s[0..n), 0 if invalid (RFC 3629 table). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    size_t k;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) k = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (n < k || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < k; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return k;
}

/* Appends s[0..n) as valid UTF-8: invalid bytes become U+FFFD, control characters a space. */
static int append_clean(et_buf *b, const char *s, size_t n, et_error *err) {
    int rc = ET_OK;
    for (size_t i = 0; i < n && !rc;) {
        const unsigned char *u = (const unsigned char *)s + i;
        size_t k = utf8_len(u, n - i);
        if (!k) {
            rc = et_buf_append(b, "\xEF\xBF\xBD", 3, err);
            i++;
        } else if (k == 1 && (u[0] < 0x20 || u[0] == 0x7f)) {
            rc = et_buf_append(b, " ", 1, err);
            i++;
        } else {
            rc = et_buf_append(b, s + i, k, err);
            i += k;
        }
    }
    return rc;
}

/* Considers one segment; may append it to p->out. */
static int consider(pstate *p, char *s, size_t n, int last_cut, et_error *err) {
    if (p->added >= p->want) return ET_OK;
    int kind = clean_segment(&s, &n);
    if (kind != SEG_TEXT) return ET_OK;
    cut_preamble(&s, &n);
    kind = clean_segment(&s, &n);
    if (kind != SEG_TEXT) return ET_OK;
    n = squeeze(s, n);
    /* commentary after the question mark on the same line: "What ...? (tests recall)" */
    size_t lastq = n;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '?') lastq = i;
    if (lastq < n && lastq + 1 < n) {
        size_t k = lastq + 1;
        while (k < n && s[k] == ' ') k++;
        if (k < n && (s[k] == '(' || s[k] == '[' || s[k] == '-' || (unsigned char)s[k] == 0xE2 || s[k] == '*'))
            n = lastq + 1;
    }
    if (!n || s[n - 1] == ':') return ET_OK;
    if (n > ET_GEN_MAX_QUESTION) return ET_OK;
    for (size_t i = 0; i < ET_ARRAY_LEN(meta_phrases); i++)
        if (contains_ci(s, n, meta_phrases[i])) return ET_OK;
    size_t nw = count_words(s, n);
    if (nw < 3) return ET_OK;
    int q = ends_q(s, n);
    if (!q) {
        if (last_cut) return ET_OK; /* cut off by max_tokens */
        int inter = 0;
        for (size_t i = 0; i < ET_ARRAY_LEN(interrogatives) && !inter; i++)
            inter = has_word_ci(s, n, interrogatives[i]);
        if (!inter || nw < 4 || memchr(s, '?', n)) return ET_OK;
        while (n && (s[n - 1] == '.' || s[n - 1] == ';' || s[n - 1] == ',')) n--;
        if (!n) return ET_OK;
    }
    /* the question text, with a '?' when it was interrogative without one */
    et_buf b = {0};
    int rc = append_clean(&b, s, n, err);
    if (!rc && !q) rc = et_buf_puts(&b, "?", err);
    if (rc) {
        et_buf_free(&b);
        return rc;
    }
    char norm[ET_GEN_MAX_QUESTION + 8];
    et_gen_normalize(b.data, b.len, norm, sizeof(norm));
    int drop = !norm[0] || is_dup(p, norm);
    if (!drop) drop = copies_context(p, b.data, b.len, err, &rc);
    if (!rc && !drop) rc = et_strlist_push(&p->seen, norm, strlen(norm), err);
    if (!rc && !drop) {
        rc = et_strlist_push(p->out, b.data, b.len, err);
        if (!rc) p->added++;
    }
    et_buf_free(&b);
    return rc;
}

/* Splits a line where one question ends and the next begins ("...? 2. How ...?"). */
static int consider_line(pstate *p, char *s, size_t n, int last_line_cut, et_error *err) {
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '?') continue;
        size_t k = i + 1;
        while (k < n && s[k] == ' ') k++;
        if (k == i + 1 || k >= n) continue;
        unsigned char c = (unsigned char)s[k];
        if (isdigit(c) || isupper(c) || c == '*' || c == '-' || c == '"' || c == '(' || c == 0xE2) {
            int rc = consider(p, s + start, i + 1 - start, 0, err);
            if (rc) return rc;
            start = k;
        }
    }
    return consider(p, s + start, n - start, last_line_cut, err);
}

/* Removes <think>...</think> reasoning (also unclosed or unopened). In place. */
static size_t strip_think(char *s, size_t n) {
    static const char *tags[][2] = {{"<think>", "</think>"}, {"<thinking>", "</thinking>"},
                                    {"<reasoning>", "</reasoning>"}};
    for (size_t t = 0; t < ET_ARRAY_LEN(tags); t++) {
        const char *open = tags[t][0], *close = tags[t][1];
        size_t lo = strlen(open), lc = strlen(close);
        /* everything up to the last closing tag is reasoning */
        size_t last = n;
        for (size_t i = 0; i + lc <= n; i++)
            if (has_prefix_ci(s + i, n - i, close)) last = i;
        if (last < n) {
            memmove(s, s + last + lc, n - last - lc);
            n -= last + lc;
        }
        /* an opening tag left without its close: reasoning cut off */
        for (size_t i = 0; i + lo <= n; i++)
            if (has_prefix_ci(s + i, n - i, open)) {
                n = i;
                break;
            }
    }
    return n;
}

/* JSON replies: ["q1", "q2"], {"questions": [...]}, [{"question": "..."}]. */
static int collect_json(const cJSON *v, et_buf *b, int depth, et_error *err) {
    int rc = ET_OK;
    if (depth > 3) return ET_OK;
    if (cJSON_IsString(v)) {
        rc = et_buf_puts(b, v->valuestring, err);
        if (!rc) rc = et_buf_puts(b, "\n", err);
    } else if (cJSON_IsArray(v)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, v) if (!rc) rc = collect_json(it, b, depth + 1, err);
    } else if (cJSON_IsObject(v)) {
        static const char *keys[] = {"question", "questions", "query", "queries", "q", "text"};
        for (size_t k = 0; k < ET_ARRAY_LEN(keys); k++) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, keys[k]);
            if (f) return collect_json(f, b, depth + 1, err);
        }
        const cJSON *it; /* otherwise the first array member */
        cJSON_ArrayForEach(it, v) if (cJSON_IsArray(it)) return collect_json(it, b, depth + 1, err);
    }
    return rc;
}

int et_gen_parse_questions(const char *reply, size_t len, const char *context, const et_strlist *have,
                           size_t want, int truncated, et_strlist *out, et_error *err) {
    if (!reply || !len || !want) return ET_OK;
    if (len > ET_GEN_MAX_REPLY) len = ET_GEN_MAX_REPLY;
    char *s = et_strndup(reply, len, err);
    if (!s) return ET_ENOMEM;
    size_t n = strnlen(s, len);
    n = strip_think(s, n);
    s[n] = 0;

    pstate p = {0};
    p.context = context;
    p.have = have;
    p.out = out;
    p.want = want;
    int rc = ET_OK;
    char norm[ET_GEN_MAX_QUESTION + 8];
    for (size_t i = 0; have && i < have->n && !rc; i++) {
        et_gen_normalize(have->v[i], strlen(have->v[i]), norm, sizeof(norm));
        rc = et_strlist_push(&p.seen, norm, strlen(norm), err);
    }

    /* a JSON reply, possibly inside a code fence */
    et_buf jb = {0};
    size_t a = 0, e = n;
    while (a < e && is_sp((unsigned char)s[a])) a++;
    if (!rc && e - a >= 3 && !memcmp(s + a, "```", 3)) {
        while (a < e && s[a] != '\n') a++;
        while (e > a && is_sp((unsigned char)s[e - 1])) e--;
        if (e - a >= 3 && !memcmp(s + e - 3, "```", 3)) e -= 3;
    }
    while (a < e && is_sp((unsigned char)s[a])) a++;
    if (!rc && a < e && (s[a] == '[' || s[a] == '{')) {
        cJSON *j = cJSON_ParseWithLength(s + a, e - a);
        if (j) {
            rc = collect_json(j, &jb, 0, err);
            cJSON_Delete(j);
            if (!rc && jb.len) {
                free(s);
                s = jb.data;
                n = jb.len;
                jb.data = NULL;
                truncated = 0;
            }
        }
    }
    et_buf_free(&jb);

    /* the last non-empty line, dropped if the reply was cut off there */
    size_t last_start = n;
    for (size_t i = n; i > 0; i--) {
        if (s[i - 1] == '\n') {
            size_t k = i;
            while (k < n && is_sp((unsigned char)s[k])) k++;
            if (k < n) {
                last_start = i;
                break;
            }
        }
        if (i == 1) last_start = 0;
    }
    for (size_t pos = 0; pos < n && !rc && p.added < want;) {
        char *nl = memchr(s + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - s) : n;
        rc = consider_line(&p, s + pos, end - pos, truncated && pos >= last_start, err);
        pos = end + 1;
    }
    free(s);
    free(p.cw.h);
    free(p.qw.h);
    free(p.row);
    et_strlist_free(&p.seen);
    return rc;
}
