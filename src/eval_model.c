/* eval_model.c - evaluating embedding models on a dataset; see eval_model.h.
 *
 * Queries are embedded first and kept; the corpus is embedded in blocks that
 * are fed to a streaming exact top-k (et_topk_begin/feed/end), so memory is
 * O(queries + one block) whatever the corpus size.
 *
 * Prompts follow sentence-transformers' encode_query / encode_document: the
 * model's "query" prompt for queries and its "document" / "passage" /
 * "corpus" prompt for documents when config_sentence_transformers.json
 * defines them, else its default prompt; --prompt / --prompt-name override
 * the query side.
 *
 * TODO(eval): the embedding cache (embcache.h) and adapters (et_adapter_*)
 * are on branch `train`; once they are on main, embed through the cache and
 * evaluate adapters on top of their model here. */
#include "eval_model.h"

#include <stdlib.h>
#include <string.h>

#include "report.h"

#define CORPUS_BLOCK 8192

void et_eval_model_opts_default(et_eval_model_opts *o) {
    memset(o, 0, sizeof(*o));
    o->use_cache = 1;
}

int et_eval_adapter_target(const char *adapter_dir, const char *const *models, size_t n_models) {
    (void)adapter_dir;
    (void)models;
    (void)n_models;
    return 0;
}

static const char *doc_prompt(const et_model *m) {
    static const char *names[3] = {"document", "passage", "corpus"};
    for (int i = 0; i < 3; i++) {
        const char *p = et_model_prompt(m, names[i]);
        if (p) return p;
    }
    const char *def = et_model_default_prompt(m);
    return def ? et_model_prompt(m, def) : NULL;
}

/* Query prompt: --prompt, else --prompt-name ("none" = no prompt; a name the
 * model lacks is an error), else "query", else the model's default prompt. */
static int query_prompt(const et_model *m, const char *model_dir, const et_eval_model_opts *o, const char **out,
                        et_error *err) {
    *out = NULL;
    if (o->prompt) {
        *out = o->prompt;
        return ET_OK;
    }
    if (o->prompt_name) {
        if (!strcmp(o->prompt_name, "none")) return ET_OK;
        if (!(*out = et_model_prompt(m, o->prompt_name)))
            return et_err_set(err, ET_EINVAL,
                              "%s: the model has no prompt named '%s' (config_sentence_transformers.json)",
                              model_dir, o->prompt_name);
        return ET_OK;
    }
    if ((*out = et_model_prompt(m, "query"))) return ET_OK;
    const char *def = et_model_default_prompt(m);
    *out = def ? et_model_prompt(m, def) : NULL;
    return ET_OK;
}

int et_eval_model(et_eval_run *runs, const et_dataset *ds, const char *model_dir, const char *name,
                  const char *const *adapters, size_t n_adapters, const et_eval_model_opts *o,
                  const size_t *ks, size_t n_k, et_error *err) {
    if (n_adapters)
        return et_err_set(err, ET_EUNSUPPORTED, "%s: evaluating adapters needs the adapter runtime (branch train), "
                          "not in this build yet", adapters[0]);
    et_model *m = NULL;
    et_topk_state *st = NULL;
    float *qv = NULL, *dv = NULL;
    int run_init = 0;
    et_model_opts mo = {0};
    mo.max_length = o->max_length;
    mo.quiet = o->quiet;
    int rc = et_model_load(&m, model_dir, &mo, err);
    if (rc) return rc;
    if (o->batch_size) et_model_set_batch_size(m, o->batch_size);
    const char *qp = NULL, *dp = doc_prompt(m);
    size_t dim = et_model_dim(m), nq = ds->n_queries, nd = ds->n_docs;
    size_t blk = ET_MIN((size_t)CORPUS_BLOCK, nd ? nd : 1);
    if ((rc = query_prompt(m, model_dir, o, &qp, err))) goto done;
    if ((rc = et_eval_run_init(&runs[0], name, "model", model_dir, err))) goto done;
    run_init = 1;
    et_eval_run *r = &runs[0];
    r->nq = nq;
    r->depth = et_ir_depth(ks, n_k);
    r->ranked = et_malloc_n(nq ? nq : 1, r->depth * sizeof(size_t), err);
    r->scores = et_malloc_n(nq ? nq : 1, r->depth * sizeof(float), err);
    qv = et_malloc_n(nq ? nq : 1, dim * sizeof(float), err);
    dv = et_malloc_n(blk, dim * sizeof(float), err);
    if (!r->ranked || !r->scores || !qv || !dv) {
        rc = ET_ENOMEM;
        goto done;
    }

    double t0 = et_now(), t_search = 0;
    if ((rc = et_embed(m, (const char *const *)ds->queries, nq, qp, qv, err))) goto embed_failed;
    et_l2_normalize(qv, nq, dim);
    double ts = et_now();
    if ((rc = et_topk_begin(&st, qv, nq, dim, r->depth, err))) goto done;
    t_search += et_now() - ts;
    et_progress prog;
    et_progress_init(&prog, "eval: embedding the corpus", "texts/s", nd);
    if (o->quiet) prog.enabled = 0;
    for (size_t d0 = 0; d0 < nd; d0 += blk) {
        size_t n = ET_MIN(blk, nd - d0);
        if ((rc = et_embed(m, (const char *const *)ds->docs + d0, n, dp, dv, err))) goto embed_failed;
        et_l2_normalize(dv, n, dim);
        ts = et_now();
        rc = et_topk_feed(st, dv, n, err);
        t_search += et_now() - ts;
        if (rc) goto done;
        et_progress_update(&prog, d0 + n, NULL);
    }
    et_progress_done(&prog, nd);
    ts = et_now();
    rc = et_topk_end(st, r->ranked, r->scores, err);
    if (!rc) rc = et_eval_score(r, ds, ks, n_k, err);
    t_search += et_now() - ts;
    if (rc) goto done;
    r->search_seconds = t_search;
    r->embed_seconds = et_now() - t0 - t_search;
    if (!o->quiet)
        fprintf(stderr, "embtune eval: %s: embedded %zu queries and %zu documents in %.1f s%s%s%s\n", name, nq, nd,
                r->embed_seconds, qp ? " (query prompt \"" : "", qp ? qp : "", qp ? "\")" : "");
    rc = et_report_find_train_log(model_dir, &r->train_log, err);
    goto done;
embed_failed:
    et_err_prefix(err, "%s", model_dir);
done:
    if (rc && run_init) et_eval_run_free(&runs[0]);
    et_topk_free(st);
    free(qv);
    free(dv);
    et_model_free(m);
    return rc;
}
