/* dataset.c - retrieval datasets: building, four formats in and out. */
#include "dataset.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define DS_MAX_FILE ((size_t)4 << 30)

et_dataset *et_dataset_new(et_error *err) {
    et_dataset *ds = et_calloc(1, sizeof(*ds), err);
    if (!ds) return NULL;
    et_strmap_init(&ds->doc_index);
    et_strmap_init(&ds->query_index);
    ds->rel_off = et_calloc(1, sizeof(size_t), err);
    ds->neg_off = et_calloc(1, sizeof(size_t), err);
    if (!ds->rel_off || !ds->neg_off) {
        et_dataset_free(ds);
        return NULL;
    }
    return ds;
}

void et_dataset_free(et_dataset *ds) {
    if (!ds) return;
    for (size_t i = 0; i < ds->n_queries; i++) {
        free(ds->qids[i]);
        free(ds->queries[i]);
    }
    for (size_t i = 0; i < ds->n_docs; i++) {
        free(ds->doc_ids[i]);
        free(ds->docs[i]);
    }
    free(ds->qids);
    free(ds->queries);
    free(ds->doc_ids);
    free(ds->docs);
    free(ds->rel_off);
    free(ds->rel);
    free(ds->neg_off);
    free(ds->neg);
    et_strmap_free(&ds->doc_index);
    et_strmap_free(&ds->query_index);
    free(ds);
}

/* Grows *arr (elements of `size` bytes) to hold `need` elements. */
static int grow(void **arr, size_t *cap, size_t need, size_t size, et_error *err) {
    if (need <= *cap) return ET_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *p = et_realloc_n(*arr, c, size, err);
    if (!p) return ET_ENOMEM;
    *arr = p;
    *cap = c;
    return ET_OK;
}

int et_dataset_add_doc(et_dataset *ds, const char *id, const char *text, size_t *index, et_error *err) {
    int64_t old;
    if (et_strmap_get(&ds->doc_index, id, strlen(id), &old)) {
        if (strcmp(ds->docs[old], text) != 0)
            return et_err_set(err, ET_EFORMAT, "corpus id '%s' appears twice with different texts", id);
        if (index) *index = (size_t)old;
        return ET_OK;
    }
    size_t cap = ds->cap_d;
    int rc = grow((void **)&ds->doc_ids, &cap, ds->n_docs + 1, sizeof(char *), err);
    if (!rc) {
        cap = ds->cap_d;
        rc = grow((void **)&ds->docs, &cap, ds->n_docs + 1, sizeof(char *), err);
    }
    if (rc) return rc;
    ds->cap_d = cap;
    char *i = et_strdup(id, err), *t = et_strdup(text, err);
    if (!i || !t) {
        free(i);
        free(t);
        return ET_ENOMEM;
    }
    rc = et_strmap_put(&ds->doc_index, id, strlen(id), (int64_t)ds->n_docs, err);
    if (rc) {
        free(i);
        free(t);
        return rc;
    }
    ds->doc_ids[ds->n_docs] = i;
    ds->docs[ds->n_docs] = t;
    if (index) *index = ds->n_docs;
    ds->n_docs++;
    return ET_OK;
}

int et_dataset_add_doc_text(et_dataset *ds, const char *text, size_t *index, et_error *err) {
    char id[24];
    snprintf(id, sizeof(id), "d%016llx", (unsigned long long)et_hash64(text, strlen(text), 0));
    return et_dataset_add_doc(ds, id, text, index, err);
}

int et_dataset_add_query(et_dataset *ds, const char *qid, const char *text, const size_t *rel,
                         size_t n_rel, const size_t *neg, size_t n_neg, et_error *err) {
    int rc;
    if (et_strmap_get(&ds->query_index, qid, strlen(qid), NULL))
        return et_err_set(err, ET_EFORMAT, "query id '%s' appears twice", qid);
    for (size_t i = 0; i < n_rel; i++)
        if (rel[i] >= ds->n_docs) return et_err_set(err, ET_EINVAL, "query '%s': relevant index out of range", qid);
    for (size_t i = 0; i < n_neg; i++)
        if (neg[i] >= ds->n_docs) return et_err_set(err, ET_EINVAL, "query '%s': negative index out of range", qid);
    size_t cap = ds->cap_q;
    if ((rc = grow((void **)&ds->qids, &cap, ds->n_queries + 1, sizeof(char *), err))) return rc;
    cap = ds->cap_q;
    if ((rc = grow((void **)&ds->queries, &cap, ds->n_queries + 1, sizeof(char *), err))) return rc;
    /* rel_off/neg_off hold n_queries + 1 entries: grow them to cap + 1 */
    size_t *ro = et_realloc_n(ds->rel_off, cap + 1, sizeof(size_t), err);
    if (!ro) return ET_ENOMEM;
    ds->rel_off = ro;
    size_t *no = et_realloc_n(ds->neg_off, cap + 1, sizeof(size_t), err);
    if (!no) return ET_ENOMEM;
    ds->neg_off = no;
    ds->cap_q = cap;
    size_t nr = ds->rel_off[ds->n_queries], nn = ds->neg_off[ds->n_queries];
    if ((rc = grow((void **)&ds->rel, &ds->cap_rel, nr + n_rel, sizeof(size_t), err))) return rc;
    if ((rc = grow((void **)&ds->neg, &ds->cap_neg, nn + n_neg, sizeof(size_t), err))) return rc;
    char *q = et_strdup(qid, err), *t = et_strdup(text, err);
    if (!q || !t) {
        free(q);
        free(t);
        return ET_ENOMEM;
    }
    if ((rc = et_strmap_put(&ds->query_index, qid, strlen(qid), (int64_t)ds->n_queries, err))) {
        free(q);
        free(t);
        return rc;
    }
    if (n_rel) memcpy(ds->rel + nr, rel, n_rel * sizeof(size_t));
    if (n_neg) memcpy(ds->neg + nn, neg, n_neg * sizeof(size_t));
    ds->qids[ds->n_queries] = q;
    ds->queries[ds->n_queries] = t;
    ds->n_queries++;
    ds->rel_off[ds->n_queries] = nr + n_rel;
    ds->neg_off[ds->n_queries] = nn + n_neg;
    return ET_OK;
}

static void note_skip(et_dataset *ds, const char *fmt, const char *file, size_t line) {
    if (!ds->n_skipped) snprintf(ds->skip_reason, sizeof(ds->skip_reason), fmt, file, line);
    ds->n_skipped++;
}

static int is_blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') return 0;
    return 1;
}

/* ---- llama-index JSON ------------------------------------------------------------ */

static int load_llama(et_dataset *ds, const char *path, et_error *err) {
    cJSON *root;
    int rc = et_json_load(&root, path, err);
    if (rc) return rc;
    const cJSON *queries, *corpus, *relevant;
    if ((rc = et_json_req_obj(root, path, "queries", &queries, err)) ||
        (rc = et_json_req_obj(root, path, "corpus", &corpus, err)) ||
        (rc = et_json_req_obj(root, path, "relevant_docs", &relevant, err)))
        goto done;
    const cJSON *it;
    cJSON_ArrayForEach(it, corpus) {
        if (!cJSON_IsString(it)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: corpus['%s']: expected a string, got %s", path,
                            it->string, et_json_type_name(it));
            goto done;
        }
        if (is_blank(it->valuestring)) {
            note_skip(ds, "%s: empty corpus text skipped (first at entry %zu)", path, ds->n_docs);
            continue;
        }
        if ((rc = et_dataset_add_doc(ds, it->string, it->valuestring, NULL, err))) {
            et_err_prefix(err, "%s", path);
            goto done;
        }
    }
    size_t *rel = NULL, cap = 0;
    cJSON_ArrayForEach(it, queries) {
        if (!cJSON_IsString(it)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: queries['%s']: expected a string, got %s", path,
                            it->string, et_json_type_name(it));
            break;
        }
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(relevant, it->string);
        if (!ids) {
            rc = et_err_set(err, ET_EFORMAT, "%s: relevant_docs has no entry for query '%s'", path, it->string);
            break;
        }
        if (!cJSON_IsArray(ids)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: relevant_docs['%s']: expected an array of ids, got %s",
                            path, it->string, et_json_type_name(ids));
            break;
        }
        if (is_blank(it->valuestring)) {
            note_skip(ds, "%s: empty query text skipped (first at query %zu)", path, ds->n_queries);
            continue;
        }
        size_t n = 0;
        const cJSON *id;
        cJSON_ArrayForEach(id, ids) {
            if (!cJSON_IsString(id)) {
                rc = et_err_set(err, ET_EFORMAT, "%s: relevant_docs['%s']: expected string ids, got %s",
                                path, it->string, et_json_type_name(id));
                break;
            }
            int64_t idx;
            if (!et_strmap_get(&ds->doc_index, id->valuestring, strlen(id->valuestring), &idx)) {
                rc = et_err_set(err, ET_EFORMAT, "%s: query '%s': relevant doc '%s' is not in the corpus",
                                path, it->string, id->valuestring);
                break;
            }
            if ((rc = grow((void **)&rel, &cap, n + 1, sizeof(size_t), err))) break;
            rel[n++] = (size_t)idx;
        }
        if (rc) break;
        if (!n) {
            note_skip(ds, "%s: query without relevant docs skipped (first at query %zu)", path, ds->n_queries);
            continue;
        }
        if ((rc = et_dataset_add_query(ds, it->string, it->valuestring, rel, n, NULL, 0, err))) {
            et_err_prefix(err, "%s", path);
            break;
        }
    }
    free(rel);
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- JSONL helpers ------------------------------------------------------------------ */

typedef int (*row_fn)(et_dataset *ds, const cJSON *row, const char *path, size_t line, et_error *err);

static int each_jsonl(et_dataset *ds, const char *path, row_fn fn, et_error *err) {
    char *data;
    size_t len;
    int rc = et_read_file(path, DS_MAX_FILE, &data, &len, err);
    if (rc) return rc;
    size_t line = 0;
    for (size_t pos = 0; pos < len && !rc;) {
        char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        line++;
        size_t b = pos;
        while (b < end && (data[b] == ' ' || data[b] == '\t' || data[b] == '\r')) b++;
        if (b < end) {
            cJSON *row = NULL;
            char what[64];
            snprintf(what, sizeof(what), "line %zu", line);
            rc = et_json_parse(&row, data + b, end - b, what, err);
            if (rc) et_err_prefix(err, "%s", path);
            else rc = fn(ds, row, path, line, err);
            cJSON_Delete(row);
        }
        pos = end + 1;
    }
    free(data);
    return rc;
}

static char *next_qid(et_dataset *ds, char *buf, size_t n) {
    snprintf(buf, n, "q%zu", ds->n_queries);
    return buf;
}

/* A value that is a string, or an array of strings (each one handled). */
static int add_texts(et_dataset *ds, const cJSON *v, const char *path, size_t line, const char *what,
                     size_t **idx, size_t *n, size_t *cap, et_error *err) {
    const cJSON *single[1] = {v};
    if (cJSON_IsArray(v)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, v) {
            int rc = add_texts(ds, it, path, line, what, idx, n, cap, err);
            if (rc) return rc;
        }
        return ET_OK;
    }
    if (!cJSON_IsString(single[0]))
        return et_err_set(err, ET_EFORMAT, "%s:%zu: %s: expected a string, got %s", path, line, what,
                          et_json_type_name(v));
    if (is_blank(v->valuestring)) return ET_OK;
    int rc = grow((void **)idx, cap, *n + 1, sizeof(size_t), err);
    if (rc) return rc;
    return et_dataset_add_doc_text(ds, v->valuestring, &(*idx)[(*n)++], err);
}

static int add_row(et_dataset *ds, const char *query, const cJSON *pos, const cJSON *neg,
                   const char *path, size_t line, et_error *err) {
    size_t *rel = NULL, nrel = 0, crel = 0, *ng = NULL, nneg = 0, cneg = 0;
    int rc = add_texts(ds, pos, path, line, "positive", &rel, &nrel, &crel, err);
    if (!rc && neg) rc = add_texts(ds, neg, path, line, "negative", &ng, &nneg, &cneg, err);
    if (!rc) {
        if (is_blank(query) || !nrel) {
            note_skip(ds, "%s:%zu: row with an empty query or positive skipped", path, line);
        } else {
            char qid[32];
            rc = et_dataset_add_query(ds, next_qid(ds, qid, sizeof(qid)), query, rel, nrel, ng, nneg, err);
        }
    }
    free(rel);
    free(ng);
    return rc;
}

static int pairs_row(et_dataset *ds, const cJSON *row, const char *path, size_t line, et_error *err) {
    if (!cJSON_IsObject(row) && !cJSON_IsArray(row))
        return et_err_set(err, ET_EFORMAT, "%s:%zu: expected an object or array row, got %s", path, line,
                          et_json_type_name(row));
    const cJSON *cols[64];
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, row) {
        if (n < 64) cols[n++] = it;
    }
    if (n < 2)
        return et_err_set(err, ET_EFORMAT, "%s:%zu: expected at least 2 columns (anchor, positive), got %zu",
                          path, line, n);
    if (!cJSON_IsString(cols[0]))
        return et_err_set(err, ET_EFORMAT, "%s:%zu: anchor (first column): expected a string, got %s", path,
                          line, et_json_type_name(cols[0]));
    /* negatives: columns 3.. as an array */
    cJSON *negs = NULL;
    if (n > 2) {
        negs = cJSON_CreateArray();
        if (!negs) return et_err_set(err, ET_ENOMEM, "out of memory");
        for (size_t i = 2; i < n; i++) cJSON_AddItemReferenceToArray(negs, (cJSON *)cols[i]);
    }
    int rc = add_row(ds, cols[0]->valuestring, cols[1], negs, path, line, err);
    cJSON_Delete(negs);
    return rc;
}

static int flag_row(et_dataset *ds, const cJSON *row, const char *path, size_t line, et_error *err) {
    char file[512];
    snprintf(file, sizeof(file), "%s:%zu", path, line);
    const char *q;
    const cJSON *pos;
    int rc = et_json_req_str(row, file, "query", &q, err);
    if (!rc) rc = et_json_req_arr(row, file, "pos", &pos, err);
    if (rc) return rc;
    const cJSON *neg = cJSON_GetObjectItemCaseSensitive(row, "neg");
    if (neg && !cJSON_IsArray(neg))
        return et_err_set(err, ET_EFORMAT, "%s: field 'neg': expected an array, got %s", file,
                          et_json_type_name(neg));
    return add_row(ds, q, pos, neg, path, line, err);
}

/* ---- BEIR --------------------------------------------------------------------------- */

static int beir_corpus_row(et_dataset *ds, const cJSON *row, const char *path, size_t line, et_error *err) {
    char file[512];
    snprintf(file, sizeof(file), "%s:%zu", path, line);
    const char *id, *text, *title = NULL;
    int rc = et_json_req_str(row, file, "_id", &id, err);
    if (!rc) rc = et_json_req_str(row, file, "text", &text, err);
    if (!rc) rc = et_json_opt_str(row, file, "title", &title, err);
    if (rc) return rc;
    if (title && *title) { /* BEIR convention: title + " " + text */
        et_buf b = {0};
        if ((rc = et_buf_printf(&b, err, "%s %s", title, text))) return rc;
        rc = et_dataset_add_doc(ds, id, b.data, NULL, err);
        et_buf_free(&b);
    } else if (is_blank(text)) {
        note_skip(ds, "%s:%zu: empty corpus text skipped", path, line);
    } else {
        rc = et_dataset_add_doc(ds, id, text, NULL, err);
    }
    if (rc) et_err_prefix(err, "%s", file);
    return rc;
}

static int beir_load(et_dataset *ds, const char *dir, const char *split, et_error *err) {
    char *cpath = et_path_join(dir, "corpus.jsonl", err);
    char *qpath = et_path_join(dir, "queries.jsonl", err);
    char *rpath = NULL;
    int rc = (!cpath || !qpath) ? ET_ENOMEM : ET_OK;
    static const char *splits[] = {"test", "dev", "train"};
    for (size_t i = 0; !rc && i < 3 && !rpath; i++) {
        const char *s = split ? split : splits[i];
        char name[300];
        snprintf(name, sizeof(name), "qrels/%s.tsv", s);
        char *p = et_path_join(dir, name, err);
        if (!p) { rc = ET_ENOMEM; break; }
        if (et_file_exists(p)) rpath = p;
        else free(p);
        if (split) break;
    }
    if (!rc && !rpath)
        rc = et_err_set(err, ET_ENOTFOUND, "%s: no qrels/%s.tsv in the BEIR folder", dir, split ? split : "{test,dev,train}");
    if (!rc) rc = each_jsonl(ds, cpath, beir_corpus_row, err);
    /* queries: read into a temporary table, then add in qrels order grouped by query */
    cJSON *qroot = NULL;
    char *qdata = NULL, *rdata = NULL;
    size_t qlen = 0, rlen = 0;
    et_strmap qmap;
    et_strmap_init(&qmap);
    char **qtext = NULL, **qids = NULL;
    size_t nq = 0, capq = 0, capi = 0;
    if (!rc) rc = et_read_file(qpath, DS_MAX_FILE, &qdata, &qlen, err);
    size_t line = 0;
    for (size_t pos = 0; !rc && pos < qlen;) {
        char *nl = memchr(qdata + pos, '\n', qlen - pos);
        size_t end = nl ? (size_t)(nl - qdata) : qlen;
        line++;
        size_t b = pos;
        while (b < end && (qdata[b] == ' ' || qdata[b] == '\r' || qdata[b] == '\t')) b++;
        if (b < end) {
            char what[600];
            snprintf(what, sizeof(what), "%s:%zu", qpath, line);
            rc = et_json_parse(&qroot, qdata + b, end - b, what, err);
            const char *id = NULL, *text = NULL;
            if (!rc) rc = et_json_req_str(qroot, what, "_id", &id, err);
            if (!rc) rc = et_json_req_str(qroot, what, "text", &text, err);
            if (!rc) rc = grow((void **)&qtext, &capq, nq + 1, sizeof(char *), err);
            if (!rc) rc = grow((void **)&qids, &capi, nq + 1, sizeof(char *), err);
            if (!rc) {
                int r = et_strmap_put_new(&qmap, id, strlen(id), (int64_t)nq, NULL, err);
                if (r < 0) rc = -r;
                else if (r == 1) rc = et_err_set(err, ET_EFORMAT, "%s: query id '%s' appears twice", what, id);
            }
            if (!rc) {
                qtext[nq] = et_strdup(text, err);
                qids[nq] = et_strdup(id, err);
                nq++;
                if (!qtext[nq - 1] || !qids[nq - 1]) rc = ET_ENOMEM;
            }
            cJSON_Delete(qroot);
            qroot = NULL;
        }
        pos = end + 1;
    }
    /* qrels: (query row, corpus index) pairs; then queries in queries.jsonl order */
    if (!rc) rc = et_read_file(rpath, DS_MAX_FILE, &rdata, &rlen, err);
    size_t *pair_q = NULL, *pair_d = NULL, npairs = 0, cap_q = 0, cap_d = 0;
    line = 0;
    for (size_t pos = 0; !rc && pos < rlen;) {
        char *nl = memchr(rdata + pos, '\n', rlen - pos);
        size_t end = nl ? (size_t)(nl - rdata) : rlen;
        char *row = rdata + pos;
        size_t l = end - pos;
        pos = end + 1;
        line++;
        if (l && row[l - 1] == '\r') l--;
        row[l] = 0;
        if (!l || (line == 1 && !strncmp(row, "query-id", 8))) continue;
        char *f2 = strchr(row, '\t'), *f3 = f2 ? strchr(f2 + 1, '\t') : NULL;
        if (!f3) {
            rc = et_err_set(err, ET_EFORMAT, "%s:%zu: expected 'query-id<TAB>corpus-id<TAB>score'", rpath, line);
            break;
        }
        *f2++ = 0;
        *f3++ = 0;
        long score;
        if (et_parse_long(f3, -1000000, 1000000, &score)) {
            rc = et_err_set(err, ET_EFORMAT, "%s:%zu: score '%s' is not an integer", rpath, line, f3);
            break;
        }
        if (score <= 0) continue;
        int64_t qi, di;
        if (!et_strmap_get(&qmap, row, strlen(row), &qi)) {
            rc = et_err_set(err, ET_EFORMAT, "%s:%zu: query id '%s' is not in queries.jsonl", rpath, line, row);
            break;
        }
        if (!et_strmap_get(&ds->doc_index, f2, strlen(f2), &di)) {
            rc = et_err_set(err, ET_EFORMAT, "%s:%zu: corpus id '%s' is not in corpus.jsonl", rpath, line, f2);
            break;
        }
        if ((rc = grow((void **)&pair_q, &cap_q, npairs + 1, sizeof(size_t), err)) ||
            (rc = grow((void **)&pair_d, &cap_d, npairs + 1, sizeof(size_t), err)))
            break;
        pair_q[npairs] = (size_t)qi;
        pair_d[npairs++] = (size_t)di;
    }
    /* counting sort of the pairs by query row */
    size_t *off = NULL, *rel = NULL;
    if (!rc && (!(off = et_calloc(nq + 1, sizeof(size_t), err)) || !(rel = et_malloc_n(npairs + 1, sizeof(size_t), err))))
        rc = ET_ENOMEM;
    if (!rc) {
        for (size_t i = 0; i < npairs; i++) off[pair_q[i] + 1]++;
        for (size_t i = 0; i < nq; i++) off[i + 1] += off[i];
        size_t *fill = et_calloc(nq + 1, sizeof(size_t), err);
        if (!fill) rc = ET_ENOMEM;
        for (size_t i = 0; !rc && i < npairs; i++) rel[off[pair_q[i]] + fill[pair_q[i]]++] = pair_d[i];
        free(fill);
    }
    for (size_t i = 0; !rc && i < nq; i++) {
        if (off[i + 1] == off[i]) continue; /* no judgements in this split */
        if (is_blank(qtext[i])) {
            note_skip(ds, "%s:%zu: empty query text skipped", qpath, i + 1);
            continue;
        }
        rc = et_dataset_add_query(ds, qids[i], qtext[i], rel + off[i], off[i + 1] - off[i], NULL, 0, err);
    }
    free(off);
    free(pair_q);
    free(pair_d);
    free(rel);
    for (size_t i = 0; i < nq; i++) {
        free(qtext[i]);
        free(qids[i]);
    }
    free(qtext);
    free(qids);
    et_strmap_free(&qmap);
    free(qdata);
    free(rdata);
    free(cpath);
    free(qpath);
    free(rpath);
    return rc;
}

/* ---- load / detect -------------------------------------------------------------------- */

int et_dataset_format_parse(const char *name, int *format) {
    static const char *names[] = {"auto", "llama", "pairs", "flag", "beir"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, names[i])) { *format = i; return 0; }
    if (!strcmp(name, "llama-index")) { *format = ET_DS_LLAMA; return 0; }
    if (!strcmp(name, "sentence-transformers") || !strcmp(name, "triplets")) { *format = ET_DS_PAIRS; return 0; }
    if (!strcmp(name, "flagembedding")) { *format = ET_DS_FLAG; return 0; }
    return -1;
}

const char *et_dataset_format_name(int format) {
    switch (format) {
    case ET_DS_LLAMA: return "llama";
    case ET_DS_PAIRS: return "pairs";
    case ET_DS_FLAG: return "flag";
    case ET_DS_BEIR: return "beir";
    default: return "auto";
    }
}

int et_dataset_detect(const char *path, int *format, et_error *err) {
    if (et_is_dir(path)) { *format = ET_DS_BEIR; return ET_OK; }
    if (et_ends_with(path, ".json")) { *format = ET_DS_LLAMA; return ET_OK; }
    /* JSONL: look at the first non-empty row */
    FILE *f = fopen(path, "rb");
    if (!f) return et_err_set(err, ET_ENOTFOUND, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    *format = ET_DS_PAIRS;
    while ((n = getline(&line, &cap, f)) >= 0) {
        if (n == 0 || is_blank(line)) continue;
        cJSON *row = cJSON_ParseWithLength(line, (size_t)n);
        if (row && cJSON_IsObject(row) && cJSON_GetObjectItemCaseSensitive(row, "query") &&
            cJSON_GetObjectItemCaseSensitive(row, "pos"))
            *format = ET_DS_FLAG;
        else if (row && cJSON_IsObject(row) && cJSON_GetObjectItemCaseSensitive(row, "queries") &&
                 cJSON_GetObjectItemCaseSensitive(row, "relevant_docs"))
            *format = ET_DS_LLAMA;
        cJSON_Delete(row);
        break;
    }
    free(line);
    fclose(f);
    return ET_OK;
}

int et_dataset_load(et_dataset **out, const char *path, int format, const char *split, et_error *err) {
    *out = NULL;
    int rc = ET_OK;
    if (format == ET_DS_AUTO && (rc = et_dataset_detect(path, &format, err))) return rc;
    et_dataset *ds = et_dataset_new(err);
    if (!ds) return ET_ENOMEM;
    switch (format) {
    case ET_DS_LLAMA: rc = load_llama(ds, path, err); break;
    case ET_DS_PAIRS: rc = each_jsonl(ds, path, pairs_row, err); break;
    case ET_DS_FLAG: rc = each_jsonl(ds, path, flag_row, err); break;
    case ET_DS_BEIR: rc = beir_load(ds, path, split, err); break;
    default: rc = et_err_set(err, ET_EINVAL, "unknown dataset format %d", format);
    }
    if (!rc && ds->n_queries == 0)
        rc = et_err_set(err, ET_EFORMAT, "%s: the dataset has no usable queries%s%s", path,
                        ds->n_skipped ? "; " : "", ds->n_skipped ? ds->skip_reason : "");
    if (rc) {
        et_dataset_free(ds);
        return rc;
    }
    *out = ds;
    return ET_OK;
}

/* ---- save ------------------------------------------------------------------------------- */

static int save_llama(const et_dataset *ds, et_buf *b, et_error *err) {
    int rc = et_buf_puts(b, "{\n  \"queries\": {", err);
    for (size_t i = 0; !rc && i < ds->n_queries; i++) {
        rc = et_buf_puts(b, i ? ",\n    " : "\n    ", err);
        if (!rc) rc = et_buf_json_string(b, ds->qids[i], strlen(ds->qids[i]), err);
        if (!rc) rc = et_buf_puts(b, ": ", err);
        if (!rc) rc = et_buf_json_string(b, ds->queries[i], strlen(ds->queries[i]), err);
    }
    if (!rc) rc = et_buf_puts(b, "\n  },\n  \"corpus\": {", err);
    for (size_t i = 0; !rc && i < ds->n_docs; i++) {
        rc = et_buf_puts(b, i ? ",\n    " : "\n    ", err);
        if (!rc) rc = et_buf_json_string(b, ds->doc_ids[i], strlen(ds->doc_ids[i]), err);
        if (!rc) rc = et_buf_puts(b, ": ", err);
        if (!rc) rc = et_buf_json_string(b, ds->docs[i], strlen(ds->docs[i]), err);
    }
    if (!rc) rc = et_buf_puts(b, "\n  },\n  \"relevant_docs\": {", err);
    for (size_t i = 0; !rc && i < ds->n_queries; i++) {
        rc = et_buf_puts(b, i ? ",\n    " : "\n    ", err);
        if (!rc) rc = et_buf_json_string(b, ds->qids[i], strlen(ds->qids[i]), err);
        if (!rc) rc = et_buf_puts(b, ": [", err);
        for (size_t r = ds->rel_off[i]; !rc && r < ds->rel_off[i + 1]; r++) {
            if (r > ds->rel_off[i]) rc = et_buf_puts(b, ", ", err);
            const char *id = ds->doc_ids[ds->rel[r]];
            if (!rc) rc = et_buf_json_string(b, id, strlen(id), err);
        }
        if (!rc) rc = et_buf_puts(b, "]", err);
    }
    if (!rc) rc = et_buf_puts(b, "\n  },\n  \"mode\": \"text\"\n}\n", err);
    return rc;
}

static int put_text(et_buf *b, const char *key, const char *s, et_error *err) {
    int rc = et_buf_printf(b, err, "\"%s\": ", key);
    return rc ? rc : et_buf_json_string(b, s, strlen(s), err);
}

static int save_pairs(const et_dataset *ds, et_buf *b, et_error *err) {
    int rc = ET_OK;
    for (size_t i = 0; !rc && i < ds->n_queries; i++) {
        size_t nneg = ds->neg_off[i + 1] - ds->neg_off[i];
        for (size_t r = ds->rel_off[i]; !rc && r < ds->rel_off[i + 1]; r++) {
            size_t k = 0;
            do { /* one row per (positive, negative) combination, as triplets */
                rc = et_buf_puts(b, "{", err);
                if (!rc) rc = put_text(b, "anchor", ds->queries[i], err);
                if (!rc) rc = et_buf_puts(b, ", ", err);
                if (!rc) rc = put_text(b, "positive", ds->docs[ds->rel[r]], err);
                if (!rc && nneg) {
                    rc = et_buf_puts(b, ", ", err);
                    if (!rc) rc = put_text(b, "negative", ds->docs[ds->neg[ds->neg_off[i] + k]], err);
                }
                if (!rc) rc = et_buf_puts(b, "}\n", err);
            } while (!rc && ++k < nneg);
        }
    }
    return rc;
}

static int put_list(et_buf *b, const et_dataset *ds, const size_t *idx, size_t n, et_error *err) {
    int rc = et_buf_puts(b, "[", err);
    for (size_t k = 0; !rc && k < n; k++) {
        if (k) rc = et_buf_puts(b, ", ", err);
        if (!rc) rc = et_buf_json_string(b, ds->docs[idx[k]], strlen(ds->docs[idx[k]]), err);
    }
    return rc ? rc : et_buf_puts(b, "]", err);
}

static int save_flag(const et_dataset *ds, et_buf *b, et_error *err) {
    int rc = ET_OK;
    for (size_t i = 0; !rc && i < ds->n_queries; i++) {
        rc = et_buf_puts(b, "{", err);
        if (!rc) rc = put_text(b, "query", ds->queries[i], err);
        if (!rc) rc = et_buf_puts(b, ", \"pos\": ", err);
        if (!rc) rc = put_list(b, ds, ds->rel + ds->rel_off[i], ds->rel_off[i + 1] - ds->rel_off[i], err);
        if (!rc) rc = et_buf_puts(b, ", \"neg\": ", err);
        if (!rc) rc = put_list(b, ds, ds->neg + ds->neg_off[i], ds->neg_off[i + 1] - ds->neg_off[i], err);
        if (!rc) rc = et_buf_puts(b, "}\n", err);
    }
    return rc;
}

static int save_beir(const et_dataset *ds, const char *dir, et_error *err) {
    int rc = et_mkdir_p(dir, err);
    char *qrels_dir = rc ? NULL : et_path_join(dir, "qrels", err);
    if (!rc && !qrels_dir) rc = ET_ENOMEM;
    if (!rc) rc = et_mkdir_p(qrels_dir, err);
    free(qrels_dir);
    et_buf b = {0};
    for (size_t i = 0; !rc && i < ds->n_docs; i++) {
        rc = et_buf_puts(&b, "{", err);
        if (!rc) rc = put_text(&b, "_id", ds->doc_ids[i], err);
        if (!rc) rc = et_buf_puts(&b, ", \"title\": \"\", ", err);
        if (!rc) rc = put_text(&b, "text", ds->docs[i], err);
        if (!rc) rc = et_buf_puts(&b, "}\n", err);
    }
    char *p = NULL;
    if (!rc && !(p = et_path_join(dir, "corpus.jsonl", err))) rc = ET_ENOMEM;
    if (!rc) rc = et_write_file_atomic(p, b.data, b.len, err);
    free(p);
    b.len = 0;
    for (size_t i = 0; !rc && i < ds->n_queries; i++) {
        rc = et_buf_puts(&b, "{", err);
        if (!rc) rc = put_text(&b, "_id", ds->qids[i], err);
        if (!rc) rc = et_buf_puts(&b, ", ", err);
        if (!rc) rc = put_text(&b, "text", ds->queries[i], err);
        if (!rc) rc = et_buf_puts(&b, "}\n", err);
    }
    p = NULL;
    if (!rc && !(p = et_path_join(dir, "queries.jsonl", err))) rc = ET_ENOMEM;
    if (!rc) rc = et_write_file_atomic(p, b.data, b.len, err);
    free(p);
    b.len = 0;
    if (!rc) rc = et_buf_puts(&b, "query-id\tcorpus-id\tscore\n", err);
    for (size_t i = 0; !rc && i < ds->n_queries; i++)
        for (size_t r = ds->rel_off[i]; !rc && r < ds->rel_off[i + 1]; r++)
            rc = et_buf_printf(&b, err, "%s\t%s\t1\n", ds->qids[i], ds->doc_ids[ds->rel[r]]);
    p = NULL;
    if (!rc && !(p = et_path_join(dir, "qrels/test.tsv", err))) rc = ET_ENOMEM;
    if (!rc) rc = et_write_file_atomic(p, b.data, b.len, err);
    free(p);
    et_buf_free(&b);
    return rc;
}

int et_dataset_save(const et_dataset *ds, const char *path, int format, et_error *err) {
    if (format == ET_DS_BEIR) return save_beir(ds, path, err);
    et_buf b = {0};
    int rc;
    switch (format) {
    case ET_DS_LLAMA: rc = save_llama(ds, &b, err); break;
    case ET_DS_PAIRS: rc = save_pairs(ds, &b, err); break;
    case ET_DS_FLAG: rc = save_flag(ds, &b, err); break;
    default: rc = et_err_set(err, ET_EINVAL, "unknown dataset format %d", format);
    }
    if (!rc) rc = et_write_file_atomic(path, b.data, b.len, err);
    et_buf_free(&b);
    return rc;
}
