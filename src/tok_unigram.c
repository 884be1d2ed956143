/* tok_unigram.c - the Unigram model: Viterbi over the pieces found by a trie walk from
 * every char boundary (HF's encode_optimized); characters without a one-char piece get the
 * unknown token with score min_score - 10; consecutive unknowns are fused; optional byte
 * fallback to <0xNN> pieces. Ties keep the first candidate, as HF does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

#define UNK_PENALTY 10.0

int tok_unigram_parse(tok_model *m, const cJSON *j, const char *file, et_error *err) {
    memset(m, 0, sizeof(*m));
    et_strmap_init(&m->vocab);
    m->type = TOK_M_UNIGRAM;
    m->unk_id = -1;
    for (int b = 0; b < 256; b++) m->byte_ids[b] = -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "unk_id");
    long unk = -1;
    if (v && !cJSON_IsNull(v) && et_json_as_long(v, 0, INT32_MAX - 1, &unk))
        return et_err_set(err, ET_EFORMAT, "%s: model.unk_id: expected a non-negative integer or "
                          "null, got %s", file, et_json_type_name(v));
    v = cJSON_GetObjectItemCaseSensitive(j, "byte_fallback");
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v))
            return et_err_set(err, ET_EFORMAT, "%s: model.byte_fallback: expected a boolean, got %s",
                              file, et_json_type_name(v));
        m->byte_fallback = cJSON_IsTrue(v);
    }
    const cJSON *voc = cJSON_GetObjectItemCaseSensitive(j, "vocab");
    if (!voc) return et_err_set(err, ET_ENOTFOUND, "%s: model: missing field 'vocab'", file);
    if (!cJSON_IsArray(voc))
        return et_err_set(err, ET_EFORMAT, "%s: model.vocab: expected an array of [piece, score], "
                          "got %s", file, et_json_type_name(voc));
    size_t n = (size_t)cJSON_GetArraySize(voc);
    if (unk >= 0 && n == 0)
        return et_err_set(err, ET_EFORMAT, "%s: model.vocab: the vocabulary is empty but at least "
                          "<unk> is needed", file);
    if (unk >= 0 && (size_t)unk >= n)
        return et_err_set(err, ET_EFORMAT, "%s: model.unk_id: %ld is not below the vocabulary size "
                          "%zu", file, unk, n);
    if (n > INT32_MAX - 1)
        return et_err_set(err, ET_EFORMAT, "%s: model.vocab: too many pieces (%zu)", file, n);
    m->unk_id = (int32_t)unk;
    m->n_ids = n;
    m->scores = et_malloc_n(n ? n : 1, sizeof(double), err);
    m->tok_off = et_malloc_n(n ? n : 1, sizeof(size_t), err);
    if (!m->scores || !m->tok_off) return ET_ENOMEM;
    int rc = tok_trie_init(&m->trie, err);
    if (rc) return rc;
    et_buf arena = {0};
    m->min_score = INFINITY;
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, voc) {
        const cJSON *p = cJSON_GetArrayItem(e, 0), *s = cJSON_GetArrayItem(e, 1);
        if (!cJSON_IsArray(e) || cJSON_GetArraySize(e) != 2 || !cJSON_IsString(p) || !cJSON_IsNumber(s)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: model.vocab[%zu]: expected [piece, score], got %s",
                            file, i, et_json_type_name(e));
            goto fail;
        }
        size_t len = strlen(p->valuestring);
        if (tok_utf8_valid_prefix(p->valuestring, len) != len) {
            rc = et_err_set(err, ET_EFORMAT, "%s: model.vocab[%zu]: piece is not valid UTF-8", file, i);
            goto fail;
        }
        m->scores[i] = s->valuedouble;
        if (s->valuedouble < m->min_score) m->min_score = s->valuedouble;
        m->tok_off[i] = arena.len;
        if ((rc = et_buf_append(&arena, p->valuestring, len, err)) ||
            (rc = et_buf_append(&arena, "", 1, err)) ||
            (rc = et_strmap_put(&m->vocab, p->valuestring, len, (int64_t)i, err)) ||
            (rc = tok_trie_put(&m->trie, p->valuestring, len, (int32_t)i, err)))
            goto fail;
        i++;
    }
    m->strs = arena.data;
    m->strs_len = arena.len;
    m->vocab_count = m->vocab.count;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        int64_t id;
        if (et_strmap_get(&m->vocab, name, 6, &id)) m->byte_ids[b] = (int32_t)id;
    }
    return ET_OK;
fail:
    et_buf_free(&arena);
    return rc;
}

static int grow_viterbi(tok_ws *w, size_t n, et_error *err) {
    if (n <= w->capd) return ET_OK;
    size_t nc = w->capd ? w->capd : 256;
    while (nc < n) nc *= 2;
    double *a = et_realloc_n(w->dscore, nc, sizeof(double), err);
    if (!a) return ET_ENOMEM;
    w->dscore = a;
    uint32_t *b = et_realloc_n(w->dstart, nc, sizeof(uint32_t), err);
    if (!b) return ET_ENOMEM;
    w->dstart = b;
    int32_t *c = et_realloc_n(w->did, nc, sizeof(int32_t), err);
    if (!c) return ET_ENOMEM;
    w->did = c;
    w->capd = nc;
    return ET_OK;
}

/* Pushes the token for the piece s[a, b): its id, byte fallback pieces, or unk. */
static int push_piece(const tok_model *m, tok_ws *w, const char *s, size_t a, size_t b,
                      et_error *err) {
    int64_t id;
    if (et_strmap_get(&m->vocab, s + a, b - a, &id))
        return tok_ws_push_token(w, (int32_t)id, a, b, TOK_KIND_PIECE, err);
    if (m->byte_fallback) {
        size_t k = a;
        for (; k < b; k++) if (m->byte_ids[(uint8_t)s[k]] < 0) break;
        if (k == b) {
            for (k = a; k < b; k++) {
                int rc = tok_ws_push_token(w, m->byte_ids[(uint8_t)s[k]], a, b, TOK_KIND_BYTE, err);
                if (rc) return rc;
            }
            return ET_OK;
        }
    }
    if (m->unk_id < 0)
        return et_err_set(err, ET_EINVAL, "Unigram: encountered an unknown token but `unk_id` is missing");
    return tok_ws_push_token(w, m->unk_id, a, b, TOK_KIND_UNK, err);
}

int tok_unigram_tokenize(const tok_model *m, tok_ws *w, const char *s, size_t len,
                         et_error *err) {
    if (!len) return ET_OK;
    int rc = grow_viterbi(w, len + 1, err);
    if (rc) return rc;
    double *score = w->dscore;
    uint32_t *start = w->dstart; /* UINT32_MAX = not reached */
    int32_t *id = w->did;
    for (size_t i = 0; i <= len; i++) { start[i] = UINT32_MAX; score[i] = 0.0; id[i] = 0; }
    const double unk_score = m->min_score - UNK_PENALTY;
    const tok_trie *t = &m->trie;
    size_t at = 0;
    while (at < len) {
        double base = score[at];
        size_t mblen = tok_utf8_len((uint8_t)s[at]);
        if (mblen > len - at) mblen = len - at;
        int single = 0;
        uint32_t node = 0;
        for (size_t p = at; p < len; p++) {
            node = tok_trie_step(t, node, (uint8_t)s[p]);
            if (!node) break;
            int32_t v = t->value[node];
            if (v < 0) continue;
            size_t key = p + 1;
            double cand = m->scores[v] + base;
            if (start[key] == UINT32_MAX || cand > score[key]) {
                score[key] = cand;
                start[key] = (uint32_t)at;
                id[key] = v;
            }
            if (key - at == mblen) single = 1;
        }
        if (!single) {
            size_t key = at + mblen;
            double cand = unk_score + base;
            if (start[key] == UINT32_MAX || cand > score[key]) {
                if (m->unk_id < 0)
                    return et_err_set(err, ET_EINVAL, "Unigram: encountered an unknown token but "
                                      "`unk_id` is missing");
                score[key] = cand;
                start[key] = (uint32_t)at;
                id[key] = m->unk_id;
            }
        }
        at += mblen;
    }
    /* backtrack: reuse dstart[] to record the path, then emit left to right */
    size_t first = w->ntok;
    size_t end = len;
    size_t unk_end = SIZE_MAX; /* end of the current run of unknowns (fused) */
    /* collect boundaries in reverse into the token list, then reverse */
    while (end > 0) {
        size_t st = start[end];
        if (st == UINT32_MAX || st >= end) return et_err_set(err, ET_EINVAL, "Unigram: broken lattice");
        if (m->unk_id >= 0 && id[end] == m->unk_id) {
            if (unk_end == SIZE_MAX) unk_end = end;
        } else {
            if (unk_end != SIZE_MAX) {
                if ((rc = tok_ws_push_token(w, -1, end, unk_end, TOK_KIND_UNK, err))) return rc;
                unk_end = SIZE_MAX;
            }
            if ((rc = tok_ws_push_token(w, id[end], st, end, TOK_KIND_PIECE, err))) return rc;
        }
        end = st;
    }
    if (unk_end != SIZE_MAX && (rc = tok_ws_push_token(w, -1, 0, unk_end, TOK_KIND_UNK, err))) return rc;
    /* reverse the pieces just pushed */
    for (size_t a = first, b = w->ntok; a + 1 < b; a++, b--) {
        int32_t ti = w->tid[a]; w->tid[a] = w->tid[b - 1]; w->tid[b - 1] = ti;
        uint32_t x = w->ts[a]; w->ts[a] = w->ts[b - 1]; w->ts[b - 1] = x;
        x = w->te[a]; w->te[a] = w->te[b - 1]; w->te[b - 1] = x;
        uint8_t k = w->tkind[a]; w->tkind[a] = w->tkind[b - 1]; w->tkind[b - 1] = k;
    }
    /* map pieces to ids (vocabulary lookup of the piece string, as HF's tokenize does) */
    size_t n = w->ntok - first;
    if (!m->byte_fallback) {
        for (size_t k = first; k < first + n; k++) {
            if (w->tkind[k] != TOK_KIND_UNK) continue;
            int64_t v;
            if (et_strmap_get(&m->vocab, s + w->ts[k], w->te[k] - w->ts[k], &v)) {
                w->tid[k] = (int32_t)v;
                w->tkind[k] = TOK_KIND_PIECE;
            } else {
                w->tid[k] = m->unk_id;
            }
        }
        return ET_OK;
    }
    /* with byte fallback a piece can expand to several tokens: rebuild the tail */
    size_t total = w->ntok;
    uint32_t *bounds = NULL;
    bounds = et_malloc_n(n ? 2 * n : 1, sizeof(uint32_t), err);
    if (!bounds) return ET_ENOMEM;
    for (size_t k = 0; k < n; k++) { bounds[2 * k] = w->ts[first + k]; bounds[2 * k + 1] = w->te[first + k]; }
    (void)total;
    w->ntok = first;
    for (size_t k = 0; k < n; k++) {
        if ((rc = push_piece(m, w, s, bounds[2 * k], bounds[2 * k + 1], err))) { free(bounds); return rc; }
    }
    free(bounds);
    return ET_OK;
}
