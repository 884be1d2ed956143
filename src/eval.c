/* eval.c - runs (BM25 or embeddings -> ranking -> metrics) and their files;
 * see eval.h. */
#include "eval.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void et_eval_run_free(et_eval_run *r) {
    if (!r) return;
    free(r->name);
    free(r->kind);
    free(r->source);
    free(r->train_log);
    free(r->ranked);
    free(r->scores);
    free(r->first);
    memset(r, 0, sizeof(*r));
}

int et_eval_run_init(et_eval_run *r, const char *name, const char *kind, const char *source,
                     et_error *err) {
    memset(r, 0, sizeof(*r));
    r->name = et_strdup(name, err);
    r->kind = et_strdup(kind, err);
    r->source = source ? et_strdup(source, err) : NULL;
    if (!r->name || !r->kind || (source && !r->source)) {
        et_eval_run_free(r);
        return ET_ENOMEM;
    }
    return ET_OK;
}

static int alloc_ranking(et_eval_run *r, const et_dataset *ds, const size_t *ks, size_t n_k,
                         et_error *err) {
    free(r->ranked);
    free(r->scores);
    r->nq = ds->n_queries;
    r->depth = et_ir_depth(ks, n_k);
    r->ranked = et_malloc_n(r->nq ? r->nq : 1, r->depth * sizeof(size_t), err);
    r->scores = et_malloc_n(r->nq ? r->nq : 1, r->depth * sizeof(float), err);
    return r->ranked && r->scores ? ET_OK : ET_ENOMEM;
}

int et_eval_score(et_eval_run *r, const et_dataset *ds, const size_t *ks, size_t n_k, et_error *err) {
    free(r->first);
    r->first = et_malloc_n(r->nq ? r->nq : 1, sizeof(size_t), err);
    if (!r->first) return ET_ENOMEM;
    int rc = et_ir_metrics(r->ranked, r->nq, r->depth, ds->rel_off, ds->rel, ks, n_k, &r->m, err);
    if (!rc) rc = et_ir_first_ranks(r->first, r->ranked, r->nq, r->depth, ds->rel_off, ds->rel, err);
    return rc;
}

int et_eval_bm25(et_eval_run *r, const et_dataset *ds, const et_bm25_opts *opts, const size_t *ks,
                 size_t n_k, et_error *err) {
    int rc = alloc_ranking(r, ds, ks, n_k, err);
    if (rc) return rc;
    double t0 = et_now();
    et_bm25 *ix = NULL;
    rc = et_bm25_build(&ix, (const char *const *)ds->docs, ds->n_docs, opts, err);
    if (!rc) rc = et_bm25_topk(ix, (const char *const *)ds->queries, ds->n_queries, r->depth, r->ranked,
                               r->scores, err);
    et_bm25_free(ix);
    if (!rc) rc = et_eval_score(r, ds, ks, n_k, err);
    r->embed_seconds = 0;
    r->search_seconds = et_now() - t0;
    return rc;
}

int et_eval_embeddings(et_eval_run *r, const et_dataset *ds, float *qemb, float *demb, size_t dim,
                       const size_t *ks, size_t n_k, et_error *err) {
    int rc = alloc_ranking(r, ds, ks, n_k, err);
    if (rc) return rc;
    double t0 = et_now();
    et_l2_normalize(qemb, ds->n_queries, dim);
    et_l2_normalize(demb, ds->n_docs, dim);
    rc = et_topk(qemb, ds->n_queries, demb, ds->n_docs, dim, r->depth, r->ranked, r->scores, err);
    if (!rc) rc = et_eval_score(r, ds, ks, n_k, err);
    r->search_seconds = et_now() - t0;
    return rc;
}

/* ---- files ------------------------------------------------------------------------------ */

/* ST-style keys; the fixed cut-offs (mrr@10, ndcg@10, map@100) are written
 * once, whether or not 10 is among the ks. */
static int put_metrics(et_buf *b, const et_ir_result *m, et_error *err) {
    int rc = et_buf_puts(b, "{", err);
    const char *names[3] = {"accuracy", "precision", "recall"};
    const double *vals[3] = {m->accuracy, m->precision, m->recall};
    for (int t = 0; t < 3 && !rc; t++)
        for (size_t i = 0; i < m->n_k && !rc; i++)
            rc = et_buf_printf(b, err, "\"%s@%zu\": %.10g, ", names[t], m->k[i], vals[t][i]);
    for (size_t i = 0; i < m->n_k && !rc; i++)
        if (m->k[i] != 10)
            rc = et_buf_printf(b, err, "\"mrr@%zu\": %.10g, \"ndcg@%zu\": %.10g, ", m->k[i], m->mrr[i], m->k[i],
                               m->ndcg[i]);
    if (!rc)
        rc = et_buf_printf(b, err, "\"mrr@10\": %.10g, \"ndcg@10\": %.10g, \"map@100\": %.10g}", m->mrr10,
                           m->ndcg10, m->map100);
    return rc;
}

static double qps(const et_eval_run *r) {
    double s = r->embed_seconds + r->search_seconds;
    return s > 0 ? (double)r->nq / s : 0;
}

static int write_metrics_json(const char *path, const char *dataset_path, const et_dataset *ds,
                              const et_eval_run *runs, size_t n_runs, et_error *err) {
    et_buf b = {0};
    int rc = et_buf_puts(&b, "{\n  \"dataset\": ", err);
    if (!rc) rc = et_buf_json_string(&b, dataset_path, strlen(dataset_path), err);
    if (!rc) rc = et_buf_printf(&b, err, ",\n  \"n_queries\": %zu,\n  \"n_docs\": %zu,\n  \"k\": [",
                                ds->n_queries, ds->n_docs);
    const et_ir_result *m0 = n_runs ? &runs[0].m : NULL;
    for (size_t i = 0; m0 && i < m0->n_k && !rc; i++)
        rc = et_buf_printf(&b, err, "%s%zu", i ? ", " : "", m0->k[i]);
    if (!rc) rc = et_buf_puts(&b, "],\n  \"runs\": [", err);
    for (size_t r = 0; r < n_runs && !rc; r++) {
        const et_eval_run *x = &runs[r];
        rc = et_buf_printf(&b, err, "%s\n    {\"name\": ", r ? "," : "");
        if (!rc) rc = et_buf_json_string(&b, x->name, strlen(x->name), err);
        if (!rc) rc = et_buf_puts(&b, ", \"kind\": ", err);
        if (!rc) rc = et_buf_json_string(&b, x->kind, strlen(x->kind), err);
        if (!rc) rc = et_buf_puts(&b, ", \"source\": ", err);
        if (!rc) rc = x->source ? et_buf_json_string(&b, x->source, strlen(x->source), err)
                                : et_buf_puts(&b, "null", err);
        if (!rc) rc = et_buf_printf(&b, err, ",\n     \"n_queries_scored\": %zu, \"n_queries_skipped\": %zu,"
                                             "\n     \"metrics\": ", x->m.n_queries, x->m.n_skipped);
        if (!rc) rc = put_metrics(&b, &x->m, err);
        if (!rc)
            rc = et_buf_printf(&b, err,
                               ",\n     \"embed_seconds\": %.6g, \"search_seconds\": %.6g, "
                               "\"queries_per_s\": %.6g}",
                               x->embed_seconds, x->search_seconds, qps(x));
    }
    if (!rc) rc = et_buf_puts(&b, "\n  ]\n}\n", err);
    if (!rc) rc = et_write_file_atomic(path, b.data, b.len, err);
    et_buf_free(&b);
    return rc;
}

static int write_ranks_jsonl(const char *path, const et_dataset *ds, const et_eval_run *runs,
                             size_t n_runs, et_error *err) {
    et_afile f;
    int rc = et_afile_open(&f, path, err);
    if (rc) return rc;
    et_buf b = {0};
    for (size_t r = 0; r < n_runs && !rc; r++) {
        const et_eval_run *x = &runs[r];
        size_t ntop = ET_MIN((size_t)10, x->depth);
        for (size_t i = 0; i < x->nq && !rc; i++) {
            b.len = 0;
            rc = et_buf_puts(&b, "{\"query_id\": ", err);
            if (!rc) rc = et_buf_json_string(&b, ds->qids[i], strlen(ds->qids[i]), err);
            if (!rc) rc = et_buf_puts(&b, ", \"model\": ", err);
            if (!rc) rc = et_buf_json_string(&b, x->name, strlen(x->name), err);
            if (!rc) rc = x->first[i] ? et_buf_printf(&b, err, ", \"rank\": %zu", x->first[i])
                                      : et_buf_puts(&b, ", \"rank\": null", err);
            if (!rc) rc = et_buf_puts(&b, ", \"relevant\": [", err);
            for (size_t j = ds->rel_off[i]; j < ds->rel_off[i + 1] && !rc; j++) {
                const char *id = ds->doc_ids[ds->rel[j]];
                if (j > ds->rel_off[i]) rc = et_buf_puts(&b, ", ", err);
                if (!rc) rc = et_buf_json_string(&b, id, strlen(id), err);
            }
            if (!rc) rc = et_buf_puts(&b, "], \"top\": [", err);
            for (size_t j = 0; j < ntop && !rc; j++) {
                size_t d = x->ranked[i * x->depth + j];
                if (d == SIZE_MAX) break;
                if (j) rc = et_buf_puts(&b, ", ", err);
                if (!rc) rc = et_buf_json_string(&b, ds->doc_ids[d], strlen(ds->doc_ids[d]), err);
            }
            if (!rc) rc = et_buf_puts(&b, "], \"scores\": [", err);
            for (size_t j = 0; j < ntop && !rc; j++) {
                size_t d = x->ranked[i * x->depth + j];
                if (d == SIZE_MAX) break;
                rc = et_buf_printf(&b, err, "%s%.6g", j ? ", " : "", (double)x->scores[i * x->depth + j]);
            }
            if (!rc) rc = et_buf_puts(&b, "]}\n", err);
            if (!rc && fwrite(b.data, 1, b.len, f.fp) != b.len)
                rc = et_err_set(err, ET_EIO, "%s: write failed", path);
        }
    }
    et_buf_free(&b);
    if (rc) {
        et_afile_abort(&f);
        return rc;
    }
    return et_afile_commit(&f, err);
}

int et_eval_write(const char *dir, const char *dataset_path, const et_dataset *ds,
                  const et_eval_run *runs, size_t n_runs, et_error *err) {
    int rc = et_mkdir_p(dir, err);
    if (rc) return rc;
    char *p1 = et_path_join(dir, "metrics.json", err);
    char *p2 = et_path_join(dir, "ranks.jsonl", err);
    if (!p1 || !p2) rc = ET_ENOMEM;
    if (!rc) rc = write_metrics_json(p1, dataset_path, ds, runs, n_runs, err);
    if (!rc) rc = write_ranks_jsonl(p2, ds, runs, n_runs, err);
    free(p1);
    free(p2);
    return rc;
}

int et_eval_table(et_buf *out, const et_eval_run *runs, size_t n_runs, et_error *err) {
    if (!n_runs) return ET_OK;
    size_t w = 5;
    for (size_t r = 0; r < n_runs; r++) w = ET_MAX(w, strlen(runs[r].name));
    if (w > 48) w = 48;
    const et_ir_result *m0 = &runs[0].m;
    int rc = et_buf_printf(out, err, "%-*s", (int)w, "model");
    for (size_t i = 0; i < m0->n_k && !rc; i++) {
        char h[32];
        snprintf(h, sizeof h, "acc@%zu", m0->k[i]);
        rc = et_buf_printf(out, err, " %8s", h);
    }
    char rk[32];
    snprintf(rk, sizeof rk, "R@%zu", m0->k[m0->n_k - 1]);
    if (!rc) rc = et_buf_printf(out, err, " %8s %8s %8s %8s %9s\n", "MRR@10", "NDCG@10", "MAP@100", rk, "queries/s");
    for (size_t r = 0; r < n_runs && !rc; r++) {
        const et_eval_run *x = &runs[r];
        rc = et_buf_printf(out, err, "%-*.*s", (int)w, (int)w, x->name);
        for (size_t i = 0; i < x->m.n_k && !rc; i++) rc = et_buf_printf(out, err, " %8.4f", x->m.accuracy[i]);
        if (!rc)
            rc = et_buf_printf(out, err, " %8.4f %8.4f %8.4f %8.4f %9.1f\n", x->m.mrr10, x->m.ndcg10, x->m.map100,
                               x->m.recall[x->m.n_k - 1], qps(x));
    }
    return rc;
}
