/* tok_wordpiece.c - the WordPiece model (greedy longest-match-first, HF semantics):
 * a word longer than max_input_chars_per_word chars, or with a piece missing from the
 * vocabulary, becomes the unknown token. Longest match = deepest terminal of a trie walk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

void tok_model_free(tok_model *m) {
    et_strmap_free(&m->vocab);
    free(m->strs);
    free(m->tok_off);
    free(m->unk_token);
    free(m->prefix);
    tok_trie_free(&m->trie_word);
    tok_trie_free(&m->trie_cont);
    free(m->scores);
    tok_trie_free(&m->trie);
    memset(m, 0, sizeof(*m));
}

/* Appends token string s to the model's string arena for id (n_ids must cover id). */
static int set_token(tok_model *m, et_buf *arena, int32_t id, const char *s, size_t len,
                     et_error *err) {
    m->tok_off[id] = arena->len;
    int rc = et_buf_append(arena, s, len, err);
    if (!rc) rc = et_buf_append(arena, "", 1, err);
    return rc;
}

static int build_wordpiece(tok_model *m, const char **toks, const size_t *lens, const int32_t *ids,
                           size_t n, const char *file, et_error *err) {
    int rc;
    size_t max_id = 0;
    for (size_t i = 0; i < n; i++) if ((size_t)ids[i] > max_id) max_id = (size_t)ids[i];
    m->n_ids = n ? max_id + 1 : 0;
    m->tok_off = et_malloc_n(m->n_ids ? m->n_ids : 1, sizeof(size_t), err);
    if (!m->tok_off) return ET_ENOMEM;
    for (size_t i = 0; i < m->n_ids; i++) m->tok_off[i] = SIZE_MAX;
    et_buf arena = {0};
    if ((rc = tok_trie_init(&m->trie_word, err)) || (rc = tok_trie_init(&m->trie_cont, err))) return rc;
    for (size_t i = 0; i < n; i++) {
        if (tok_utf8_valid_prefix(toks[i], lens[i]) != lens[i]) {
            et_buf_free(&arena);
            return et_err_set(err, ET_EFORMAT, "%s: model.vocab: token %zu is not valid UTF-8", file, i);
        }
        if ((rc = et_strmap_put(&m->vocab, toks[i], lens[i], ids[i], err))) goto fail;
        if ((rc = set_token(m, &arena, ids[i], toks[i], lens[i], err))) goto fail;
        if ((rc = tok_trie_put(&m->trie_word, toks[i], lens[i], ids[i], err))) goto fail;
        if (m->prefix_len <= lens[i] && !memcmp(toks[i], m->prefix, m->prefix_len) &&
            (rc = tok_trie_put(&m->trie_cont, toks[i] + m->prefix_len, lens[i] - m->prefix_len,
                               ids[i], err)))
            goto fail;
    }
    /* a duplicate token keeps its last id; re-point the trie and string table */
    m->vocab_count = m->vocab.count;
    m->strs = arena.data;
    m->strs_len = arena.len;
    int64_t v;
    m->unk_id = et_strmap_get(&m->vocab, m->unk_token, strlen(m->unk_token), &v) ? (int32_t)v : -1;
    return ET_OK;
fail:
    et_buf_free(&arena);
    return rc;
}

int tok_wordpiece_parse(tok_model *m, const cJSON *j, const char *file, et_error *err) {
    memset(m, 0, sizeof(*m));
    et_strmap_init(&m->vocab);
    m->type = TOK_M_WORDPIECE;
    const char *unk = "[UNK]", *prefix = "##";
    int rc;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "unk_token"))) {
        if (!cJSON_IsString(v))
            return et_err_set(err, ET_EFORMAT, "%s: model.unk_token: expected a string, got %s", file,
                              et_json_type_name(v));
        unk = v->valuestring;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "continuing_subword_prefix"))) {
        if (!cJSON_IsString(v))
            return et_err_set(err, ET_EFORMAT, "%s: model.continuing_subword_prefix: expected a "
                              "string, got %s", file, et_json_type_name(v));
        prefix = v->valuestring;
    }
    m->max_chars = 100;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "max_input_chars_per_word"))) {
        long x;
        if (et_json_as_long(v, 0, (long)1 << 40, &x))
            return et_err_set(err, ET_EFORMAT, "%s: model.max_input_chars_per_word: expected a "
                              "non-negative integer, got %s", file, et_json_type_name(v));
        m->max_chars = (size_t)x;
    }
    m->unk_token = et_strdup(unk, err);
    m->prefix = et_strdup(prefix, err);
    if (!m->unk_token || !m->prefix) return ET_ENOMEM;
    m->prefix_len = strlen(prefix);
    const cJSON *voc = cJSON_GetObjectItemCaseSensitive(j, "vocab");
    if (!voc) return et_err_set(err, ET_ENOTFOUND, "%s: model: missing field 'vocab'", file);
    if (!cJSON_IsObject(voc))
        return et_err_set(err, ET_EFORMAT, "%s: model.vocab: expected an object {token: id}, got %s",
                          file, et_json_type_name(voc));
    size_t n = (size_t)cJSON_GetArraySize(voc);
    const char **toks = et_malloc_n(n ? n : 1, sizeof(char *), err);
    size_t *lens = et_malloc_n(n ? n : 1, sizeof(size_t), err);
    int32_t *ids = et_malloc_n(n ? n : 1, sizeof(int32_t), err);
    if (!toks || !lens || !ids) { free(toks); free(lens); free(ids); return ET_ENOMEM; }
    size_t i = 0;
    const cJSON *e;
    rc = ET_OK;
    cJSON_ArrayForEach(e, voc) {
        long id;
        if (et_json_as_long(e, 0, INT32_MAX - 1, &id)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: model.vocab['%.100s']: expected an id in [0, %d], "
                            "got %s", file, e->string, INT32_MAX - 1, et_json_type_name(e));
            break;
        }
        toks[i] = e->string;
        lens[i] = strlen(e->string);
        ids[i] = (int32_t)id;
        i++;
    }
    if (!rc) rc = build_wordpiece(m, toks, lens, ids, i, file, err);
    free(toks);
    free(lens);
    free(ids);
    return rc;
}

int tok_wordpiece_from_vocab_txt(tok_model *m, const char *path, et_error *err) {
    memset(m, 0, sizeof(*m));
    et_strmap_init(&m->vocab);
    m->type = TOK_M_WORDPIECE;
    m->max_chars = 100;
    m->unk_token = et_strdup("[UNK]", err);
    m->prefix = et_strdup("##", err);
    if (!m->unk_token || !m->prefix) return ET_ENOMEM;
    m->prefix_len = 2;
    char *data;
    size_t len;
    int rc = et_read_file(path, (size_t)1 << 30, &data, &len, err);
    if (rc) return rc;
    size_t cap = 1024, n = 0;
    const char **toks = et_malloc_n(cap, sizeof(char *), err);
    size_t *lens = et_malloc_n(cap, sizeof(size_t), err);
    int32_t *ids = et_malloc_n(cap, sizeof(int32_t), err);
    if (!toks || !lens || !ids) { rc = ET_ENOMEM; goto done; }
    /* transformers' load_vocab: text-mode readlines (\n, \r\n and \r end a line), each
     * line stripped of its newline only; token i has id i */
    for (size_t p = 0; p < len;) {
        size_t e = p;
        while (e < len && data[e] != '\n' && data[e] != '\r') e++;
        size_t l = e - p;
        size_t next = e + 1;
        if (e < len && data[e] == '\r' && e + 1 < len && data[e + 1] == '\n') next = e + 2;
        if (n == cap) {
            cap *= 2;
            const char **t2 = et_realloc_n(toks, cap, sizeof(char *), err);
            if (!t2) { rc = ET_ENOMEM; goto done; }
            toks = t2;
            size_t *l2 = et_realloc_n(lens, cap, sizeof(size_t), err);
            if (!l2) { rc = ET_ENOMEM; goto done; }
            lens = l2;
            int32_t *i2 = et_realloc_n(ids, cap, sizeof(int32_t), err);
            if (!i2) { rc = ET_ENOMEM; goto done; }
            ids = i2;
        }
        if (n >= INT32_MAX - 1) { rc = et_err_set(err, ET_EFORMAT, "%s: too many lines", path); goto done; }
        toks[n] = data + p;
        lens[n] = l;
        ids[n] = (int32_t)n;
        n++;
        p = next;
    }
    rc = build_wordpiece(m, toks, lens, ids, n, path, err);
done:
    free(toks);
    free(lens);
    free(ids);
    free(data);
    return rc;
}

int tok_wordpiece_tokenize(const tok_model *m, tok_ws *w, const char *s, size_t len,
                           et_error *err) {
    size_t nchars = 0;
    for (size_t i = 0; i < len; i++) nchars += ((uint8_t)s[i] & 0xC0) != 0x80;
    int64_t whole;
    if (nchars <= m->max_chars) {
        if (et_strmap_get(&m->vocab, s, len, &whole))
            return tok_ws_push_token(w, (int32_t)whole, 0, len, TOK_KIND_PIECE, err);
        size_t first = w->ntok, start = 0;
        while (start < len) {
            const tok_trie *t = start ? &m->trie_cont : &m->trie_word;
            uint32_t node = 0;
            size_t best = 0;
            int32_t best_id = -1;
            for (size_t p = start; p < len; p++) {
                node = tok_trie_step(t, node, (uint8_t)s[p]);
                if (!node) break;
                if (t->value[node] >= 0) { best = p + 1; best_id = t->value[node]; }
            }
            if (best_id < 0) { w->ntok = first; goto unk; }
            int rc = tok_ws_push_token(w, best_id, start, best, start ? TOK_KIND_CONT : TOK_KIND_PIECE, err);
            if (rc) return rc;
            start = best;
        }
        return ET_OK;
    }
unk:
    if (m->unk_id < 0)
        return et_err_set(err, ET_EINVAL, "WordPiece error: Missing %s token from the vocabulary",
                          m->unk_token);
    return tok_ws_push_token(w, m->unk_id, 0, len, TOK_KIND_UNK, err);
}
