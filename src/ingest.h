/* ingest.h - documents -> clean text blocks (internal to the ingest modules).
 *
 * Every extractor (PDF, HTML, Markdown, plain text) turns a file into an
 * et_doc: one UTF-8 text buffer made of blocks (paragraphs, headings, list
 * items, code blocks) separated by "\n\n", plus page marks. Prose blocks are
 * single-spaced (no newlines inside); code blocks keep their lines ("\n").
 * The chunker (chunk.h) then cuts this text into token-budgeted chunks, each
 * an exact substring of doc.text, so page numbers follow from offsets.
 *
 * Pipeline per source:
 *   bytes --et_clean_utf8--> valid NFC UTF-8 (Latin-1 fallback, ligatures,
 *   odd spaces and controls fixed) --extractor--> lines/blocks
 *   --et_doc_line (hyphen joins, whitespace) --> et_doc
 * PDFs additionally drop page furniture (et_clean_furniture) first.
 */
#ifndef ET_INGEST_H
#define ET_INGEST_H

#include "strmap.h"
#include "util.h"

/* ---- the document model ---------------------------------------------------- */

enum et_block_kind { ET_BLK_PARA = 0, ET_BLK_HEADING, ET_BLK_LIST, ET_BLK_CODE };

typedef struct et_block {
    size_t off, len; /* [off, off+len) in doc->text */
    int kind;        /* enum et_block_kind */
} et_block;

typedef struct et_page_mark {
    size_t off;  /* text from this offset on is on `page` */
    size_t page; /* 1-based */
} et_page_mark;

typedef struct et_doc {
    et_buf text;           /* blocks joined by "\n\n" */
    et_block *blocks;      /* [n_blocks] */
    size_t n_blocks, cap_blocks;
    et_page_mark *marks;   /* [n_marks], offsets non-decreasing */
    size_t n_marks, cap_marks;
    size_t n_pages;        /* pages in the source (0 = not paged) */
    /* block under construction */
    int open, kind;        /* kind of the open block (may be changed while open) */
    size_t start;          /* offset of its first byte, SIZE_MAX while empty */
    size_t pending_page;   /* page for the next content, 0 = unchanged */
    const et_strmap *words; /* borrowed word set for hyphen decisions, may be NULL */
} et_doc;

void et_doc_init(et_doc *d);
void et_doc_free(et_doc *d);
/* Starts a new block of `kind` (closing any open one). */
int et_doc_begin(et_doc *d, int kind, et_error *err);
/* Appends one source line to the open block (opens a PARA if none):
 * prose: whitespace collapsed, joined to the previous line with a space, or
 * without one for a word hyphenated across the line break (see
 * et_hyphen_join); code: appended after "\n" with trailing blanks removed. */
int et_doc_line(et_doc *d, const char *s, size_t n, et_error *err);
/* Closes the open block; an all-blank block is dropped. */
int et_doc_end(et_doc *d, et_error *err);
/* Text appended from now on is on page `page` (1-based). */
int et_doc_page(et_doc *d, size_t page, et_error *err);
/* Page of the byte at `off` (0 if the document has no page marks). */
size_t et_doc_page_at(const et_doc *d, size_t off);

/* ---- cleaning (ingest_clean.c) ---------------------------------------------- */

/* Converts arbitrary bytes to clean, NFC-normalized UTF-8, appended to out:
 * - valid UTF-8 is kept; every byte that does not start a valid sequence is
 *   decoded as Windows-1252 (Latin-1 plus the 0x80-0x9F printable characters),
 *   and *fallback (may be NULL) counts such bytes;
 * - a leading BOM, NUL and C0/C1 controls (except \t \n) and zero-width
 *   characters are dropped; \r\n and \r become \n, \f becomes a blank line;
 * - ligatures U+FB00-U+FB06 become ff fi fl ffi ffl st st;
 * - no-break and other Unicode spaces become ' '; U+2011 becomes '-';
 * - a soft hyphen at a line end joins the two lines; other soft hyphens go. */
int et_clean_utf8(const char *in, size_t n, et_buf *out, size_t *fallback, et_error *err);

/* 1 if the bytes look binary (NUL bytes, or more than 10% control bytes in
 * the first 64 KiB), else 0. */
int et_clean_is_binary(const char *data, size_t n);

/* Word set for hyphenation decisions: lower-cased words (letters, inner '-')
 * seen inside lines of the document. */
int et_wordset_add_text(et_strmap *ws, const char *s, size_t n, et_error *err);

/* Decides how to join a line ending in `left` with a line starting `right`:
 * 0 = not a hyphenated word (join with a space), 1 = drop the hyphen and
 * join ("docu-" + "ment" = "document"), 2 = keep the hyphen, no space
 * ("Jean-" + "Paul", "well-" + "known" when "well-known" occurs elsewhere and
 * "wellknown" does not). ws may be NULL (then lowercase continuations join). */
int et_hyphen_join(const et_strmap *ws, const char *left, size_t ln, const char *right, size_t rn);

/* One extracted line of a paged source, with optional layout (PDF). */
typedef struct et_line {
    const char *s;  /* borrowed UTF-8, not NUL-terminated */
    size_t n;
    size_t page;    /* 1-based */
    float x0, x1, y0, y1; /* bounding box in points (0 if unknown) */
    float size;     /* dominant font size (0 if unknown) */
    float mono;     /* fraction of non-blank characters in a monospace font */
    int drop;       /* set by et_clean_furniture */
} et_line;

/* Marks page furniture in lines[] (grouped by page, in page order). Lines in
 * the top or bottom zone of a page - the first/last 3 non-blank lines (when
 * the layout is unknown: a quarter of the page's lines, at least 1), and,
 * when page_h > 0 and the line has a box, within 12% of the page edge - are
 * dropped if they are page numbers ("7", "vii", "Page 3 of 9", "- 4 -"), or
 * if they repeat, digits ignored, in the same zone on at least 3 pages (on
 * half the pages, at least 2, of a document with fewer than 6 pages) and do
 * not span most (70%) of the page's text width. With a layout, a short top
 * line in a running-header slot is dropped too: at the same height on at least a
 * quarter of the pages (and 3), set apart from the body by 1.5 line heights,
 * in a font no larger than the body's (this catches chapter headers that
 * change every few pages; large slide titles stay). Returns the lines marked. */
size_t et_clean_furniture(et_line *lines, size_t n, size_t n_pages, float page_h);

/* 1 if s is a page-number line ("12", "xiv", "Page 3", "3 of 10", "- 3 -"). */
int et_clean_is_page_number(const char *s, size_t n);

/* ---- extractors: bytes/path -> et_doc -------------------------------------- */

/* Why a source was skipped (also the summary's categories). */
enum et_skip_reason {
    ET_SKIP_NONE = 0,
    ET_SKIP_EMPTY,      /* zero bytes or only blanks */
    ET_SKIP_BINARY,     /* not text and not a supported format */
    ET_SKIP_ENCRYPTED,  /* PDF needs a password */
    ET_SKIP_CORRUPT,    /* PDF/HTML could not be parsed */
    ET_SKIP_NO_TEXT,    /* parsed, but no extractable text (image-only PDF) */
    ET_SKIP_UNREADABLE, /* I/O error, permission, too large */
    ET_SKIP_N
};
const char *et_skip_reason_str(int reason);

/* Each extractor fills doc (initialized by the caller) and returns ET_OK, or
 * an error with *skip set to the reason and err naming the file. */
int et_extract_text(et_doc *doc, const char *data, size_t n, int markdown, const char *name,
                    int *skip, et_error *err);
int et_extract_html(et_doc *doc, const char *data, size_t n, const char *name, int *skip,
                    et_error *err);
/* Optional per-page progress: called after each page with (pages done, total). */
typedef void (*et_page_cb)(void *ctx, size_t done, size_t total);
int et_extract_pdf(et_doc *doc, const char *data, size_t n, const char *name, et_page_cb cb,
                   void *cb_ctx, int *skip, et_error *err);

#endif
