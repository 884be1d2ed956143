/* tokenizer.h - internals of the Hugging Face tokenizers pipeline (tokenizer.c, tok_*.c).
 *
 * The pipeline mirrors HF tokenizers 0.22 (the Rust crate behind the npm reference):
 *
 *   text --(lossy UTF-8)--> added-token extraction (raw) --> normalizer --> added-token
 *   extraction (normalized) --> pre-tokenizer --> model (WordPiece / Unigram) -->
 *   truncation --> post-processor (template / BERT / RoBERTa)
 *
 * Offsets. HF's NormalizedString keeps, for every byte of the normalized text, the
 * [start, end) range of original bytes it came from. We keep the same alignment but in
 * absolute coordinates of the (repaired) input, so slicing a string never rewrites it.
 * All the text being worked on lives in one pool (`tok_ws.text` + `tok_ws.al`); a split
 * is a [off, off+len) window into the pool plus its original range. A transformation
 * (normalizer, Metaspace) writes the new text to the pool and moves the window.
 *
 * Nothing here allocates per character: every buffer lives in the per-call workspace.
 */
#ifndef ET_TOKENIZER_H
#define ET_TOKENIZER_H

#include <oniguruma.h>
#include <pthread.h>
#include <stdint.h>

#include "json.h"
#include "strmap.h"
#include "util.h"

/* ---- Unicode (tok_unicode.c) ------------------------------------------------------ */

/* Decodes one code point of valid UTF-8 at s (len > 0 bytes available); *n = its length. */
static inline uint32_t tok_utf8_next(const char *s, size_t len, size_t *n) {
    const uint8_t *p = (const uint8_t *)s;
    if (p[0] < 0x80 || len < 2) { *n = 1; return p[0]; }
    if (p[0] < 0xE0 || len < 3) { *n = 2; return ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F); }
    if (p[0] < 0xF0 || len < 4) {
        *n = 3;
        return ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    }
    *n = 4;
    return ((uint32_t)(p[0] & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12) |
           ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
}
/* Length in bytes of the character starting with byte b (valid UTF-8). */
static inline size_t tok_utf8_len(uint8_t b) {
    return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
}
static inline size_t tok_cp_len(uint32_t c) {
    return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
}
/* Writes the UTF-8 of c (a scalar value) to out; returns its length. */
size_t tok_utf8_put(char *out, uint32_t c);
/* Length of the longest valid-UTF-8 prefix of s. */
size_t tok_utf8_valid_prefix(const char *s, size_t len);
/* Rust's String::from_utf8_lossy: every maximal invalid subpart becomes U+FFFD. out gets
 * the repaired text; map (if non-NULL) gets, for every output byte position 0..out_len,
 * the input byte position it comes from (map[out_len] = len). Caller frees both. */
int tok_utf8_lossy(const char *s, size_t len, char **out, size_t *out_len, size_t **map,
                   et_error *err);

int tok_is_whitespace(uint32_t c);   /* Rust char::is_whitespace (White_Space) */
int tok_is_control(uint32_t c);      /* BERT is_control: Cc Cf Co Cs, minus \t \n \r */
int tok_is_punct(uint32_t c);        /* BERT/Punctuation: ASCII punctuation or P* */
int tok_is_mark_nonspacing(uint32_t c); /* Mn (BertNormalizer strip_accents) */
int tok_is_combining_mark(uint32_t c);  /* M* (StripAccents normalizer) */
int tok_is_word(uint32_t c);         /* regex \w: Alphabetic, M, Nd, Pc, Join_Control */
int tok_is_numeric(uint32_t c);      /* Rust char::is_numeric: Nd Nl No */
int tok_is_chinese(uint32_t c);      /* BERT's CJK ideograph blocks */
/* Canonical combining class as the reference's normalization tables have it. */
uint8_t tok_ccc(uint32_t c);
/* 1 if the reference has no (compat) decomposition for c although utf8proc has one. */
int tok_no_decomp(uint32_t c, int compat);
/* Rust char::to_lowercase: writes 1..3 code points to out, returns the count. */
size_t tok_to_lower(uint32_t c, uint32_t out[3]);
/* Python str.lower() of UTF-8 text (full case mapping + Final_Sigma), as
 * sentence-transformers' do_lower_case applies before tokenizing. *out malloc'd. */
int tok_py_lower(const char *s, size_t len, char **out, size_t *out_len, et_error *err);

/* ---- transformations with alignment (tok_nstr.c) --------------------------------- */

typedef struct tok_align { uint32_t s, e; } tok_align; /* original byte range of one byte */

/* One piece of the text being processed: bytes [off, off+len) of the workspace pool. */
typedef struct tok_split {
    size_t off, len;
    uint32_t orig_s, orig_e;  /* offsets_original(): absolute range in the input */
    int32_t added_id;         /* >= 0: this split is an added token with that id */
} tok_split;

/* A (char, change) pair as HF's NormalizedString::transform takes them: change is 0 to
 * replace the next char, 1 to insert a char, -N to replace and then remove N chars. */
typedef struct tok_chg { uint32_t c; int32_t chg; } tok_chg;

/* Match list entry of a pattern search, HF's find_matches: [s, e) and is_match. */
typedef struct tok_match { size_t s, e; int m; } tok_match;

/* An encoding being post-processed. */
typedef struct tok_enc {
    int32_t *id; uint32_t *type; uint8_t *spec; size_t *s, *e; uint32_t *lead, *trail;
    size_t n, cap;
} tok_enc;

/* The per-call scratch space, reused across the stages of one encode call and, through the
 * tokenizer's small free list, across calls (no allocation in the steady state). */
typedef struct tok_ws {
    char *text; tok_align *al; size_t len, cap;    /* the pool */
    tok_split *sp; size_t nsp, capsp;               /* current splits */
    tok_split *sp2; size_t nsp2, capsp2;            /* splits being built */
    tok_chg *chg; size_t nchg, capchg;              /* transformation being built */
    tok_match *m; size_t nm, capm;                  /* matches being built */
    tok_match *m2; size_t nm2, capm2;
    uint32_t *cp; size_t ncp, capcp;                /* code point scratch */
    double *dscore; uint32_t *dstart; int32_t *did; size_t capd; /* unigram viterbi */
    OnigRegion *region;
    int want_offsets;
    /* output tokens of the model stage */
    int32_t *tid; uint32_t *ts, *te; uint8_t *tkind; size_t ntok, captok;
    uint32_t *tsplit; /* split index of each token (for RoBERTa offset trimming) */
    tok_enc enc, enc2;                              /* post-processing */
} tok_ws;

enum { TOK_BEH_REMOVED, TOK_BEH_ISOLATED, TOK_BEH_MERGED_PREV, TOK_BEH_MERGED_NEXT,
       TOK_BEH_CONTIGUOUS };

void tok_ws_free(tok_ws *w);
void tok_enc_free(tok_enc *e);
int tok_ws_reserve_pool(tok_ws *w, size_t extra, et_error *err);
int tok_ws_push_split(tok_ws *w, const tok_split *s, et_error *err);   /* onto sp2 */
int tok_ws_push_chg(tok_ws *w, uint32_t c, int32_t chg, et_error *err);
int tok_ws_push_match(tok_ws *w, size_t s, size_t e, int m, et_error *err);
/* Makes sp2 the current split list (sp), emptying sp2. */
void tok_ws_swap_splits(tok_ws *w);
/* Appends the initial split for text[0..len) (valid UTF-8) to the pool and sp. */
int tok_ws_init_text(tok_ws *w, const char *text, size_t len, et_error *err);
/* HF transform_range over the whole normalized text of split `si` with ws->chg; then
 * clears ws->chg. initial_offset = chars removed at the start. */
int tok_transform(tok_ws *w, size_t si, size_t initial_offset, et_error *err);
/* HF transform_range over the normalized byte range [ns, ne) of split si. */
int tok_transform_range(tok_ws *w, size_t si, size_t ns, size_t ne, size_t initial_offset,
                        et_error *err);
/* Splits split `si` by the matches in ws->m with a delimiter behavior: pushes the
 * non-empty pieces onto sp2 (HF NormalizedString::split + PreTokenizedString::split). */
int tok_split_by_matches(tok_ws *w, const tok_split *src, int behavior, et_error *err);
/* Replaces every match (ws->m, covering the split) of split si by content, aligning the
 * inserted bytes as HF's NormalizedString::replace does, in one pass. */
int tok_replace_all(tok_ws *w, size_t si, const char *content, size_t clen, et_error *err);
/* Original range of the normalized range [a, b) of a split (HF convert_offsets). */
void tok_convert_offsets(const tok_ws *w, const tok_split *sp, size_t a, size_t b, uint32_t *os,
                         uint32_t *oe);

/* ---- patterns (tok_pattern.c): String (literal) or Regex (Oniguruma) ------------- */

typedef struct tok_pattern {
    char *lit; size_t lit_len;  /* literal (String pattern), when re == NULL */
    OnigRegex re;               /* Regex pattern, or an empty String pattern */
} tok_pattern;
/* Parses {"String": s} or {"Regex": r}; `what` names the field for messages. */
int tok_pattern_parse(tok_pattern *p, const cJSON *j, const char *file, const char *what,
                      et_error *err);
void tok_pattern_free(tok_pattern *p);
/* Fills ws->m with the matches of p in s[0..len) covering the whole text (HF find_matches). */
int tok_pattern_find(const tok_pattern *p, tok_ws *w, const char *s, size_t len, et_error *err);
/* Same for a code point predicate. */
int tok_pred_find(int (*pred)(uint32_t), tok_ws *w, const char *s, size_t len, et_error *err);

/* ---- byte trie (tok_trie.c): prefix search for Unigram, WordPiece, added tokens ----- */

typedef struct tok_trie {
    uint64_t *keys;   /* [cap] (parent node << 8 | byte) + 1, 0 = empty */
    uint32_t *child;  /* [cap] */
    size_t cap, count;
    int32_t *value;   /* [n_nodes] value of the key ending at the node, -1 if none */
    size_t n_nodes, cap_nodes;
    uint32_t root[256]; /* children of the root, by byte (0 = none): no hashing on the first byte */
} tok_trie;
int tok_trie_init(tok_trie *t, et_error *err);
void tok_trie_free(tok_trie *t);
/* Inserts key -> value (an existing key's value is overwritten). */
int tok_trie_put(tok_trie *t, const char *key, size_t len, int32_t value, et_error *err);
/* Child of node for byte b, or 0 (the root is node 0 and never a child). */
static inline uint32_t tok_trie_step(const tok_trie *t, uint32_t node, uint8_t b) {
    if (node == 0) return t->root[b];
    uint64_t k = (((uint64_t)node << 8) | b) + 1;
    uint64_t h = k * 0x9E3779B97F4A7C15ULL;
    size_t mask = t->cap - 1, i = (size_t)(h >> 20) & mask;
    for (;;) {
        uint64_t kk = t->keys[i];
        if (kk == k) return t->child[i];
        if (kk == 0) return 0;
        i = (i + 1) & mask;
    }
}

/* ---- normalizers (tok_normalizer.c) ----------------------------------------------- */

enum {
    TOK_N_BERT = 1, TOK_N_NFC, TOK_N_NFD, TOK_N_NFKC, TOK_N_NFKD, TOK_N_LOWERCASE,
    TOK_N_STRIP_ACCENTS, TOK_N_REPLACE, TOK_N_PREPEND, TOK_N_STRIP, TOK_N_SEQUENCE,
    TOK_N_PRECOMPILED
};

typedef struct tok_normalizer {
    int type;
    int clean_text, chinese, strip_accents, lowercase;   /* BertNormalizer */
    int left, right;                                     /* Strip */
    char *content; size_t content_len;                   /* Replace content, Prepend */
    tok_pattern pat;                                     /* Replace */
    struct tok_normalizer *kids; size_t n_kids;          /* Sequence */
    uint32_t *pc_units; size_t pc_n_units;               /* Precompiled double array */
    char *pc_norm; size_t pc_norm_len;                   /* Precompiled replacement pool */
} tok_normalizer;

/* The "type" string of a tokenizer.json component (normalizer, pre-tokenizer,
 * post-processor); errors name the file and the JSON path. */
int tok_json_type(const cJSON *j, const char *file, const char *path, const char **type, et_error *err);
int tok_normalizer_parse(tok_normalizer *n, const cJSON *j, const char *file, const char *path,
                         et_error *err);
void tok_normalizer_free(tok_normalizer *n);
/* Normalizes split si in place. */
int tok_normalize(const tok_normalizer *n, tok_ws *w, size_t si, et_error *err);
/* Normalizes a standalone string (for added tokens with normalized=true). Caller frees. */
int tok_normalize_string(const tok_normalizer *n, const char *s, size_t len, char **out,
                         size_t *out_len, et_error *err);

/* ---- pre-tokenizers (tok_pretok.c) ------------------------------------------------- */

enum {
    TOK_P_BERT = 1, TOK_P_WHITESPACE, TOK_P_WHITESPACE_SPLIT, TOK_P_METASPACE,
    TOK_P_PUNCTUATION, TOK_P_SPLIT, TOK_P_DIGITS, TOK_P_SEQUENCE
};
enum { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };

typedef struct tok_pretok {
    int type;
    int behavior;                         /* Punctuation, Split */
    int invert;                           /* Split */
    tok_pattern pat;                      /* Split */
    int individual_digits;                /* Digits */
    uint32_t replacement;                 /* Metaspace */
    int prepend_scheme, split;            /* Metaspace */
    struct tok_pretok *kids; size_t n_kids;
} tok_pretok;

int tok_pretok_parse(tok_pretok *p, const cJSON *j, const char *file, const char *path,
                     et_error *err);
void tok_pretok_free(tok_pretok *p);
/* Pre-tokenizes every split of ws->sp without an added token. */
int tok_pretokenize(const tok_pretok *p, tok_ws *w, et_error *err);

/* ---- models (tok_wordpiece.c, tok_unigram.c) ----------------------------------------- */

enum { TOK_M_WORDPIECE = 1, TOK_M_UNIGRAM };
enum { TOK_KIND_PIECE = 0, TOK_KIND_CONT = 1, TOK_KIND_UNK = 2, TOK_KIND_ADDED = 3,
       TOK_KIND_BYTE = 4 };

typedef struct tok_model {
    int type;
    /* vocabulary: ids 0..n_ids-1 (WordPiece ids may have gaps: tok_off == SIZE_MAX) */
    et_strmap vocab;              /* token -> id (Unigram: the last id of a duplicate) */
    char *strs; size_t strs_len;  /* arena of NUL-terminated token strings */
    size_t *tok_off;              /* [n_ids] offset in strs, SIZE_MAX if no token */
    size_t n_ids;                 /* max id + 1 */
    size_t vocab_count;           /* number of distinct tokens (HF get_vocab_size) */
    /* WordPiece */
    int32_t unk_id;               /* -1 if the unk token is missing / unk_id null */
    char *unk_token;
    char *prefix; size_t prefix_len;
    size_t max_chars;
    tok_trie trie_word, trie_cont;  /* whole tokens; tokens after the prefix */
    /* Unigram */
    double *scores;               /* [n_ids] */
    double min_score;
    int byte_fallback;
    tok_trie trie;                /* all pieces -> id (last duplicate wins) */
    int32_t byte_ids[256];        /* <0xNN> pieces, -1 if absent */
} tok_model;

int tok_wordpiece_parse(tok_model *m, const cJSON *j, const char *file, et_error *err);
int tok_wordpiece_from_vocab_txt(tok_model *m, const char *path, et_error *err);
/* Tokenizes the normalized word s[0..len) (valid UTF-8), appending to ws tokens with
 * offsets relative to s. */
int tok_wordpiece_tokenize(const tok_model *m, tok_ws *w, const char *s, size_t len,
                           et_error *err);
int tok_unigram_parse(tok_model *m, const cJSON *j, const char *file, et_error *err);
int tok_unigram_tokenize(const tok_model *m, tok_ws *w, const char *s, size_t len,
                         et_error *err);
void tok_model_free(tok_model *m);
int tok_model_finish_vocab(tok_model *m, et_error *err); /* builds tok_off from vocab */
int tok_ws_push_token(tok_ws *w, int32_t id, size_t s, size_t e, int kind, et_error *err);

/* ---- post-processors (tok_post.c) ---------------------------------------------------- */

enum { TOK_PP_NONE = 0, TOK_PP_TEMPLATE, TOK_PP_BERT, TOK_PP_ROBERTA, TOK_PP_SEQUENCE };

typedef struct tok_tpl_piece {
    int is_seq;          /* 1: the input sequence ($A), 0: a special token */
    int seq_b;           /* sequence B (pair only) */
    uint32_t type_id;
    int32_t *ids; size_t n_ids;    /* special token ids */
    char **toks;                   /* special token strings [n_ids] */
} tok_tpl_piece;

typedef struct tok_post {
    int type;
    tok_tpl_piece *single; size_t n_single;  /* TemplateProcessing single template */
    size_t added_single, added_pair;
    int32_t cls_id, sep_id; char *cls_tok, *sep_tok;  /* Bert / Roberta */
    int trim_offsets, add_prefix_space;                /* Roberta */
    struct tok_post *kids; size_t n_kids;
} tok_post;

int tok_post_parse(tok_post *p, const cJSON *j, const char *file, const char *path,
                   et_error *err);
void tok_post_free(tok_post *p);
size_t tok_post_added(const tok_post *p, int pair);

/* ---- the tokenizer ---------------------------------------------------------------- */

typedef struct tok_added {
    char *content; size_t len;
    int32_t id;
    int single_word, lstrip, rstrip, normalized, special;
} tok_added;

struct et_tokenizer {
    char *path;
    tok_normalizer *normalizer;   /* NULL = none */
    tok_pretok *pretok;           /* NULL = none */
    tok_model model;
    tok_post *post;               /* NULL = none */
    tok_added *added; size_t n_added;      /* HF added_tokens_map_r: latest token per id */
    char **owned; size_t n_owned, cap_owned; /* added-token contents (tok_added points here) */
    et_strmap added_map;                    /* content -> id */
    /* Aho-Corasick-like leftmost-longest matching via tries: values index `added` */
    tok_trie added_raw, added_norm;
    size_t n_added_raw, n_added_norm;
    char **norm_content; size_t *norm_len;  /* normalized contents (normalized tokens) */
    size_t vocab_size;
    const char *type_name;
    int lower_input;              /* lowercase every input first (sentence_bert_config do_lower_case);
                                     offsets then refer to the lowercased text */
    /* workspaces kept between calls (thread-safe free list) */
    pthread_mutex_t ws_mu;
    tok_ws *ws_free[8];
    size_t n_ws_free;
};

/* Converts a byte offset range to HF char offsets the way its BytesToCharOffsetConverter
 * does (used by tests to compare with the JS reference). */

/* Sets lower_input (a model with do_lower_case: true owns this tokenizer). */
void et_tokenizer_set_lower_input(et_tokenizer *t, int on);

#endif
