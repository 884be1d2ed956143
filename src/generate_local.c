/* generate_local.c - the embedded query generator (method in generate_local.h). */
#include "generate_local.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct et_genlocal {
    const et_chunks *cs; /* borrowed */
    uint64_t seed;
    et_strmap vocab;     /* lowercase word -> index into df/last */
    et_strmap stop;      /* stopwords */
    uint32_t *df;        /* [n_words] chunks containing the word */
    size_t *last;        /* [n_words] last chunk counted (+1) while building */
    size_t n_words, cap_words;
};

static const char *stopwords[] = {
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as",
    "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can",
    "cannot", "could", "did", "do", "does", "doing", "done", "down", "during", "each", "either", "else",
    "etc", "even", "ever", "every", "few", "for", "from", "further", "get", "gets", "given", "gives", "had",
    "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "however", "i", "ie", "eg",
    "if", "in", "into", "is", "it", "its", "itself", "just", "least", "less", "let", "like", "made", "make",
    "makes", "many", "may", "me", "might", "more", "most", "much", "must", "my", "need", "never", "no", "nor",
    "not", "now", "of", "off", "often", "on", "once", "one", "only", "or", "other", "others", "otherwise",
    "our", "out", "over", "own", "per", "perhaps", "quite", "rather", "really", "same", "see", "seen",
    "several", "shall", "she", "should", "shown", "since", "so", "some", "such", "than", "that", "the",
    "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "though", "through",
    "thus", "to", "too", "two", "under", "until", "up", "upon", "us", "use", "used", "uses", "using",
    "usually", "very", "via", "was", "we", "well", "were", "what", "when", "where", "whether", "which",
    "while", "who", "whom", "whose", "why", "will", "with", "within", "without", "would", "yet", "you",
    "your", "yours", "chapter", "section", "page", "example", "following", "above", "below", "way", "ways",
    "thing", "things", "first", "second", "new", "three", "four", "five", "possible", "simply", "note",
    "thus", "hence", "therefore", "already", "instead", "say", "said", "case", "cases", "respectively",
    "roughly", "together", "preferably", "finally", "latter", "former", "currently", "simply", "easily",
    "directly", "generally", "actually", "particularly", "especially", "typically", "exactly", "similarly",
    "clearly", "fully", "anything", "something", "nothing", "everything", "somewhat", "allows", "allow",
    "provide", "provides", "provided", "called", "known", "shows", "show", "treated", "takes", "take",
    "taken", "consisting", "consists", "contains", "contain", "required", "requires", "needed",
    "described", "describes", "discussed", "defined", "found", "obtained", "produce", "produces",
    "produced", "present", "presented", "particular", "certain", "various", "useful", "important",
    "able", "available", "usual", "simple", "general", "given", "whereas", "also", "although", "i.e",
    "e.g", "cf", "viz", "something", "want", "wish", "go", "goes", "come", "comes", "put", "puts",
    "look", "looks", "try", "tries", "seems", "seem", "becomes", "become", "mean", "means", "did"};

static int is_stop(const et_strmap *stop, const char *w, size_t n) { return et_strmap_get(stop, w, n, NULL); }

/* Bytes of a word character at t[i] (< b), 0 if none: ASCII letters and
 * digits, and non-ASCII characters other than punctuation (U+00A0..U+00BF,
 * U+00D7, U+00F7, U+2000..U+206F: quotes, dashes, bullets, spaces). */
static size_t wlen(const char *t, size_t i, size_t b) {
    unsigned char c = (unsigned char)t[i];
    if (c < 0x80) return isalnum(c) ? 1 : 0;
    if (c < 0xC0) return 0; /* a stray continuation byte */
    size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    if (i + n > b) return 0;
    for (size_t k = 1; k < n; k++)
        if (((unsigned char)t[i + k] & 0xC0) != 0x80) return 0;
    unsigned char d = (unsigned char)t[i + 1];
    if (c == 0xC2 && d >= 0xA0) return 0;
    if (c == 0xC3 && (d == 0x97 || d == 0xB7)) return 0;
    if (c == 0xE2 && (d == 0x80 || d == 0x81)) return 0;
    if (c == 0xEF && d == 0xBF) return 0; /* U+FFxx specials */
    return n;
}

/* ---- words of a text ------------------------------------------------------------------------ */

typedef struct word {
    size_t off, len;  /* surface bytes in the text */
    char low[64];     /* lowercase (truncated) */
    size_t low_len;
    int content;      /* not a stopword, >= 3 bytes, not a number */
    int brk;          /* punctuation break before this word (, ; : ( ) ...) */
    size_t vid;       /* vocabulary index, SIZE_MAX if unknown */
} word;

typedef struct wordv {
    word *v;
    size_t n, cap;
} wordv;

/* Splits text[a..b) into words. */
static int split_words(const et_strmap *stop, const char *t, size_t a, size_t b, wordv *out, et_error *err) {
    out->n = 0;
    int brk = 0;
    for (size_t i = a; i < b;) {
        unsigned char c = (unsigned char)t[i];
        size_t k = wlen(t, i, b);
        if (!k) {
            if ((c && strchr(",;:()[]{}\"=<>|", c)) || c == '\n' || c >= 0x80) brk = 1;
            i++;
            while (c >= 0xC0 && i < b && ((unsigned char)t[i] & 0xC0) == 0x80) i++; /* the whole character */
            continue;
        }
        size_t s = i;
        for (;;) {
            if (i < b && (k = wlen(t, i, b))) i += k;
            else if (i + 1 < b && (t[i] == '.' || t[i] == '_') && wlen(t, i + 1, b)) i++;
            else break;
        }
        if (out->n == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 256;
            word *p = et_realloc_n(out->v, cap, sizeof(word), err);
            if (!p) return ET_ENOMEM;
            out->v = p;
            out->cap = cap;
        }
        word *w = &out->v[out->n++];
        w->off = s;
        w->len = i - s;
        w->low_len = w->len < sizeof(w->low) - 1 ? w->len : sizeof(w->low) - 1;
        int digits = 0, alpha = 0;
        for (size_t k = 0; k < w->low_len; k++) {
            unsigned char ch = (unsigned char)t[s + k];
            w->low[k] = (char)tolower(ch);
            digits += isdigit(ch) != 0;
            alpha += isalpha(ch) || ch >= 0x80;
        }
        w->low[w->low_len] = 0;
        w->content = alpha > 0 && w->len >= 3 && digits * 2 < (int)w->len && !is_stop(stop, w->low, w->low_len);
        w->brk = brk;
        w->vid = SIZE_MAX;
        brk = 0;
    }
    return ET_OK;
}

/* ---- statistics ------------------------------------------------------------------------------ */

int et_genlocal_new(et_genlocal **out, const et_chunks *cs, uint64_t seed, et_error *err) {
    *out = NULL;
    et_genlocal *g = et_calloc(1, sizeof(*g), err);
    if (!g) return ET_ENOMEM;
    g->cs = cs;
    g->seed = seed;
    et_strmap_init(&g->vocab);
    et_strmap_init(&g->stop);
    wordv wv = {0};
    int rc = ET_OK;
    for (size_t i = 0; i < ET_ARRAY_LEN(stopwords) && !rc; i++)
        rc = et_strmap_put(&g->stop, stopwords[i], strlen(stopwords[i]), 1, err);
    for (size_t c = 0; c < cs->n && !rc; c++) {
        const char *t = cs->items[c].text;
        rc = split_words(&g->stop, t, 0, strlen(t), &wv, err);
        for (size_t i = 0; i < wv.n && !rc; i++) {
            word *w = &wv.v[i];
            if (!w->content) continue;
            int64_t id;
            if (!et_strmap_get(&g->vocab, w->low, w->low_len, &id)) {
                if (g->n_words == g->cap_words) {
                    size_t cap = g->cap_words ? g->cap_words * 2 : 4096;
                    uint32_t *df = et_realloc_n(g->df, cap, sizeof(uint32_t), err);
                    if (!df) { rc = ET_ENOMEM; break; }
                    g->df = df;
                    size_t *last = et_realloc_n(g->last, cap, sizeof(size_t), err);
                    if (!last) { rc = ET_ENOMEM; break; }
                    g->last = last;
                    g->cap_words = cap;
                }
                id = (int64_t)g->n_words;
                g->df[id] = 0;
                g->last[id] = 0;
                g->n_words++;
                if ((rc = et_strmap_put(&g->vocab, w->low, w->low_len, id, err))) break;
            }
            if (g->last[id] != c + 1) {
                g->last[id] = c + 1;
                g->df[id]++;
            }
        }
    }
    free(wv.v);
    if (rc) {
        et_genlocal_free(g);
        return rc;
    }
    *out = g;
    return ET_OK;
}

void et_genlocal_free(et_genlocal *g) {
    if (!g) return;
    et_strmap_free(&g->vocab);
    et_strmap_free(&g->stop);
    free(g->df);
    free(g->last);
    free(g);
}

static double idf_of(const et_genlocal *g, const word *w) {
    int64_t id;
    double n = (double)g->cs->n;
    if (!et_strmap_get(&g->vocab, w->low, w->low_len, &id)) return log(n + 1) + 1;
    return log((n + 1) / ((double)g->df[id] + 1)) + 1;
}

/* ---- sentences -------------------------------------------------------------------------------- */

typedef struct span {
    size_t a, b; /* bytes [a, b) of the chunk text */
    double score;
} span;

/* A code-like or heading-like line: R prompts, assignments, many symbols. */
static int code_line(const char *s, size_t n) {
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i >= n) return 0;
    if (n - i >= 2 && (s[i] == '>' || s[i] == '+' || s[i] == '$' || s[i] == '#') && s[i + 1] == ' ') return 1;
    size_t sym = 0, al = 0;
    for (size_t k = i; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (isalpha(c) || c >= 0x80) al++;
        else if (!isspace(c) && !isdigit(c) && c != '.' && c != ',' && c != '\'' && c != '-') sym++;
        if (c == '<' && k + 1 < n && s[k + 1] == '-') return 1;
    }
    return sym * 5 > al + sym; /* more than 20% symbols */
}

static int push_span(span **v, size_t *n, size_t *cap, size_t a, size_t b, et_error *err) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 32;
        span *p = et_realloc_n(*v, c, sizeof(span), err);
        if (!p) return ET_ENOMEM;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = (span){a, b, 0};
    return ET_OK;
}

/* Sentences of the prose lines of t. */
static int sentences(const char *t, size_t len, span **out, size_t *n_out, et_error *err) {
    span *v = NULL;
    size_t n = 0, cap = 0;
    int rc = ET_OK;
    size_t para = SIZE_MAX; /* start of the current prose run */
    for (size_t pos = 0; pos <= len && !rc;) {
        const char *nl = pos < len ? memchr(t + pos, '\n', len - pos) : NULL;
        size_t end = nl ? (size_t)(nl - t) : len;
        size_t k = pos;
        while (k < end && isspace((unsigned char)t[k])) k++;
        int blank = k == end, code = !blank && code_line(t + pos, end - pos);
        int last = end >= len;
        if (!blank && !code && para == SIZE_MAX) para = pos;
        if ((blank || code || last) && para != SIZE_MAX) {
            size_t pend = (blank || code) ? pos : end;
            /* split the prose run [para, pend) at sentence ends */
            size_t s = para;
            for (size_t i = para; i < pend && !rc; i++) {
                char c = t[i];
                if ((c == '.' || c == '!' || c == '?') && (i + 1 >= pend || isspace((unsigned char)t[i + 1]))) {
                    /* not after a one-letter word or a known abbreviation */
                    size_t w = i;
                    while (w > s && isalnum((unsigned char)t[w - 1])) w--;
                    size_t wl = i - w;
                    int abbr = c == '.' && (wl == 1 || (wl == 2 && (!strncmp(t + w, "eg", 2) || !strncmp(t + w, "ie", 2))) ||
                                            (i >= 3 && !strncmp(t + i - 3, "e.g", 3)) ||
                                            (i >= 3 && !strncmp(t + i - 3, "i.e", 3)) ||
                                            (wl == 3 && !strncmp(t + w, "etc", 3)) ||
                                            (wl == 2 && !strncmp(t + w, "vs", 2)));
                    if (abbr) continue;
                    rc = push_span(&v, &n, &cap, s, i + 1, err);
                    s = i + 1;
                }
            }
            if (!rc && s < pend) rc = push_span(&v, &n, &cap, s, pend, err);
            para = SIZE_MAX;
        }
        if (last) break;
        pos = end + 1;
    }
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return ET_OK;
}

/* ---- phrases and questions -------------------------------------------------------------------- */

typedef struct phrase {
    size_t w0, nw; /* words [w0, w0 + nw) of the sentence */
    double score;
} phrase;

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* Appends a word's surface form: keeps case for identifiers, acronyms and proper nouns. */
static int put_word(et_buf *b, const char *t, const word *w, int sentence_start, et_error *err) {
    int upper_inside = 0, ident = 0;
    for (size_t k = 1; k < w->len; k++) upper_inside |= isupper((unsigned char)t[w->off + k]) != 0;
    for (size_t k = 0; k < w->len; k++) ident |= t[w->off + k] == '.' || t[w->off + k] == '_' ||
                                                isdigit((unsigned char)t[w->off + k]);
    int keep = upper_inside || ident || (!sentence_start && isupper((unsigned char)t[w->off]));
    if (keep) return et_buf_append(b, t + w->off, w->len, err);
    int rc = ET_OK;
    for (size_t k = 0; k < w->len && !rc; k++) {
        char c = (char)tolower((unsigned char)t[w->off + k]);
        rc = et_buf_append(b, &c, 1, err);
    }
    return rc;
}

static int put_phrase(et_buf *b, const char *t, const wordv *wv, const phrase *p, et_error *err) {
    int rc = ET_OK;
    for (size_t k = 0; k < p->nw && !rc; k++) {
        if (k) rc = et_buf_puts(b, " ", err);
        if (!rc) rc = put_word(b, t, &wv->v[p->w0 + k], p->w0 + k == 0, err);
    }
    return rc;
}

/* Key phrases of words wv[0..n): runs of <= 3 content words without a break. */
static int phrases_of(const et_genlocal *g, const wordv *wv, phrase **out, size_t *n_out, et_error *err) {
    phrase *v = et_malloc_n(wv->n + 1, sizeof(phrase), err);
    if (!v) return ET_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < wv->n;) {
        if (!wv->v[i].content) {
            i++;
            continue;
        }
        size_t j = i + 1;
        while (j < wv->n && j - i < 3 && wv->v[j].content && !wv->v[j].brk) j++;
        double best = 0, sum = 0;
        for (size_t k = i; k < j; k++) {
            double d = idf_of(g, &wv->v[k]);
            sum += d;
            if (d > best) best = d;
        }
        v[n++] = (phrase){i, j - i, best + 0.25 * (sum - best)};
        i = j;
    }
    /* best first; ties by position, so the order is deterministic */
    for (size_t a = 1; a < n; a++) {
        phrase x = v[a];
        size_t b = a;
        while (b > 0 && (v[b - 1].score < x.score || (v[b - 1].score == x.score && v[b - 1].w0 > x.w0))) {
            v[b] = v[b - 1];
            b--;
        }
        v[b] = x;
    }
    /* drop phrases whose words repeat an earlier (better) phrase */
    size_t o = 0;
    for (size_t a = 0; a < n; a++) {
        int dup = 0;
        for (size_t b = 0; b < o && !dup; b++)
            if (v[b].nw == v[a].nw) {
                dup = 1;
                for (size_t k = 0; k < v[a].nw && dup; k++)
                    dup = !strcmp(wv->v[v[a].w0 + k].low, wv->v[v[b].w0 + k].low);
            }
        if (!dup) v[o++] = v[a];
    }
    *out = v;
    *n_out = o;
    return ET_OK;
}

static const char *templates3[] = {
    "How is %1 used with %2 and %3?",
    "What does the text say about %1, %2 and %3?",
    "What is the role of %1 in %2 and %3?",
    "How do %1 and %2 relate to %3?",
    "What should one know about %1 when working with %2 and %3?",
    "Which details are given about %1, %2 and %3?",
};
static const char *templates2[] = {
    "How is %1 used with %2?",
    "What does the text say about %1 and %2?",
    "What is the role of %1 in %2?",
    "How do %1 and %2 relate?",
    "What should one know about %1 when working with %2?",
    "Which details are given about %1 and %2?",
};
static const char *templates1[] = {
    "What is %1?",
    "What does the text say about %1?",
    "How does %1 work?",
    "What is known about %1?",
};

static int fill(et_buf *b, const char *tpl, const char *t, const wordv *wv, const phrase *ph, et_error *err) {
    int rc = ET_OK;
    for (const char *p = tpl; *p && !rc; p++) {
        if (*p == '%' && p[1] >= '1' && p[1] <= '3') {
            rc = put_phrase(b, t, wv, &ph[p[1] - '1'], err);
            p++;
        } else {
            rc = et_buf_append(b, p, 1, err);
        }
    }
    return rc;
}

/* "X is/are ..." at the sentence start: the subject X as words [0, *nx). */
static int definition_subject(const wordv *wv, size_t *nx) {
    size_t i = 0;
    if (i < wv->n && (!strcmp(wv->v[i].low, "the") || !strcmp(wv->v[i].low, "a") || !strcmp(wv->v[i].low, "an")))
        i++;
    size_t s = i;
    while (i < wv->n && i - s < 4 && wv->v[i].content && !wv->v[i].brk) i++;
    if (i == s || i >= wv->n) return 0;
    if (strcmp(wv->v[i].low, "is") && strcmp(wv->v[i].low, "are")) return 0;
    *nx = i;
    return 1;
}

/* One question from sentence words wv (variant k picks phrases and template). */
static int question_from(const et_genlocal *g, const char *t, const wordv *wv, uint64_t h, size_t k, et_buf *b,
                         et_error *err) {
    phrase *ph;
    size_t np;
    int rc = phrases_of(g, wv, &ph, &np, err);
    if (rc) return rc;
    if (!np) {
        free(ph);
        return ET_OK;
    }
    /* rotate the phrase set for later variants of the same sentence */
    phrase sel[3];
    size_t ns = np < 3 ? np : 3;
    for (size_t j = 0; j < ns; j++) sel[j] = ph[(k + j) % np];
    size_t nx;
    if (k == 0 && definition_subject(wv, &nx) && (h >> 8) % 2 == 0) {
        phrase subj = {0, nx, 0};
        if (wv->v[0].content == 0) subj.w0 = 1, subj.nw = nx - 1;
        rc = et_buf_puts(b, "What ", err);
        if (!rc) rc = et_buf_puts(b, strcmp(wv->v[nx].low, "are") ? "is " : "are ", err);
        if (!rc) rc = put_phrase(b, t, wv, &subj, err);
        /* a phrase outside the subject makes the question specific to this chunk */
        for (size_t j = 0; j < np && !rc; j++)
            if (ph[j].w0 >= nx) {
                rc = et_buf_puts(b, " in the context of ", err);
                if (!rc) rc = put_phrase(b, t, wv, &ph[j], err);
                break;
            }
        if (!rc) rc = et_buf_puts(b, "?", err);
    } else if (ns == 3) {
        rc = fill(b, templates3[h % ET_ARRAY_LEN(templates3)], t, wv, sel, err);
    } else if (ns == 2) {
        rc = fill(b, templates2[h % ET_ARRAY_LEN(templates2)], t, wv, sel, err);
    } else {
        rc = fill(b, templates1[h % ET_ARRAY_LEN(templates1)], t, wv, sel, err);
    }
    free(ph);
    return rc;
}

int et_genlocal_questions(const et_genlocal *g, size_t ci, size_t n, et_strlist *out, et_error *err) {
    if (ci >= g->cs->n || !n) return ET_OK;
    const et_chunk *ch = &g->cs->items[ci];
    const char *t = ch->text;
    size_t len = strlen(t);
    span *sv = NULL;
    size_t ns = 0;
    wordv wv = {0};
    int rc = sentences(t, len, &sv, &ns, err);
    /* term frequencies of the chunk, through a small map */
    et_strmap tf;
    et_strmap_init(&tf);
    if (!rc) rc = split_words(&g->stop, t, 0, len, &wv, err);
    for (size_t i = 0; i < wv.n && !rc; i++) {
        if (!wv.v[i].content) continue;
        int64_t c = 0;
        et_strmap_get(&tf, wv.v[i].low, wv.v[i].low_len, &c);
        rc = et_strmap_put(&tf, wv.v[i].low, wv.v[i].low_len, c + 1, err);
    }
    /* score sentences; keep those with >= 6 words and >= 2 content words */
    size_t nk = 0;
    for (size_t s = 0; s < ns && !rc; s++) {
        rc = split_words(&g->stop, t, sv[s].a, sv[s].b, &wv, err);
        size_t content = 0;
        double score = 0;
        for (size_t i = 0; i < wv.n && !rc; i++) {
            if (!wv.v[i].content) continue;
            int dup = 0;
            for (size_t j = 0; j < i && !dup; j++) dup = !strcmp(wv.v[j].low, wv.v[i].low);
            if (dup) continue;
            int64_t c = 1;
            et_strmap_get(&tf, wv.v[i].low, wv.v[i].low_len, &c);
            score += sqrt((double)c) * idf_of(g, &wv.v[i]);
            content++;
        }
        if (wv.n < 6 || wv.n > 80 || content < 2) continue;
        sv[nk] = sv[s];
        sv[nk].score = score / sqrt((double)wv.n);
        nk++;
    }
    /* best first, ties by position */
    for (size_t a = 1; a < nk && !rc; a++) {
        span x = sv[a];
        size_t b = a;
        while (b > 0 && (sv[b - 1].score < x.score || (sv[b - 1].score == x.score && sv[b - 1].a > x.a))) {
            sv[b] = sv[b - 1];
            b--;
        }
        sv[b] = x;
    }
    uint64_t h0 = et_hash64(ch->id, strlen(ch->id), g->seed);
    et_buf b = {0};
    size_t start = out->n, tries = 0;
    char norm[ET_GEN_MAX_QUESTION + 8], other[ET_GEN_MAX_QUESTION + 8];
    for (size_t k = 0; !rc && out->n - start < n && tries < 4 * n + 8; tries++) {
        b.len = 0;
        uint64_t h = mix(h0 + tries);
        if (nk) {
            size_t si = tries % nk, variant = tries / nk;
            rc = split_words(&g->stop, t, sv[si].a, sv[si].b, &wv, err);
            if (!rc) rc = question_from(g, t, &wv, h, variant, &b, err);
        } else {
            /* no prose sentence: the chunk's top terms, code included */
            rc = split_words(&g->stop, t, 0, len, &wv, err);
            if (!rc) rc = question_from(g, t, &wv, h, tries, &b, err);
        }
        if (rc || !b.len) {
            if (!nk) break;
            continue;
        }
        et_gen_normalize(b.data, b.len, norm, sizeof(norm));
        int dup = 0;
        for (size_t q = start; q < out->n && !dup; q++) {
            et_gen_normalize(out->v[q], strlen(out->v[q]), other, sizeof(other));
            dup = !strcmp(norm, other);
        }
        if (!dup && b.len <= ET_GEN_MAX_QUESTION) rc = et_strlist_push(out, b.data, b.len, err);
        k++;
    }
    et_buf_free(&b);
    et_strmap_free(&tf);
    free(wv.v);
    free(sv);
    return rc;
}
