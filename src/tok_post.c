/* tok_post.c - HF post-processors: TemplateProcessing, BertProcessing, RobertaProcessing,
 * Sequence (parsing; tokenizer.c applies them to single sequences). */
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static int parse_pair(const cJSON *j, const char *k, const char *file, const char *path, char **tok,
                      int32_t *id, et_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!v) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field '%s'", file, path, k);
    const cJSON *s = cJSON_GetArrayItem(v, 0), *n = cJSON_GetArrayItem(v, 1);
    long x;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsString(s) ||
        et_json_as_long(n, 0, INT32_MAX, &x))
        return et_err_set(err, ET_EFORMAT, "%s: %s.%s: expected [token, id], got %s", file, path, k,
                          et_json_type_name(v));
    *tok = et_strdup(s->valuestring, err);
    if (!*tok) return ET_ENOMEM;
    *id = (int32_t)x;
    return ET_OK;
}

static int get_bool(const cJSON *j, const char *k, int dflt, const char *file, const char *path,
                    int *out, et_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!v || cJSON_IsNull(v)) { *out = dflt; return ET_OK; }
    if (!cJSON_IsBool(v))
        return et_err_set(err, ET_EFORMAT, "%s: %s.%s: expected a boolean, got %s", file, path, k,
                          et_json_type_name(v));
    *out = cJSON_IsTrue(v);
    return ET_OK;
}

/* Parses a template (array of pieces); counts the special tokens it adds into *added.
 * keep != NULL: stores the pieces. */
static int parse_template(const cJSON *arr, const cJSON *specials, const char *file, const char *path,
                          int is_pair, tok_tpl_piece **keep, size_t *n_keep, size_t *added,
                          et_error *err) {
    if (!cJSON_IsArray(arr))
        return et_err_set(err, ET_EFORMAT, "%s: %s: expected an array of pieces, got %s", file, path,
                          et_json_type_name(arr));
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    *added = 0;
    if (keep) {
        *keep = et_calloc(n ? n : 1, sizeof(tok_tpl_piece), err);
        if (!*keep) return ET_ENOMEM;
        *n_keep = 0;
    }
    const cJSON *p;
    cJSON_ArrayForEach(p, arr) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(p, "Sequence");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "SpecialToken");
        const cJSON *body = seq ? seq : sp;
        if (!cJSON_IsObject(p) || !cJSON_IsObject(body) || (seq && sp))
            return et_err_set(err, ET_EFORMAT, "%s: %s[%zu]: expected {\"Sequence\": {...}} or "
                              "{\"SpecialToken\": {...}}", file, path, i);
        const cJSON *idv = cJSON_GetObjectItemCaseSensitive(body, "id");
        const cJSON *tv = cJSON_GetObjectItemCaseSensitive(body, "type_id");
        long type_id = 0;
        if (tv && et_json_as_long(tv, 0, UINT32_MAX, &type_id))
            return et_err_set(err, ET_EFORMAT, "%s: %s[%zu].type_id: expected a non-negative integer",
                              file, path, i);
        if (!cJSON_IsString(idv))
            return et_err_set(err, ET_EFORMAT, "%s: %s[%zu].id: expected a string, got %s", file,
                              path, i, et_json_type_name(idv));
        tok_tpl_piece pc;
        memset(&pc, 0, sizeof(pc));
        pc.type_id = (uint32_t)type_id;
        if (seq) {
            pc.is_seq = 1;
            if (!strcmp(idv->valuestring, "A")) pc.seq_b = 0;
            else if (!strcmp(idv->valuestring, "B")) pc.seq_b = 1;
            else
                return et_err_set(err, ET_EFORMAT, "%s: %s[%zu].Sequence.id: expected \"A\" or \"B\", "
                                  "got '%.50s'", file, path, i, idv->valuestring);
            if (pc.seq_b && !is_pair)
                return et_err_set(err, ET_EFORMAT, "%s: %s[%zu]: the single-sequence template uses "
                                  "sequence B", file, path, i);
        } else {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(specials, idv->valuestring);
            if (!st)
                return et_err_set(err, ET_EFORMAT, "%s: %s[%zu]: special token '%.100s' is not in "
                                  "post_processor.special_tokens", file, path, i, idv->valuestring);
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(st, "ids");
            const cJSON *toks = cJSON_GetObjectItemCaseSensitive(st, "tokens");
            if (!cJSON_IsArray(ids) || !cJSON_IsArray(toks) ||
                cJSON_GetArraySize(ids) != cJSON_GetArraySize(toks))
                return et_err_set(err, ET_EFORMAT, "%s: post_processor.special_tokens['%.100s']: "
                                  "expected arrays 'ids' and 'tokens' of the same length", file,
                                  idv->valuestring);
            size_t k = (size_t)cJSON_GetArraySize(ids);
            *added += k;
            if (keep) {
                pc.n_ids = k;
                pc.ids = et_malloc_n(k ? k : 1, sizeof(int32_t), err);
                pc.toks = et_calloc(k ? k : 1, sizeof(char *), err);
                if (!pc.ids || !pc.toks) { free(pc.ids); free(pc.toks); return ET_ENOMEM; }
                (*keep)[(*n_keep)++] = pc;
                for (size_t q = 0; q < k; q++) {
                    const cJSON *a = cJSON_GetArrayItem(ids, (int)q), *b = cJSON_GetArrayItem(toks, (int)q);
                    long x;
                    if (et_json_as_long(a, 0, INT32_MAX, &x) || !cJSON_IsString(b))
                        return et_err_set(err, ET_EFORMAT, "%s: post_processor.special_tokens"
                                          "['%.100s']: ids must be integers and tokens strings", file,
                                          idv->valuestring);
                    pc.ids[q] = (int32_t)x;
                    if (!(pc.toks[q] = et_strdup(b->valuestring, err))) return ET_ENOMEM;
                }
                i++;
                continue;
            }
        }
        if (keep) (*keep)[(*n_keep)++] = pc;
        i++;
    }
    return ET_OK;
}

int tok_post_parse(tok_post *p, const cJSON *j, const char *file, const char *path, et_error *err) {
    memset(p, 0, sizeof(*p));
    const char *ty = NULL;
    int rc = tok_json_type(j, file, path, &ty, err);
    if (rc) return rc;
    char sub[512];
    if (!strcmp(ty, "TemplateProcessing")) {
        p->type = TOK_PP_TEMPLATE;
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
        if (specials && !cJSON_IsObject(specials))
            return et_err_set(err, ET_EFORMAT, "%s: %s.special_tokens: expected an object, got %s",
                              file, path, et_json_type_name(specials));
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single");
        const cJSON *pair = cJSON_GetObjectItemCaseSensitive(j, "pair");
        if (!single) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field 'single'", file, path);
        snprintf(sub, sizeof(sub), "%s.single", path);
        if ((rc = parse_template(single, specials, file, sub, 0, &p->single, &p->n_single,
                                 &p->added_single, err)))
            return rc;
        if (pair) {
            snprintf(sub, sizeof(sub), "%s.pair", path);
            if ((rc = parse_template(pair, specials, file, sub, 1, NULL, NULL, &p->added_pair, err)))
                return rc;
        }
    } else if (!strcmp(ty, "BertProcessing") || !strcmp(ty, "RobertaProcessing")) {
        int rob = ty[0] == 'R';
        p->type = rob ? TOK_PP_ROBERTA : TOK_PP_BERT;
        if ((rc = parse_pair(j, "sep", file, path, &p->sep_tok, &p->sep_id, err)) ||
            (rc = parse_pair(j, "cls", file, path, &p->cls_tok, &p->cls_id, err)))
            return rc;
        if (rob && ((rc = get_bool(j, "trim_offsets", 1, file, path, &p->trim_offsets, err)) ||
                    (rc = get_bool(j, "add_prefix_space", 1, file, path, &p->add_prefix_space, err))))
            return rc;
        p->added_single = 2;
        p->added_pair = rob ? 4 : 3;
    } else if (!strcmp(ty, "Sequence")) {
        p->type = TOK_PP_SEQUENCE;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "processors");
        if (!a) return et_err_set(err, ET_ENOTFOUND, "%s: %s: missing field 'processors'", file, path);
        if (!cJSON_IsArray(a))
            return et_err_set(err, ET_EFORMAT, "%s: %s.processors: expected an array, got %s", file,
                              path, et_json_type_name(a));
        size_t n = (size_t)cJSON_GetArraySize(a), i = 0;
        p->kids = et_calloc(n ? n : 1, sizeof(tok_post), err);
        if (!p->kids) return ET_ENOMEM;
        const cJSON *e;
        cJSON_ArrayForEach(e, a) {
            snprintf(sub, sizeof(sub), "%s.processors[%zu]", path, i);
            rc = tok_post_parse(&p->kids[i], e, file, sub, err);
            p->n_kids = ++i;
            if (rc) return rc;
            p->added_single += p->kids[i - 1].added_single;
            p->added_pair += p->kids[i - 1].added_pair;
        }
    } else {
        return et_err_set(err, ET_EUNSUPPORTED, "%s: %s.type: unsupported '%s'", file, path, ty);
    }
    return ET_OK;
}

void tok_post_free(tok_post *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_single; i++) {
        free(p->single[i].ids);
        if (p->single[i].toks)
            for (size_t k = 0; k < p->single[i].n_ids; k++) free(p->single[i].toks[k]);
        free(p->single[i].toks);
    }
    free(p->single);
    free(p->cls_tok);
    free(p->sep_tok);
    for (size_t i = 0; i < p->n_kids; i++) tok_post_free(&p->kids[i]);
    free(p->kids);
    memset(p, 0, sizeof(*p));
}

size_t tok_post_added(const tok_post *p, int pair) {
    if (!p) return 0;
    return pair ? p->added_pair : p->added_single;
}
