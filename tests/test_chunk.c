/* test_chunk.c - the splitter: sentence boundaries over tricky cases, clauses,
 * the token estimate, and chunking invariants (budget, coverage in order,
 * overlap made of whole sentences/words within its budget, headings kept
 * with their section, over-long strings split by characters, determinism)
 * over seeded random documents and budgets. */
#include "chunk.h"
#include "test_util.h"

/* Splits with fn and compares to the '|'-separated expectation. */
static void expect_split(int (*fn)(const char *, size_t, size_t, et_spans *, et_error *), const char *in,
                         const char *want) {
    et_spans sp = {0};
    et_error err = {0};
    TEST_CHECK(fn(in, strlen(in), 0, &sp, &err) == 0, "split: %s", err.msg);
    et_buf b = {0};
    for (size_t i = 0; i < sp.n; i++) {
        if (i) et_buf_puts(&b, "|", NULL);
        et_buf_append(&b, in + sp.v[i].off, sp.v[i].len, NULL);
    }
    const char *got = b.data ? b.data : "";
    TEST_CHECK(!strcmp(got, want), "split '%s':\n    got  '%s'\n    want '%s'", in, got, want);
    et_buf_free(&b);
    et_spans_free(&sp);
}

static void test_sentences(void) {
    int (*S)(const char *, size_t, size_t, et_spans *, et_error *) = et_split_sentences;
    /* abbreviations */
    expect_split(S, "Use e.g. this one. Next one.", "Use e.g. this one.|Next one.");
    expect_split(S, "It works, i.e. it runs. Then stop.", "It works, i.e. it runs.|Then stop.");
    expect_split(S, "See Fig. 3 for details. It shows x.", "See Fig. 3 for details.|It shows x.");
    expect_split(S, "Apples, pears, etc. are fruit. Bananas too.", "Apples, pears, etc. are fruit.|Bananas too.");
    expect_split(S, "Apples, pears, etc. Bananas too.", "Apples, pears, etc. Bananas too.");
    expect_split(S, "Dr. Smith met Mr. Jones vs. Mrs. Brown. They talked.",
                 "Dr. Smith met Mr. Jones vs. Mrs. Brown.|They talked.");
    expect_split(S, "The U.S. Army arrived. Later, Ph.D. students came.", "The U.S. Army arrived.|Later, Ph.D. students came.");
    expect_split(S, "See p. 12 and No. 5 here. No. It is not.", "See p. 12 and No. 5 here.|No.|It is not.");
    expect_split(S, "The value is approx. three times larger. Ok.", "The value is approx. three times larger.|Ok.");
    /* decimals, initials, versions, URLs, file names */
    expect_split(S, "Pi is 3.14 exactly. The end.", "Pi is 3.14 exactly.|The end.");
    expect_split(S, "J. R. R. Tolkien wrote it. He was English.", "J. R. R. Tolkien wrote it.|He was English.");
    expect_split(S, "David M. Smith and Bill Venables wrote notes. Thanks.",
                 "David M. Smith and Bill Venables wrote notes.|Thanks.");
    expect_split(S, "Version 1.2.3 was released. Then v2.0 came.", "Version 1.2.3 was released.|Then v2.0 came.");
    expect_split(S, "Visit https://example.com/a.b.html for more. Or www.x.org. Thanks!",
                 "Visit https://example.com/a.b.html for more.|Or www.x.org.|Thanks!");
    expect_split(S, "Open foo.png and .RData files. Done.", "Open foo.png and .RData files.|Done.");
    /* enumerators and code */
    expect_split(S, "1. Create a directory. 2. Start R.", "1. Create a directory.|2. Start R.");
    expect_split(S, "Call x.foo(). Then y.", "Call x.foo().|Then y.");
    expect_split(S, "Code: x <- c(1.5, 2.5). y <- 3", "Code: x <- c(1.5, 2.5). y <- 3");
    /* quotes, ellipses, ! and ? */
    expect_split(S, "He said \"Stop.\" Then left.", "He said \"Stop.\"|Then left.");
    expect_split(S, "Really?! Yes... maybe. OK", "Really?!|Yes... maybe.|OK");
    expect_split(S, "Yahoo! is a company. (It is.) Fine.", "Yahoo! is a company.|(It is.)|Fine.");
    expect_split(S, "It was \xe2\x80\x9c" "done.\xe2\x80\x9d Next.", "It was \xe2\x80\x9c" "done.\xe2\x80\x9d|Next.");
    /* CJK: no spaces needed */
    expect_split(S, "\xe8\xbf\x99\xe6\x98\xaf\xe3\x80\x82\xe9\x82\xa3\xe6\x98\xaf\xef\xbc\x81\xe5\x90\x97\xef\xbc\x9f",
                 "\xe8\xbf\x99\xe6\x98\xaf\xe3\x80\x82|\xe9\x82\xa3\xe6\x98\xaf\xef\xbc\x81|\xe5\x90\x97\xef\xbc\x9f");
    /* blanks */
    expect_split(S, "  One.   Two.  ", "One.|Two.");
    expect_split(S, "", "");
    expect_split(S, "no terminal punctuation", "no terminal punctuation");

    int (*C)(const char *, size_t, size_t, et_spans *, et_error *) = et_split_clauses;
    expect_split(C, "a, b; c: d\xef\xbc\x8c" "e\xe3\x80\x81" "f", "a,|b;|c:|d\xef\xbc\x8c|e\xe3\x80\x81|f");
    expect_split(C, "1,000 items cost 3:45 each", "1,000 items cost 3:45 each");
    expect_split(et_split_words, "  a  bb\tccc\n", "a|bb|ccc");
    expect_split(et_split_lines, "x <- 1  \n\n  y <- 2\n", "x <- 1|y <- 2");
}

static void test_estimate(void) {
    struct {
        const char *s;
        size_t want;
    } cases[] = {
        {"", 0},
        {"   ", 0},
        {"a", 2},             /* 60 units -> ceil(1.1) */
        {"hello world", 4},   /* 100 + 100 units */
        {"SQLite", 3},        /* S Q | Lite: 60+10+60+30 */
        {"3.14", 5},          /* 3 . 14: 60+60+60+45 */
        {"camelCase", 4},     /* camel | Case: 100 + 90 */
        {"\xe4\xb8\xad\xe6\x96\x87", 3}, /* two CJK characters: 120 */
        {"caf\xc3\xa9", 2},   /* Latin letters stay in the run: 90 */
    };
    for (size_t i = 0; i < ET_ARRAY_LEN(cases); i++) {
        size_t got = et_estimate_tokens(cases[i].s, strlen(cases[i].s));
        TEST_CHECK(got == cases[i].want, "estimate('%s') = %zu, want %zu", cases[i].s, got, cases[i].want);
    }
    /* subadditive across whitespace: pieces never sum to less than the whole */
    const char *t = "The quick brown fox, 1234 jumps over lazy_dogs' backs (twice).";
    size_t whole = et_estimate_tokens(t, strlen(t)), sum = 0;
    et_spans w = {0};
    et_split_words(t, strlen(t), 0, &w, NULL);
    for (size_t i = 0; i < w.n; i++) sum += et_estimate_tokens(t + w.v[i].off, w.v[i].len);
    TEST_CHECK(sum >= whole, "sum of word estimates %zu < whole %zu", sum, whole);
    et_spans_free(&w);
}

/* ---- chunking ---------------------------------------------------------------------- */

/* Counter: whitespace-separated words (exactly additive, easy to reason about). */
static int count_words(void *ctx, const char *s, size_t n, size_t *out, et_error *err) {
    (void)ctx;
    (void)err;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && strchr(" \t\n", s[i])) i++;
        if (i < n) w++;
        while (i < n && !strchr(" \t\n", s[i])) i++;
    }
    *out = w;
    return ET_OK;
}

/* Counter that is not additive: the estimate plus 2 per paragraph break, so
 * sums of pieces underestimate and the exact recount must shrink chunks. */
static int count_sticky(void *ctx, const char *s, size_t n, size_t *out, et_error *err) {
    (void)ctx;
    (void)err;
    size_t e = et_estimate_tokens(s, n);
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '\n' && s[i + 1] == '\n') e += 2;
    *out = e;
    return ET_OK;
}

static void add_block(et_doc *d, int kind, const char *text) {
    et_error err = {0};
    et_doc_begin(d, kind, &err);
    if (kind == ET_BLK_CODE) {
        const char *s = text;
        for (;;) {
            const char *nl = strchr(s, '\n');
            et_doc_line(d, s, nl ? (size_t)(nl - s) : strlen(s), &err);
            if (!nl) break;
            s = nl + 1;
        }
    } else {
        et_doc_line(d, text, strlen(text), &err);
    }
    et_doc_end(d, &err);
}

static char *chunk_text(const et_doc *d, const et_chunk_span *c) {
    char *s = malloc(c->len + 1);
    memcpy(s, d->text.data + c->off, c->len);
    s[c->len] = 0;
    return s;
}

static void expect_chunks(const et_doc *d, size_t budget, size_t overlap, const char *want) {
    et_chunk_opts o = {budget, overlap, count_words, NULL};
    et_chunk_span *cs = NULL;
    size_t n = 0;
    et_error err = {0};
    TEST_CHECK(et_chunk_doc(d, &o, &cs, &n, &err) == 0, "chunk: %s", err.msg);
    et_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        char *t = chunk_text(d, &cs[i]);
        et_buf_printf(&b, NULL, "%s[%s]", i ? " " : "", t);
        free(t);
    }
    TEST_CHECK(!strcmp(b.data ? b.data : "", want), "chunks (budget %zu, overlap %zu):\n    got  %s\n    want %s", budget,
               overlap, b.data ? b.data : "", want);
    et_buf_free(&b);
    free(cs);
}

static void test_examples(void) {
    et_doc d;
    et_doc_init(&d);
    add_block(&d, ET_BLK_PARA, "A1 a a a a. B2 b b b b. C3 c c c c. D4 d d d d. E5 e e e e.");
    /* budget 12 words, overlap 5: whole previous sentence repeated */
    expect_chunks(&d, 12, 5,
                  "[A1 a a a a. B2 b b b b.] [B2 b b b b. C3 c c c c.] [C3 c c c c. D4 d d d d.] [D4 d d d d. E5 e e e e.]");
    /* overlap 3: no whole sentence fits, so trailing words */
    expect_chunks(&d, 12, 3, "[A1 a a a a. B2 b b b b.] [b b b. C3 c c c c.] [c c c. D4 d d d d.] [d d d. E5 e e e e.]");
    /* no overlap; a paragraph that fits is one piece */
    expect_chunks(&d, 12, 0, "[A1 a a a a. B2 b b b b.] [C3 c c c c. D4 d d d d.] [E5 e e e e.]");
    expect_chunks(&d, 25, 0, "[A1 a a a a. B2 b b b b. C3 c c c c. D4 d d d d. E5 e e e e.]");
    et_doc_free(&d);

    /* a heading is not left at the end of a chunk; no overlap into a new section */
    et_doc_init(&d);
    add_block(&d, ET_BLK_PARA, "one two three four five.");
    add_block(&d, ET_BLK_HEADING, "Next Section");
    add_block(&d, ET_BLK_PARA, "six seven eight nine ten.");
    expect_chunks(&d, 8, 2, "[one two three four five.] [Next Section\n\nsix seven eight nine ten.]");
    et_doc_free(&d);

    /* over-long sentence: clauses, then words (merged greedily) */
    et_doc_init(&d);
    add_block(&d, ET_BLK_PARA, "w1 w2 w3, w4 w5 w6 w7 w8 w9 w10; w11.");
    expect_chunks(&d, 4, 0, "[w1 w2 w3, w4] [w5 w6 w7 w8] [w9 w10; w11.]");
    et_doc_free(&d);

    /* code: split by lines, never at sentence punctuation */
    et_doc_init(&d);
    add_block(&d, ET_BLK_CODE, "x <- c(1. 2)\ny <- x. Z\nz <- 3");
    expect_chunks(&d, 7, 0, "[x <- c(1. 2)] [y <- x. Z\nz <- 3]");
    et_doc_free(&d);
}

/* Seeded LCG (deterministic across platforms). */
static uint32_t rng_state;
static uint32_t rnd(uint32_t n) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (rng_state >> 8) % n;
}

static void random_doc(et_doc *d, uint32_t seed) {
    static const char *const words[] = {"the", "model", "embedding", "retrieval", "e.g.", "Dr.", "3.14", "R",
                                        "https://x.org/a.b", "vs.", "data,", "frame;", "x_1", "SQLite", "naive",
                                        "\xe4\xb8\xad\xe6\x96\x87", "caf\xc3\xa9", "(note)", "Fig.", "J."};
    rng_state = seed;
    et_buf b = {0};
    size_t nblocks = 5 + rnd(30);
    for (size_t k = 0; k < nblocks; k++) {
        b.len = 0;
        uint32_t r = rnd(20);
        int kind = r < 2 ? ET_BLK_HEADING : r < 4 ? ET_BLK_CODE : r < 6 ? ET_BLK_LIST : ET_BLK_PARA;
        if (r == 19) { /* one over-long token-less string */
            size_t len = 100 + rnd(3000);
            for (size_t i = 0; i < len; i++) et_buf_append(&b, i % 7 == 3 ? "\xc3\xa9" : "x", i % 7 == 3 ? 2 : 1, NULL);
            add_block(d, ET_BLK_PARA, b.data);
            continue;
        }
        size_t nsent = kind == ET_BLK_HEADING ? 1 : 1 + rnd(12);
        for (size_t s = 0; s < nsent; s++) {
            size_t nw = 1 + rnd(kind == ET_BLK_HEADING ? 6 : 30);
            for (size_t w = 0; w < nw; w++) {
                const char *word = words[rnd(ET_ARRAY_LEN(words))];
                if (w == 0 && kind != ET_BLK_CODE) et_buf_printf(&b, NULL, "%s%c%s", s ? " " : "", 'A' + (int)rnd(26), word);
                else et_buf_printf(&b, NULL, " %s", word);
            }
            et_buf_puts(&b, kind == ET_BLK_CODE ? ";\n" : rnd(4) ? "." : "?", NULL);
        }
        add_block(d, kind, b.data);
    }
    et_buf_free(&b);
}

static int blank_range(const char *s, size_t a, size_t b) {
    for (size_t i = a; i < b; i++)
        if (!strchr(" \t\n", s[i])) return 0;
    return 1;
}

static void check_invariants(const et_doc *d, size_t budget, size_t overlap, et_count_fn fn, uint32_t seed) {
    et_chunk_opts o = {budget, overlap, fn, NULL};
    et_chunk_span *cs = NULL, *cs2 = NULL;
    size_t n = 0, n2 = 0;
    et_error err = {0};
    int rc = et_chunk_doc(d, &o, &cs, &n, &err);
    TEST_CHECK(rc == 0, "seed %u: %s", seed, err.msg);
    if (rc) return;
    rc = et_chunk_doc(d, &o, &cs2, &n2, &err);
    TEST_CHECK(rc == 0 && n == n2 && !memcmp(cs, cs2, n * sizeof(*cs)), "seed %u: not deterministic", seed);
    const char *s = d->text.data;
    size_t covered = 0, bad = 0;
    if (d->n_blocks) covered = d->blocks[0].off;
    for (size_t i = 0; i < n; i++) {
        const et_chunk_span *c = &cs[i];
        size_t t = 0;
        fn(NULL, s + c->off, c->len, &t, NULL);
        int ok = c->len > 0 && t == c->n_tokens && t <= budget && !strchr(" \t\n", s[c->off]) &&
                 !strchr(" \t\n", s[c->off + c->len - 1]);
        /* in order, no gap: everything between what is covered and this chunk is blank */
        ok = ok && (c->off <= covered || blank_range(s, covered, c->off));
        ok = ok && c->off + c->len > covered && (i == 0 || c->off > cs[i - 1].off);
        /* overlap: within its budget, starting at a word boundary */
        size_t ot = 0;
        if (ok && c->off < covered) {
            fn(NULL, s + c->off, covered - c->off, &ot, NULL);
            ok = ot <= overlap && strchr(" \t\n", s[c->off - 1]);
        }
        if (!ok && bad++ < 3) {
            char *txt = chunk_text(d, c);
            fprintf(stderr, "  seed %u budget %zu overlap %zu chunk %zu [%zu,+%zu) tokens %zu/%zu covered %zu "
                    "overlap tokens %zu: '%.80s'\n", seed, budget, overlap, i, c->off, c->len, c->n_tokens, t, covered,
                    ot, txt);
            free(txt);
        }
        if (c->off + c->len > covered) covered = c->off + c->len;
    }
    TEST_CHECK(bad == 0, "seed %u budget %zu overlap %zu: %zu bad chunks", seed, budget, overlap, bad);
    TEST_CHECK(d->text.len == 0 || blank_range(s, covered, d->text.len), "seed %u: text after %zu not covered", seed, covered);
    free(cs);
    free(cs2);
}

static void test_random(void) {
    const size_t budgets[] = {8, 13, 50, 256};
    size_t runs = 0;
    for (uint32_t seed = 1; seed <= 25; seed++) {
        et_doc d;
        et_doc_init(&d);
        random_doc(&d, seed);
        for (size_t b = 0; b < ET_ARRAY_LEN(budgets); b++) {
            size_t ov[3] = {0, budgets[b] / 8, budgets[b] / 2};
            for (size_t k = 0; k < 3; k++) {
                check_invariants(&d, budgets[b], ov[k], et_estimate_count, seed);
                check_invariants(&d, budgets[b], ov[k], count_sticky, seed);
                check_invariants(&d, budgets[b], ov[k], count_words, seed);
                runs += 3;
            }
        }
        et_doc_free(&d);
    }
    printf("chunk invariants: %zu runs over 25 random documents\n", runs);
    /* bad options are errors, not crashes */
    et_doc d;
    et_doc_init(&d);
    et_chunk_opts o = {10, 10, et_estimate_count, NULL};
    et_chunk_span *cs = NULL;
    size_t n = 0;
    et_error err = {0};
    TEST_CHECK(et_chunk_doc(&d, &o, &cs, &n, &err) == ET_EINVAL, "overlap >= budget must be rejected");
    o.overlap = 2;
    TEST_CHECK(et_chunk_doc(&d, &o, &cs, &n, &err) == 0 && n == 0, "empty doc: no chunks");
    free(cs);
    et_doc_free(&d);
}

int main(void) {
    test_sentences();
    test_estimate();
    test_examples();
    test_random();
    return test_summary("test_chunk");
}
