/* test_ingest_clean.c - text cleanup and the extractors: UTF-8 repair with the
 * Windows-1252/Latin-1 fallback, ligatures, hyphenation joins, page furniture,
 * HTML (dropped elements, entities, blocks), Markdown, plain text pages. */
#include "ingest.h"
#include "test_util.h"

static char *clean(const char *in, size_t n, size_t *fb) {
    et_buf b = {0};
    et_error err = {0};
    int rc = et_clean_utf8(in, n, &b, fb, &err);
    TEST_CHECK(rc == 0, "et_clean_utf8: %s", err.msg);
    char *s = strdup(b.data ? b.data : "");
    et_buf_free(&b);
    return s;
}

#define EXPECT_CLEAN(in, want)                                                              \
    do {                                                                                    \
        char *got_ = clean(in, sizeof(in) - 1, NULL);                                       \
        TEST_CHECK(!strcmp(got_, want), "clean(%s) = '%s', want '%s'", #in, got_, want);    \
        free(got_);                                                                         \
    } while (0)

static void test_utf8(void) {
    /* ligatures U+FB00..U+FB06 */
    EXPECT_CLEAN("\xef\xac\x80" "\xef\xac\x81" "\xef\xac\x82" "\xef\xac\x83" "\xef\xac\x84" "\xef\xac\x85" "\xef\xac\x86",
                 "fffiflffifflstst");
    EXPECT_CLEAN("e\xef\xac\x83" "cient \xef\xac\x81nd \xef\xac\x82ow", "efficient find flow");
    /* Latin-1 / Windows-1252 fallback, counted */
    size_t fb = 0;
    char *s = clean("caf\xe9 na\xefve \x93quoted\x94 \x80" "5", 22, &fb);
    TEST_CHECK(!strcmp(s, "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x82\xac" "5"),
               "latin-1 fallback: '%s'", s);
    TEST_CHECK(fb == 5, "fallback count %zu, want 5", fb);
    free(s);
    /* mixed: valid UTF-8 stays, the stray byte falls back */
    s = clean("\xc3\xa9t\xe9", 4, &fb);
    TEST_CHECK(!strcmp(s, "\xc3\xa9t\xc3\xa9") && fb == 1, "mixed: '%s' fb %zu", s, fb);
    free(s);
    /* overlong / surrogate encodings are invalid, fall back byte by byte */
    s = clean("a\xc0\xafz", 4, &fb);
    TEST_CHECK(fb == 2 && !strncmp(s, "a", 1) && s[strlen(s) - 1] == 'z', "overlong: '%s' fb %zu", s, fb);
    free(s);
    s = clean("\xed\xa0\x80", 3, &fb);
    TEST_CHECK(fb == 3, "surrogate fb %zu", fb);
    free(s);
    /* BOM, CRLF, NBSP, zero-width, controls, NUL */
    EXPECT_CLEAN("\xef\xbb\xbf" "a\r\nb\rc", "a\nb\nc");
    EXPECT_CLEAN("a\xc2\xa0" "b\xe2\x80\x8b" "c\x01" "d\x7f", "a bcd");
    {
        char *g = clean("a\0b", 3, NULL);
        TEST_CHECK(!strcmp(g, "ab"), "NUL dropped: '%s'", g);
        free(g);
    }
    /* soft hyphen at a line end joins; elsewhere it vanishes */
    EXPECT_CLEAN("docu\xc2\xad\nment and hy\xc2\xadphen", "document and hyphen");
    /* NFC: e + combining acute -> U+00E9 */
    EXPECT_CLEAN("e\xcc\x81t\xc3\xa9", "\xc3\xa9t\xc3\xa9");
    /* non-breaking hyphen -> '-' */
    EXPECT_CLEAN("well\xe2\x80\x91known", "well-known");

    TEST_CHECK(et_clean_is_binary("abc\0def", 7), "NUL means binary");
    TEST_CHECK(!et_clean_is_binary("plain text\nline two\tx\n", 22), "text is not binary");
    char ctl[100];
    for (int i = 0; i < 100; i++) ctl[i] = (char)(i % 3 ? 'a' : 1);
    TEST_CHECK(et_clean_is_binary(ctl, 100), "33%% control bytes means binary");
}

/* Builds a one-paragraph doc from lines with a word set over them. */
static char *join_lines(const char *const *lines, size_t n, const char *extra_text) {
    et_strmap ws;
    et_strmap_init(&ws);
    et_error err = {0};
    for (size_t i = 0; i < n; i++) et_wordset_add_text(&ws, lines[i], strlen(lines[i]), &err);
    if (extra_text) et_wordset_add_text(&ws, extra_text, strlen(extra_text), &err);
    et_doc d;
    et_doc_init(&d);
    d.words = &ws;
    for (size_t i = 0; i < n; i++) TEST_CHECK(et_doc_line(&d, lines[i], strlen(lines[i]), &err) == 0, "%s", err.msg);
    et_doc_end(&d, &err);
    char *s = strdup(d.text.data ? d.text.data : "");
    et_doc_free(&d);
    et_strmap_free(&ws);
    return s;
}

#define EXPECT_JOIN(want, extra, ...)                                                      \
    do {                                                                                   \
        const char *ls_[] = {__VA_ARGS__};                                                 \
        char *got_ = join_lines(ls_, ET_ARRAY_LEN(ls_), extra);                            \
        TEST_CHECK(!strcmp(got_, want), "join -> '%s', want '%s'", got_, want);            \
        free(got_);                                                                        \
    } while (0)

static void test_hyphenation(void) {
    EXPECT_JOIN("the document is here", NULL, "the docu-", "ment is here");
    EXPECT_JOIN("a well-known fact", NULL, "a well-known", "fact");                  /* real hyphen, inline */
    EXPECT_JOIN("a well-known fact", "it is well-known", "a well-", "known fact");  /* seen with hyphen */
    EXPECT_JOIN("a wellknown fact", "wellknown", "a well-", "known fact");          /* seen joined */
    EXPECT_JOIN("Jean-Paul Sartre", NULL, "Jean-", "Paul Sartre");                  /* capital: keep */
    EXPECT_JOIN("pages 10-20 and 3-dimensional", NULL, "pages 10-", "20 and 3-", "dimensional");
    EXPECT_JOIN("end - next", NULL, "end -", "next");                               /* a dash, not a hyphen */
    EXPECT_JOIN("x -- y", NULL, "x --", "y");
    EXPECT_JOIN("hyphen", NULL, "hy\xe2\x80\x90", "phen");                         /* U+2010 */
    EXPECT_JOIN("see https://cran.r-project.org/package=MASS now", NULL, "see https://cran.r-project.", "org/package=MASS now");
    EXPECT_JOIN("plain words joined", NULL, "plain   words", "  joined  ");
    EXPECT_JOIN("Contents ... 3", NULL, "Contents . . . . . . . . 3");
    EXPECT_JOIN("a ... b ... c ... d", NULL, "a....b....c....d"); /* leaders grow the text (fuzz find) */
    /* direct decisions */
    TEST_CHECK(et_hyphen_join(NULL, "docu-", 5, "ment", 4) == 1, "docu-|ment");
    TEST_CHECK(et_hyphen_join(NULL, "word", 4, "next", 4) == 0, "no hyphen");
    TEST_CHECK(et_hyphen_join(NULL, "-", 1, "next", 4) == 0, "lone dash");
}

/* A page whose only content is blank-ish leaves no separator and no stale page mark. */
static void test_doc_marks(void) {
    et_doc d;
    et_doc_init(&d);
    et_error err = {0};
    et_doc_page(&d, 1, &err);
    et_doc_line(&d, "alpha", 5, &err);
    et_doc_end(&d, &err);
    et_doc_page(&d, 2, &err);
    et_doc_begin(&d, ET_BLK_PARA, &err);
    et_doc_line(&d, "\f \f", 3, &err);
    et_doc_end(&d, &err);
    et_doc_begin(&d, ET_BLK_CODE, &err);
    et_doc_line(&d, "x", 1, &err);
    et_doc_line(&d, "", 0, &err);
    et_doc_end(&d, &err);
    et_doc_page(&d, 3, &err);
    et_doc_line(&d, "beta", 4, &err);
    et_doc_end(&d, &err);
    TEST_CHECK(!strcmp(d.text.data, "alpha\n\nx\n\nbeta"), "doc text '%s'", d.text.data);
    int mono = 1;
    for (size_t i = 0; i < d.n_marks; i++)
        if (d.marks[i].off > d.text.len || (i && d.marks[i].off < d.marks[i - 1].off)) mono = 0;
    TEST_CHECK(mono, "page marks out of order or past the end");
    TEST_CHECK(et_doc_page_at(&d, 0) == 1 && et_doc_page_at(&d, 7) == 2 && et_doc_page_at(&d, 10) == 3,
               "pages %zu %zu %zu", et_doc_page_at(&d, 0), et_doc_page_at(&d, 7), et_doc_page_at(&d, 10));
    et_doc_free(&d);
}

static et_line mk(const char *s, size_t page, float y0) {
    et_line l = {0};
    l.s = s;
    l.n = strlen(s);
    l.page = page;
    l.y0 = y0;
    l.y1 = y0 + 10;
    return l;
}

static void test_furniture(void) {
    /* 6 pages: a running header with the chapter, "Page N of 6" footers, a
     * bare page number on top, body lines; one body line repeats on 2 pages */
    static char bufs[6][4][64];
    et_line L[64];
    size_t n = 0;
    for (int p = 1; p <= 6; p++) {
        snprintf(bufs[p - 1][0], 64, "%d", p);
        snprintf(bufs[p - 1][1], 64, "Page %d of 6", p);
        snprintf(bufs[p - 1][2], 64, "Body text of page %d talks about topic %d.", p, p * 7);
        L[n++] = mk(bufs[p - 1][0], (size_t)p, 30);
        L[n++] = mk("ACME Corp  Annual Report 2023", (size_t)p, 45);
        L[n++] = mk(bufs[p - 1][2], (size_t)p, 300);
        L[n++] = mk(p <= 2 ? "A sentence that appears twice." : "Unique middle line here.", (size_t)p, 400);
        L[n++] = mk(p % 2 ? "More body, odd page." : "More body, even page.", (size_t)p, 500);
        L[n++] = mk(bufs[p - 1][1], (size_t)p, 760);
    }
    size_t dropped = et_clean_furniture(L, n, 6, 792);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        int furniture = !strncmp(L[i].s, "ACME", 4) || !strncmp(L[i].s, "Page ", 5) || (L[i].s[0] >= '0' && L[i].s[0] <= '9');
        if (L[i].drop != furniture) {
            bad++;
            fprintf(stderr, "  line '%s' page %zu: drop %d\n", L[i].s, L[i].page, L[i].drop);
        }
    }
    TEST_CHECK(bad == 0 && dropped == 18, "furniture: %zu wrong, %zu dropped (want 18)", bad, dropped);
    /* without geometry: text order zones only; a 2-page document repeats twice */
    et_line M[8];
    M[0] = mk("Header X", 1, 0), M[1] = mk("alpha", 1, 0), M[2] = mk("beta", 1, 0), M[3] = mk("gamma", 1, 0);
    M[4] = mk("delta", 1, 0), M[5] = mk("Header X", 2, 0), M[6] = mk("epsilon", 2, 0), M[7] = mk("zeta", 2, 0);
    for (int i = 0; i < 8; i++) M[i].y0 = M[i].y1 = 0;
    et_clean_furniture(M, 8, 2, 0);
    TEST_CHECK(M[0].drop && M[5].drop && !M[1].drop && !M[3].drop && !M[6].drop, "2-page repeat");

    /* running-header slot: a chapter header that changes every 2 pages sits at the same
     * height, apart from the body; a large slide-like title at the top is content, and so
     * is a short first body line */
    {
        static char hb[8][64], tb[8][64];
        et_line P[64];
        size_t k = 0;
        for (int p = 1; p <= 8; p++) {
            static const char *const topics[] = {"", "Basics", "Vectors", "Frames", "Plots"};
            snprintf(hb[p - 1], 64, "Chapter on %s", topics[(p + 1) / 2]); /* no digits: only the slot repeats */
            snprintf(tb[p - 1], 64, "Slide title %c", 'A' + p);
            et_line t = mk(tb[p - 1], (size_t)p, 20);
            t.size = 20, t.y1 = 40, t.x0 = 72, t.x1 = 200;
            et_line h = mk(hb[p - 1], (size_t)p, 50);
            h.size = 10, h.x0 = 72, h.x1 = 250;
            et_line b1 = mk(p % 2 ? "end of a paragraph." : "A full body line that runs across the whole text width.", (size_t)p, 100);
            b1.size = 10, b1.x0 = 72, b1.x1 = p % 2 ? 170 : 540;
            et_line b2 = mk("Another full body line running across the text width here.", (size_t)p, 113);
            b2.size = 10, b2.x0 = 72, b2.x1 = 540;
            P[k++] = t, P[k++] = h, P[k++] = b1, P[k++] = b2;
        }
        et_clean_furniture(P, k, 8, 792);
        size_t wrong = 0;
        for (size_t i = 0; i < k; i++) {
            int want = !strncmp(P[i].s, "Chapter", 7);
            if (P[i].drop != want) {
                wrong++;
                fprintf(stderr, "  slot: '%s' page %zu drop %d\n", P[i].s, P[i].page, P[i].drop);
            }
        }
        TEST_CHECK(wrong == 0, "running-header slot: %zu lines wrong", wrong);
    }

    const char *yes[] = {"12", "  7 ", "xiv", "Page 3", "page 3 of 10", "3 of 10", "- 4 -", "\xe2\x80\x93 5 \xe2\x80\x93", "[9]", "12/40", "p. 7"};
    const char *no[] = {"12 apples", "Chapter 1", "Mix", "civic", "", "of 10", "Page", "3.14"};
    for (size_t i = 0; i < ET_ARRAY_LEN(yes); i++)
        TEST_CHECK(et_clean_is_page_number(yes[i], strlen(yes[i])), "'%s' is a page number", yes[i]);
    for (size_t i = 0; i < ET_ARRAY_LEN(no); i++)
        TEST_CHECK(!et_clean_is_page_number(no[i], strlen(no[i])), "'%s' is not a page number", no[i]);
}

/* Renders a doc as "K:text|K:text" with K = P H L C. */
static char *render(const et_doc *d) {
    et_buf b = {0};
    for (size_t i = 0; i < d->n_blocks; i++) {
        if (i) et_buf_puts(&b, "|", NULL);
        et_buf_printf(&b, NULL, "%c:", "PHLC"[d->blocks[i].kind]);
        et_buf_append(&b, d->text.data + d->blocks[i].off, d->blocks[i].len, NULL);
    }
    char *s = strdup(b.data ? b.data : "");
    et_buf_free(&b);
    return s;
}

static char *html(const char *src) {
    et_doc d;
    et_doc_init(&d);
    et_error err = {0};
    int skip = 0;
    int rc = et_extract_html(&d, src, strlen(src), "t.html", &skip, &err);
    char *s = rc ? strdup(err.msg) : render(&d);
    et_doc_free(&d);
    return s;
}

#define EXPECT_HTML(src, want)                                                                \
    do {                                                                                      \
        char *got_ = html(src);                                                               \
        TEST_CHECK(!strcmp(got_, want), "html:\n  got  '%s'\n  want '%s'", got_, want);       \
        free(got_);                                                                           \
    } while (0)

static void test_html(void) {
    EXPECT_HTML("<html><head><title>T</title><style>p{color:red}</style><script>var x = 1;</script></head>"
                "<body><nav><a href=/>Home</a> | <a href=/about>About</a></nav>"
                "<header><h1>Site banner</h1></header>"
                "<main><article><header><h1>The   Title</h1></header>"
                "<p>First &amp; <b>bold</b> para&#8217;s text,\n  wrapped.</p>"
                "<script>document.write('no')</script>"
                "<ul><li>one</li><li>two <i>items</i></li></ul>"
                "<pre>x &lt;- 1\n  y &lt;- 2</pre>"
                "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"
                "<div hidden>secret</div><p style=\"display: none\">gone</p><div aria-hidden=\"true\">gone2</div>"
                "<p>caf&eacute; &lt;tag&gt; &nbsp;end</p></article></main>"
                "<aside>Related links</aside><footer>Copyright 2024</footer>"
                "<div role=\"navigation\">menu</div></body></html>",
                "H:The Title|P:First & bold para\xe2\x80\x99s text, wrapped.|L:one|L:two items|C:x <- 1\n  y <- 2|"
                "P:a | b|P:1 | 2|P:caf\xc3\xa9 <tag> end");
    EXPECT_HTML("<p>Para one<br>line two</p><div>intro<p>inner</p>tail</div><img alt=\"A cat\" src=x>",
                "P:Para one line two|P:intro|P:inner|P:tail|P:A cat");
    EXPECT_HTML("<h2>Sec</h2>text after heading<noscript>enable js</noscript>", "H:Sec|P:text after heading");
    /* broken markup is tolerated */
    EXPECT_HTML("<p>unclosed <b>bold <p>next</div></span>", "P:unclosed bold|P:next");
    /* only dropped content: an error naming the file */
    char *e = html("<script>x()</script><nav>menu</nav>");
    TEST_CHECK(strstr(e, "t.html") && strstr(e, "no text"), "html without text: '%s'", e);
    free(e);
    /* a Latin-1 page without a charset; declared charsets do not override what the bytes are */
    EXPECT_HTML("<p>caf\xe9</p>", "P:caf\xc3\xa9");
    EXPECT_HTML("<head><meta charset=\"iso-8859-1\"></head><p>caf\xc3\xa9 \xe2\x80\x9cq\xe2\x80\x9d</p>",
                "P:caf\xc3\xa9 \xe2\x80\x9cq\xe2\x80\x9d");
    EXPECT_HTML("<head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\"></head>"
                "<p>caf\xe9 \x93q\x94</p>",
                "P:caf\xc3\xa9 \xe2\x80\x9cq\xe2\x80\x9d");
}

static char *text(const char *src, int markdown, size_t *pages) {
    et_doc d;
    et_doc_init(&d);
    et_error err = {0};
    int skip = 0;
    int rc = et_extract_text(&d, src, strlen(src), markdown, "t.md", &skip, &err);
    char *s = rc ? strdup(err.msg) : render(&d);
    if (pages) *pages = d.n_pages;
    et_doc_free(&d);
    return s;
}

#define EXPECT_MD(src, want)                                                                  \
    do {                                                                                      \
        char *got_ = text(src, 1, NULL);                                                      \
        TEST_CHECK(!strcmp(got_, want), "markdown:\n  got  '%s'\n  want '%s'", got_, want);   \
        free(got_);                                                                           \
    } while (0)

static void test_markdown(void) {
    EXPECT_MD("---\ntitle: x\n---\n# Title #\n\nSome *emphasis*, **strong**, `code_span()` and a "
              "[link](http://x.org \"t\") and ![alt text](i.png).\nWrapped line with snake_case_name and 2 * 3.\n\n"
              "```python\n# not a heading\ndef f():\n    return 1\n```\n\n"
              "- item one\n- item [two][ref]\n  continued\n\n1. first\n2) second\n\n"
              "> quoted *text*\n\n---\n\n[ref]: http://example.org\n\n"
              "Setext Heading\n==============\n\n| a | b |\n|---|:-:|\n| 1 | 2 |\n\n"
              "<!-- a comment\nover lines -->\n\n    indented code\n    more\n\n"
              "A \\*literal\\* star, &amp; entity, <span>inline html</span> and <https://auto.link>.\n",
              "H:Title|P:Some emphasis, strong, code_span() and a link and alt text. Wrapped line with snake_case_name "
              "and 2 * 3.|C:# not a heading\ndef f():\n    return 1|L:item one|L:item two continued|L:first|L:second|"
              "P:quoted text|H:Setext Heading|P:a | b|P:1 | 2|C:indented code\nmore|"
              "P:A *literal* star, & entity, inline html and https://auto.link.");
    /* an unclosed fence runs to the end; ~~~ fences; ~~strike~~ */
    EXPECT_MD("~~~\ncode\n\nmore code\n~~~\n~~gone~~ kept\n\n```\nopen", "C:code\n\nmore code|P:gone kept|C:open");
    char *e = text("   \n\n\t\n", 1, NULL);
    TEST_CHECK(strstr(e, "no text") != NULL, "blank markdown: '%s'", e);
    free(e);
}

static void test_plain(void) {
    size_t pages = 0;
    char *s = text("First para line one\ncontinues here with a hyphen-\nated word.\n\n- bullet one\n- bullet two\n\n"
                   "Last para.\n",
                   0, &pages);
    TEST_CHECK(!strcmp(s, "P:First para line one continues here with a hyphenated word.|L:- bullet one|"
                          "L:- bullet two|P:Last para."),
               "plain: '%s'", s);
    TEST_CHECK(pages == 0, "no form feed: unpaged (%zu)", pages);
    free(s);
    /* form feeds make pages; running headers and page numbers go */
    et_buf b = {0};
    for (int p = 1; p <= 4; p++)
        et_buf_printf(&b, NULL, "RFC 9999     Example Protocol     June 2024\n\nBody of page %d is here.\n\n"
                      "Author                Standards Track              [Page %d]\n%s", p, p, p < 4 ? "\f" : "");
    et_doc d;
    et_doc_init(&d);
    et_error err = {0};
    int skip = 0;
    int rc = et_extract_text(&d, b.data, b.len, 0, "rfc.txt", &skip, &err);
    TEST_CHECK(rc == 0, "paged text: %s", err.msg);
    s = render(&d);
    TEST_CHECK(!strcmp(s, "P:Body of page 1 is here.|P:Body of page 2 is here.|P:Body of page 3 is here.|"
                          "P:Body of page 4 is here."),
               "paged text: '%s'", s);
    TEST_CHECK(d.n_pages == 4 && d.n_blocks == 4 && et_doc_page_at(&d, d.blocks[2].off) == 3, "pages %zu, block 2 on page %zu", d.n_pages,
               d.n_blocks > 2 ? et_doc_page_at(&d, d.blocks[2].off) : 0);
    free(s);
    et_doc_free(&d);
    et_buf_free(&b);
    /* empty and binary inputs are errors naming the file, with a reason */
    et_doc_init(&d);
    rc = et_extract_text(&d, "", 0, 0, "empty.txt", &skip, &err);
    TEST_CHECK(rc && skip == ET_SKIP_EMPTY && strstr(err.msg, "empty.txt"), "empty: rc %d skip %d '%s'", rc, skip, err.msg);
    rc = et_extract_text(&d, "\x7f" "ELF\x02\x01\x01\0\0\0", 10, 0, "a.out", &skip, &err);
    TEST_CHECK(rc && skip == ET_SKIP_BINARY && strstr(err.msg, "a.out"), "binary: rc %d skip %d '%s'", rc, skip, err.msg);
    et_doc_free(&d);
}

int main(void) {
    test_utf8();
    test_hyphenation();
    test_doc_marks();
    test_furniture();
    test_html();
    test_markdown();
    test_plain();
    return test_summary("test_ingest_clean");
}
