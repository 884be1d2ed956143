/* generate_parse.h - turning an LLM's chat-completions reply into clean questions.
 *
 * Two steps, both treating the reply as hostile input:
 *   et_gen_reply_text       the assistant text of a /v1/chat/completions body
 *                           (choices[0].message.content, string or parts; the
 *                           completions-style choices[0].text; reasoning fields
 *                           ignored; an "error" object reported)
 *   et_gen_parse_questions  questions from that text: <think> blocks, code
 *                           fences, numbering, bullets, "Q1:" labels, Markdown
 *                           emphasis and quotes stripped; preambles ("Here are
 *                           two questions:"), answers and trailing commentary
 *                           dropped; JSON arrays accepted; duplicates
 *                           (normalized) and verbatim copies of the context
 *                           dropped.
 */
#ifndef ET_GENERATE_PARSE_H
#define ET_GENERATE_PARSE_H

#include "util.h"

/* A growable list of owned strings. */
typedef struct et_strlist {
    char **v; /* [n] owned */
    size_t n, cap;
} et_strlist;

int et_strlist_push(et_strlist *l, const char *s, size_t n, et_error *err);
void et_strlist_free(et_strlist *l);

/* Longest reply text considered (longer replies are cut there). */
#define ET_GEN_MAX_REPLY ((size_t)1 << 20)
/* Longest question kept, in bytes. */
#define ET_GEN_MAX_QUESTION 600

/* Extracts the assistant text of a chat-completions response body. On success
 * *text is malloc'd (caller frees) and *truncated is 1 when the server said
 * finish_reason "length". ET_EFORMAT with a message for a body that is not
 * JSON, has an "error" member, no choices, or no text content. */
int et_gen_reply_text(const char *body, size_t len, char **text, int *truncated, et_error *err);

/* Appends to `out` at most `want` questions found in `reply` (len bytes).
 * `context` (may be NULL) is the chunk: questions that copy a long run of it
 * are dropped. `have` (may be NULL) lists questions already kept for this
 * chunk: they, and duplicates within the reply, are dropped (compared after
 * normalization: case, punctuation, spacing). truncated = 1 drops a last line
 * that was cut off. Returns ET_OK (also when nothing usable was found). */
int et_gen_parse_questions(const char *reply, size_t len, const char *context, const et_strlist *have,
                           size_t want, int truncated, et_strlist *out, et_error *err);

/* Normalized form used for duplicate detection: lowercase ASCII letters and
 * digits, other bytes >= 0x80 kept, everything else a single space, trimmed.
 * Writes at most cap-1 bytes + NUL; returns the length. */
size_t et_gen_normalize(const char *s, size_t n, char *out, size_t cap);

#endif
