/* ingest_html.c - HTML -> et_doc with libxml2's HTML parser (error-tolerant,
 * entities decoded).
 *
 * Dropped: script, style, noscript, template, nav, aside, form controls,
 * svg/math/canvas/iframe/object, the head (except nothing), elements that are
 * hidden (hidden attribute, aria-hidden="true", display:none) or whose role is
 * navigation/banner/contentinfo/complementary/search, and header/footer
 * elements outside <article>/<main> (page banners; an article's own header
 * with its title is kept). Kept as blocks: headings (h1-h6), paragraphs and
 * other block elements, list items, table rows (cells joined by " | "),
 * <pre> (verbatim code). <br> is a space in prose and a newline in <pre>.
 */
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <string.h>
#include <strings.h>

#include "ingest.h"

static int name_in(const xmlChar *name, const char *const *list) {
    for (size_t i = 0; list[i]; i++)
        if (!strcasecmp((const char *)name, list[i])) return 1;
    return 0;
}

static const char *const dropped[] = {"script", "style",  "noscript", "template", "nav",    "aside",
                                      "svg",    "math",   "canvas",   "iframe",   "object", "embed",
                                      "select", "button", "textarea", "input",    "head",   "dialog",
                                      "map",    "audio",  "video",    NULL};
static const char *const blocks[] = {
    "p",       "div",    "section",  "article", "main",    "blockquote", "address", "center",
    "dd",      "dt",     "dl",       "ul",      "ol",      "menu",       "dir",     "figure",
    "figcaption", "caption", "table", "tbody",  "thead",   "tfoot",      "details", "summary",
    "fieldset", "legend", "form",    "body",    "html",    "hr",         "header",  "footer",
    "hgroup",  "label",  "option",   NULL};

static int is_heading(const xmlChar *n) {
    return (n[0] == 'h' || n[0] == 'H') && n[1] >= '1' && n[1] <= '6' && n[2] == 0;
}

static int attr_is(xmlNode *e, const char *attr, const char *value) {
    xmlChar *v = xmlGetProp(e, (const xmlChar *)attr);
    if (!v) return 0;
    int r = value ? !strcasecmp((const char *)v, value) : 1;
    xmlFree(v);
    return r;
}

static int hidden(xmlNode *e) {
    if (attr_is(e, "hidden", NULL) || attr_is(e, "aria-hidden", "true")) return 1;
    xmlChar *role = xmlGetProp(e, (const xmlChar *)"role");
    if (role) {
        static const char *const roles[] = {"navigation", "banner", "contentinfo", "complementary", "search", NULL};
        int r = name_in(role, roles);
        xmlFree(role);
        if (r) return 1;
    }
    xmlChar *style = xmlGetProp(e, (const xmlChar *)"style");
    if (style) {
        char compact[256];
        size_t k = 0;
        for (const xmlChar *p = style; *p && k + 1 < sizeof(compact); p++)
            if (*p != ' ' && *p != '\t') compact[k++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
        compact[k] = 0;
        xmlFree(style);
        if (strstr(compact, "display:none") || strstr(compact, "visibility:hidden")) return 1;
    }
    return 0;
}

static int inside(xmlNode *e, const char *const *names) {
    for (xmlNode *p = e->parent; p; p = p->parent)
        if (p->type == XML_ELEMENT_NODE && name_in(p->name, names)) return 1;
    return 0;
}

typedef struct walker {
    et_doc *doc;
    et_buf text;  /* prose of the current block, blanks collapsed later */
    et_buf clean; /* scratch for flush */
    int kind;    /* kind of the current block */
    int pre;     /* depth inside <pre> */
    size_t cells; /* cells seen in the current table row */
    et_error *err;
} walker;

/* Ends the current block: writes its text (prose as one line, code by line),
 * cleaned again since entities may have produced odd spaces or ligatures. */
static int flush(walker *w) {
    int rc = ET_OK;
    if (w->text.len) {
        w->clean.len = 0;
        rc = et_clean_utf8(w->text.data, w->text.len, &w->clean, NULL, w->err);
        if (!rc) rc = et_doc_begin(w->doc, w->kind, w->err);
        if (rc) {
        } else if (w->kind == ET_BLK_CODE) {
            const char *s = w->clean.data ? w->clean.data : "";
            size_t n = w->clean.len;
            for (size_t i = 0; i <= n && !rc;) {
                const char *nl = memchr(s + i, '\n', n - i);
                size_t e = nl ? (size_t)(nl - s) : n;
                rc = et_doc_line(w->doc, s + i, e - i, w->err);
                i = e + 1;
            }
        } else {
            rc = et_doc_line(w->doc, w->clean.data ? w->clean.data : "", w->clean.len, w->err);
        }
        if (!rc) rc = et_doc_end(w->doc, w->err);
        w->text.len = 0;
    }
    w->kind = ET_BLK_PARA;
    return rc;
}

static int append_text(walker *w, const xmlChar *t) {
    size_t n = strlen((const char *)t);
    if (w->pre) return et_buf_append(&w->text, t, n, w->err);
    /* prose: newlines are blanks (et_doc_line collapses runs) */
    int rc = et_buf_reserve(&w->text, n, w->err);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        char c = (char)t[i];
        w->text.data[w->text.len++] = (c == '\n' || c == '\r' || c == '\t' || c == '\f') ? ' ' : c;
    }
    w->text.data[w->text.len] = 0;
    return ET_OK;
}

static int enter(walker *w, xmlNode *e, int *descend) {
    const xmlChar *nm = e->name;
    *descend = 0;
    if (name_in(nm, dropped) || hidden(e)) return ET_OK;
    if ((!strcasecmp((const char *)nm, "header") || !strcasecmp((const char *)nm, "footer"))) {
        static const char *const content[] = {"article", "main", NULL};
        if (!inside(e, content)) return ET_OK;
    }
    *descend = 1;
    int rc = ET_OK;
    if (is_heading(nm)) {
        if (!(rc = flush(w))) w->kind = ET_BLK_HEADING;
    } else if (!strcasecmp((const char *)nm, "li")) {
        if (!(rc = flush(w))) w->kind = ET_BLK_LIST;
    } else if (!strcasecmp((const char *)nm, "pre") || !strcasecmp((const char *)nm, "listing") ||
               !strcasecmp((const char *)nm, "xmp") || !strcasecmp((const char *)nm, "plaintext")) {
        if (!w->pre && !(rc = flush(w))) w->kind = ET_BLK_CODE;
        w->pre++;
    } else if (!strcasecmp((const char *)nm, "tr")) {
        rc = flush(w);
        w->cells = 0;
    } else if (!strcasecmp((const char *)nm, "td") || !strcasecmp((const char *)nm, "th")) {
        if (w->cells++ && w->text.len) rc = et_buf_puts(&w->text, " | ", w->err);
    } else if (!strcasecmp((const char *)nm, "br")) {
        rc = et_buf_puts(&w->text, w->pre ? "\n" : " ", w->err);
    } else if (name_in(nm, blocks)) {
        if (!w->pre) rc = flush(w);
    } else if (!strcasecmp((const char *)nm, "img")) {
        /* alt text is content */
        xmlChar *alt = xmlGetProp(e, (const xmlChar *)"alt");
        if (alt) {
            if (*alt) {
                rc = et_buf_puts(&w->text, " ", w->err);
                if (!rc) rc = append_text(w, alt);
                if (!rc) rc = et_buf_puts(&w->text, " ", w->err);
            }
            xmlFree(alt);
        }
    }
    return rc;
}

static int leave(walker *w, xmlNode *e) {
    const xmlChar *nm = e->name;
    if (!strcasecmp((const char *)nm, "pre") || !strcasecmp((const char *)nm, "listing") ||
        !strcasecmp((const char *)nm, "xmp") || !strcasecmp((const char *)nm, "plaintext")) {
        if (w->pre && --w->pre == 0) return flush(w);
        return ET_OK;
    }
    if (w->pre) return ET_OK;
    if (is_heading(nm) || !strcasecmp((const char *)nm, "li") || !strcasecmp((const char *)nm, "tr") ||
        name_in(nm, blocks))
        return flush(w);
    return ET_OK;
}

static int walk(walker *w, xmlNode *root) {
    int rc = ET_OK;
    xmlNode *cur = root;
    while (cur && !rc) {
        int descend = 0;
        if (cur->type == XML_ELEMENT_NODE) {
            rc = enter(w, cur, &descend);
        } else if ((cur->type == XML_TEXT_NODE || cur->type == XML_CDATA_SECTION_NODE) && cur->content) {
            rc = append_text(w, cur->content);
        }
        if (rc) break;
        if (descend && cur->children) {
            cur = cur->children;
            continue;
        }
        if (descend) rc = leave(w, cur); /* an element without children */
        /* next sibling, or climb, leaving each finished element */
        while (cur && !rc && cur != root && !cur->next) {
            cur = cur->parent;
            if (cur && cur->type == XML_ELEMENT_NODE) rc = leave(w, cur);
        }
        if (!cur || cur == root) break;
        cur = cur->next;
    }
    if (!rc) rc = flush(w);
    return rc;
}

int et_extract_html(et_doc *doc, const char *data, size_t n, const char *name, int *skip, et_error *err) {
    *skip = ET_SKIP_NONE;
    if (n == 0) {
        *skip = ET_SKIP_EMPTY;
        return et_err_set(err, ET_EFORMAT, "%s: empty file", name);
    }
    if (et_clean_is_binary(data, n)) {
        *skip = ET_SKIP_BINARY;
        return et_err_set(err, ET_EFORMAT, "%s: binary file (not HTML)", name);
    }
    et_buf clean = {0};
    int rc = et_clean_utf8(data, n, &clean, NULL, err);
    if (rc) return et_err_prefix(err, "%s", name);
    if (clean.len > (size_t)INT32_MAX) {
        et_buf_free(&clean);
        *skip = ET_SKIP_UNREADABLE;
        return et_err_set(err, ET_EFORMAT, "%s: HTML larger than 2 GiB", name);
    }
    xmlInitParser();
    htmlDocPtr hd = htmlReadMemory(clean.data ? clean.data : "", (int)clean.len, NULL, "UTF-8",
                                   HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
                                       HTML_PARSE_NONET | HTML_PARSE_NOIMPLIED);
    et_buf_free(&clean);
    if (!hd) {
        *skip = ET_SKIP_CORRUPT;
        return et_err_set(err, ET_EFORMAT, "%s: HTML could not be parsed", name);
    }
    walker w = {.doc = doc, .kind = ET_BLK_PARA, .err = err};
    rc = ET_OK;
    for (xmlNode *top = hd->children; top && !rc; top = top->next) {
        if (top->type == XML_ELEMENT_NODE) rc = walk(&w, top);
        else if (top->type == XML_TEXT_NODE && top->content) rc = append_text(&w, top->content);
    }
    if (!rc) rc = flush(&w);
    et_buf_free(&w.text);
    et_buf_free(&w.clean);
    xmlFreeDoc(hd);
    if (rc) return et_err_prefix(err, "%s", name);
    if (doc->n_blocks == 0) {
        *skip = ET_SKIP_NO_TEXT;
        return et_err_set(err, ET_EFORMAT, "%s: no text in the HTML (after dropping scripts, styles, navigation)",
                          name);
    }
    return ET_OK;
}
