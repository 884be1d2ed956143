/* tokenizer.c - loading tokenizer.json (or vocab.txt + tokenizer_config.json), added
 * tokens, and the encode pipeline of HF tokenizers 0.22:
 *
 *   lossy UTF-8 -> added tokens (raw) -> normalizer -> added tokens (normalized) ->
 *   pre-tokenizer -> model -> offsets -> truncation -> post-processor
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

/* ---- added vocabulary ------------------------------------------------------------------ */

/* HF AddedVocabulary::add_tokens for one token (tokenizer.json order). */
typedef struct added_list { tok_added *v; size_t n, cap; } added_list;

static int list_push(added_list *l, const tok_added *a, et_error *err) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        tok_added *v = et_realloc_n(l->v, nc, sizeof(tok_added), err);
        if (!v) return ET_ENOMEM;
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n++] = *a;
    return ET_OK;
}

/* Copies s into a string owned by the tokenizer. */
static char *own_str(et_tokenizer *t, const char *s, size_t len, et_error *err) {
    if (t->n_owned == t->cap_owned) {
        size_t nc = t->cap_owned ? t->cap_owned * 2 : 16;
        char **o = et_realloc_n(t->owned, nc, sizeof(char *), err);
        if (!o) return NULL;
        t->owned = o;
        t->cap_owned = nc;
    }
    char *c = et_strndup(s, len, err);
    if (c) t->owned[t->n_owned++] = c;
    return c;
}

static int model_token_to_id(const tok_model *m, const char *s, size_t len, int64_t *id) {
    return et_strmap_get(&m->vocab, s, len, id);
}

static int same_token(const tok_added *a, const tok_added *b) {
    return a->len == b->len && !memcmp(a->content, b->content, a->len) &&
           a->single_word == b->single_word && a->lstrip == b->lstrip && a->rstrip == b->rstrip &&
           a->normalized == b->normalized && a->special == b->special;
}

typedef struct added_state {
    added_list specials, classics; /* HF special_tokens and added_tokens vectors */
    added_list by_id;              /* HF added_tokens_map_r: the latest token per id */
    int32_t max_id;
} added_state;

static int add_token(et_tokenizer *t, added_state *st, const tok_added *tok, et_error *err) {
    int rc;
    int64_t v;
    int in_specials = 0;
    for (size_t i = 0; i < st->specials.n; i++)
        if (st->specials.v[i].len == tok->len && !memcmp(st->specials.v[i].content, tok->content, tok->len))
            in_specials = 1;
    if (tok->special && tok->len && !in_specials) {
        if ((rc = list_push(&st->specials, tok, err))) return rc;
        in_specials = 1;
    }
    if (!tok->len) return ET_OK;
    for (size_t i = 0; i < st->by_id.n; i++)
        if (same_token(&st->by_id.v[i], tok)) return ET_OK;
    int32_t id;
    if (et_strmap_get(&t->added_map, tok->content, tok->len, &v)) id = (int32_t)v;
    else if (model_token_to_id(&t->model, tok->content, tok->len, &v)) id = (int32_t)v;
    else {
        size_t vs = t->model.vocab_count;
        if (st->max_id < 0) id = (int32_t)vs;
        else if ((size_t)st->max_id >= vs || vs == 0) id = st->max_id + 1;
        else id = (int32_t)vs;
    }
    if ((rc = et_strmap_put(&t->added_map, tok->content, tok->len, id, err))) return rc;
    if (id > st->max_id) st->max_id = id;
    tok_added copy = *tok;
    copy.id = id;
    size_t i = 0;
    for (; i < st->by_id.n; i++) if (st->by_id.v[i].id == id) break;
    if (i < st->by_id.n) st->by_id.v[i] = copy;
    else if ((rc = list_push(&st->by_id, &copy, err))) return rc;
    if (!in_specials && (rc = list_push(&st->classics, &copy, err))) return rc;
    return ET_OK;
}

int tok_json_type(const cJSON *j, const char *file, const char *path, const char **type, et_error *err) {
    if (!cJSON_IsObject(j))
        return et_err_set(err, ET_EFORMAT, "%s: %s: expected an object, got %s", file, path,
                          et_json_type_name(j));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!t) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field 'type'", file, path);
    if (!cJSON_IsString(t))
        return et_err_set(err, ET_EFORMAT, "%s: %s.type: expected a string, got %s", file, path,
                          et_json_type_name(t));
    *type = t->valuestring;
    return ET_OK;
}

static const tok_added *added_by_id(const et_tokenizer *t, int32_t id) {
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return &t->added[i];
    return NULL;
}

/* Builds the two matching tries (raw / normalized patterns) from specials ++ classics. */
static int build_added(et_tokenizer *t, added_state *st, et_error *err) {
    int rc;
    t->added = et_malloc_n(st->by_id.n ? st->by_id.n : 1, sizeof(tok_added), err);
    if (!t->added) return ET_ENOMEM;
    if (st->by_id.n) memcpy(t->added, st->by_id.v, st->by_id.n * sizeof(tok_added));
    t->n_added = st->by_id.n;
    if ((rc = tok_trie_init(&t->added_raw, err)) || (rc = tok_trie_init(&t->added_norm, err))) return rc;
    for (int pass = 0; pass < 2; pass++) {
        added_list *l = pass ? &st->classics : &st->specials;
        for (size_t i = 0; i < l->n; i++) {
            const tok_added *a = &l->v[i];
            int64_t v;
            if (!et_strmap_get(&t->added_map, a->content, a->len, &v)) continue;
            if (!a->normalized) {
                if ((rc = tok_trie_put(&t->added_raw, a->content, a->len, (int32_t)v, err))) return rc;
                t->n_added_raw++;
            } else {
                char *nc;
                size_t nl;
                if (t->normalizer) {
                    if ((rc = tok_normalize_string(t->normalizer, a->content, a->len, &nc, &nl, err)))
                        return rc;
                } else {
                    nc = et_strndup(a->content, a->len, err);
                    nl = a->len;
                    if (!nc) return ET_ENOMEM;
                }
                if (nl) {
                    rc = tok_trie_put(&t->added_norm, nc, nl, (int32_t)v, err);
                    t->n_added_norm++;
                }
                free(nc);
                if (rc) return rc;
            }
        }
    }
    return ET_OK;
}

/* ---- loading ------------------------------------------------------------------------- */


void et_tokenizer_free(et_tokenizer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_ws_free; i++) { tok_ws_free(t->ws_free[i]); free(t->ws_free[i]); }
    pthread_mutex_destroy(&t->ws_mu);
    free(t->path);
    if (t->normalizer) { tok_normalizer_free(t->normalizer); free(t->normalizer); }
    if (t->pretok) { tok_pretok_free(t->pretok); free(t->pretok); }
    if (t->post) { tok_post_free(t->post); free(t->post); }
    tok_model_free(&t->model);
    for (size_t i = 0; i < t->n_owned; i++) free(t->owned[i]);
    free(t->owned);
    free(t->added);
    et_strmap_free(&t->added_map);
    tok_trie_free(&t->added_raw);
    tok_trie_free(&t->added_norm);
    free(t);
}

static int parse_added_tokens(et_tokenizer *t, const cJSON *arr, const char *file, et_error *err) {
    added_state st;
    memset(&st, 0, sizeof(st));
    st.max_id = -1;
    int rc = ET_OK;
    size_t i = 0;
    const cJSON *e;
    if (arr && !cJSON_IsNull(arr)) {
        if (!cJSON_IsArray(arr)) {
            return et_err_set(err, ET_EFORMAT, "%s: added_tokens: expected an array, got %s", file,
                              et_json_type_name(arr));
        }
        cJSON_ArrayForEach(e, arr) {
            tok_added a;
            memset(&a, 0, sizeof(a));
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
            if (!cJSON_IsObject(e) || !cJSON_IsString(c)) {
                rc = et_err_set(err, ET_EFORMAT, "%s: added_tokens[%zu].content: expected a string",
                                file, i);
                break;
            }
            a.len = strlen(c->valuestring);
            if (tok_utf8_valid_prefix(c->valuestring, a.len) != a.len) {
                rc = et_err_set(err, ET_EFORMAT, "%s: added_tokens[%zu].content: invalid UTF-8", file, i);
                break;
            }
            static const char *flags[] = {"single_word", "lstrip", "rstrip", "normalized", "special"};
            int *dst[] = {&a.single_word, &a.lstrip, &a.rstrip, &a.normalized, &a.special};
            int dflt[] = {0, 0, 0, -1, 0};
            for (int k = 0; k < 5 && !rc; k++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, flags[k]);
                if (!v) *dst[k] = dflt[k];
                else if (cJSON_IsBool(v)) *dst[k] = cJSON_IsTrue(v);
                else rc = et_err_set(err, ET_EFORMAT, "%s: added_tokens[%zu].%s: expected a boolean, "
                                     "got %s", file, i, flags[k], et_json_type_name(v));
            }
            if (rc) break;
            if (a.normalized < 0) a.normalized = !a.special;
            a.content = own_str(t, c->valuestring, a.len, err);
            if (!a.content) { rc = ET_ENOMEM; break; }
            rc = add_token(t, &st, &a, err);
            if (rc) break;
            i++;
        }
    }
    if (!rc) rc = build_added(t, &st, err);
    free(st.by_id.v);
    free(st.specials.v);
    free(st.classics.v);
    return rc;
}

static int finish(et_tokenizer *t, et_error *err) {
    /* vocab size with added tokens = distinct token strings */
    size_t extra = 0;
    for (size_t i = 0; i < t->n_added; i++) {
        int64_t v;
        if (!et_strmap_get(&t->model.vocab, t->added[i].content, t->added[i].len, &v)) extra++;
    }
    t->vocab_size = t->model.vocab_count + extra;
    t->type_name = t->model.type == TOK_M_WORDPIECE ? "WordPiece" : "Unigram";
    (void)err;
    return ET_OK;
}

static int load_json(et_tokenizer *t, const cJSON *root, const char *file, et_error *err) {
    int rc;
    if (!cJSON_IsObject(root))
        return et_err_set(err, ET_EFORMAT, "%s: expected a JSON object at the top level", file);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, "1.0")))
        return et_err_set(err, ET_EUNSUPPORTED, "%s: version: unsupported '%s' (expected \"1.0\")", file,
                          cJSON_IsString(v) ? v->valuestring : et_json_type_name(v));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!m) return et_err_set(err, ET_ENOTFOUND, "%s: missing field 'model'", file);
    if (!cJSON_IsObject(m))
        return et_err_set(err, ET_EFORMAT, "%s: model: expected an object, got %s", file, et_json_type_name(m));
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(m, "type");
    const char *type = NULL;
    if (mt) {
        if (!cJSON_IsString(mt))
            return et_err_set(err, ET_EFORMAT, "%s: model.type: expected a string, got %s", file,
                              et_json_type_name(mt));
        type = mt->valuestring;
    } else {
        const cJSON *voc = cJSON_GetObjectItemCaseSensitive(m, "vocab");
        if (cJSON_IsArray(voc)) type = "Unigram";
        else if (cJSON_GetObjectItemCaseSensitive(m, "merges")) type = "BPE";
        else if (cJSON_GetObjectItemCaseSensitive(m, "continuing_subword_prefix")) type = "WordPiece";
        else if (voc) type = "WordLevel";
        else return et_err_set(err, ET_EFORMAT, "%s: model: no 'type' and no recognizable fields", file);
    }
    if (!strcmp(type, "WordPiece")) rc = tok_wordpiece_parse(&t->model, m, file, err);
    else if (!strcmp(type, "Unigram")) rc = tok_unigram_parse(&t->model, m, file, err);
    else return et_err_set(err, ET_EUNSUPPORTED, "%s: model.type: unsupported '%s' (supported: WordPiece, "
                           "Unigram)", file, type);
    if (rc) return rc;

    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (n && !cJSON_IsNull(n)) {
        if (!(t->normalizer = et_calloc(1, sizeof(tok_normalizer), err))) return ET_ENOMEM;
        if ((rc = tok_normalizer_parse(t->normalizer, n, file, "normalizer", err))) return rc;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (p && !cJSON_IsNull(p)) {
        if (!(t->pretok = et_calloc(1, sizeof(tok_pretok), err))) return ET_ENOMEM;
        if ((rc = tok_pretok_parse(t->pretok, p, file, "pre_tokenizer", err))) return rc;
    }
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (pp && !cJSON_IsNull(pp)) {
        if (!(t->post = et_calloc(1, sizeof(tok_post), err))) return ET_ENOMEM;
        if ((rc = tok_post_parse(t->post, pp, file, "post_processor", err))) return rc;
    }
    if ((rc = parse_added_tokens(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), file, err)))
        return rc;
    return finish(t, err);
}

static et_tokenizer *new_tok(et_error *err) {
    et_tokenizer *t = et_calloc(1, sizeof(*t), err);
    if (!t) return NULL;
    et_strmap_init(&t->added_map);
    pthread_mutex_init(&t->ws_mu, NULL);
    return t;
}

/* A workspace from the tokenizer's free list (or a new one); NULL on OOM. */
static tok_ws *ws_get(const et_tokenizer *tc, et_error *err) {
    et_tokenizer *t = (et_tokenizer *)tc; /* the free list is the only mutable state */
    tok_ws *w = NULL;
    pthread_mutex_lock(&t->ws_mu);
    if (t->n_ws_free) w = t->ws_free[--t->n_ws_free];
    pthread_mutex_unlock(&t->ws_mu);
    if (!w) w = et_calloc(1, sizeof(*w), err);
    return w;
}

/* Returns a workspace to the free list; very large ones are released. */
static void ws_put(const et_tokenizer *tc, tok_ws *w) {
    et_tokenizer *t = (et_tokenizer *)tc;
    if (w->cap > ((size_t)64 << 20)) {
        tok_ws_free(w);
        memset(w, 0, sizeof(*w));
    }
    pthread_mutex_lock(&t->ws_mu);
    if (t->n_ws_free < ET_ARRAY_LEN(t->ws_free)) { t->ws_free[t->n_ws_free++] = w; w = NULL; }
    pthread_mutex_unlock(&t->ws_mu);
    if (w) { tok_ws_free(w); free(w); }
}

int et_tokenizer_load_buffer(et_tokenizer **out, const char *data, size_t len, const char *name,
                             et_error *err) {
    *out = NULL;
    cJSON *root;
    int rc = et_json_parse(&root, data, len, name, err);
    if (rc) return rc;
    et_tokenizer *t = new_tok(err);
    if (!t) { cJSON_Delete(root); return ET_ENOMEM; }
    rc = load_json(t, root, name, err);
    cJSON_Delete(root);
    if (!rc && !(t->path = et_strdup(name, err))) rc = ET_ENOMEM;
    if (rc) { et_tokenizer_free(t); return rc; }
    *out = t;
    return ET_OK;
}

int et_tokenizer_load(et_tokenizer **out, const char *path, et_error *err) {
    *out = NULL;
    char *data;
    size_t len;
    int rc = et_read_file(path, (size_t)1 << 30, &data, &len, err);
    if (rc) return rc;
    rc = et_tokenizer_load_buffer(out, data, len, path, err);
    free(data);
    return rc;
}

/* Special token from tokenizer_config.json: a string or {"content": ...}. */
static int cfg_token(const cJSON *cfg, const char *key, const char *dflt, const char *file, char **out,
                     int *lstrip, int *rstrip, int *normalized, et_error *err) {
    const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    *lstrip = *rstrip = *normalized = 0;
    const char *s = dflt;
    if (v && !cJSON_IsNull(v)) {
        if (cJSON_IsString(v)) s = v->valuestring;
        else if (cJSON_IsObject(v) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "content"))) {
            s = cJSON_GetObjectItemCaseSensitive(v, "content")->valuestring;
            *lstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "lstrip"));
            *rstrip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "rstrip"));
            *normalized = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "normalized"));
        } else
            return et_err_set(err, ET_EFORMAT, "%s: field '%s': expected a string or {\"content\": ...}, got %s",
                              file, key, et_json_type_name(v));
    }
    *out = et_strdup(s, err);
    return *out ? ET_OK : ET_ENOMEM;
}

/* BertTokenizerFast built from vocab.txt, as transformers' BertConverter does; special tokens
 * from special_tokens_map.json (when present) override tokenizer_config.json's. */
static int load_vocab_txt(et_tokenizer *t, const char *vocab, const char *cfg_path, const char *map_path,
                          et_error *err) {
    cJSON *cfg = NULL, *smap = NULL;
    int rc;
    if (map_path && et_file_exists(map_path)) {
        if ((rc = et_json_load(&smap, map_path, err))) return rc;
        if (!cJSON_IsObject(smap)) {
            cJSON_Delete(smap);
            return et_err_set(err, ET_EFORMAT, "%s: expected a JSON object", map_path);
        }
    }
    if (cfg_path && et_file_exists(cfg_path)) {
        if ((rc = et_json_load(&cfg, cfg_path, err))) { cJSON_Delete(smap); return rc; }
        if (!cJSON_IsObject(cfg)) {
            cJSON_Delete(cfg);
            cJSON_Delete(smap);
            return et_err_set(err, ET_EFORMAT, "%s: expected a JSON object", cfg_path);
        }
    }
    const char *cf = cfg_path ? cfg_path : "tokenizer_config.json";
    int lower = 1, chinese = 1, strip = -1;
    rc = et_json_opt_bool(cfg, cf, "do_lower_case", &lower, err);
    if (!rc) rc = et_json_opt_bool(cfg, cf, "tokenize_chinese_chars", &chinese, err);
    if (!rc) rc = et_json_opt_bool(cfg, cf, "strip_accents", &strip, err);
    static const char *keys[] = {"unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
    static const char *dflts[] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
    char *names[5] = {0};
    int ls[5], rs[5], nz[5];
    for (int k = 0; k < 5 && !rc; k++) {
        int in_map = smap && cJSON_GetObjectItemCaseSensitive(smap, keys[k]);
        rc = cfg_token(in_map ? smap : cfg, keys[k], dflts[k], in_map ? map_path : cf, &names[k], &ls[k],
                       &rs[k], &nz[k], err);
    }
    cJSON_Delete(cfg);
    cJSON_Delete(smap);
    if (!rc) rc = tok_wordpiece_from_vocab_txt(&t->model, vocab, err);
    if (!rc) {
        free(t->model.unk_token);
        t->model.unk_token = et_strdup(names[0], err);
        if (!t->model.unk_token) rc = ET_ENOMEM;
        else {
            int64_t v;
            t->model.unk_id = et_strmap_get(&t->model.vocab, names[0], strlen(names[0]), &v) ? (int32_t)v : -1;
        }
    }
    if (!rc) {
        if (!(t->normalizer = et_calloc(1, sizeof(tok_normalizer), err))) rc = ET_ENOMEM;
        else {
            t->normalizer->type = TOK_N_BERT;
            t->normalizer->clean_text = 1;
            t->normalizer->chinese = chinese;
            t->normalizer->lowercase = lower;
            t->normalizer->strip_accents = strip < 0 ? lower : strip;
        }
    }
    if (!rc) {
        if (!(t->pretok = et_calloc(1, sizeof(tok_pretok), err))) rc = ET_ENOMEM;
        else t->pretok->type = TOK_P_BERT;
    }
    if (!rc) {
        int64_t cls, sep;
        if (!et_strmap_get(&t->model.vocab, names[3], strlen(names[3]), &cls) ||
            !et_strmap_get(&t->model.vocab, names[1], strlen(names[1]), &sep))
            rc = et_err_set(err, ET_EFORMAT, "%s: the cls token '%s' or sep token '%s' is not in the "
                            "vocabulary", vocab, names[3], names[1]);
        else if (!(t->post = et_calloc(1, sizeof(tok_post), err))) rc = ET_ENOMEM;
        else {
            t->post->type = TOK_PP_TEMPLATE;
            t->post->single = et_calloc(3, sizeof(tok_tpl_piece), err);
            if (!t->post->single) rc = ET_ENOMEM;
            else {
                t->post->n_single = 3;
                t->post->added_single = 2;
                t->post->added_pair = 3;
                t->post->single[1].is_seq = 1;
                for (int k = 0; k < 3 && !rc; k += 2) {
                    tok_tpl_piece *pc = &t->post->single[k];
                    pc->n_ids = 1;
                    pc->ids = et_malloc(sizeof(int32_t), err);
                    pc->toks = et_calloc(1, sizeof(char *), err);
                    if (!pc->ids || !pc->toks) { rc = ET_ENOMEM; break; }
                    pc->ids[0] = (int32_t)(k == 0 ? cls : sep);
                    if (!(pc->toks[0] = et_strdup(names[k == 0 ? 3 : 1], err))) rc = ET_ENOMEM;
                }
            }
        }
    }
    if (!rc) {
        /* special tokens, in transformers' all_special_tokens order: unk sep pad cls mask */
        added_state st;
        memset(&st, 0, sizeof(st));
        st.max_id = -1;
        for (int k = 0; k < 5 && !rc; k++) {
            tok_added a = {0};
            a.len = strlen(names[k]);
            a.content = own_str(t, names[k], a.len, err);
            if (!a.content) { rc = ET_ENOMEM; break; }
            a.special = 1;
            a.lstrip = ls[k];
            a.rstrip = rs[k];
            a.normalized = nz[k];
            rc = add_token(t, &st, &a, err);
        }
        if (!rc) rc = build_added(t, &st, err);
        free(st.by_id.v);
        free(st.specials.v);
        free(st.classics.v);
    }
    for (int k = 0; k < 5; k++) free(names[k]);
    if (!rc) rc = finish(t, err);
    return rc;
}

int et_tokenizer_load_dir(et_tokenizer **out, const char *dir, et_error *err) {
    *out = NULL;
    char *tj = et_path_join(dir, "tokenizer.json", err);
    if (!tj) return ET_ENOMEM;
    if (et_file_exists(tj)) {
        int rc = et_tokenizer_load(out, tj, err);
        free(tj);
        return rc;
    }
    free(tj);
    char *vt = et_path_join(dir, "vocab.txt", err);
    char *cf = et_path_join(dir, "tokenizer_config.json", err);
    char *sm = et_path_join(dir, "special_tokens_map.json", err);
    int rc = ET_OK;
    if (!vt || !cf || !sm) rc = ET_ENOMEM;
    else if (!et_file_exists(vt))
        rc = et_err_set(err, ET_ENOTFOUND, "%s: no tokenizer.json and no vocab.txt in this directory", dir);
    et_tokenizer *t = NULL;
    if (!rc && !(t = new_tok(err))) rc = ET_ENOMEM;
    if (!rc) rc = load_vocab_txt(t, vt, cf, sm, err);
    if (!rc && !(t->path = et_strdup(vt, err))) rc = ET_ENOMEM;
    free(vt);
    free(cf);
    free(sm);
    if (rc) { et_tokenizer_free(t); return rc; }
    *out = t;
    return ET_OK;
}

/* ---- encoding ------------------------------------------------------------------------- */

static int is_word_start(const char *s, size_t len) {
    if (!len) return 0;
    size_t n;
    return tok_is_word(tok_utf8_next(s, len, &n));
}
static int is_word_end(const char *s, size_t len) {
    if (!len) return 0;
    size_t b = len - 1;
    while (b > 0 && ((uint8_t)s[b] & 0xC0) == 0x80) b--;
    size_t n;
    return tok_is_word(tok_utf8_next(s + b, len - b, &n));
}

/* HF AddedVocabulary::find_matches + split_with_indices on split si, pushing onto sp2. */
static int split_added(const et_tokenizer *t, const tok_trie *trie, tok_ws *w, size_t si, et_error *err) {
    tok_split src = w->sp[si];
    const char *s = w->text + src.off;
    size_t len = src.len, start_offset = 0, p = 0;
    int rc;
    tok_split piece;
    while (p < len) {
        /* leftmost-longest match starting at p */
        uint32_t node = 0;
        size_t best = 0;
        int32_t best_id = -1;
        for (size_t q = p; q < len; q++) {
            node = tok_trie_step(trie, node, (uint8_t)s[q]);
            if (!node) break;
            if (trie->value[node] >= 0) { best = q + 1; best_id = trie->value[node]; }
        }
        if (best_id < 0) { p++; continue; }
        size_t start = p, stop = best;
        p = best;
        const tok_added *a = added_by_id(t, best_id);
        if (a && a->single_word) {
            int start_space = start == 0 || !is_word_end(s, start);
            int stop_space = stop == len || !is_word_start(s + stop, len - stop);
            if (!start_space || !stop_space) continue;
        }
        if (a && a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t b = ns - 1;
                while (b > 0 && ((uint8_t)s[b] & 0xC0) == 0x80) b--;
                size_t n;
                if (!tok_is_whitespace(tok_utf8_next(s + b, len - b, &n))) break;
                ns = b;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a && a->rstrip) {
            while (stop < len) {
                size_t n;
                if (!tok_is_whitespace(tok_utf8_next(s + stop, len - stop, &n))) break;
                stop += n;
            }
        }
        if (start < start_offset) start = start_offset; /* overlap after an rstrip: clamp */
        if (start_offset < start) {
            piece.off = src.off + start_offset;
            piece.len = start - start_offset;
            piece.orig_s = w->al[piece.off].s;
            piece.orig_e = w->al[piece.off + piece.len - 1].e;
            piece.added_id = -1;
            if ((rc = tok_ws_push_split(w, &piece, err))) return rc;
        }
        if (stop > start) {
            piece.off = src.off + start;
            piece.len = stop - start;
            piece.orig_s = w->al[piece.off].s;
            piece.orig_e = w->al[piece.off + piece.len - 1].e;
            piece.added_id = best_id;
            if ((rc = tok_ws_push_split(w, &piece, err))) return rc;
        }
        start_offset = stop;
        if (p < stop) p = stop;
    }
    if (start_offset < len) {
        piece.off = src.off + start_offset;
        piece.len = len - start_offset;
        piece.orig_s = w->al[piece.off].s;
        piece.orig_e = w->al[piece.off + piece.len - 1].e;
        piece.added_id = -1;
        if ((rc = tok_ws_push_split(w, &piece, err))) return rc;
    }
    return ET_OK;
}

static int extract_added(const et_tokenizer *t, const tok_trie *trie, tok_ws *w, et_error *err) {
    w->nsp2 = 0;
    int rc;
    for (size_t si = 0; si < w->nsp; si++) {
        if (w->sp[si].added_id >= 0 || w->sp[si].len == 0) {
            if (w->sp[si].len && (rc = tok_ws_push_split(w, &w->sp[si], err))) return rc;
            continue;
        }
        if ((rc = split_added(t, trie, w, si, err))) return rc;
    }
    tok_ws_swap_splits(w);
    return ET_OK;
}

static size_t nchars(const char *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((uint8_t)s[i] & 0xC0) != 0x80;
    return n;
}

/* Leading/trailing whitespace chars of a token's string (RoBERTa offset trimming). */
static void count_ws(const char *s, size_t len, size_t *lead, size_t *trail) {
    size_t i = 0, n;
    *lead = *trail = 0;
    while (i < len) {
        uint32_t c = tok_utf8_next(s + i, len - i, &n);
        if (c != 0x120 && !tok_is_whitespace(c)) break;
        (*lead)++;
        i += n;
    }
    size_t j = len;
    while (j > 0) {
        size_t b = j - 1;
        while (b > 0 && ((uint8_t)s[b] & 0xC0) == 0x80) b--;
        uint32_t c = tok_utf8_next(s + b, len - b, &n);
        if (c != 0x120 && !tok_is_whitespace(c)) break;
        (*trail)++;
        j = b;
    }
}


static int enc_reserve(tok_enc *e, size_t n, et_error *err) {
    if (n <= e->cap) return ET_OK;
    size_t nc = e->cap ? e->cap : 64;
    while (nc < n) nc *= 2;
#define RE(f) do { void *q = et_realloc_n(e->f, nc, sizeof(*e->f), err); if (!q) return ET_ENOMEM; e->f = q; } while (0)
    RE(id); RE(type); RE(spec); RE(s); RE(e); RE(lead); RE(trail);
#undef RE
    e->cap = nc;
    return ET_OK;
}

static int enc_push(tok_enc *e, int32_t id, uint32_t type, uint8_t spec, size_t s, size_t en,
                    uint32_t lead, uint32_t trail, et_error *err) {
    int rc = enc_reserve(e, e->n + 1, err);
    if (rc) return rc;
    e->id[e->n] = id; e->type[e->n] = type; e->spec[e->n] = spec;
    e->s[e->n] = s; e->e[e->n] = en; e->lead[e->n] = lead; e->trail[e->n] = trail;
    e->n++;
    return ET_OK;
}

static int post_uses_trim(const tok_post *p) {
    if (!p) return 0;
    if (p->type == TOK_PP_ROBERTA) return p->trim_offsets;
    for (size_t i = 0; i < p->n_kids; i++) if (post_uses_trim(&p->kids[i])) return 1;
    return 0;
}

/* Advances k chars forward from byte offset o in text (bounded by lim). */
static size_t fwd_chars(const char *text, size_t o, size_t k, size_t lim) {
    while (k-- > 0 && o < lim) o += tok_utf8_len((uint8_t)text[o]);
    return o > lim ? lim : o;
}
static size_t back_chars(const char *text, size_t o, size_t k) {
    while (k-- > 0 && o > 0) {
        o--;
        while (o > 0 && ((uint8_t)text[o] & 0xC0) == 0x80) o--;
    }
    return o;
}

static int process(const tok_post *p, tok_enc *cur, tok_enc *tmp, int add_special, const char *text,
                   et_error *err) {
    int rc;
    switch (p->type) {
    case TOK_PP_SEQUENCE:
        for (size_t i = 0; i < p->n_kids; i++)
            if ((rc = process(&p->kids[i], cur, tmp, add_special, text, err))) return rc;
        return ET_OK;
    case TOK_PP_ROBERTA:
        if (p->trim_offsets) {
            for (size_t i = 0; i < cur->n; i++) {
                size_t lead = cur->lead[i], trail = cur->trail[i];
                if (!lead && !trail) continue;
                if (lead) {
                    int first = i == 0 || cur->s[i] == 0;
                    if (first && p->add_prefix_space && lead == 1) lead = 0;
                    cur->s[i] = fwd_chars(text, cur->s[i], lead, cur->e[i]);
                }
                if (trail) {
                    /* HF: if end >= trailing (in chars): end = max(end - trailing, start) */
                    size_t ne = back_chars(text, cur->e[i], trail);
                    size_t back = 0, o = cur->e[i];
                    while (o > 0 && back < trail) { o = back_chars(text, o, 1); back++; }
                    if (back == trail) cur->e[i] = ne < cur->s[i] ? cur->s[i] : ne;
                }
            }
        }
        for (size_t i = 0; i < cur->n; i++) cur->type[i] = 0;
        /* fallthrough */
    case TOK_PP_BERT:
        if (!add_special) return ET_OK;
        tmp->n = 0;
        if ((rc = enc_reserve(tmp, cur->n + 2, err))) return rc;
        {
            size_t l, t2;
            count_ws(p->cls_tok, strlen(p->cls_tok), &l, &t2);
            enc_push(tmp, p->cls_id, 0, 1, 0, 0, (uint32_t)l, (uint32_t)t2, err);
            for (size_t i = 0; i < cur->n; i++)
                enc_push(tmp, cur->id[i], cur->type[i], cur->spec[i], cur->s[i], cur->e[i], cur->lead[i],
                         cur->trail[i], err);
            count_ws(p->sep_tok, strlen(p->sep_tok), &l, &t2);
            enc_push(tmp, p->sep_id, 0, 1, 0, 0, (uint32_t)l, (uint32_t)t2, err);
        }
        break;
    case TOK_PP_TEMPLATE:
        tmp->n = 0;
        for (size_t k = 0; k < p->n_single; k++) {
            const tok_tpl_piece *pc = &p->single[k];
            if (pc->is_seq) {
                if ((rc = enc_reserve(tmp, tmp->n + cur->n, err))) return rc;
                for (size_t i = 0; i < cur->n; i++)
                    enc_push(tmp, cur->id[i], pc->type_id, cur->spec[i], cur->s[i], cur->e[i],
                             cur->lead[i], cur->trail[i], err);
            } else if (add_special) {
                for (size_t q = 0; q < pc->n_ids; q++) {
                    size_t l, t2;
                    count_ws(pc->toks[q], strlen(pc->toks[q]), &l, &t2);
                    if ((rc = enc_push(tmp, pc->ids[q], pc->type_id, 1, 0, 0, (uint32_t)l, (uint32_t)t2, err)))
                        return rc;
                }
            }
        }
        break;
    default:
        return et_err_set(err, ET_EINVAL, "tokenizer: bad post-processor type %d", p->type);
    }
    tok_enc sw = *cur;
    *cur = *tmp;
    *tmp = sw;
    return ET_OK;
}

static int enc_out_reserve(et_encoding *enc, size_t n, et_error *err) {
    if (n <= enc->cap && enc->ids) return ET_OK;
    size_t nc = n ? n : 1;
    int32_t *a = et_realloc_n(enc->ids, nc, sizeof(int32_t), err);
    if (!a) return ET_ENOMEM;
    enc->ids = a;
    int32_t *b = et_realloc_n(enc->type_ids, nc, sizeof(int32_t), err);
    if (!b) return ET_ENOMEM;
    enc->type_ids = b;
    uint8_t *c = et_realloc_n(enc->special_mask, nc, 1, err);
    if (!c) return ET_ENOMEM;
    enc->special_mask = c;
    size_t *d = et_realloc_n(enc->offsets, nc, 2 * sizeof(size_t), err);
    if (!d) return ET_ENOMEM;
    enc->offsets = d;
    enc->cap = nc;
    return ET_OK;
}

void et_encoding_free(et_encoding *enc) {
    if (!enc) return;
    free(enc->ids);
    free(enc->type_ids);
    free(enc->special_mask);
    free(enc->offsets);
    memset(enc, 0, sizeof(*enc));
}

/* Runs the pipeline up to the model; tokens (ids + normalized offsets) land in w. */
static int run_pipeline(const et_tokenizer *t, tok_ws *w, const char *text, size_t len, et_error *err) {
    int rc = tok_ws_init_text(w, text, len, err);
    if (rc) return rc;
    if (t->n_added_raw && (rc = extract_added(t, &t->added_raw, w, err))) return rc;
    if (t->normalizer)
        for (size_t si = 0; si < w->nsp; si++)
            if (w->sp[si].added_id < 0 && (rc = tok_normalize(t->normalizer, w, si, err))) return rc;
    /* HF re-slices every normalized piece (split_with_indices on the normalized trie, even an
     * empty one): its original range becomes that of its first and last normalized bytes.
     * Empty pieces are dropped, as PreTokenizedString::split does. */
    size_t k = 0;
    for (size_t si = 0; si < w->nsp; si++) {
        tok_split *sp = &w->sp[si];
        if (!sp->len) continue;
        if (sp->added_id < 0) {
            sp->orig_s = w->al[sp->off].s;
            sp->orig_e = w->al[sp->off + sp->len - 1].e;
        }
        w->sp[k++] = *sp;
    }
    w->nsp = k;
    if (t->n_added_norm && (rc = extract_added(t, &t->added_norm, w, err))) return rc;
    if (t->pretok && (rc = tok_pretokenize(t->pretok, w, err))) return rc;
    w->ntok = 0;
    for (size_t si = 0; si < w->nsp; si++) {
        const tok_split *sp = &w->sp[si];
        size_t first = w->ntok;
        if (sp->added_id >= 0) rc = tok_ws_push_token(w, sp->added_id, 0, sp->len, TOK_KIND_ADDED, err);
        else if (t->model.type == TOK_M_WORDPIECE)
            rc = tok_wordpiece_tokenize(&t->model, w, w->text + sp->off, sp->len, err);
        else rc = tok_unigram_tokenize(&t->model, w, w->text + sp->off, sp->len, err);
        if (rc) return rc;
        for (size_t q = first; q < w->ntok; q++) w->tsplit[q] = (uint32_t)si;
    }
    return ET_OK;
}

static const char *token_value(const et_tokenizer *t, const tok_ws *w, size_t q, size_t *len,
                               const char **pre, size_t *pre_len) {
    const tok_split *sp = &w->sp[w->tsplit[q]];
    *pre = NULL;
    *pre_len = 0;
    switch (w->tkind[q]) {
    case TOK_KIND_CONT:
        *pre = t->model.prefix;
        *pre_len = t->model.prefix_len;
        /* fallthrough */
    case TOK_KIND_PIECE:
    case TOK_KIND_ADDED:
        *len = w->te[q] - w->ts[q];
        return w->text + sp->off + w->ts[q];
    case TOK_KIND_UNK:
        if (t->model.type == TOK_M_WORDPIECE) { *len = strlen(t->model.unk_token); return t->model.unk_token; }
        *len = w->te[q] - w->ts[q];
        return w->text + sp->off + w->ts[q];
    default:
        *len = 0;
        return "";
    }
}

int et_tokenizer_encode(const et_tokenizer *t, const char *text, size_t len, int add_special,
                        size_t max_len, et_encoding *enc, et_error *err) {
    if (!t || !enc || (!text && len))
        return et_err_set(err, ET_EINVAL, "et_tokenizer_encode: NULL argument");
    enc->n = 0;
    char *fixed = NULL;
    size_t *map = NULL;
    int rc = ET_OK;
    if (t->lower_input) { /* offsets refer to the lowercased text */
        size_t flen;
        if ((rc = tok_py_lower(text, len, &fixed, &flen, err))) return rc;
        text = fixed;
        len = flen;
    } else if (tok_utf8_valid_prefix(text, len) != len) {
        size_t flen;
        if ((rc = tok_utf8_lossy(text, len, &fixed, &flen, &map, err))) return rc;
        text = fixed;
        len = flen;
    }
    tok_ws *wp = ws_get(t, err);
    if (!wp) { free(fixed); free(map); return ET_ENOMEM; }
#define w (*wp)
    tok_enc *curp = &w.enc, *tmpp = &w.enc2;
#define cur (*curp)
#define tmp (*tmpp)
    cur.n = tmp.n = 0;
    size_t n_special = t->post ? t->post->added_single : 0;
    if ((rc = run_pipeline(t, &w, text, len, err))) goto done;
    int trim = post_uses_trim(t->post);
    if ((rc = enc_reserve(&cur, w.ntok + 1, err))) goto done;
    for (size_t q = 0; q < w.ntok; q++) {
        uint32_t os, oe;
        tok_convert_offsets(&w, &w.sp[w.tsplit[q]], w.ts[q], w.te[q], &os, &oe);
        size_t lead = 0, trail = 0;
        if (trim) {
            size_t vl, pl;
            const char *pre;
            const char *v = token_value(t, &w, q, &vl, &pre, &pl);
            size_t l1, t1, l2, t2, c1 = nchars(pre, pl), c2 = nchars(v, vl);
            count_ws(pre ? pre : "", pl, &l1, &t1);
            count_ws(v, vl, &l2, &t2);
            /* the token string is pre + v */
            lead = l1 == c1 ? l1 + l2 : l1;
            trail = t2 == c2 ? t2 + t1 : t2;
        }
        enc_push(&cur, w.tid[q], 0, 0, os, oe, (uint32_t)lead, (uint32_t)trail, err);
    }
    /* truncation, as HF post_process does before the post-processor */
    if (max_len > 0) {
        size_t eff = max_len;
        if (add_special && n_special > 0) {
            if (max_len < n_special) {
                rc = et_err_set(err, ET_EINVAL, "tokenizer: max length %zu is smaller than the %zu special "
                                "tokens added to every sequence", max_len, n_special);
                goto done;
            }
            eff = max_len - n_special;
        }
        if (cur.n > eff) cur.n = eff;
    }
    if (t->post && (rc = process(t->post, &cur, &tmp, add_special, text, err))) goto done;
    if ((rc = enc_out_reserve(enc, cur.n, err))) goto done;
    for (size_t i = 0; i < cur.n; i++) {
        enc->ids[i] = cur.id[i];
        enc->type_ids[i] = (int32_t)cur.type[i];
        enc->special_mask[i] = cur.spec[i];
        size_t s = cur.s[i], e = cur.e[i];
        if (map && !cur.spec[i]) { s = map[s]; e = map[e]; }
        enc->offsets[2 * i] = s;
        enc->offsets[2 * i + 1] = e;
    }
    enc->n = cur.n;
done:
#undef w
#undef cur
#undef tmp
    ws_put(t, wp);
    free(fixed);
    free(map);
    return rc;
}

int et_tokenizer_count(const et_tokenizer *t, const char *text, size_t len, size_t *n_tokens,
                       et_error *err) {
    if (!t || !n_tokens || (!text && len))
        return et_err_set(err, ET_EINVAL, "et_tokenizer_count: NULL argument");
    char *fixed = NULL;
    int rc;
    if (t->lower_input) {
        size_t flen;
        if ((rc = tok_py_lower(text, len, &fixed, &flen, err))) return rc;
        text = fixed;
        len = flen;
    } else if (tok_utf8_valid_prefix(text, len) != len) {
        size_t flen;
        if ((rc = tok_utf8_lossy(text, len, &fixed, &flen, NULL, err))) return rc;
        text = fixed;
        len = flen;
    }
    tok_ws *w = ws_get(t, err);
    if (!w) { free(fixed); return ET_ENOMEM; }
    rc = run_pipeline(t, w, text, len, err);
    if (!rc) *n_tokens = w->ntok;
    ws_put(t, w);
    free(fixed);
    return rc;
}

void et_tokenizer_set_lower_input(et_tokenizer *t, int on) {
    if (t) t->lower_input = on;
}

size_t et_tokenizer_vocab_size(const et_tokenizer *t) { return t ? t->vocab_size : 0; }
const char *et_tokenizer_type(const et_tokenizer *t) { return t ? t->type_name : ""; }
size_t et_tokenizer_num_special(const et_tokenizer *t) { return t ? tok_post_added(t->post, 0) : 0; }

const char *et_tokenizer_id_to_token(const et_tokenizer *t, int32_t id) {
    if (!t || id < 0) return NULL;
    const tok_added *a = added_by_id(t, id);
    if (a) return a->content;
    if ((size_t)id >= t->model.n_ids || t->model.tok_off[id] == SIZE_MAX) return NULL;
    return t->model.strs + t->model.tok_off[id];
}

int32_t et_tokenizer_token_to_id(const et_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    int64_t v;
    size_t n = strlen(token);
    if (et_strmap_get(&t->added_map, token, n, &v)) return (int32_t)v;
    if (et_strmap_get(&t->model.vocab, token, n, &v)) return (int32_t)v;
    return -1;
}

static const char *special_str(const tok_post *p, int32_t id) {
    if (!p) return NULL;
    if ((p->type == TOK_PP_BERT || p->type == TOK_PP_ROBERTA)) {
        if (id == p->cls_id) return p->cls_tok;
        if (id == p->sep_id) return p->sep_tok;
    }
    for (size_t k = 0; k < p->n_single; k++)
        for (size_t q = 0; q < p->single[k].n_ids; q++)
            if (p->single[k].ids[q] == id) return p->single[k].toks[q];
    for (size_t i = 0; i < p->n_kids; i++) {
        const char *s = special_str(&p->kids[i], id);
        if (s) return s;
    }
    return NULL;
}

const char *et_tokenizer_special_str(const et_tokenizer *t, int32_t id) {
    return t ? special_str(t->post, id) : NULL;
}
